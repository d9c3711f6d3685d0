"""Excavation impact and cross-sections on small networks under flat ground, checked by hand; bad input refused
with one line by the CLI."""

from __future__ import annotations

import json
import math

import pytest
import shapely

from cim.analysis.excavation import excavation_impact
from cim.analysis.profile import cross_section
from cim.importers.dem import import_dem
from cim.importers.errors import InputError
from cim.importers.pipes.gis import import_pipes
from tests.analysis.test_clearance import X0, Y0, write_flat_dem, write_pipes
from tests.helpers import run_cim

# Ground 10.0 everywhere (DEM and survey points):
#   W  water DN300 along y = 0, crown depth 1.0        → crown 9.00, centre 8.85, invert 8.70
#   D  sewer DN200 along y = -1, invert depth 3.0      → invert 7.00, centre 7.10, crown 7.20
#   DD sewer DN400 along y = -3, invert depth 4.5      → invert 5.50, centre 5.70, crown 5.90
#   T  telecom box 400×300 along y = 2, crown depth 0.7 → crown 9.30, centre 9.15, invert 9.00
NETWORKS = {
    "water": ("JS", {"W": ((0, 0), (60, 0), 300, 1.0, 1.0)}),
    "drainage": ("WS", {"D": ((0, -1), (60, -1), 200, 3.0, 3.0), "DD": ((0, -3), (60, -3), 400, 4.5, 4.5)}),
    "telecom": ("TX", {"T": ((0, 2), (60, 2), None, 0.7, 0.7, {"DMCC": "400X300"})}),
}


def _import(model, tmp_path, dem: bool = True):
    if dem:
        import_dem(model, write_flat_dem(tmp_path / "dem.tif"))
    for network, (code, pipes) in NETWORKS.items():
        import_pipes(model, write_pipes(tmp_path / f"{network}.gpkg", code, pipes), network)
    return model


@pytest.fixture
def pipes(model, tmp_path):
    return _import(model, tmp_path)


def box(x0, y0, x1, y1):
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def _by_source(items):
    return {p.source_id: p for p in items}


def test_pit_over_pipes_hits_the_shallow_and_is_too_close_to_the_deep(pipes):
    """A 4 × 3 m pit over W and D, 2.0 m deep: bottom 8.0. W's crown 9.0 is 1.0 above it (hit); D's crown 7.2 is
    0.8 below it (too close, margin 1.0); DD's crown 5.9 is 2.1 below it and 1.5 m beside: untouched. T's outer
    wall (y = 1.8) is 0.3 m beside the pit (y ≤ 1.5), its crown above the bottom: too close."""
    result = excavation_impact(pipes, box(20, -1.5, 24, 1.5), 2.0)
    hit, close = _by_source(result.hit), _by_source(result.too_close)
    assert set(hit) == {"W"} and set(close) == {"D", "T"}
    w = hit["W"]
    assert w.impact == "hit" and w.network == "water" and w.size == "DN300"
    assert w.vertical_gap_m == pytest.approx(-1.0) and w.horizontal_m == 0.0
    assert w.length_inside_m == pytest.approx(4.0) and w.bottom_z == pytest.approx(8.0)
    assert close["D"].vertical_gap_m == pytest.approx(0.8) and close["D"].horizontal_m == 0.0
    assert close["D"].length_inside_m == pytest.approx(4.0)
    t = close["T"]
    assert t.horizontal_m == pytest.approx(0.3) and t.vertical_gap_m == pytest.approx(8.0 - 9.3)
    assert t.length_inside_m == 0.0 and t.size == "400×300"
    assert result.summary()["hit"] == 1 and result.summary()["networks_hit"] == ["water"]


def test_pit_beside_a_pipe_is_too_close_by_its_plan_distance(pipes):
    """A pit whose edge is 1.0 m north of W's centreline: its outer wall is 0.85 m away (< margin 1.0)."""
    result = excavation_impact(pipes, box(20, 1.0, 24, 1.6), 1.5, layers=["water"])
    assert result.hit == [] and [p.source_id for p in result.too_close] == ["W"]
    w = result.too_close[0]
    assert w.horizontal_m == pytest.approx(0.85) and w.vertical_gap_m == pytest.approx(8.5 - 9.0)
    # 1.2 m away: 1.05 ≥ 1.0, outside the margin; a wider margin takes it in again
    assert excavation_impact(pipes, box(20, 1.2, 24, 1.6), 1.5, layers=["water"]).too_close == []
    wide = excavation_impact(pipes, box(20, 1.2, 24, 1.6), 1.5, margin_m=1.5, layers=["water"])
    assert [p.horizontal_m for p in wide.too_close] == [pytest.approx(1.05)]


def test_shallow_pit_over_a_pipe_and_ground_from_the_survey(model, tmp_path):
    """Without terrain the pit bottom comes from the pipes' surveyed ground (10.0): 0.5 m deep → bottom 9.5,
    W's crown 0.5 below it (too close); T's crown 9.3 is 0.2 below it (too close), D is 2.3 below (untouched)."""
    _import(model, tmp_path, dem=False)
    result = excavation_impact(model, box(10, -1.5, 12, 2.5), 0.5)
    assert result.hit == []
    close = _by_source(result.too_close)
    assert set(close) == {"W", "T"}
    assert close["W"].vertical_gap_m == pytest.approx(0.5) and close["T"].vertical_gap_m == pytest.approx(0.2)
    assert close["W"].length_inside_m == pytest.approx(2.0)


