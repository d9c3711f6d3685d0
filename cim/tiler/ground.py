"""The viewer's ground, written next to the tilesets in `<out>/ground/`: a heights grid for a Cesium
CustomHeightmapTerrainProvider and a base-map image for a SingleTileImageryProvider, both made from the model's
own data (its DEMs, water, roads and building footprints), so the viewer needs no internet imagery.

- `heights.bin`: little-endian float32, H rows × W columns of grid POINTS on equal longitude/latitude steps;
  the first row is the rectangle's north edge, the last its south edge, the first column its west edge, the
  last its east edge. Heights are ellipsoidal, converted exactly as the tilesets convert theirs
  (`cim.tiler.georef.geodetic`); points outside every DEM take the nearest valid height.
- `basemap.png`: RGB, equal longitude/latitude steps, pixel EDGES on the rectangle: a hillshade of the DEM
  tinted by elevation, with water, roads and building footprints drawn over it (pipes are not: they are
  underground and shown in 3D).
- `ground.json`: the rectangle, both files' layouts, the legend, the DEM codes, and the hash of the inputs
  (an unchanged hash leaves the three files alone).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Geod, Transformer
from rasterio.features import rasterize
from rasterio.io import MemoryFile
from scipy.ndimage import distance_transform_edt

from cim.crs import horizontal
from cim.model.terrain import Ground, Raster
from cim.tiler.georef import Geoid, geodetic
from cim.tiler.sources import DEFAULT_WIDTH, LINE_WIDTH_SQL

GROUND = "ground"
GROUND_VERSION = "1"
MAX_GRID = 1024  # heights: grid points per side at most
MAX_IMAGE = 4096  # base map: pixels per side at most
IMAGE_METRES = 1.0  # base map: ground size of a pixel
MAX_SHADE = 4096  # hillshade: DEM cells per side at most (coarser cells beyond)
SUN_AZIMUTH, SUN_ALTITUDE = 315.0, 45.0  # degrees, the cartographers' north-west light
FILES = ("ground.json", "heights.bin", "basemap.png")

# Colours (RGB) of what is drawn over the terrain, in drawing order.
WATER = (94, 156, 211)
ROAD = (224, 224, 224)
ROAD_EDGE = (150, 150, 150)
BUILDING = (246, 242, 233)
BUILDING_EDGE = (140, 132, 120)
OUTSIDE = (221, 221, 221)  # image pixels beyond every DEM
# Hypsometric tint: (fraction of the DEM's height range, RGB), low green → brown → grey.
TINT = ((0.0, (112, 160, 84)), (0.25, (160, 190, 104)), (0.5, (206, 196, 136)), (0.75, (170, 136, 98)),
        (1.0, (184, 180, 174)))

WATER_KINDS = ("water",)
ROAD_KINDS = ("road",)
BUILDING_KINDS = ("building",)

_FOOTPRINT_SQL = """SELECT o.kind, ST_AsBinary(CASE
    WHEN GeometryType(o.geom) IN ('POLYGON', 'MULTIPOLYGON') THEN ST_Force2D(o.geom)
    WHEN GeometryType(o.geom) IN ('LINESTRING', 'MULTILINESTRING')
      THEN ST_Buffer(ST_Force2D(o.geom), {width} / 2, 'endcap=flat join=round')
    WHEN GeometryType(o.geom) = 'POLYHEDRALSURFACE'  -- LoD2 and the like: the union of its faces seen from above
      THEN (SELECT ST_CollectionExtract(ST_Union(ST_MakeValid(ST_Force2D((d).geom))), 3) FROM ST_Dump(o.geom) d)
    END)
  FROM city_object o WHERE o.kind = ANY(%s)"""
_DIGEST_SQL = """SELECT md5(coalesce(string_agg(o.code || ':' || md5(concat_ws('|', o.kind, o.attributes::text,
    ST_AsEWKB(o.geom)::text)), ',' ORDER BY o.code), '')) FROM city_object o WHERE o.kind = ANY(%s)"""


@dataclass
class GroundReport:
    written: bool  # False: the inputs' hash was unchanged and the files were left alone
    grid: tuple[int, int]  # heights: width, height
    image: tuple[int, int]  # base map: width, height
    seconds: float


def build(conn: psycopg.Connection, srid: int, geoid: Geoid, folder: Path, full: bool,
          progress: Callable[[str, int, int], None] | None = None) -> GroundReport | None:
    """Write `folder`/ground.json, heights.bin and basemap.png; None (and no folder) when the model has no DEM."""
    started = time.perf_counter()
    dems = conn.execute("SELECT t.code, md5(t.geotiff) FROM terrain_raster t JOIN city_object o USING (code) "
                        "ORDER BY o.batch_id DESC, t.code").fetchall()
    if not dems:
        for name in FILES:  # a ground left from a DEM the model no longer has
            (folder / name).unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        return None
    kinds = [*WATER_KINDS, *ROAD_KINDS, *BUILDING_KINDS]
    (vectors,) = conn.execute(_DIGEST_SQL, (kinds,)).fetchone()
    digest = hashlib.sha1(json.dumps([GROUND_VERSION, geoid.description, dems, vectors, MAX_GRID, MAX_IMAGE,
                                      IMAGE_METRES]).encode()).hexdigest()
    old = _read_json(folder / "ground.json")
    if not full and old.get("hash") == digest and all((folder / n).is_file() for n in FILES):
        return GroundReport(False, (old["heights"]["width"], old["heights"]["height"]),
                            (old["imagery"]["width"], old["imagery"]["height"]), time.perf_counter() - started)

    steps = 4
    ground = Ground.load(conn)  # several DEMs: the newest wins where they overlap, as for the tiles
    storage = horizontal(CRS.from_epsg(srid))
    to_lonlat = Transformer.from_crs(storage, CRS.from_epsg(4326), always_xy=True)
    to_grid = Transformer.from_crs(CRS.from_epsg(4326), storage, always_xy=True)
    bounds = np.array([_bounds(r) for r in ground.rasters])
    boxes = np.array([to_lonlat.transform_bounds(*b, densify_pts=51) for b in bounds])
    west, south = boxes[:, :2].min(axis=0)
    east, north = boxes[:, 2:].max(axis=0)
    rect = [float(west), float(south), float(east), float(north)]
    geod = Geod(ellps="WGS84")
    mid = (south + north) / 2
    width_m = geod.inv(west, mid, east, mid)[2]
    height_m = geod.inv((west + east) / 2, south, (west + east) / 2, north)[2]
    cell = min(abs(r.transform.a) for r in ground.rasters)

    # Heights: grid points spanning the rectangle, storage x/y by pyproj, DEM heights, geoid as for the tiles.
    gw, gh = _fit(width_m / cell + 1, height_m / cell + 1, MAX_GRID)
    lon, lat = np.meshgrid(np.linspace(west, east, gw), np.linspace(north, south, gh))
    x, y = to_grid.transform(lon.ravel(), lat.ravel())
    z = _fill_nearest(ground.sample(x, y).reshape(gh, gw))
    heights = geodetic(np.column_stack([x, y, z.ravel()]), srid, geoid)[:, 2].reshape(gh, gw).astype("<f4")
    if progress:
        progress(GROUND, 1, steps)

    # Base map: hillshade and tint on a metric grid in the storage CRS, sampled at the image's pixel centres.
    dem, dem_transform = _merged(ground, bounds, cell)
    filled = _fill_nearest(dem)
    shade = _hillshade(filled, abs(dem_transform.a), abs(dem_transform.e))
    iw, ih = _fit(width_m / IMAGE_METRES, height_m / IMAGE_METRES, MAX_IMAGE)
    image_transform = Affine((east - west) / iw, 0, west, 0, -(north - south) / ih, north)
    cols, rows = np.meshgrid(np.arange(iw) + 0.5, np.arange(ih) + 0.5)
    plon, plat = image_transform @ (cols.ravel(), rows.ravel())
    px, py = to_grid.transform(plon, plat)
    elev = Raster("", dem, dem_transform).sample(px, py).reshape(ih, iw)  # NaN beyond the DEMs and by nodata
    inside = np.isfinite(elev)
    light = Raster("", shade, dem_transform).sample(px, py).reshape(ih, iw)
    lo, hi = float(np.nanmin(dem)), float(np.nanmax(dem))
    rgb = _tint(elev, lo, hi, light)
    rgb[:, ~inside] = np.array(OUTSIDE, np.uint8)[:, None]
    if progress:
        progress(GROUND, 2, steps)

    legend = _draw_layers(conn, rgb, image_transform, to_lonlat)
    legend += [{"label": f"Terrain, lowest ({lo:.0f} m above sea level)", "color": _hex(_ramp(np.array([0.0]))[:, 0])},
               {"label": f"Terrain, highest ({hi:.0f} m above sea level)", "color": _hex(_ramp(np.array([1.0]))[:, 0])}]
    if progress:
        progress(GROUND, 3, steps)

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ground.json").unlink(missing_ok=True)  # until it is rewritten, the next run redoes everything
    _write_bytes(folder / "heights.bin", heights.tobytes())
    _write_bytes(folder / "basemap.png", _png(rgb))
    data = {
        "rectangle": rect,
        "heights": {"uri": "heights.bin", "width": gw, "height": gh, "type": "float32",
                    "order": "row-major, little-endian, north row first, west column first; grid points: the "
                             "first and last columns lie on the west and east edges, the first and last rows on "
                             "the north and south edges, equal longitude and latitude steps between",
                    "min": float(heights.min()), "max": float(heights.max()),
                    "reference": f"ellipsoidal (WGS84) metres, as the tilesets: {geoid.description}"},
        "imagery": {"uri": "basemap.png", "width": iw, "height": ih,
                    "order": "equal longitude and latitude steps, pixel edges on the rectangle",
                    "legend": legend},
        "sources": [code for code, _ in dems],
        "generator": "cim",
        "hash": digest,
    }
    _write_bytes(folder / "ground.json", json.dumps(data, indent=1).encode())
    if progress:
        progress(GROUND, 4, steps)
    return GroundReport(True, (gw, gh), (iw, ih), time.perf_counter() - started)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _bounds(raster: Raster) -> tuple[float, float, float, float]:
    h, w = raster.values.shape
    xs, ys = raster.transform @ (np.array([0, w, 0, w]), np.array([0, 0, h, h]))
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _fit(w: float, h: float, cap: int) -> tuple[int, int]:
    """Integer sizes near w × h, both scaled down together so that neither exceeds `cap`."""
    scale = min(1.0, cap / max(w, h))
    return max(int(round(w * scale)), 2), max(int(round(h * scale)), 2)


def _fill_nearest(values: np.ndarray) -> np.ndarray:
    """NaN cells take the value of the nearest valid cell."""
    bad = ~np.isfinite(values)
    if not bad.any() or bad.all():
        return np.where(bad, 0.0, values) if bad.all() else values
    idx = distance_transform_edt(bad, return_distances=False, return_indices=True)
    return values[tuple(idx)]


def _merged(ground: Ground, bounds: np.ndarray, cell: float) -> tuple[np.ndarray, Affine]:
    """Every DEM on one north-up grid in the storage CRS (the DEM itself when there is one)."""
    if len(ground.rasters) == 1 and max(ground.rasters[0].values.shape) <= MAX_SHADE:
        r = ground.rasters[0]
        if r.transform.b == 0 and r.transform.d == 0 and r.transform.e < 0:
            return r.values, r.transform
    x0, y0 = bounds[:, :2].min(axis=0)
    x1, y1 = bounds[:, 2:].max(axis=0)
    cell = max(cell, (x1 - x0) / MAX_SHADE, (y1 - y0) / MAX_SHADE)
    w, h = int(np.ceil((x1 - x0) / cell)), int(np.ceil((y1 - y0) / cell))
    transform = Affine(cell, 0, x0, 0, -cell, y1)
    cx, cy = transform @ tuple(np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5))
    return ground.sample(cx.ravel(), cy.ravel()).reshape(h, w), transform


def _hillshade(z: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Lambertian shading in [0, 1] of a north-up grid with cells dx × dy metres."""
    dz_drow, dz_dcol = np.gradient(z, dy, dx)
    gx, gy = dz_dcol, -dz_drow  # slope towards east and towards north
    az, alt = np.radians(SUN_AZIMUTH), np.radians(SUN_ALTITUDE)
    sun = np.array([np.sin(az) * np.cos(alt), np.cos(az) * np.cos(alt), np.sin(alt)])
    return np.clip((-gx * sun[0] - gy * sun[1] + sun[2]) / np.sqrt(gx ** 2 + gy ** 2 + 1), 0.0, 1.0)


