"""The viewer's ground written by `cim tile`: the heights grid is the DEM plus the geoid height at every grid point,
the base map shows roads and the river where the model has them, and an unchanged model leaves both alone."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Geod, Transformer
from rasterio.errors import NotGeoreferencedWarning
from scipy.interpolate import RegularGridInterpolator
from typer.testing import CliRunner

from cim.cli.main import app
from cim.tiler.build import build_tiles
from cim.tiler.georef import find_geoid

FILES = {"ground.json", "heights.bin", "basemap.png"}


@pytest.fixture(scope="module")
def ground(sample_tiles):
    out, report = sample_tiles
    folder = out / "ground"
    meta = json.loads((folder / "ground.json").read_text())
    h = meta["heights"]
    heights = np.fromfile(folder / "heights.bin", "<f4").reshape(h["height"], h["width"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # (a plain PNG)
        with rasterio.open(folder / "basemap.png") as src:
            rgb = src.read()
    return folder, report, meta, heights, rgb


def _colour(meta: dict, label: str) -> np.ndarray:
    hexa = next(e["color"] for e in meta["imagery"]["legend"] if e["label"] == label)
    return np.array([int(hexa[i:i + 2], 16) for i in (1, 3, 5)], np.uint8)


def _pixels(meta: dict, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    west, south, east, north = meta["rectangle"]
    w, h = meta["imagery"]["width"], meta["imagery"]["height"]
    col = np.floor((lon - west) / (east - west) * w).astype(int)
    row = np.floor((north - lat) / (north - south) * h).astype(int)
    return row, col


def test_layout_and_rectangle(ground, sample_dir, full_model):
    folder, report, meta, heights, rgb = ground
    assert {p.name for p in folder.iterdir()} == FILES
    assert report.ground is not None and report.ground.written
    with full_model.connect() as conn:
        dems = [c for (c,) in conn.execute("SELECT code FROM terrain_raster").fetchall()]
    assert meta["sources"] == dems and meta["generator"] == "cim"
    # the rectangle: the DEM's extent in longitude/latitude
    with rasterio.open(sample_dir / "dem.tif") as src:
        to_lonlat = Transformer.from_crs(src.crs.to_wkt(), "EPSG:4326", always_xy=True)
        expected = to_lonlat.transform_bounds(*src.bounds, densify_pts=51)
    assert np.allclose(meta["rectangle"], expected, atol=1e-7)
    # heights: float32 H × W, finite everywhere (corners beyond the DEM take the nearest height), min/max as written
    h = meta["heights"]
    assert h["type"] == "float32" and h["uri"] == "heights.bin" and "north row first" in h["order"]
    assert (folder / "heights.bin").stat().st_size == h["width"] * h["height"] * 4
    assert 300 < h["width"] <= 1024 and 300 < h["height"] <= 1024  # about the DEM's 5 m cells over 2 km
    assert np.isfinite(heights).all()
    assert h["min"] == float(heights.min()) and h["max"] == float(heights.max())
    assert h["reference"].startswith("ellipsoidal") and find_geoid().description in h["reference"]
    # the image: its size is the one written, and its pixels are about 1 m square on the ground
    assert rgb.shape == (3, meta["imagery"]["height"], meta["imagery"]["width"])
    west, south, east, north = meta["rectangle"]
    geod = Geod(ellps="WGS84")
    mid = (south + north) / 2
    across = geod.inv(west, mid, east, mid)[2] / rgb.shape[2]
    down = geod.inv(west, south, west, north)[2] / rgb.shape[1]
    assert 0.95 < across < 1.05 and 0.95 < down < 1.05
    assert {e["label"] for e in meta["imagery"]["legend"]} >= {"Water", "Roads", "Buildings"}


def _dem_errors(meta: dict, heights: np.ndarray, dem_file, count: int = 20) -> np.ndarray:
    """|written − expected| at `count` random grid points inside the DEM file: its bilinear height there (between
    cell centres, read with rasterio) plus the geoid height (pyproj's vgridshift on the project's geoid grid)."""
    west, south, east, north = meta["rectangle"]
    nrows, ncols = heights.shape
    with rasterio.open(dem_file) as src:
        dem = src.read(1, masked=True).filled(np.nan).astype(float)
        t = src.transform
        to_grid = Transformer.from_crs("EPSG:4326", src.crs.to_wkt(), always_xy=True)
    ys = t.f + t.e * (np.arange(dem.shape[0]) + 0.5)
    xs = t.c + t.a * (np.arange(dem.shape[1]) + 0.5)
    interp = RegularGridInterpolator((ys[::-1], xs), dem[::-1], bounds_error=False)
    rng = np.random.default_rng(7)
    r = rng.integers(0, nrows, 50 * count)
    c = rng.integers(0, ncols, 50 * count)
    lon = west + c * (east - west) / (ncols - 1)
    lat = north - r * (north - south) / (nrows - 1)
    x, y = to_grid.transform(lon, lat)
    inside = (x > xs[0]) & (x < xs[-1]) & (y > ys[-1]) & (y < ys[0])
    r, c, lon, lat, x, y = (a[inside][:count] for a in (r, c, lon, lat, x, y))
    assert len(r) == count
    orthometric = interp(np.column_stack([y, x]))
    geoid = find_geoid()
    if geoid.grid is not None:
        shift = Transformer.from_pipeline("+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
                                          f"+step +proj=vgridshift +grids={geoid.grid} +multiplier=1 "
                                          "+step +proj=unitconvert +xy_in=rad +xy_out=deg")
        expected = shift.transform(lon, lat, orthometric)[2]
    else:
        expected = orthometric + geoid.undulation
    assert np.abs(expected - orthometric).min() > 1.0  # the geoid height (about −4 m at Zhuhai) is in
    return np.abs(heights[r, c] - expected)


def test_heights_are_the_dem_plus_the_geoid(ground, sample_dir):
    _, _, meta, heights, _ = ground
    assert _dem_errors(meta, heights, sample_dir / "dem.tif").max() < 0.3


def test_basemap_shows_roads_and_the_river(ground, full_model):
    _, _, meta, _, rgb = ground
    with full_model.connect() as conn:
        rows = conn.execute("SELECT kind, ST_AsBinary(ST_Force2D(geom)), (attributes->>'width')::float "
                            "FROM city_object WHERE kind IN ('road', 'water', 'building') "
                            "AND GeometryType(geom) <> 'POLYHEDRALSURFACE'").fetchall()
        srid = full_model.info.srid
    kinds = np.array([k for k, *_ in rows])
    geoms = shapely.from_wkb([bytes(g) for _, g, _ in rows])
    widths = np.array([w or 7.0 for *_, w in rows])
    roads, river, buildings = geoms[kinds == "road"], geoms[kinds == "water"], geoms[kinds == "building"]
    assert len(roads) and len(river)
    to_lonlat = Transformer.from_crs(f"EPSG:{srid}", "EPSG:4326", always_xy=True)
    # the middle of every road, unless a building stands on it
    middles = shapely.line_interpolate_point(roads, 0.5, normalized=True)
    middles = middles[~shapely.intersects(middles, shapely.union_all(buildings))]
    row, col = _pixels(meta, *to_lonlat.transform(shapely.get_x(middles), shapely.get_y(middles)))
    assert len(middles) > 100
    assert (rgb[:, row, col] == _colour(meta, "Roads")[:, None]).all()
    # a point of the river away from the roads and bridges that cross it
    decks = shapely.buffer(roads, widths[kinds == "road"] / 2 + 5)
    water = shapely.difference(shapely.union_all(river), shapely.union_all(decks))
    points = [shapely.point_on_surface(p) for p in shapely.get_parts(water) if p.area > 1000]
    assert points
    xy = shapely.get_coordinates(points)
    row, col = _pixels(meta, *to_lonlat.transform(xy[:, 0], xy[:, 1]))
    assert (rgb[:, row, col] == _colour(meta, "Water")[:, None]).all()
    # and not everything is road or water: the terrain and the buildings show
    flat = rgb.reshape(3, -1).T
    assert len(np.unique(flat[::97], axis=0)) > 20


def test_unchanged_model_leaves_the_ground_alone(sample_tiles, full_model, tmp_path):
    out, _ = sample_tiles
    copy = tmp_path / "tiles"
    shutil.copytree(out, copy)  # (keeps the modification times)
    stamps = {p.name: p.stat().st_mtime_ns for p in (copy / "ground").iterdir()}
    done = CliRunner().invoke(app, ["tile", "--out", str(copy), "--model", full_model.url.database])
    assert done.exit_code == 0, done.output
    assert "base map, unchanged" in done.output
    assert {p.name: p.stat().st_mtime_ns for p in (copy / "ground").iterdir()} == stamps


def test_model_without_dem_has_no_ground(make_model, sample_tiles, tmp_path):
    out, _ = sample_tiles
    shutil.copytree(out / "ground", tmp_path / "ground")  # left from a model that had a DEM
    report = build_tiles(make_model(), tmp_path)
    assert report.ground is None and "no DEM" in report.ground_note
    assert not (tmp_path / "ground").exists()


def test_two_dems_are_merged(make_model, sample_dir, tmp_path):
    from cim.importers.dem import import_dem

    with rasterio.open(sample_dir / "dem.tif") as src:
        profile, dem = src.profile, src.read(1)
    halves = {"west": np.s_[:, :220], "east": np.s_[:, 180:]}  # overlapping by 40 columns
    m = make_model()
    for name, cut in halves.items():
        part = dem[cut]
        offset = cut[1].start or 0
        t = profile["transform"]
        p = {**profile, "width": part.shape[1], "transform": t @ rasterio.Affine.translation(offset, 0)}
        with rasterio.open(tmp_path / f"{name}.tif", "w", **p) as dst:
            dst.write(part, 1)
        import_dem(m, tmp_path / f"{name}.tif")
    report = build_tiles(m, tmp_path / "tiles")
    assert report.ground is not None
    folder = tmp_path / "tiles" / "ground"
    meta = json.loads((folder / "ground.json").read_text())
    assert len(meta["sources"]) == 2
    heights = np.fromfile(folder / "heights.bin", "<f4").reshape(meta["heights"]["height"], meta["heights"]["width"])
    assert np.isfinite(heights).all()
    assert _dem_errors(meta, heights, sample_dir / "dem.tif", 40).max() < 0.3
    legend = {e["label"] for e in meta["imagery"]["legend"]}
    assert not legend & {"Water", "Roads", "Buildings"}  # a model of terrain alone
