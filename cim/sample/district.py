"""Seeded, deterministic synthetic ~2 km x 2 km district of Xiangzhou, Zhuhai, in EPSG:4547 (metres)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.transform import Affine

ORIGIN = (453000.0, 2463000.0)
SIZE = 2000.0
CELL = 5.0
CRS = "EPSG:4547"
DEFAULT_SEED = 20261124

USES = ("residential", "commercial", "office", "industrial", "public", "school", "hospital")
_FLOORS = np.array([(6, 33), (1, 6), (6, 32), (1, 4), (2, 6), (3, 6), (4, 16)])  # per USES entry
_LOT = np.array([27.0, 36.0, 40.0, 52.0, 38.0, 48.0, 48.0])  # lot size (m) per zone
_BSUFFIX = ("Huayuan", "Shangchang", "Dasha", "Gongye Yuan", "Zhongxin", "Xuexiao", "Yiyuan")
_STEMS = ("Zhuhai", "Jiuzhou", "Jida", "Gongbei", "Qianshan", "Meihua", "Lianhua", "Jingshan", "Haibin",
          "Fenghuang", "Yuehai", "Renmin", "Zijing", "Yingbin", "Mingzhu", "Shihua", "Cuixiang", "Nanping",
          "Hongshan", "Baishi", "Lingnan", "Xiangwan", "Nanyuan", "Changsheng")
_ROAD_SUFFIX = {"arterial": "Dadao", "secondary": "Lu", "local": "Jie"}
_FUNCTIONS = ("city hall", "museum", "library", "theatre", "exhibition centre", "cultural centre",
              "archive", "court", "community centre", "science museum", "concert hall", "art gallery")
_SETBACK = 4.0  # block edge to road corridor (m)
_MARGIN = 3.0  # building to lot edge (m), so buildings are >= 6 m apart


def _rng(seed: int, stream: int) -> np.random.Generator:
    """Independent generator per component so that changing one part never shifts another."""
    return np.random.default_rng([seed, stream])


def _terrain(seed: int) -> dict:
    """Seeded terrain parameters (phases, hills, river) in local district coordinates."""
    r = _rng(seed, 0)
    return {
        "phase": r.uniform(0.0, 2 * np.pi, 4),
        "hills": [(1880 + r.uniform(-40, 40), 1860 + r.uniform(-40, 40), r.uniform(115, 140), 190.0),
                  (1480 + r.uniform(-30, 30), 1960 + r.uniform(-20, 20), r.uniform(50, 70), 120.0)],
        "river": (720 + r.uniform(-40, 40), r.uniform(90, 120), r.uniform(0, 2 * np.pi),
                  r.uniform(20, 35), r.uniform(0, 2 * np.pi)),
        "half_width": r.uniform(22.0, 28.0),
    }


def _river_centre(u: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """River centreline northing (local) and its slope dv/du at local eastings u."""
    c, a1, q1, a2, q2 = _terrain(seed)["river"]
    k1, k2 = 2 * np.pi / 1900.0, 2 * np.pi / 700.0
    v = c + a1 * np.sin(k1 * u + q1) + a2 * np.sin(k2 * u + q2)
    return v, a1 * k1 * np.cos(k1 * u + q1) + a2 * k2 * np.cos(k2 * u + q2)


def ground_height(x: np.ndarray, y: np.ndarray, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Analytic orthometric ground height (m) at EPSG:4547 coordinates x, y."""
    t = _terrain(seed)
    p = t["phase"]
    u = np.asarray(x, dtype=float) - ORIGIN[0]
    v = np.asarray(y, dtype=float) - ORIGIN[1]
    h = (5.0 + 1.6 * np.sin(2 * np.pi * u / 1300 + p[0]) * np.cos(2 * np.pi * v / 1100 + p[1])
         + 0.8 * np.sin(2 * np.pi * (u + v) / 700 + p[2]))
    for hu, hv, amp, sigma in t["hills"]:
        h = h + amp * np.exp(-((u - hu) ** 2 + (v - hv) ** 2) / (2 * sigma**2))
    vc, dv = _river_centre(u, seed)
    w = t["half_width"]
    s = np.clip((np.abs(v - vc) / np.sqrt(1 + dv**2) - 0.7 * w) / w, 0.0, 1.0)
    bed = 0.8 + 0.3 * np.sin(2 * np.pi * u / 450 + p[3])
    return bed + (h - bed) * (s * s * (3 - 2 * s))


