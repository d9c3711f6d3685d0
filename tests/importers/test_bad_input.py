"""Bad input: one clear line (file, record, reason), a non-zero exit, and an unchanged database."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine

import cim.importers.gis as gis
from tests.helpers import run_cim, scalar


def snapshot(model) -> tuple:
    return tuple(scalar(model, q) for q in (
        "SELECT count(*) FROM city_object", "SELECT count(*) FROM import_batch",
        "SELECT count(*) FROM code_registry", "SELECT coalesce(sum(last_serial), 0) FROM code_serial",
        "SELECT md5(string_agg(code || batch_id, ',' ORDER BY code)) FROM city_object"))


def assert_refused(result, *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def broken(tmp_path, sample_dir):
    """Broken variants of the sample's files."""
    files = {}
    data = (sample_dir / "district.gpkg").read_bytes()
    files["truncated"] = tmp_path / "truncated.gpkg"
    files["truncated"].write_bytes(data[: len(data) // 3])
    shp = tmp_path / "nocrs.shp"
    gpd.read_file(sample_dir / "district.gpkg", layer="buildings").iloc[:20].to_file(shp)
    shp.with_suffix(".prj").unlink()
    files["nocrs"] = shp
    files["mapping"] = tmp_path / "mapping.toml"
    files["mapping"].write_text('[fields]\nheight = "HGT"\n')
    files["notjson"] = tmp_path / "broken.city.json"
    files["notjson"].write_text((sample_dir / "landmarks.city.json").read_text()[:500])
    files["badindex"] = tmp_path / "badindex.city.json"
    doc = json.loads((sample_dir / "landmarks.city.json").read_text())
    first = next(iter(doc["CityObjects"].values()))
    first["geometry"][0]["boundaries"][0][0][0][0] = 10**9
    files["badindex"].write_text(json.dumps(doc))
    files["notraster"] = tmp_path / "dem.tif"
    files["notraster"].write_text("this is not a GeoTIFF\n")
    files["notable"] = tmp_path / "notable.toml"
    files["notable"].write_text('[fields]\nheight = 5\n')
    files["idmap"] = tmp_path / "idmap.toml"
    files["idmap"].write_text('[fields]\nid = "use"\n')  # 'use' repeats: not an id
    files["negative"] = tmp_path / "negative.toml"
    files["negative"].write_text('[options]\nstorey_height = -2.0\n')
    doc = json.loads((sample_dir / "landmarks.city.json").read_text())
    del doc["transform"]["scale"]
    files["noscale"] = tmp_path / "noscale.city.json"
    files["noscale"].write_text(json.dumps(doc))
    doc = json.loads((sample_dir / "landmarks.city.json").read_text())
    next(iter(doc["CityObjects"].values()))["attributes"] = ["not", "an", "object"]
    files["listattrs"] = tmp_path / "listattrs.city.json"
    files["listattrs"].write_text(json.dumps(doc))
    files["zerofoot"] = tmp_path / "zero.geojson"
    files["zerofoot"].write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"id": "Z"},
        "geometry": {"type": "Polygon", "coordinates": [[[113.5, 22.2], [113.501, 22.2], [113.502, 22.2],
                                                         [113.5, 22.2]]]}}]}))
    world = tmp_path / "world.tif"
    with rasterio.open(world, "w", driver="GTiff", width=36, height=18, count=1, dtype="float32",
                       crs="EPSG:4326", transform=Affine(10, 0, -180, 0, -10, 90)) as dst:
        dst.write(np.ones((1, 18, 36), "float32"))
    files["world"] = world
    return files


