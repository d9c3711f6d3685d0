"""The sample district imports whole, with LOD1 heights, terrain bases and 3D-queryable extents."""

from __future__ import annotations

import geopandas as gpd
import ifcopenshell
import numpy as np
import pytest
import rasterio
import shapely

from cim.importers.gis import import_gis
from tests.helpers import fetch, run_cim, scalar


@pytest.fixture(scope="module")
def source(sample_dir):
    return {layer: gpd.read_file(sample_dir / "district.gpkg", layer=layer)
            for layer in ("buildings", "roads", "river")}


def test_every_source_record_becomes_one_object(sample_model, source, sample_dir):
    ifc = ifcopenshell.open(str(sample_dir / "bim.ifc"))  # elements (no openings), spaces, the hierarchy
    bim_objects = sum(len(ifc.by_type(c)) for c in ("IfcElement", "IfcSpace", "IfcProject", "IfcSite",
                                                     "IfcBuilding", "IfcBuildingStorey")) \
        - len(ifc.by_type("IfcOpeningElement"))
    with sample_model.connect() as conn:
        counts = dict(((layer, n) for layer, n in conn.execute(
            "SELECT layer, count(*) FROM city_object GROUP BY layer").fetchall()))
    assert counts == {"terrain": 1, "buildings": len(source["buildings"]), "roads": len(source["roads"]),
                      "river": 1, "landmarks": 20, "bim": bim_objects}
    assert len(source["buildings"]) >= 2000


def test_lod1_heights_follow_the_documented_rules(sample_model, source):
    b = source["buildings"].set_index("bldg_code")
    with sample_model.connect() as conn:
        rows = conn.execute(
            "SELECT source_id, top_z - base_z, attributes->>'height_rule', lod, ST_Z(ST_PointN("
            "ST_ExteriorRing(ST_GeometryN(geom, 1)), 1)) - base_z FROM city_object WHERE layer = 'buildings'"
        ).fetchall()
    assert len(rows) == len(b)
    got = {r[0]: r for r in rows}
    rules = {"height field": 0, "floors x storey height": 0, "default height": 0}
    for code, (_, h, rule, lod, z_off) in got.items():
        src = b.loc[code]
        if not np.isnan(src.height):
            expected, expected_rule = src.height, "height field"
        elif not np.isnan(src.floors):
            expected, expected_rule = src.floors * 3.0, "floors x storey height"
        else:
            expected, expected_rule = 10.0, "default height"
        assert rule == expected_rule and h == pytest.approx(expected, abs=1e-3)
        assert lod == 1 and z_off == pytest.approx(0.0)
        rules[rule] += 1
    assert all(n > 0 for n in rules.values()), rules  # the sample exercises every rule


def test_base_is_lowest_ground_under_the_footprint(sample_model, sample_dir, source):
    with rasterio.open(sample_dir / "dem.tif") as dem:
        band = dem.read(1)
        transform = dem.transform
    first = source["buildings"].iloc[:50]
    with sample_model.connect() as conn:
        base = dict(conn.execute(
            "SELECT source_id, base_z FROM city_object WHERE layer = 'buildings' AND source_id = ANY(%s)",
            (first.bldg_code.tolist(),)).fetchall())
    for code, geom in zip(first.bldg_code, first.geometry, strict=False):
        xy = np.asarray(geom.exterior.coords)
        inv = ~transform
        cols = inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c
        rows = inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f
        nearest = band[np.floor(rows).astype(int), np.floor(cols).astype(int)]
        # bilinear ground at the vertices lies within the values of the cells touched
        assert nearest.min() - 1.0 <= base[code] <= nearest.max()


def test_three_d_box_query_uses_base_to_top(sample_model):
    tall = scalar(sample_model, "SELECT count(*) FROM city_object WHERE layer = 'buildings' AND top_z > 80")
    hits = scalar(sample_model, """
        SELECT count(*) FROM city_object WHERE layer = 'buildings'
        AND bbox3d &&& ST_3DMakeBox(ST_MakePoint(453000, 2463000, 80), ST_MakePoint(455000, 2465000, 500))""")
    assert hits == tall > 0


def test_reimport_replaces_and_keeps_codes(sample_model, sample_dir):
    before = dict(fetch(sample_model,
        "SELECT source_id, code FROM city_object WHERE layer = 'buildings'"))
    done = import_gis(sample_model, sample_dir / "district.gpkg", "buildings")
    assert done.result.replaced == len(before) == done.result.written
    assert done.result.new_codes == 0
    after = dict(fetch(sample_model,
        "SELECT source_id, code FROM city_object WHERE layer = 'buildings'"))
    assert after == before
    batches = scalar(sample_model, "SELECT count(DISTINCT batch_id) FROM city_object WHERE layer = 'buildings'")
    assert batches == 1