def write_dem(path: Path, seed: int = DEFAULT_SEED) -> Path:
    """Write the district DEM as a tiled, LZW-compressed float32 GeoTIFF sampled at cell centres."""
    path = Path(path)
    n = int(SIZE / CELL)
    c = (np.arange(n) + 0.5) * CELL
    xx, yy = np.meshgrid(ORIGIN[0] + c, ORIGIN[1] + SIZE - c)
    z = ground_height(xx, yy, seed).astype(np.float32)
    profile = {"driver": "GTiff", "width": n, "height": n, "count": 1, "dtype": "float32", "crs": CRS,
               "transform": Affine(CELL, 0.0, ORIGIN[0], 0.0, -CELL, ORIGIN[1] + SIZE), "nodata": -9999.0,
               "compress": "lzw", "tiled": True, "blockxsize": 256, "blockysize": 256}
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z, 1)
    return path


def _road_axes(seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(positions, widths, classes) of the N-S roads (local x) and the E-W roads (local y)."""
    r = _rng(seed, 1)
    axes = []
    for _ in range(2):
        pos = np.arange(100.0, SIZE, 200.0) + r.uniform(-15.0, 15.0, 10)
        a = int(r.integers(1, 4))
        cls = np.full(10, "local", dtype=object)
        cls[[(a + 2) % 10, (a + 7) % 10]] = "secondary"
        cls[[a, a + 5]] = "arterial"
        arterial_width = r.choice([32.0, 36.0, 40.0], 10)
        width = np.select([cls == "arterial", cls == "secondary"], [arterial_width, 20.0], 12.0)
        axes.append((pos, width, cls))
    return axes


def _roads(seed: int) -> gpd.GeoDataFrame:
    """Road centrelines split into segments between intersections."""
    (xp, xw, xc), (yp, yw, yc) = _road_axes(seed)
    stems = _rng(seed, 2).permutation(np.array(_STEMS))
    coords, cls, width, names = [], [], [], []
    for k, (pos, w, c, cross) in enumerate([(xp, xw, xc, yp), (yp, yw, yc, xp)]):
        br = np.concatenate([[0.0], cross, [SIZE]])
        along0, along1 = np.tile(br[:-1], len(pos)), np.tile(br[1:], len(pos))
        fixed = np.repeat(pos, len(br) - 1)
        seg = np.stack([np.stack([fixed, along0], -1), np.stack([fixed, along1], -1)], 1)
        coords.append(seg if k == 0 else seg[..., ::-1])
        cls.append(np.repeat(c, len(br) - 1))
        width.append(np.repeat(w, len(br) - 1))
        road_names = [f"{stems[10 * k + i]} {_ROAD_SUFFIX[ci]}" for i, ci in enumerate(c)]
        names.append(np.repeat(np.array(road_names, dtype=object), len(br) - 1))
    seg = np.concatenate(coords) + np.array(ORIGIN)
    cls, width = np.concatenate(cls), np.concatenate(width)
    lanes = np.select([width >= 36, cls == "arterial", cls == "secondary"], [8, 6, 4], 2)
    ids = np.char.add("R", np.char.zfill(np.arange(1, len(seg) + 1).astype(str), 4))
    return gpd.GeoDataFrame({"road_id": ids.astype(object), "name": np.concatenate(names), "class": cls,
                             "width": width, "lanes": lanes.astype(np.int64)},
                            geometry=shapely.linestrings(seg), crs=CRS)


def _river(seed: int) -> shapely.Polygon:
    """River polygon: the meandering centreline buffered to the river width, clipped to the district."""
    u = np.arange(-100.0, SIZE + 100.0, 5.0)
    v, _ = _river_centre(u, seed)
    line = shapely.linestrings(u + ORIGIN[0], v + ORIGIN[1])
    poly = shapely.buffer(line, _terrain(seed)["half_width"], cap_style="flat", quad_segs=4)
    box = shapely.box(ORIGIN[0], ORIGIN[1], ORIGIN[0] + SIZE, ORIGIN[1] + SIZE)
    return shapely.orient_polygons(shapely.intersection(poly, box), exterior_cw=False)


def _corridors(roads: gpd.GeoDataFrame) -> shapely.Geometry:
    """Union of road corridors (centreline buffered by width / 2)."""
    half = roads["width"].to_numpy() / 2
    return shapely.union_all(shapely.buffer(roads.geometry.values, half, cap_style="flat"))


def _blocks(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Buildable block rectangles (x0, y0, x1, y1; EPSG:4547) between road corridors, and interior flags."""
    (xp, xw, _), (yp, yw, _) = _road_axes(seed)

    def spans(p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo = np.concatenate([[2.0], p + w / 2 + _SETBACK])
        return lo, np.concatenate([p - w / 2 - _SETBACK, [SIZE - 2.0]])

    (x0, x1), (y0, y1) = spans(xp, xw), spans(yp, yw)
    ix, iy = np.meshgrid(np.arange(len(x0)), np.arange(len(y0)))
    ix, iy = ix.ravel(), iy.ravel()
    blocks = np.column_stack([x0[ix], y0[iy], x1[ix], y1[iy]]) + np.array(ORIGIN * 2)
    interior = (ix > 0) & (ix < len(x0) - 1) & (iy > 0) & (iy < len(y0) - 1)
    return blocks, interior


def _civic_block(seed: int, blocks: np.ndarray, interior: np.ndarray) -> int:
    """Index of the flat, river-free interior block reserved for the CityJSON landmarks."""
    boxes = shapely.box(*blocks.T)
    corners_z = ground_height(blocks[:, [0, 2, 2, 0]], blocks[:, [1, 1, 3, 3]], seed)
    ok = interior & ~shapely.intersects(boxes, shapely.buffer(_river(seed), 30.0)) & (corners_z.max(1) < 12)
    cx, cy = (blocks[:, 0] + blocks[:, 2]) / 2, (blocks[:, 1] + blocks[:, 3]) / 2
    d = np.hypot(cx - ORIGIN[0] - 1000.0, cy - ORIGIN[1] - 1400.0)
    return int(np.argmin(np.where(ok, d, np.inf)))


def _lots(blocks: np.ndarray, zone: np.ndarray, skip: int) -> tuple[np.ndarray, np.ndarray]:
    """Split every block except `skip` into a grid of lots sized by zone; returns (lots, block index)."""
    out, bid = [], []
    for b, (x0, y0, x1, y1) in enumerate(blocks):
        if b == skip:
            continue
        nx, ny = (max(1, round(s / _LOT[zone[b]])) for s in (x1 - x0, y1 - y0))
        ex, ey = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
        gx0, gy0 = np.meshgrid(ex[:-1], ey[:-1])
        gx1, gy1 = np.meshgrid(ex[1:], ey[1:])
        out.append(np.column_stack([gx0.ravel(), gy0.ravel(), gx1.ravel(), gy1.ravel()]))
        bid.append(np.full(gx0.size, b))
    return np.concatenate(out), np.concatenate(bid)


def _nullable_int(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """Nullable Int64 array with `missing` entries set to NA."""
    return pd.arrays.IntegerArray(values.astype(np.int64), missing.astype(bool))


def _rotate(pts: np.ndarray, theta: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Rotate (n, k, 2) local coordinates by theta (n,) and translate to centre (n, 2)."""
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    x, y = pts[..., 0], pts[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], -1) + centre[:, None, :]


def _rect(hw: np.ndarray, hh: np.ndarray) -> np.ndarray:
    """Closed CCW rectangles (n, 5, 2) centred at the origin with half sizes hw, hh."""
    sx, sy = np.array([-1, 1, 1, -1, -1.0]), np.array([-1, -1, 1, 1, -1.0])
    return np.stack([hw[:, None] * sx, hh[:, None] * sy], -1)


def _footprints(r: np.random.Generator, inner: np.ndarray) -> np.ndarray:
    """Mixed footprints (rectangle, rotated, L-shape, courtyard) fitted inside inner lot boxes."""
    n = len(inner)
    w, h = inner[:, 2] - inner[:, 0], inner[:, 3] - inner[:, 1]
    kind = r.choice(4, n, p=[0.68, 0.14, 0.12, 0.06])
    kind[(kind == 3) & (np.minimum(w, h) < 30)] = 0
    frac = np.where(kind[:, None] == 3, r.uniform(0.8, 1.0, (n, 2)), r.uniform(0.55, 1.0, (n, 2)))
    fw, fh = w * frac[:, 0], h * frac[:, 1]
    theta = np.where(kind == 1, np.radians(r.uniform(2, 10, n)) * r.choice([-1, 1], n), 0.0)
    c, s = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    scale = np.minimum(1.0, np.minimum(w / (fw * c + fh * s), h / (fw * s + fh * c)))
    fw, fh = fw * scale, fh * scale
    bw, bh = (fw * c + fh * s) / 2, (fw * s + fh * c) / 2  # half sizes of the rotated bounding box
    centre = np.column_stack([inner[:, 0] + bw + r.random(n) * (w - 2 * bw),
                              inner[:, 1] + bh + r.random(n) * (h - 2 * bh)])
    t1, t2 = r.uniform(0.35, 0.6, n) * fw, r.uniform(0.35, 0.6, n) * fh
    mirror = r.choice([-1.0, 1.0], (n, 2))
    ring = r.uniform(0.22, 0.3, n) * np.minimum(fw, fh)
    geoms = np.empty(n, dtype=object)
    m = kind <= 1
    geoms[m] = shapely.polygons(_rotate(_rect(fw[m] / 2, fh[m] / 2), theta[m], centre[m]))
    m = kind == 2
    lx = np.stack([np.zeros(m.sum()), fw[m], fw[m], t1[m], t1[m], np.zeros(m.sum())], 1) - fw[m, None] / 2
    ly = np.stack([np.zeros(m.sum()), np.zeros(m.sum()), t2[m], t2[m], fh[m], fh[m]], 1) - fh[m, None] / 2
    pts = np.stack([lx * mirror[m, :1], ly * mirror[m, 1:]], -1)
    geoms[m] = shapely.polygons(np.concatenate([pts, pts[:, :1]], 1) + centre[m, None, :])
    m = kind == 3
    shell = _rect(fw[m] / 2, fh[m] / 2) + centre[m, None, :]
    hole = _rect(fw[m] / 2 - ring[m], fh[m] / 2 - ring[m])[:, ::-1] + centre[m, None, :]
    geoms[m] = shapely.polygons(shell, holes=hole[:, None])
    return shapely.orient_polygons(geoms, exterior_cw=False)


def _buildings(seed: int, blocks: np.ndarray, interior: np.ndarray, civic: int, river: shapely.Geometry,
               corridors: shapely.Geometry) -> gpd.GeoDataFrame:
    """Building footprints with attributes, placed lot by lot inside the blocks."""
    r = _rng(seed, 3)
    m = len(blocks)
    cu = (blocks[:, 0] + blocks[:, 2]) / 2 - ORIGIN[0]
    cv = (blocks[:, 1] + blocks[:, 3]) / 2 - ORIGIN[1]
    p_city, p_ind = [0.58, 0.16, 0.12, 0.06, 0.08], [0.2, 0.05, 0.05, 0.65, 0.05]
    zone = np.where((cu < 700) & (cv < 600), r.choice(5, m, p=p_ind), r.choice(5, m, p=p_city))
    dry = ~shapely.intersects(shapely.box(*blocks.T), shapely.buffer(river, 20.0))
    flat = ground_height(blocks[:, [0, 2, 2, 0]], blocks[:, [1, 1, 3, 3]], seed).max(1) < 15
    eligible = (zone == 0) & interior & dry & flat & (np.arange(m) != civic)
    special = r.choice(np.flatnonzero(eligible), 3, replace=False)
    zone[special] = [5, 5, 6]
    block_year = r.integers(1982, 2023, m)
    block_stem = r.choice(np.array(_STEMS), m)
    lots, bid = _lots(blocks, zone, civic)
    inner = lots + np.array([_MARGIN, _MARGIN, -_MARGIN, -_MARGIN])
    keep = (inner[:, 2] - inner[:, 0] >= 8) & (inner[:, 3] - inner[:, 1] >= 8) & (r.random(len(lots)) > 0.05)
    px = np.column_stack([lots[:, [0, 2, 2, 0]], lots[:, [0, 2]].mean(1)])
    py = np.column_stack([lots[:, [1, 1, 3, 3]], lots[:, [1, 3]].mean(1)])
    gx = (ground_height(px + 1, py, seed) - ground_height(px - 1, py, seed)) / 2
    gy = (ground_height(px, py + 1, seed) - ground_height(px, py - 1, seed)) / 2
    keep &= (ground_height(px, py, seed).max(1) <= 30) & (np.hypot(gx, gy).max(1) <= 0.15)
    keep &= ~shapely.intersects(shapely.buffer(river, 12.0), shapely.box(*inner.T))
    inner, bid = inner[keep], bid[keep]
    geoms = _footprints(r, inner)
    ok = ~shapely.intersects(corridors, geoms) & ~shapely.intersects(river, geoms) & shapely.is_valid(geoms)
    geoms, bid = geoms[ok], bid[ok]
    n = len(geoms)
    use = np.where(r.random(n) < 0.12, r.choice(5, n, p=[0.4, 0.25, 0.15, 0.0, 0.2]), zone[bid])
    year = np.clip(block_year[bid] + r.integers(-3, 4, n), 1980, 2024)
    lo, hi = _FLOORS[use, 0], _FLOORS[use, 1]
    old_res = (use == 0) & (year < 2000)
    lo, hi = np.where(old_res, 4, lo), np.where(old_res, 8, hi)
    floors = lo + (r.random(n) * (hi - lo + 1)).astype(np.int64)
    height = np.round(floors * r.uniform(3.0, 3.6, n), 1)
    q = r.random(n)  # 2 % neither, 6 % floors only missing, 10 % height only missing
    floors_na, height_na = q < 0.08, (q < 0.02) | ((q >= 0.08) & (q < 0.18))
    named = r.random(n) < 0.25
    names = np.full(n, None, dtype=object)
    names[named] = [f"{block_stem[b]} {_BSUFFIX[u]} {i % 9 + 1}"
                    for i, (b, u) in enumerate(zip(bid[named], use[named], strict=True))]
    codes = np.char.add("440402-B-", np.char.zfill(np.arange(1, n + 1).astype(str), 6))
    return gpd.GeoDataFrame({
        "bldg_code": codes.astype(object), "name": names, "use": np.array(USES, dtype=object)[use],
        "floors": _nullable_int(floors, floors_na),
        "height": np.where(height_na, np.nan, height), "year": year.astype(np.int64),
    }, geometry=geoms, crs=CRS)


def addresses(footprints: np.ndarray, roads: gpd.GeoDataFrame) -> np.ndarray:
    """A street address per footprint, "<road name> <number>": the road whose segment is nearest to it (all the
    segments of one name make one road), numbered along that road from where its segments start, odd on the
    left and even on the right, 1, 3, 5, … and 2, 4, 6, … in order along each side. Vectorised (STRtree,
    shapely's line functions, a sort), deterministic, and unique per footprint."""
    n = len(footprints)
    names = roads["name"].to_numpy(dtype=object)
    road_names, road_of_segment = np.unique(names, return_inverse=True)
    # one directed line per road name (its segments run the same way, end to end)
    lines = shapely.line_merge(
        np.array([shapely.union_all(roads.geometry.values[road_of_segment == i]) for i in range(len(road_names))]),
        directed=True)
    _, nearest = shapely.STRtree(roads.geometry.values).query_nearest(footprints, all_matches=False)
    road = road_of_segment[nearest]
    centre = shapely.centroid(footprints)
    line = lines[road]
    along = shapely.line_locate_point(line, centre)
    a = shapely.get_coordinates(shapely.line_interpolate_point(line, along - 0.5))
    b = shapely.get_coordinates(shapely.line_interpolate_point(line, along + 0.5))
    c = shapely.get_coordinates(centre)
    even = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]) < 0  # right
    order = np.lexsort((np.arange(n), along, even, road))  # by road, side, position (ties: input order)
    group = (road * 2 + even)[order]
    first = np.maximum.accumulate(np.where(np.r_[True, group[1:] != group[:-1]], np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - first
    number = 2 * rank + np.where(even, 2, 1)
    return (pd.Series(road_names[road]) + " " + pd.Series(number).astype(str)).to_numpy(dtype=object)


def district_layers(seed: int = DEFAULT_SEED) -> dict[str, gpd.GeoDataFrame]:
    """The district's GIS layers: 'buildings' (polygons, each with an address on its nearest road), 'roads'
    (lines) and 'river' (polygon)."""
    roads = _roads(seed)
    river = _river(seed)
    blocks, interior = _blocks(seed)
    civic = _civic_block(seed, blocks, interior)
    buildings = _buildings(seed, blocks, interior, civic, river, _corridors(roads))
    buildings.insert(buildings.columns.get_loc("name") + 1, "address", addresses(buildings.geometry.values, roads))
    river_gdf = gpd.GeoDataFrame({"name": ["Qianshan He"], "kind": ["river"]}, geometry=[river], crs=CRS)
    return {"buildings": buildings, "roads": roads, "river": river_gdf}


def write_layers(path: Path, layers: dict[str, gpd.GeoDataFrame]) -> Path:
    """Write layers to a fresh GeoPackage."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    for name, gdf in layers.items():
        gdf.to_file(path, layer=name, driver="GPKG", engine="pyogrio")
    return path


def write_gis(path: Path, seed: int = DEFAULT_SEED) -> Path:
    """Write the three district layers to a fresh GeoPackage."""
    return write_layers(path, district_layers(seed))


def _roof_solid(c: np.ndarray, theta: float, length: float, width: float, eave: float, rise: float,
                hipped: bool) -> tuple[np.ndarray, list[list[int]], list[int]]:
    """Vertices (base z=0), outward faces and semantics (0 ground, 1 wall, 2 roof) of a pitched house."""
    a, b = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
    hl, hw = length / 2, width / 2
    foot = c + np.array([-hl * a - hw * b, hl * a - hw * b, hl * a + hw * b, -hl * a + hw * b])
    rl = hl - hw if hipped else hl
    ridge = c + np.array([-rl * a, rl * a])
    verts = np.vstack([np.column_stack([foot, np.zeros(4)]), np.column_stack([foot, np.full(4, eave)]),
                       np.column_stack([ridge, np.full(2, eave + rise)])])
    if hipped:
        faces = [[0, 3, 2, 1], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7],
                 [4, 5, 9, 8], [6, 7, 8, 9], [5, 6, 9], [7, 4, 8]]
        return verts, faces, [0, 1, 1, 1, 1, 2, 2, 2, 2]
    faces = [[0, 3, 2, 1], [0, 1, 5, 4], [1, 2, 6, 9, 5], [2, 3, 7, 6], [3, 0, 4, 8, 7],
             [4, 5, 9, 8], [6, 7, 8, 9]]
    return verts, faces, [0, 1, 1, 1, 1, 2, 2]


def _landmarks(seed: int) -> dict:
    """CityJSON 2.0 document with ~20 LoD2 civic buildings in the reserved civic block."""
    blocks, interior = _blocks(seed)
    x0, y0, x1, y1 = blocks[_civic_block(seed, blocks, interior)]
    r = _rng(seed, 4)
    nx, ny = (5, 4) if x1 - x0 >= y1 - y0 else (4, 5)
    ex, ey = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
    all_verts, objects, offset = [], {}, 0
    surfaces = [{"type": "GroundSurface"}, {"type": "WallSurface"}, {"type": "RoofSurface"}]
    for i in range(nx * ny):
        lx0, lx1, ly0, ly1 = ex[i % nx] + 5, ex[i % nx + 1] - 5, ey[i // nx] + 5, ey[i // nx + 1] - 5
        lw, lh = lx1 - lx0, ly1 - ly0
        length = max(lw, lh) * r.uniform(0.65, 0.95)
        width = min(min(lw, lh) * r.uniform(0.6, 0.9), length / 1.25)
        theta = (0.0 if lw >= lh else np.pi / 2) + np.radians(r.uniform(-8, 8))
        c, s = abs(np.cos(theta)), abs(np.sin(theta))
        k = min(1.0, lw / (length * c + width * s), lh / (length * s + width * c))
        length, width = length * k, width * k
        centre = np.array([(lx0 + lx1) / 2, (ly0 + ly1) / 2])
        hipped = bool(r.random() < 0.5)
        wall = r.uniform(6.0, 20.0)
        rise = width / 2 * np.tan(np.radians(r.uniform(20, 35)))
        verts, faces, sem = _roof_solid(centre, theta, length, width, wall, rise, hipped)
        verts[:, 2] += ground_height(verts[:4, 0], verts[:4, 1], seed).min()  # base at lowest corner
        all_verts.append(verts)
        objects[f"LM-{i + 1:04d}"] = {
            "type": "Building",
            "attributes": {"measuredHeight": round(float(wall + rise), 3),
                           "roofType": "hipped" if hipped else "gabled",
                           "yearOfConstruction": int(r.integers(1985, 2023)),
                           "function": _FUNCTIONS[int(r.integers(len(_FUNCTIONS)))]},
            "geometry": [{"type": "Solid", "lod": "2",
                          "boundaries": [[[[j + offset for j in f]] for f in faces]],
                          "semantics": {"surfaces": surfaces, "values": [sem]}}],
        }
        offset += len(verts)
    verts = np.vstack(all_verts)
    translate = np.floor(verts.min(0))
    ints = np.rint((verts - translate) / 0.001).astype(np.int64)
    return {"type": "CityJSON", "version": "2.0",
            "transform": {"scale": [0.001, 0.001, 0.001], "translate": translate.tolist()},
            "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/4547",
                         "title": "Xiangzhou civic landmarks (synthetic)"},
            "CityObjects": objects, "vertices": ints.tolist()}


def write_cityjson(path: Path, seed: int = DEFAULT_SEED) -> Path:
    """Write the LoD2 civic landmarks as a CityJSON 2.0 file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_landmarks(seed), separators=(",", ":")), encoding="utf-8")
    return path


def generate(out_dir: Path, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """Write dem.tif, district.gpkg, landmarks.city.json, bim.ifc, pipes.gpkg, water.inp, utility_tunnel.city.json
    and sensors.geojson into out_dir."""
    from cim.sample.bim import write_bim  # bim, pipes, tunnel and sensors import this module
    from cim.sample.pipes import pipe_layers, write_water_inp
    from cim.sample.sensors import write_sensors
    from cim.sample.tunnel import write_tunnel

    out_dir = Path(out_dir)
    layers, pipes = district_layers(seed), pipe_layers(seed)  # built once for the files that use them
    return {"dem": write_dem(out_dir / "dem.tif", seed), "gis": write_layers(out_dir / "district.gpkg", layers),
            "cityjson": write_cityjson(out_dir / "landmarks.city.json", seed),
            "bim": write_bim(out_dir / "bim.ifc", seed),
            "pipes": write_layers(out_dir / "pipes.gpkg", pipes),
            "water_inp": write_water_inp(out_dir / "water.inp", seed),
            "tunnel": write_tunnel(out_dir / "utility_tunnel.city.json", seed, layers, pipes),
            "sensors": write_sensors(out_dir / "sensors.geojson", seed, layers, pipes)}


def synthetic_footprints(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    """n non-overlapping rectangular footprints (some rotated) on a 40 m grid, with sparse attributes."""
    r = np.random.default_rng(seed)
    side, pitch = max(1, int(np.ceil(np.sqrt(n)))), 40.0
    i = np.arange(n)
    centre = np.column_stack([440000.0 + (i % side + 0.5) * pitch, 2450000.0 + (i // side + 0.5) * pitch])
    hw, hh = r.uniform(3.0, 12.0, n), r.uniform(3.0, 12.0, n)  # diagonal <= 34 m < pitch
    theta = np.where(r.random(n) < 0.3, r.uniform(-np.pi / 6, np.pi / 6, n), 0.0)
    geoms = shapely.polygons(_rotate(_rect(hw, hh), theta, centre))
    use = r.choice(len(USES), n, p=[0.6, 0.12, 0.08, 0.1, 0.05, 0.03, 0.02])
    floors = _FLOORS[use, 0] + (r.random(n) * (_FLOORS[use, 1] - _FLOORS[use, 0] + 1)).astype(np.int64)
    floors_na, height_na = r.random(n) < 0.08, r.random(n) < 0.12
    height = np.where(height_na, np.nan, np.round(floors * r.uniform(3.0, 3.6, n), 1))
    codes = np.char.add("SYN-", np.char.zfill((i + 1).astype(str), 7))
    return gpd.GeoDataFrame({
        "bldg_code": codes.astype(object), "height": height,
        "floors": _nullable_int(floors, floors_na),
        "use": np.array(USES, dtype=object)[use], "year": r.integers(1980, 2025, n).astype(np.int64),
    }, geometry=geoms, crs=CRS)
