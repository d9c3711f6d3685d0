"""After an import, `cim tile` rewrites only the tiles whose objects changed and says how many."""

from __future__ import annotations

import geopandas as gpd
import pytest
from typer.testing import CliRunner

from cim.cli.main import app
from cim.importers.gis import import_gis
from cim.tiler.build import build_tiles
from cim.tiler.check import check_tileset, read_content
from tests.conftest import import_sample


@pytest.fixture
def tiled(make_model, sample_dir, tmp_path):
    m = make_model()
    import_sample(m, sample_dir)
    out = tmp_path / "tiles"
    first = build_tiles(m, out)
    return m, out, first


def _layer(report, name):
    return next(r for r in report.layers if r.name == name)


def test_unchanged_model_rewrites_nothing(tiled, sample_dir):
    m, out, first = tiled
    assert first.tiles_written == first.tiles
    again = build_tiles(m, out)
    assert again.tiles_written == 0 and again.tiles == first.tiles
    # re-importing the same source replaces its objects, but they draw the same: still nothing to write
    import_gis(m, sample_dir / "district.gpkg", "roads")
    assert build_tiles(m, out).tiles_written == 0


def test_changed_building_rewrites_only_its_tile(tiled, sample_dir, tmp_path):
    m, out, first = tiled
    buildings = gpd.read_file(sample_dir / "district.gpkg", layer="buildings")
    target = buildings["height"].idxmin()  # a small building: it sits in a leaf tile
    buildings.loc[target, "height"] += 2.0
    changed = tmp_path / "edit" / "district.gpkg"
    changed.parent.mkdir()
    buildings.to_file(changed, layer="buildings", engine="pyogrio")
    import_gis(m, changed, "buildings")  # same source name: replaces the layer's objects
    with m.connect() as conn:
        (code,) = conn.execute("SELECT code FROM city_object WHERE layer = 'buildings' "
                               "AND attributes->>'bldg_code' = %s", (buildings.loc[target, "bldg_code"],)).fetchone()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.glb")}
    report = build_tiles(m, out)
    assert _layer(report, "buildings").written == 1 and report.tiles_written == 1
    rewritten = [p for p in out.rglob("*.glb") if p.stat().st_mtime_ns != stamps.get(p)]
    assert len(rewritten) == 1
    assert code in read_content(rewritten[0]).table["code"]
    assert check_tileset(out / "tileset.json", read_glbs=False) == []


def test_full_rewrites_everything(tiled):
    m, out, first = tiled
    assert build_tiles(m, out, ["buildings"], full=True).tiles_written == _layer(first, "buildings").tiles


def test_cli_reports_rewrites_and_rejects_unknown_layers(tiled):
    m, out, first = tiled
    runner = CliRunner()
    done = runner.invoke(app, ["tile", "--out", str(out), "--model", m.url.database])
    assert done.exit_code == 0, done.output
    assert f"0 of {first.tiles} tiles rewritten" in done.output
    bad = runner.invoke(app, ["tile", "--out", str(out), "--layer", "nope", "--model", m.url.database])
    assert bad.exit_code != 0
    assert "no tileset named nope" in bad.output and "Traceback" not in bad.output