def test_roads_are_draped_on_the_terrain(sample_model):
    rows = fetch(sample_model,
        "SELECT ST_ZMin(geom), ST_ZMax(geom), base_z, top_z FROM city_object WHERE layer = 'roads'")
    assert rows and all(zmin == pytest.approx(b) and zmax == pytest.approx(t) for zmin, zmax, b, t in rows)
    assert any(t > b for _, _, b, t in rows)


def test_landmarks_are_lod2_polyhedral_surfaces(sample_model):
    rows = fetch(sample_model,
        "SELECT ST_GeometryType(geom), lod, attributes->>'roofType', top_z - base_z FROM city_object "
        "WHERE layer = 'landmarks'")
    assert len(rows) == 20
    assert {r[0] for r in rows} == {"ST_PolyhedralSurface"} and {r[1] for r in rows} == {2}
    assert all(h > 3 for *_, h in rows)


def test_cli_info_reports_counts(sample_model):
    result = run_cim("info", model=sample_model)
    assert result.returncode == 0, result.stderr
    total = scalar(sample_model, "SELECT count(*) FROM city_object")
    assert f"total: {total} objects" in result.stdout


def test_cityjson_1_1_and_lod_choice(model, sample_dir, tmp_path):
    """The same landmarks declared as CityJSON 1.1 import alike; --lod picks a LoD that is present."""
    import json

    from cim.importers.cityjson import import_cityjson
    from cim.importers.errors import InputError

    doc = json.loads((sample_dir / "landmarks.city.json").read_text())
    doc["version"] = "1.1"
    path = tmp_path / "landmarks11.city.json"
    path.write_text(json.dumps(doc))
    result, summary = import_cityjson(model, path, "landmarks", lod="2")
    assert result.written == 20 and summary["kinds"] == {"building": 20}
    with pytest.raises(InputError, match="LoD 3"):
        import_cityjson(model, path, "landmarks", lod="3")


def test_record_moving_between_files_of_a_layer(model, sample_dir, tmp_path):
    """Two deliveries of one layer that share a building id: the later file wins, the code stays."""
    src = gpd.read_file(sample_dir / "district.gpkg", layer="buildings").iloc[:10]
    src.iloc[:6].to_file(tmp_path / "north.gpkg")
    src.iloc[4:].to_file(tmp_path / "south.gpkg")  # records 4 and 5 moved to the southern delivery
    import_gis(model, tmp_path / "north.gpkg", "b")
    before = dict(fetch(model, "SELECT source_id, code FROM city_object"))
    done = import_gis(model, tmp_path / "south.gpkg", "b")
    assert done.result.moved == 2 and done.result.new_codes == 4
    rows = fetch(model, "SELECT source_id, code, source_file FROM city_object")
    assert len(rows) == 10
    by_id = {sid: (code, f) for sid, code, f in rows}
    for sid in src.bldg_code.iloc[4:6]:
        assert by_id[sid] == (before[sid], "south.gpkg")


def test_heights_in_feet_become_metres(make_model, tmp_path):
    """A 3D line in New York State Plane (US feet) keeps its height, converted to metres."""
    frame = gpd.GeoDataFrame({"id": ["F1"]}, crs="EPSG:2263",
                             geometry=[shapely.LineString([(984000, 207000, 100.0), (984100, 207000, 50.0)])])
    path = tmp_path / "ny.gpkg"
    frame.to_file(path)
    m = make_model("EPSG:32618")  # a storage CRS that suits New York
    import_gis(m, path, "lines", kind="generic")
    zmin, zmax, length = fetch(m, "SELECT ST_ZMin(geom), ST_ZMax(geom), ST_Length(geom) FROM city_object")[0]
    assert (zmin, zmax) == pytest.approx((50 * 1200 / 3937, 100 * 1200 / 3937), abs=1e-6)
    assert length == pytest.approx(100 * 1200 / 3937, rel=2e-3)  # UTM scale factor near 0.9996


def test_repaired_footprint_keeps_its_polygons(model, tmp_path):
    """A bow-tie footprint is repaired into its two triangles; the import says so."""
    bowtie = shapely.Polygon([(453100, 2463100), (453120, 2463120), (453120, 2463100), (453100, 2463120)])
    frame = gpd.GeoDataFrame({"id": ["BT"], "height": [12.0]}, geometry=[bowtie], crs="EPSG:4547")
    frame.to_file(tmp_path / "bowtie.gpkg")
    done = import_gis(model, tmp_path / "bowtie.gpkg", "buildings")
    assert done.summary["repaired_geometries"] == 1
    gtype, area = fetch(model, "SELECT ST_GeometryType(geom), ST_Area(geom) FROM city_object")[0]
    assert gtype == "ST_MultiPolygon" and area == pytest.approx(200.0)