def test_bad_pits_are_refused(pipes):
    with pytest.raises(InputError, match="not a valid polygon"):
        excavation_impact(pipes, shapely.Polygon([(X0, Y0), (X0 + 1, Y0 + 1), (X0 + 1, Y0), (X0, Y0 + 1)]), 1.0)
    with pytest.raises(InputError, match="depth must be a number of metres > 0"):
        excavation_impact(pipes, box(0, 0, 1, 1), -1.0)
    with pytest.raises(InputError, match="must be a polygon"):
        excavation_impact(pipes, shapely.LineString([(X0, Y0), (X0 + 1, Y0)]), 1.0)


def test_cross_section_chainages_heights_and_cover(pipes):
    """A cut bent like a U: down x = 5 from y = -5 to 5, across to x = 15, back down to y = -5 (30 m)."""
    cut = shapely.LineString([(X0 + 5, Y0 - 5), (X0 + 5, Y0 + 5), (X0 + 15, Y0 + 5), (X0 + 15, Y0 - 5)])
    prof = cross_section(pipes, cut)
    got = [(p.source_id, round(p.chainage_m, 6)) for p in prof.pipes]
    # first leg: DD at y = -3 (2 m), D at -1 (4), W at 0 (5), T at 2 (7); last leg from y = 5 down: 20 + 3 ...
    assert got == [("DD", 2.0), ("D", 4.0), ("W", 5.0), ("T", 7.0), ("T", 23.0), ("W", 25.0), ("D", 26.0),
                   ("DD", 28.0)]
    by = {p.source_id: p for p in prof.pipes[:4]}
    w, d, dd, t = by["W"], by["D"], by["DD"], by["T"]
    assert (w.crown_z, w.centre_z, w.invert_z, w.cover_m) == (pytest.approx(9.0), pytest.approx(8.85),
                                                              pytest.approx(8.7), pytest.approx(1.0))
    assert (d.crown_z, d.invert_z, d.cover_m) == (pytest.approx(7.2), pytest.approx(7.0), pytest.approx(2.8))
    assert (dd.centre_z, dd.cover_m, dd.size) == (pytest.approx(5.7), pytest.approx(4.1), "DN400")
    assert (t.shape, t.size, t.crown_z, t.invert_z, t.cover_m) == ("box", "400×300", pytest.approx(9.3),
                                                                   pytest.approx(9.0), pytest.approx(0.7))
    assert (w.x, w.y, w.network, w.ground_z) == (pytest.approx(X0 + 5), pytest.approx(Y0), "water",
                                                 pytest.approx(10.0))
    assert prof.length_m == pytest.approx(30.0)
    assert prof.ground_chainage == pytest.approx([0, 5, 10, 15, 20, 25, 30])
    assert prof.ground_z == pytest.approx([10.0] * 7)


def test_ground_profile_is_nan_off_the_terrain(pipes):
    """The DEM ends 500 m east of X0: a cut from 400 to 600 m has ground on its first 100 m only."""
    prof = cross_section(pipes, shapely.LineString([(X0 + 400, Y0 + 50), (X0 + 600, Y0 + 50)]), step_m=10)
    assert prof.pipes == [] and len(prof.ground_z) == 21
    for ch, z in zip(prof.ground_chainage, prof.ground_z, strict=True):
        assert (z == pytest.approx(10.0)) if ch <= 100 else math.isnan(z)


def test_cli_excavation_and_profile(pipes, tmp_path):
    pit = box(20, -1.5, 24, 1.5)
    done = run_cim("pipes", "excavation", "--polygon", pit.wkt, "--depth", "2", model=pipes)
    assert done.returncode == 0, done.stderr
    assert "hit: 1" in done.stdout and "too_close: 2" in done.stdout
    round_pit = shapely.Point(X0 + 22, Y0).buffer(1.5, quad_segs=32).wkt  # longer than a file name may be
    done = run_cim("pipes", "excavation", "--polygon", round_pit, "--depth", "2", model=pipes)
    assert done.returncode == 0 and "hit: 1" in done.stdout, done.stderr
    gj = tmp_path / "pit.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(pit)}]}))
    data = json.loads(run_cim("pipes", "excavation", "--polygon", str(gj), "--depth", "2", "--json",
                              model=pipes).stdout)
    assert [p["source_id"] for p in data["hit"]] == ["W"] and data["summary"]["too_close"] == 2
    line = f"{X0 + 5},{Y0 - 5},{X0 + 5},{Y0 + 5}"
    done = run_cim("pipes", "profile", "--line", line, model=pipes)
    assert done.returncode == 0, done.stderr
    assert "pipes_crossed: 4" in done.stdout
    data = json.loads(run_cim("pipes", "profile", "--line", line, "--json", model=pipes).stdout)
    assert [p["source_id"] for p in data["pipes"]] == ["DD", "D", "W", "T"]
    off = json.loads(run_cim("pipes", "profile", "--line", f"{X0 + 450},{Y0},{X0 + 550},{Y0}", "--json",
                             model=pipes).stdout)
    assert off["ground_z"][0] == pytest.approx(10.0) and off["ground_z"][-1] is None  # NaN → null


@pytest.mark.parametrize("args, reason", [
    (("excavation", "--polygon", "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))", "--depth", "2"), "not a valid polygon"),
    (("excavation", "--polygon", "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", "--depth", "-1"), "depth must be"),
    (("excavation", "--polygon", "POLYGON((0 0, 1 0", "--depth", "2"), "neither WKT nor"),
    (("excavation", "--polygon", "LINESTRING(0 0, 1 0)", "--depth", "2"), "must be a polygon"),
    (("profile", "--line", "1,2,3"), "even number of coordinates"),
    (("profile", "--line", "1,2,1,2"), "two distinct points"),
    (("profile", "--line", "0,0,10,0", "--step", "0"), "step must be"),
])
def test_cli_bad_input_is_one_line(model, args, reason):
    done = run_cim("pipes", *args, model=model)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], done.stderr
