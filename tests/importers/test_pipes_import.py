"""GIS pipe import: topology (named and snapped), the defects it reports, heights, drainage direction,
and bad input refused whole."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

from cim.analysis.network import load_graph
from cim.importers.dem import import_dem
from cim.importers.pipes.gis import import_pipes
from tests.helpers import fetch, run_cim, scalar
from tests.importers.test_bad_input import assert_refused, snapshot
from tests.pipe_builders import CRS, X0, Y0, write_flat_dem, write_loop, write_network


def test_named_topology_codes_and_attributes(model, tmp_path):
    done = import_pipes(model, write_loop(tmp_path / "loop.gpkg"), "water")
    assert done.summary["pipes"] == 9 and done.summary["topology"].startswith("named")
    assert done.summary["nodes"] == {"connection": 1, "junction": 1, "source": 1, "tee": 3, "valve": 3}
    kinds = dict(fetch(model, "SELECT kind, count(*) FROM city_object GROUP BY kind"))
    assert kinds == {"water_pipe": 9, "water_node": 9}
    codes = [c for (c,) in fetch(model, "SELECT code FROM pipe_segment ORDER BY code")]
    assert all(c.startswith("440402-JS-") for c in codes)
    row = fetch(model, "SELECT n.node_type, n.operable, n.normal_state, o.source_id FROM pipe_node n "
                       "JOIN city_object o USING (code) WHERE o.source_id = 'V1'")[0]
    assert row == ("valve", True, "open", "V1")
    # re-import keeps every code
    import_pipes(model, write_loop(tmp_path / "loop.gpkg"), "water")
    assert [c for (c,) in fetch(model, "SELECT code FROM pipe_segment ORDER BY code")] == codes


def test_heights_from_depth_and_ground(model, tmp_path):
    """Crown depth 1.2 m under ground 10.0 m with DN300: centre 10 - 1.2 - 0.15 = 8.65 m."""
    import_pipes(model, write_loop(tmp_path / "loop.gpkg"), "water")
    z0, z1, inv, depth, length = fetch(model,
        "SELECT ST_Z(ST_StartPoint(o.geom)), ST_Z(ST_EndPoint(o.geom)), s.invert_start, s.depth_start, s.length_m "
        "FROM pipe_segment s JOIN city_object o USING (code) WHERE o.source_id = 'p1'")[0]
    assert z0 == pytest.approx(8.65) and z1 == pytest.approx(8.65)
    assert inv == pytest.approx(8.5) and depth == pytest.approx(1.2) and length == pytest.approx(100)
    # a service of DN50 at 1.0 m: centre 10 - 1.0 - 0.025
    assert scalar(model, "SELECT ST_Z(ST_EndPoint(o.geom)) FROM city_object o WHERE o.source_id = 'p4'") == \
        pytest.approx(8.975)


def test_drainage_is_oriented_downhill_from_inverts(model, tmp_path):
    """Inverts (QDGC/ZDGC, 内底) given; one pipe digitised against the flow is turned round."""
    pts = {"M1": (0, 0, "检查井"), "M2": (40, 0, "检查井"), "M3": (80, 0, "检查井"), "O": (120, 0, "出水口")}
    lines = {"w1": ("M1", "M2", 400, None, None), "w2": ("M3", "M2", 400, None, None),  # w2 drawn uphill
             "w3": ("M3", "O", 600, None, None)}
    fields = {"w1": {"QDGC": 8.0, "ZDGC": 7.8}, "w2": {"QDGC": 7.5, "ZDGC": 7.7}, "w3": {"QDGC": 7.5, "ZDGC": 7.2}}
    wells = {"M1": {"JS": 2.5}, "M2": {"JS": 2.8}, "M3": {"JS": 3.0}}
    path = write_network(tmp_path / "rain.gpkg", pts, lines, code="YS", line_fields=fields, point_fields=wells)
    done = import_pipes(model, path, "drainage")
    assert done.summary["reversed_to_flow"] == 1 and done.summary["flat_or_rising"] == 0
    rows = dict(((sid, (s, e, slope)) for sid, s, e, slope in fetch(model,
        "SELECT o.source_id, s.invert_start, s.invert_end, s.slope FROM pipe_segment s JOIN city_object o "
        "USING (code)")))
    assert rows["w2"][:2] == (pytest.approx(7.7), pytest.approx(7.5)) and rows["w2"][2] == pytest.approx(0.005)
    assert scalar(model, "SELECT subtype FROM pipe_segment LIMIT 1") == "rain"
    bottom, z = fetch(model, "SELECT n.bottom_z, o.top_z FROM pipe_node n JOIN city_object o USING (code) "
                             "WHERE o.source_id = 'M1'")[0]
    assert bottom == pytest.approx(7.5) and z == pytest.approx(10.0)
    graph = load_graph(model, "drainage")
    from cim.analysis.trace import trace

    up = trace(graph, "M2", "upstream")
    assert {graph.pipe_source[list(graph.pipe_code).index(c)] for c in up.pipes} == {"w1"}
    assert len(trace(graph, "M1", "downstream").pipes) == 3  # w1, then w2 (turned: M2 → M3), then w3


def _snapped_layer(tmp_path):
    """Lines without point ids: ends within 5 cm snap; a valve point drawn on a main splits it; a duplicate,
    a zero-length line, a self-crossing line and a dangling end are reported."""
    x, y = X0, Y0
    lines = [
        shapely.LineString([(x, y), (x + 100, y)]),
        shapely.LineString([(x + 100.03, y), (x + 200, y)]),  # 3 cm gap: snaps
        shapely.LineString([(x + 100, y), (x + 200, y)]),  # a second copy of the line above (within tol)
        shapely.LineString([(x + 200, y), (x + 200.01, y)]),  # zero length after snapping
        shapely.LineString([(x + 200, y), (x + 250, y + 50), (x + 250, y), (x + 200, y + 50)]),  # crosses itself
    ]
    pts = [shapely.Point(x, y), shapely.Point(x + 50, y)]
    path = tmp_path / "snapped.gpkg"
    gpd.GeoDataFrame({"GJ": [200] * 5, "QDMS": [1.0] * 5, "ZDMS": [1.0] * 5}, geometry=lines, crs=CRS).to_file(
        path, layer="gas_lines")
    gpd.GeoDataFrame({"FSW": ["调压站", "阀门"], "DMGC": [10.0, 10.0]}, geometry=pts, crs=CRS).to_file(
        path, layer="gas_points")
    return path


def test_snapped_topology_and_defects(model, tmp_path):
    import_dem(model, write_flat_dem(tmp_path / "flat.tif"))
    done = import_pipes(model, _snapped_layer(tmp_path), "gas")
    s = done.summary
    assert s["lines_split_at_points"] == 1
    assert s["duplicates"]["count"] == 1 and s["zero_length"]["count"] == 1
    assert s["self_intersecting"]["count"] == 1
    assert s["pipes"] == 4  # first line split in two, plus the snapped one and the self-crossing one
    assert s["dangling_ends"]["count"] == 1  # the self-crossing line's far end
    graph = load_graph(model, "gas")
    assert graph.n == 5 and graph.p == 4
    from cim.analysis.isolation import valve_segments

    assert valve_segments(graph).count == 2  # the valve splits the main


def test_report_reaches_the_cli(model, tmp_path):
    import_dem(model, write_flat_dem(tmp_path / "flat.tif"))
    result = run_cim("import", "pipes", str(_snapped_layer(tmp_path)), "--network", "gas", model=model)
    assert result.returncode == 0, result.stderr
    assert "1 duplicates" in result.stderr and "1 zero length" in result.stderr
    assert "1 self intersecting" in result.stderr and "4 pipes" in result.stdout


def test_bad_pipe_input_is_refused_whole(model, tmp_path):
    good = write_loop(tmp_path / "loop.gpkg")
    import_pipes(model, good, "water")
    before = snapshot(model)
    assert_refused(run_cim("import", "pipes", str(good), "--network", "sewage", model=model),
                   "unknown network type 'sewage'")
    mapping = tmp_path / "map.toml"
    mapping.write_text('[lines]\ndiameter = "管径mm"\n')
    assert_refused(run_cim("import", "pipes", str(good), "--network", "water", "--mapping", str(mapping),
                           model=model), "map.toml", "管径mm", "diameter")
    # a gas pipe in a water delivery
    other = write_loop(tmp_path / "mixed.gpkg")
    frame = gpd.read_file(other, layer="lines")
    frame.loc[3, "GXDM"] = "TR"
    frame.to_file(other, layer="lines", driver="GPKG")
    assert_refused(run_cim("import", "pipes", str(other), "--network", "water", model=model),
                   "mixed.gpkg", "type code 'TR' is a gas pipe, not water")
    frame.loc[3, "GXDM"] = "XX"
    frame.to_file(other, layer="lines", driver="GPKG")
    assert_refused(run_cim("import", "pipes", str(other), "--network", "water", model=model), "unknown type code")
    frame.loc[3, "GXDM"] = "JS"
    frame.loc[4, "GXBH"] = "p1"
    frame.to_file(other, layer="lines", driver="GPKG")
    assert_refused(run_cim("import", "pipes", str(other), "--network", "water", model=model), "repeated")
    assert snapshot(model) == before


def test_no_ground_no_heights(model, tmp_path):
    path = tmp_path / "bare.gpkg"
    gpd.GeoDataFrame({"GJ": [200]}, geometry=[shapely.LineString([(X0, Y0), (X0 + 10, Y0)])], crs=CRS).to_file(path)
    before = snapshot(model)
    assert_refused(run_cim("import", "pipes", str(path), "--network", "water", model=model),
                   "bare.gpkg", "no height for this pipe", "cim import dem")
    assert snapshot(model) == before
