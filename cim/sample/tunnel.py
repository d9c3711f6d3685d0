"""Seeded synthetic utility tunnel (综合管廊) of the sample district: a CityJSON 2.0 box-section tunnel in EPSG:4547.

One arterial road near the civic block carries a two-compartment tunnel (utility and natural gas compartments,
3.5 m x 3.2 m outside) for 600-900 m, between its sewer (+0.05 W) and water (+0.25 W) mains at +0.15 W of the road
width. The roof follows the ground 2.5 m down and dives under any pipe it would otherwise hit (0.3 m clear, ramps
of at most 10 %), so it is clear of every sample pipe. One Tunnel CityObject per road segment (UT-01, UT-02, ...),
each a closed solid swept along its straight stretch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from cim.sample import district
from cim.sample.district import DEFAULT_SEED, ORIGIN, SIZE

WIDTH, HEIGHT = 3.5, 3.2  # outside (m)
WALL, SLAB = 0.25, 0.3  # outer walls, roof and floor slabs (m)
COVER = 2.5  # ground to roof (m)
CLEAR = 0.3  # vertical clearance to a crossing pipe (m)
RAMP = 0.10  # steepest longitudinal slope of a dive
OFFSET = 0.15  # centreline offset from the road centreline, fraction of the road width (+ east / north)
STEP = 5.0  # profile station spacing (m)
COMPARTMENTS = (("utility", 1.8), ("natural gas", 1.0))  # inner widths (m), from the road centre side outwards
_SURFACES = [{"type": "GroundSurface"}, {"type": "WallSurface"}, {"type": "RoofSurface"},
             {"type": "ClosureSurface"}]
_NETWORKS = {"water_lines": "water_points", "drainage_lines": "drainage_points", "gas_lines": "gas_points"}


@dataclass(frozen=True)
class Tunnel:
    """The tunnel's route and profile: stations along a straight axis and the sections between them."""

    road: str  # road name
    start: np.ndarray  # (2,) map coordinates of the centreline at s = 0
    axis: np.ndarray  # (2,) unit vector along the route
    normal: np.ndarray  # (2,) unit vector to the outer side (away from the road centreline)
    s: np.ndarray  # (K,) station chainages (m)
    roof: np.ndarray  # (K,) roof (top of the outside) heights
    ground: np.ndarray  # (K,) ground heights at the centreline
    breaks: np.ndarray  # (n + 1,) chainages where sections start and end (all stations)
    ids: tuple[str, ...]  # section object ids
    segments: tuple[str, ...]  # road segment id under each section

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def xy(self, s: np.ndarray, lateral: np.ndarray | float = 0.0) -> np.ndarray:
        """Map coordinates at chainages s, moved `lateral` metres to the outer side."""
        s = np.asarray(s, float)
        return self.start + s[..., None] * self.axis + np.asarray(lateral, float)[..., None] * self.normal

    def roof_at(self, s: np.ndarray) -> np.ndarray:
        return np.interp(s, self.s, self.roof)

    def section_of(self, s: np.ndarray) -> np.ndarray:
        """Index of the section holding each chainage."""
        return np.clip(np.searchsorted(self.breaks, s, side="right") - 1, 0, len(self.ids) - 1)