CASES = {
    "missing file": (["import", "gis", "{tmp}/nope.gpkg", "--layer", "buildings"], ["nope.gpkg", "file not found"]),
    "truncated geopackage": (["import", "gis", "{truncated}", "--layer", "buildings"],
                             ["truncated.gpkg", "cannot read"]),
    "layer without crs": (["import", "gis", "{nocrs}", "--layer", "buildings"], ["nocrs.shp", "no CRS", "--crs"]),
    "non-polygon building layer": (["import", "gis", "{gpkg}", "--source-layer", "roads", "--layer", "buildings"],
                                   ["district.gpkg", "record", "LineString", "Polygon"]),
    "unknown mapping field": (["import", "gis", "{gpkg}", "--layer", "buildings", "--mapping", "{mapping}"],
                              ["HGT", "height", "available"]),
    "truncated cityjson": (["import", "cityjson", "{notjson}"], ["broken.city.json", "not valid JSON"]),
    "cityjson index out of range": (["import", "cityjson", "{badindex}"],
                                    ["badindex.city.json", "record LM-", "not a vertex"]),
    "dem that is not a raster": (["import", "dem", "{notraster}"], ["dem.tif", "cannot read raster"]),
    "mapping value not a string": (["import", "gis", "{gpkg}", "--layer", "buildings", "--mapping", "{notable}"],
                                   ["notable.toml", "strings"]),
    "mapped id field not unique": (["import", "gis", "{gpkg}", "--layer", "buildings", "--mapping", "{idmap}"],
                                   ["district.gpkg", "repeats id", "unique"]),
    "negative storey height": (["import", "gis", "{gpkg}", "--layer", "buildings", "--mapping", "{negative}"],
                               ["storey_height", "positive"]),
    "negative storey height flag": (["import", "gis", "{gpkg}", "--layer", "buildings", "--storey-height", "-2"],
                                    ["--storey-height", "positive"]),
    "unknown kind": (["import", "gis", "{gpkg}", "--layer", "roads", "--kind", "buildng"], ["unknown kind 'buildng'"]),
    "cityjson transform without scale": (["import", "cityjson", "{noscale}"], ["noscale.city.json", "scale"]),
    "cityjson attributes not an object": (["import", "cityjson", "{listattrs}"],
                                          ["listattrs.city.json", "record LM-", "attributes"]),
    "footprint without area": (["import", "gis", "{zerofoot}", "--layer", "buildings"],
                               ["zero.geojson", "record 0", "no area"]),
    "dem outside the storage crs area": (["import", "dem", "{world}"], ["world.tif", "outside the area of use"]),
    "unknown crs": (["import", "gis", "{nocrs}", "--layer", "buildings", "--crs", "EPSG:999999"], ["unknown CRS"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_and_changes_nothing(sample_model, sample_dir, broken, tmp_path, case):
    args, words = CASES[case]
    paths = {k: str(v) for k, v in broken.items()} | {"tmp": str(tmp_path), "gpkg": str(sample_dir / "district.gpkg")}
    before = snapshot(sample_model)
    result = run_cim(*[a.format(**paths) for a in args], model=sample_model)
    assert_refused(result, *words)
    assert snapshot(sample_model) == before


def test_missing_model_is_one_line(server):
    result = run_cim("info", "--model", "cim_test_no_such_model")
    assert_refused(result, "cim_test_no_such_model", "does not exist")


def test_failure_after_writing_rolls_everything_back(sample_model, sample_dir, monkeypatch):
    """An error (or Ctrl-C) after rows were written leaves the model exactly as it was."""
    real = gis.write_objects

    def write_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(gis, "write_objects", write_then_fail)
    before = snapshot(sample_model)
    with pytest.raises(KeyboardInterrupt):
        gis.import_gis(sample_model, sample_dir / "district.gpkg", "buildings")
    assert snapshot(sample_model) == before


def test_shapefile_without_crs_imports_with_crs_flag(model, broken):
    result = run_cim("import", "gis", str(broken["nocrs"]), "--layer", "buildings", "--crs", "EPSG:4547",
                     model=model)
    assert result.returncode == 0, result.stderr
    assert scalar(model, "SELECT count(*) FROM city_object") == 20


def test_mixed_building_layer_skips_points_and_says_so(model, tmp_path, sample_dir):
    frame = gpd.read_file(sample_dir / "district.gpkg", layer="buildings").iloc[:10].copy()
    frame.loc[frame.index[3], "geometry"] = frame.geometry.iloc[3].centroid
    path = tmp_path / "mixed.geojson"
    frame.to_file(path)
    strict = run_cim("import", "gis", str(path), "--layer", "buildings", "--strict", model=model)
    assert_refused(strict, "mixed.geojson", "record 3", "Point")
    lenient = run_cim("import", "gis", str(path), "--layer", "buildings", model=model)
    assert lenient.returncode == 0, lenient.stderr
    assert "skipped 1 non-polygon record" in lenient.stderr
    assert scalar(model, "SELECT count(*) FROM city_object") == 9
