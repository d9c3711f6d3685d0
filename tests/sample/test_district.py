"""Tests for the synthetic Xiangzhou district generator (no database needed)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely

from cim.sample import district as d


@pytest.fixture(scope="module")
def layers() -> dict[str, gpd.GeoDataFrame]:
    return d.district_layers()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return d.generate(tmp_path_factory.mktemp("district"))


@pytest.fixture(scope="module")
def cityjson(outputs: dict) -> dict:
    return json.loads(outputs["cityjson"].read_text(encoding="utf-8"))


def _assert_layers_equal(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    assert np.array_equal(shapely.to_wkb(a.geometry.values), shapely.to_wkb(b.geometry.values))


def test_determinism(layers: dict, outputs: dict, tmp_path) -> None:
    again = d.district_layers()
    for name in ("buildings", "roads", "river"):
        _assert_layers_equal(layers[name], again[name])
    second = d.generate(tmp_path)
    assert second["cityjson"].read_bytes() == outputs["cityjson"].read_bytes()
    with rasterio.open(outputs["dem"]) as a, rasterio.open(second["dem"]) as b:
        assert np.array_equal(a.read(1), b.read(1))
    other = d.district_layers(seed=7)["buildings"]
    assert len(other) != len(layers["buildings"]) or not other.geometry.equals(layers["buildings"].geometry)


def test_buildings_count_validity_and_orientation(layers: dict) -> None:
    b = layers["buildings"]
    assert 2000 <= len(b) <= 3000
    g = b.geometry.values
    assert shapely.is_valid(g).all()
    assert set(shapely.get_type_id(g)) == {3}  # Polygon
    assert shapely.is_ccw(shapely.get_exterior_ring(g)).all()
    n_holes = shapely.get_num_interior_rings(g)
    assert (n_holes > 0).sum() >= 10, "expected some courtyard buildings"
    holes = shapely.get_interior_ring(g[n_holes > 0], 0)
    assert not shapely.is_ccw(holes).any()
    assert (shapely.get_num_coordinates(g) == 7).sum() >= 50, "expected some L-shaped buildings"
    bounds = shapely.bounds(g)
    assert (bounds[:, :2] >= d.ORIGIN).all() and (bounds[:, 2:] <= np.add(d.ORIGIN, d.SIZE)).all()


def test_buildings_do_not_overlap(layers: dict) -> None:
    g = layers["buildings"].geometry.values
    i, j = shapely.STRtree(g).query(g, predicate="intersects")
    assert (i == j).all(), f"{(i != j).sum() // 2} intersecting building pairs"


def test_buildings_clear_of_roads_river_and_hill(layers: dict) -> None:
    g = layers["buildings"].geometry.values
    roads = layers["roads"]
    corridors = shapely.buffer(roads.geometry.values, roads["width"].to_numpy() / 2, cap_style="flat")
    hits, _ = shapely.STRtree(corridors).query(g, predicate="intersects")
    assert hits.size == 0
    assert not shapely.intersects(layers["river"].geometry.iloc[0], g).any()
    c = shapely.centroid(g)
    assert d.ground_height(shapely.get_x(c), shapely.get_y(c)).max() <= 30.0


def test_building_attributes(layers: dict) -> None:
    b = layers["buildings"]
    assert b["bldg_code"].is_unique and b["bldg_code"].str.match(r"^440402-B-\d{6}$").all()
    assert set(b["use"]) == set(d.USES)
    assert b["year"].between(1980, 2024).all()
    assert 0.05 <= b["floors"].isna().mean() <= 0.11
    assert 0.09 <= b["height"].isna().mean() <= 0.15
    assert 0.01 <= (b["floors"].isna() & b["height"].isna()).mean() <= 0.03
    assert b["name"].isna().any() and b["name"].notna().any()
    both = b.dropna(subset=["floors", "height"])
    ratio = both["height"] / both["floors"].astype(float)
    assert ratio.between(2.95, 3.65).all()


def test_building_addresses(layers: dict) -> None:
    """Every building has "<road> <number>": its nearest road, odd numbers on the left of the road's direction
    (west of a south-to-north road, north of a west-to-east one), even on the right, increasing along it."""
    b, roads = layers["buildings"], layers["roads"]
    assert b["address"].notna().all() and b["address"].is_unique
    parts = b["address"].str.extract(r"^(?P<road>.+) (?P<number>[1-9]\d*)$")
    assert parts.notna().all().all(), b.loc[parts["road"].isna(), "address"].head().tolist()
    number = parts["number"].astype(int).to_numpy()
    assert set(parts["road"]) <= set(roads["name"])
    g = np.asarray(b.geometry.values)
    segments = np.asarray(roads.geometry.values)
    dist = shapely.distance(g[:, None], segments[None, :])
    nearest = roads["name"].to_numpy()[np.argmin(dist, axis=1)]
    same = nearest == parts["road"].to_numpy()
    # a footprint as near to a crossing road as to its own (at a corner) may take either
    tie = np.isclose(dist.min(1), np.array([dist[i, (roads["name"] == r).to_numpy()].min()
                                            for i, r in enumerate(parts["road"])]))
    assert (same | tie).all()
    c = shapely.centroid(g)
    cx, cy = shapely.get_x(c), shapely.get_y(c)
    for road, rows in parts.groupby("road").groups.items():
        line = roads.loc[roads["name"] == road].geometry.values
        (x0, y0), (x1, y1) = shapely.get_coordinates(line[0])[[0, -1]]
        i = b.index.get_indexer(rows)
        vertical = x0 == x1  # segments run south to north or west to east
        left = cx[i] < x0 if vertical else cy[i] > y0
        assert ((number[i] % 2 == 1) == left).all(), road
        along = cy[i] if vertical else cx[i]
        for side in (True, False):
            k = i[left == side]
            ordered = number[k][np.argsort(along[left == side], kind="stable")]
            assert (np.diff(ordered) == 2).all() and ordered[0] == (1 if side else 2), road


def test_roads_and_river(layers: dict) -> None:
    roads, river = layers["roads"], layers["river"]
    assert roads["road_id"].is_unique and roads["road_id"].str.match(r"^R\d{4}$").all()
    assert set(roads["class"]) == {"arterial", "secondary", "local"}
    art = roads.loc[roads["class"] == "arterial", "width"]
    assert art.between(30, 40).all()
    assert (roads.loc[roads["class"] == "local", "width"] == 12.0).all()
    assert roads["lanes"].dtype.kind == "i"
    assert (shapely.get_type_id(roads.geometry.values) == 1).all()
    poly = river.geometry.iloc[0]
    assert poly.geom_type == "Polygon" and poly.is_valid
    assert river["kind"].tolist() == ["river"]
    assert 40 <= poly.area / d.SIZE <= 70  # mean width in metres


def test_gis_file(outputs: dict, layers: dict) -> None:
    path = outputs["gis"]
    assert sorted(pyogrio.list_layers(path)[:, 0]) == ["buildings", "river", "roads"]
    info = pyogrio.read_info(path, layer="buildings")
    assert info["features"] == len(layers["buildings"])
    assert info["crs"] == "EPSG:4547"


def test_dem(outputs: dict) -> None:
    with rasterio.open(outputs["dem"]) as ds:
        assert (ds.height, ds.width) == (400, 400)
        assert ds.crs.to_epsg() == 4547
        assert ds.transform == rasterio.Affine(5.0, 0.0, 453000.0, 0.0, -5.0, 2465000.0)
        assert ds.dtypes[0] == "float32" and ds.nodata == -9999.0
        assert ds.block_shapes[0] == (256, 256)
        assert ds.compression.name.lower() == "lzw"
        z = ds.read(1)
    rows, cols = np.array([0, 17, 200, 311, 399]), np.array([0, 388, 123, 42, 399])
    x, y = rasterio.transform.xy(ds.transform, rows, cols)  # cell centres
    assert np.allclose(z[rows, cols], d.ground_height(np.array(x), np.array(y)), atol=1e-4)
    assert 0.3 <= z.min() <= 2.0 and 100.0 <= z.max() <= 160.0
    assert 2.0 <= np.median(z) <= 8.0


def _newell(p: np.ndarray) -> np.ndarray:
    q = np.roll(p, -1, axis=0)
    return np.array([np.sum((p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2])),
                     np.sum((p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0])),
                     np.sum((p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1]))])


def test_cityjson_structure(cityjson: dict, layers: dict) -> None:
    cj = cityjson
    assert cj["type"] == "CityJSON" and cj["version"] == "2.0"
    assert cj["metadata"]["referenceSystem"] == "https://www.opengis.net/def/crs/EPSG/0/4547"
    assert cj["transform"]["scale"] == [0.001, 0.001, 0.001]
    ints = np.array(cj["vertices"])
    assert ints.dtype.kind == "i" and ints.shape[1] == 3
    verts = ints * np.array(cj["transform"]["scale"]) + np.array(cj["transform"]["translate"])
    assert 15 <= len(cj["CityObjects"]) <= 25
    footprints = []
    for oid, obj in cj["CityObjects"].items():
        assert oid.startswith("LM-") and obj["type"] == "Building"
        attrs = obj["attributes"]
        assert attrs["roofType"] in {"gabled", "hipped"} and attrs["measuredHeight"] > 0
        assert {"yearOfConstruction", "function"} <= attrs.keys()
        (geom,) = obj["geometry"]
        assert geom["type"] == "Solid" and geom["lod"] == "2"
        shell = geom["boundaries"][0]
        values = geom["semantics"]["values"][0]
        types = [geom["semantics"]["surfaces"][v]["type"] for v in values]
        assert len(values) == len(shell) and set(types) == {"GroundSurface", "WallSurface", "RoofSurface"}
        idx = np.array([i for surface in shell for i in surface[0]])
        assert idx.min() >= 0 and idx.max() < len(verts)
        centre = verts[np.unique(idx)].mean(0)
        for surface in shell:
            p = verts[surface[0]]
            assert np.dot(_newell(p), p.mean(0) - centre) > 0, f"{oid}: inward face"
        ground = verts[shell[types.index("GroundSurface")][0]]
        z0 = d.ground_height(ground[:, 0], ground[:, 1]).min()
        assert abs(ground[0, 2] - z0) < 0.002
        footprints.append(shapely.Polygon(ground[:, :2]))
    landmarks = shapely.union_all(footprints)
    assert not shapely.intersects(landmarks, layers["buildings"].geometry.values).any()


def test_synthetic_footprints() -> None:
    f = d.synthetic_footprints(100_000)
    assert len(f) == 100_000 and f.crs.to_epsg() == 4547
    g = f.geometry.values
    assert shapely.is_valid(g).all()
    assert f["bldg_code"].is_unique
    assert f["height"].isna().any() and f["floors"].isna().any()
    b = shapely.bounds(g)
    assert b[:, 0].min() >= 440000 and b[:, 2].max() <= 480000
    assert b[:, 1].min() >= 2450000 and b[:, 3].max() <= 2490000
    small = d.synthetic_footprints(2000, seed=3)
    i, j = shapely.STRtree(small.geometry.values).query(small.geometry.values, predicate="intersects")
    assert (i == j).all()
    _assert_layers_equal(small, d.synthetic_footprints(2000, seed=3))