def pipe_bands(layers: dict[str, gpd.GeoDataFrame]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """All sample pipes: (2D geometries, crown height at start and end, outside height, GXBH)."""
    geoms, c0, c1, h, ids = [], [], [], [], []
    for lines_name, points_name in _NETWORKS.items():
        ln, pt = layers[lines_name], layers[points_name]
        box = ln["DMCC"].fillna("0X0").str.split("X", expand=True)[1].astype(float)
        height = np.where(ln["GJ"].isna(), box, ln["GJ"].astype(float).fillna(0)) / 1000
        if ln["QDGC"].notna().all():  # drainage: inverts
            a, b = ln["QDGC"].to_numpy() + height, ln["ZDGC"].to_numpy() + height
        else:  # pressure pipes: crown depths below the ground at the end points
            ground = pd.Series(pt["DMGC"].to_numpy(), index=pt["WTDH"])
            a = ground[ln["QDDH"]].to_numpy() - ln["QDMS"].to_numpy()
            b = ground[ln["ZDDH"]].to_numpy() - ln["ZDMS"].to_numpy()
        geoms.append(ln.geometry.values)
        c0.append(a)
        c1.append(b)
        h.append(height)
        ids.append(ln["GXBH"].to_numpy(object))
    return tuple(np.concatenate(x) for x in (geoms, c0, c1, h, ids))


def _choose_route(roads: gpd.GeoDataFrame, river: shapely.Geometry, seed: int) -> gpd.GeoDataFrame:
    """3-5 consecutive segments of one arterial, 600-900 m long, inside the district, off the river and fairly
    flat, nearest the civic block."""
    blocks, interior = district._blocks(seed)
    x0, y0, x1, y1 = blocks[district._civic_block(seed, blocks, interior)]
    civic = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    best, best_d = None, np.inf
    for _, road in roads[roads["class"] == "arterial"].groupby("name", sort=True):
        c = shapely.get_coordinates(road.geometry.values).reshape(-1, 2, 2)
        ns = np.isclose(c[0, 0, 0], c[0, 1, 0])
        road = road.iloc[np.argsort(c[:, 0, 1] if ns else c[:, 0, 0])]
        c = shapely.get_coordinates(road.geometry.values).reshape(-1, 2, 2)
        on_edge = ((c - np.array(ORIGIN)) % SIZE < 1e-6).any(axis=(1, 2))
        for n in range(3, 6):
            for i in range(len(road) - n + 1):
                part = road.iloc[i:i + n]
                length = part.geometry.length.sum()
                if on_edge[i:i + n].any() or not 600 <= length <= 900:
                    continue
                line = shapely.line_merge(shapely.union_all(part.geometry.values))
                pts = shapely.get_coordinates(shapely.segmentize(line, 10.0))
                z = district.ground_height(pts[:, 0], pts[:, 1], seed)
                if shapely.dwithin(line, river, 50.0) or np.ptp(z) > 8.0:
                    continue
                d = shapely.distance(shapely.line_interpolate_point(line, 0.5, normalized=True), shapely.Point(civic))
                if d < best_d:
                    best, best_d = part, d
    if best is None:
        raise ValueError("no arterial stretch fits the utility tunnel")
    return best


def _crossings(t_axis: tuple, footprint: shapely.Geometry, bands: tuple) -> tuple[np.ndarray, ...]:
    """Pipes crossing the tunnel footprint: (chainage from, chainage to, lowest invert, highest crown, GXBH)."""
    start, axis = t_axis
    geoms, c0, c1, h, ids = bands
    k = shapely.STRtree(geoms).query(footprint, predicate="intersects")
    clipped = shapely.intersection(geoms[k], footprint)
    xy, owner = shapely.get_coordinates(clipped, return_index=True)
    frac = shapely.line_locate_point(geoms[k][owner], shapely.points(xy), normalized=True)
    crown = c0[k][owner] + (c1[k][owner] - c0[k][owner]) * frac
    s = (xy - start) @ axis
    g = pd.DataFrame({"o": owner, "s": s, "crown": crown, "inv": crown - h[k][owner]}).groupby("o")
    return (g["s"].min().to_numpy(), g["s"].max().to_numpy(), g["inv"].min().to_numpy(), g["crown"].max().to_numpy(),
            ids[k][g["s"].min().index.to_numpy()])


def tunnel(seed: int = DEFAULT_SEED, layers: dict | None = None, pipes: dict | None = None) -> Tunnel:
    """Route and profile of the sample's utility tunnel."""
    from cim.sample.pipes import pipe_layers  # pipes imports district; keep this module light to import

    layers = layers or district.district_layers(seed)
    route = _choose_route(layers["roads"], layers["river"].geometry.iloc[0], seed)
    c = shapely.get_coordinates(route.geometry.values).reshape(-1, 2, 2)
    start, end = c[0, 0], c[-1, 1]
    axis = (end - start) / np.linalg.norm(end - start)
    ns = abs(axis[0]) < 0.5
    normal = np.array([1.0, 0.0]) if ns else np.array([0.0, 1.0])  # + east of a N-S road, north of an E-W road
    start = start + OFFSET * float(route["width"].iloc[0]) * normal
    breaks = np.concatenate([[0.0], np.cumsum(route.geometry.length.to_numpy())])
    length = breaks[-1]
    line = shapely.linestrings([start, start + length * axis])
    footprint = shapely.buffer(line, WIDTH / 2 + 0.5, cap_style="flat")
    a, b, inv, crown, _ = _crossings((start, axis), footprint, pipe_bands(pipes or pipe_layers(seed)))
    s = np.unique(np.concatenate([np.arange(0.0, length, STEP), breaks, np.clip(np.concatenate([a, b]), 0, length)]))
    xy = start + s[:, None] * axis
    ground = district.ground_height(xy[:, 0], xy[:, 1], seed)
    roof = ground - COVER
    dive = np.zeros(len(a), bool)
    for _ in range(10):  # a dive can bring the floor down onto a deeper pipe: repeat until nothing is hit
        lo = np.array([np.interp([x, y], s, roof).min() for x, y in zip(a, b, strict=True)])
        hi = np.array([roof[(s >= x) & (s <= y)].max(initial=np.interp(x, s, roof)) for x, y in zip(a, b, strict=True)])
        hit = ~((inv >= hi + CLEAR) | (crown <= lo - HEIGHT - CLEAR)) & ~dive
        if not hit.any():
            break
        dive |= hit
        far = np.maximum(np.maximum(a[dive, None] - s, s - b[dive, None]), 0.0)
        roof = np.minimum(ground - COVER, (inv[dive, None] - CLEAR + RAMP * far).min(0))
    n = len(route)
    return Tunnel(str(route["name"].iloc[0]), start, axis, normal, s, roof, ground, breaks,
                  tuple(f"UT-{i + 1:02d}" for i in range(n)), tuple(route["road_id"].astype(str)))


def _sweep(t: Tunnel) -> np.ndarray:
    """(K, 4, 3) outside corners at every station: outer-bottom, inner-bottom, inner-top, outer-top."""
    lat = np.array([1.0, -1.0, -1.0, 1.0]) * WIDTH / 2
    xy = t.xy(t.s[:, None], lat[None, :])
    z = t.roof[:, None] - np.array([HEIGHT, HEIGHT, 0.0, 0.0])
    return np.concatenate([xy, z[..., None]], -1)


def _faces(k0: int, k1: int) -> tuple[list[list[int]], list[int]]:
    """Faces (vertex indices, 4 per station) of the section between stations k0 and k1, and their semantics."""
    k = np.arange(k0, k1)
    c = np.arange(4)
    quads = np.stack([k[:, None] * 4 + c, k[:, None] * 4 + (c + 1) % 4, (k[:, None] + 1) * 4 + (c + 1) % 4,
                      (k[:, None] + 1) * 4 + c], -1).reshape(-1, 4)
    sem = np.tile([0, 1, 2, 1], len(k))  # c0-c1 floor, c1-c2 wall, c2-c3 roof, c3-c0 wall
    faces = [[k0 * 4 + 3, k0 * 4 + 2, k0 * 4 + 1, k0 * 4], *quads.tolist(), [k1 * 4 + i for i in range(4)]]
    return faces, [3, *sem.tolist(), 3]


def _signed_volume(verts: np.ndarray, faces: list[list[int]]) -> float:
    tri = np.array([[f[0], f[i], f[i + 1]] for f in faces for i in range(1, len(f) - 1)])
    p = verts[tri]
    return float(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6)


def tunnel_cityjson(t: Tunnel) -> dict:
    """CityJSON 2.0 document: one Tunnel object per section, a closed box-section solid each."""
    verts = _sweep(t).reshape(-1, 3)
    objects = {}
    k = np.searchsorted(t.s, t.breaks)
    inner = [w for _, w in COMPARTMENTS]
    for i, oid in enumerate(t.ids):
        faces, sem = _faces(int(k[i]), int(k[i + 1]))
        if _signed_volume(verts - verts.mean(0), faces) < 0:  # outward normals: CCW seen from outside
            faces = [f[::-1] for f in faces]
        cover = t.ground[k[i]:k[i + 1] + 1] - t.roof[k[i]:k[i + 1] + 1]
        objects[oid] = {
            "type": "Tunnel",
            "attributes": {"name": f"{t.road} utility tunnel, section {i + 1}", "function": "utility tunnel",
                           "compartments": len(COMPARTMENTS),
                           "compartmentNames": [name for name, _ in COMPARTMENTS],
                           "compartmentWidths": inner, "width": WIDTH, "height": HEIGHT,
                           "innerHeight": round(HEIGHT - 2 * SLAB, 2),
                           "length": round(float(t.breaks[i + 1] - t.breaks[i]), 2),
                           "minCover": round(float(cover.min()), 2), "maxCover": round(float(cover.max()), 2),
                           "road": t.road, "roadSegment": t.segments[i], "yearOfConstruction": 2019},
            "geometry": [{"type": "Solid", "lod": "2", "boundaries": [[[f] for f in faces]],
                          "semantics": {"surfaces": _SURFACES, "values": [sem]}}],
        }
    translate = np.floor(verts.min(0))
    ints = np.rint((verts - translate) / 0.001).astype(np.int64)
    return {"type": "CityJSON", "version": "2.0",
            "transform": {"scale": [0.001, 0.001, 0.001], "translate": translate.tolist()},
            "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/4547",
                         "title": f"{t.road} utility tunnel (synthetic)"},
            "CityObjects": objects, "vertices": ints.tolist()}


def write_tunnel(path: Path, seed: int = DEFAULT_SEED, layers: dict | None = None, pipes: dict | None = None) -> Path:
    """Write the utility tunnel as a CityJSON 2.0 file (layers, pipes: the sample's, if already built)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tunnel_cityjson(tunnel(seed, layers, pipes)), separators=(",", ":")),
                    encoding="utf-8")
    return path