def _ramp(t: np.ndarray) -> np.ndarray:
    """(3, …) float RGB of the hypsometric tint at fractions t of the height range."""
    stops = np.array([s for s, _ in TINT])
    colours = np.array([c for _, c in TINT], float)
    return np.stack([np.interp(t, stops, colours[:, k]) for k in range(3)])


def _tint(elev: np.ndarray, lo: float, hi: float, light: np.ndarray) -> np.ndarray:
    t = np.nan_to_num(np.clip((elev - lo) / max(hi - lo, 1e-6), 0.0, 1.0))
    flat = np.sin(np.radians(SUN_ALTITUDE))  # the shade of level ground: it keeps its tint
    factor = np.clip(0.45 + 0.55 * np.nan_to_num(light, nan=flat) / flat, 0.3, 1.25)
    return np.clip(_ramp(t) * factor, 0, 255).round().astype(np.uint8)


def _hex(rgb) -> str:
    return "#" + "".join(f"{int(round(v)):02x}" for v in rgb)


def _draw_layers(conn: psycopg.Connection, rgb: np.ndarray, transform: Affine, to_lonlat: Transformer) -> list[dict]:
    """Water, roads and building footprints over the terrain; the legend of what was drawn."""
    width = LINE_WIDTH_SQL.format(default="CASE o.kind " + " ".join(
        f"WHEN '{k}' THEN {w}" for k, w in DEFAULT_WIDTH.items()) + " ELSE 3.0 END")
    rows = conn.execute(_FOOTPRINT_SQL.format(width=width),
                        ([*WATER_KINDS, *ROAD_KINDS, *BUILDING_KINDS],)).fetchall()
    kinds = np.array([k for k, w in rows if w is not None], dtype=object)
    geoms = shapely.from_wkb([bytes(w) for _, w in rows if w is not None])
    if len(geoms):
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
        keep = ~shapely.is_empty(geoms)
        kinds, geoms = kinds[keep], geoms[keep]
    shape = rgb.shape[1:]
    legend = []

    def paint(shapes, colour, all_touched=False) -> None:
        if len(shapes):
            mask = rasterize(((g, 1) for g in shapes), out_shape=shape, transform=transform, fill=0,
                             all_touched=all_touched, dtype="uint8").astype(bool)
            rgb[:, mask] = np.array(colour, np.uint8)[:, None]

    # Road casings go under the fills, so that crossings merge; building outlines go over theirs.
    for label, group, fill, under, over in (("Water", WATER_KINDS, WATER, None, None),
                                            ("Roads", ROAD_KINDS, ROAD, ROAD_EDGE, None),
                                            ("Buildings", BUILDING_KINDS, BUILDING, None, BUILDING_EDGE)):
        sel = geoms[np.isin(kinds, group)]
        if not len(sel):
            continue
        if under is not None:
            paint(shapely.boundary(sel), under, all_touched=True)
        paint(sel, fill)
        if over is not None:
            paint(shapely.boundary(sel), over, all_touched=True)
        legend.append({"label": label, "color": _hex(fill)})
    return legend


def _png(rgb: np.ndarray) -> bytes:
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), MemoryFile() as mem:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with mem.open(driver="PNG", width=rgb.shape[2], height=rgb.shape[1], count=3, dtype="uint8") as dst:
                dst.write(rgb)
        return mem.read()
