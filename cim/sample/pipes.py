"""Seeded synthetic underground pipe networks under the sample district's roads, in EPSG:4547.

Water supply (JS), rain (YS) and sewer (WS) drainage and natural gas (TR) with the CJJ 61-2017 field names:
a line layer holds straight pipe runs between two survey points (QDDH / ZDDH = WTDH of its end points, the
geometry ends exactly on them; only the planted gas stub has a bend vertex), a point layer the survey points
with their appurtenance FSW and feature TZ.

Cross-section: each network runs parallel to the road centreline at a signed offset, a fraction of the road width
W (`OFFSETS`; + is east of a N-S road, north of an E-W road): water +0.25 W, sewer +0.05 W, gas -0.15 W, rain
-0.38 W with its inlets at -0.28 W, so parallel runs of different networks are >= 1.8 m apart on a 12 m road.
Water: a plant (水厂) at an arterial's district-edge end feeds the grid of looped mains (arterial / secondary) and
distribution pipes (local); valves on every branch of a tee / cross, a few metres out, just clear of the other
networks' pipes crossing the branch; hydrants on 2-3 m laterals; one straight service per building within 60 m
of a local or secondary road, to the footprint edge, clear of other buildings, roads and drainage manholes.
Gas: a regulator station (调压站) feeds medium-pressure mains and low-pressure distribution the same way. Every
road run is split at every point; plain points keep runs <= 75 m.
Depths: water crowns 1.0-1.4 m and gas crowns 0.9-1.5 m below ground (QDMS / ZDMS; QDGC / ZDGC empty), with
gas on top where the two cross (water >= 1.37 m, gas bottom <= 1.20 m; both networks have a survey point where
road runs cross, and where ground curvature would eat into a service's clearance). Pipes are straight in 3D
between their end elevations (ground at the point - depth), which is how all clearances here are measured.
Drainage inverts (QDGC / ZDGC, and QDMS / ZDMS = ground - invert) are designed from the upstream ends down:
each pipe keeps cover >= 1.0 m along its length, falls >= 0.0031 (>= 0.003 after rounding to mm), matches
crowns where it grows and passes >= 0.45 m under water, >= 0.35 m under gas pipes; sewers pass >= 0.25 m over
or under rain pipes. Rain flows to outlets (出水口) on the river banks, sewage to one treatment-plant outlet at
the district edge (the edge end that drains most of the district at the least depth). The flow forest is the
cheapest-path forest whose edge cost is the depth a pipe gains (fall + rising ground); road stretches that
would climb more than `_MAX_RISE` get no pipe. Pipes deeper than 6 m or under the river are jacked (顶管).
Clearances: apart from the two problems planted on purpose (`PLANTED_CLEARANCE_ISSUES`, their pipes numbered
first), pipes of different networks meet GB 50289-2016 (Table 4.1.9 beside each other, checked between every
pair that does not cross; Table 4.1.14 where they cross) and keep its distances from buildings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from cim.sample import district
from cim.sample.district import CRS, DEFAULT_SEED, ORIGIN, SIZE, write_layers

LAYERS = ("water_lines", "water_points", "drainage_lines", "drainage_points", "gas_lines", "gas_points")
OFFSETS = {"JS": 0.25, "WS": 0.05, "TR": -0.15, "YS": -0.38}  # signed offset from the centreline / road width
INLET_OFFSET = -0.28
LINE_FIELDS = ("GXBH", "GXDM", "QDDH", "ZDDH", "QDMS", "ZDMS", "QDGC", "ZDGC", "GJ", "DMCC", "CZ", "YL", "MSND",
               "QSDW", "MSFS", "SZDL")
POINT_FIELDS = ("WTDH", "GXDM", "TZ", "FSW", "DMGC", "JS", "FMZT", "KCZ", "JHJZ")
WATER_OWNER, DRAIN_OWNER, GAS_OWNER = "珠海水务集团", "珠海水务集团", "珠海港华燃气有限公司"
SOURCE_HEAD = 40.0  # water: reservoir head above the plant's ground (m)
SERVICE_DEMAND = 0.05  # L/s per service connection
# Deliberate conflicts; their pipes get the first ids of their layers, so the ids hold for every seed.
PLANTED_CLEARANCE_ISSUES: list[dict] = [
    {"kind": "horizontal", "layers": ("gas_lines", "water_lines"), "GXBH": ("TR000001", "JS000001"),
     "distance_m": 0.4, "length_m": 30.0,
     "note": "low-pressure gas stub runs 0.4 m beside a water pipe for 30 m"},
    {"kind": "vertical", "layers": ("water_lines", "drainage_lines"), "GXBH": ("JS000002", "WS000001"),
     "gap_m": 0.08, "note": "water service crosses 0.08 m (+-0.01) over the crown of a sewer pipe"},
]
_PLANT_GAP = 0.08
_STUB_GAP, _STUB_LEN = 0.4, 30.0
_SLOPE = 0.0031  # design minimum fall of gravity pipes (>= 0.003 after rounding inverts to mm)
_GAP = {"JS": 0.45, "TR": 0.35, "YS": 0.25}  # drainage crown below a crossing pipe of this network (m)
_MAX_RUN = 75.0  # longest road run without a survey point (m)
_MAX_RISE = {"YS": 2.0, "WS": 6.0}  # most ground a gravity line may climb on its way to the outlet (m)


# ---------------------------------------------------------------------------------------------- road skeleton
@dataclass(frozen=True)
class _Grid:
    """The district's road axes: N-S axes first (by easting), then E-W axes (by northing)."""

    ns: np.ndarray  # axis runs north-south
    pos: np.ndarray  # centreline easting (N-S) or northing (E-W)
    width: np.ndarray
    cls: np.ndarray
    name: np.ndarray
    n_ns: int

    def crossing(self, a: np.ndarray) -> np.ndarray:
        """(len(a), k) indices of the axes crossing each axis in a, in along order."""
        n_ew = len(self.ns) - self.n_ns
        cross_ns = np.arange(self.n_ns, len(self.ns))[None].repeat(self.n_ns, 0)
        cross_ew = np.arange(self.n_ns)[None].repeat(n_ew, 0)
        if cross_ns.shape[1] != cross_ew.shape[1]:
            raise ValueError("pipes need as many N-S as E-W roads")
        return np.concatenate([cross_ns, cross_ew])[a]


def _grid(roads: gpd.GeoDataFrame) -> _Grid:
    c = shapely.get_coordinates(roads.geometry.values).reshape(-1, 2, 2)
    ns = np.isclose(c[:, 0, 0], c[:, 1, 0])
    perp = np.where(ns, c[:, 0, 0], c[:, 0, 1])
    _, first = np.unique(np.column_stack([~ns, np.round(perp, 3)]), axis=0, return_index=True)
    return _Grid(ns=ns[first], pos=perp[first], width=roads["width"].to_numpy(float)[first],
                 cls=roads["class"].to_numpy(object)[first], name=roads["name"].to_numpy(object)[first],
                 n_ns=int(ns[first].sum()))


@dataclass(frozen=True)
class _Layout:
    """One network's lines along the axes: line coordinate per axis, nodes where the lines meet or end."""

    perp: np.ndarray  # (A,) easting (N-S) or northing (E-W) of the network line
    node_xy: np.ndarray  # (N, 2)
    grid_node: np.ndarray  # (N,) node where two axes meet
    ax_node: np.ndarray  # (A, K+2) node ids along each axis
    ax_s: np.ndarray  # (A, K+2) along coordinate of those nodes
    ax_cc: np.ndarray  # (A, K+2) crossing centreline coordinate (district edge at the ends)
    ax_cw: np.ndarray  # (A, K+2) crossing road width (0 at the ends)


def _layout(g: _Grid, f: float) -> _Layout:
    perp = g.pos + f * g.width
    n_ns, n_ew = g.n_ns, len(g.ns) - g.n_ns
    x0, y0 = ORIGIN
    X, Y = perp[:n_ns], perp[n_ns:]
    gi, gj = np.meshgrid(np.arange(n_ns), np.arange(n_ew), indexing="ij")
    n_grid = n_ns * n_ew
    node_xy = np.concatenate([np.column_stack([X[gi.ravel()], Y[gj.ravel()]]),
                              np.column_stack([X, np.full(n_ns, y0)]), np.column_stack([X, np.full(n_ns, y0 + SIZE)]),
                              np.column_stack([np.full(n_ew, x0), Y]), np.column_stack([np.full(n_ew, x0 + SIZE), Y])])
    b = n_grid + np.arange(2 * n_ns + 2 * n_ew)
    ax_node = np.concatenate([np.column_stack([b[:n_ns], gi * n_ew + gj, b[n_ns:2 * n_ns]]),
                              np.column_stack([b[2 * n_ns:2 * n_ns + n_ew], (gi * n_ew + gj).T, b[2 * n_ns + n_ew:]])])
    a = np.arange(len(g.ns))
    cross = g.crossing(a)
    lo = np.where(g.ns, y0, x0)[:, None]
    ax_s = np.concatenate([lo, perp[cross], lo + SIZE], 1)
    ax_cc = np.concatenate([lo, g.pos[cross], lo + SIZE], 1)
    zero = np.zeros((len(a), 1))
    ax_cw = np.concatenate([zero, g.width[cross], zero], 1)
    return _Layout(perp, node_xy, np.arange(len(node_xy)) < n_grid, ax_node, ax_s, ax_cc, ax_cw)


@dataclass(frozen=True)
class _Segs:
    """Road segments of one network: axis runs between consecutive nodes, with their tap windows."""

    axis: np.ndarray
    n0: np.ndarray
    n1: np.ndarray
    s0: np.ndarray
    s1: np.ndarray
    lo: np.ndarray  # along window clear of the crossing road corridors (+1.5 m), for taps and laterals
    hi: np.ndarray
    year: np.ndarray

    def of(self, axis: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Segment index of along positions s on axes."""
        k1 = self.n_per_axis
        first = axis * k1
        s0 = self.s0.reshape(-1, k1)[axis]
        return first + (s0[:, 1:] <= s[:, None]).sum(1)

    @property
    def n_per_axis(self) -> int:
        return int((self.axis == 0).sum())


def _segs(lay: _Layout, r: np.random.Generator) -> _Segs:
    n_ax, k2 = lay.ax_s.shape
    axis = np.repeat(np.arange(n_ax), k2 - 1)
    lo = (lay.ax_cc[:, :-1] + lay.ax_cw[:, :-1] / 2 + 1.5).ravel()
    hi = (lay.ax_cc[:, 1:] - lay.ax_cw[:, 1:] / 2 - 1.5).ravel()
    return _Segs(axis, lay.ax_node[:, :-1].ravel(), lay.ax_node[:, 1:].ravel(), lay.ax_s[:, :-1].ravel(),
                 lay.ax_s[:, 1:].ravel(), lo, hi, r.integers(1990, 2021, len(axis)))


def _at(g: _Grid, perp: np.ndarray, axis: np.ndarray, s: np.ndarray, lat: np.ndarray | float = 0.0) -> np.ndarray:
    """Map coordinates of along positions s on axes whose lines lie at perp (per axis), moved lat across."""
    p = perp[axis] + lat
    ns = g.ns[axis]
    return np.column_stack([np.where(ns, p, s), np.where(ns, s, p)])


def _chain(axis: np.ndarray, s: np.ndarray, pid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Consecutive stations along each axis: (from pid, to pid, axis, mid along)."""
    o = np.lexsort((s, axis))
    a, s, p = axis[o], s[o], pid[o]
    same = a[1:] == a[:-1]
    return p[:-1][same], p[1:][same], a[:-1][same], ((s[:-1] + s[1:]) / 2)[same]


def _node_stations(lay: _Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_ax, k2 = lay.ax_s.shape
    return np.repeat(np.arange(n_ax), k2), lay.ax_s.ravel(), lay.ax_node.ravel()


def _fill_runs(axis: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Extra stations so that no run between consecutive stations is longer than _MAX_RUN."""
    o = np.lexsort((s, axis))
    a, s = axis[o], s[o]
    gap = np.diff(s)
    n = np.where(a[1:] == a[:-1], np.ceil(gap / _MAX_RUN).astype(int) - 1, 0).clip(0)
    i = np.repeat(np.arange(len(n)), n)
    k = np.arange(len(i)) - np.repeat(np.cumsum(n) - n, n) + 1
    return a[i], s[i] + gap[i] * k / (n[i] + 1)


def _cluster(axis: np.ndarray, s: np.ndarray, tol: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge stations closer than tol on the same axis: (cluster of each input, cluster axis, cluster s)."""
    o = np.lexsort((s, axis))
    new = np.ones(len(o), bool)
    new[1:] = (axis[o][1:] != axis[o][:-1]) | (np.diff(s[o]) >= tol)
    cid = np.empty(len(o), int)
    cid[o] = np.cumsum(new) - 1
    return cid, axis[o][new], s[o][new]


# ------------------------------------------------------------------------------------------ network container
class _Net:
    """Points and lines of one network while it is built; lines refer to point rows."""

    def __init__(self, code: str) -> None:
        self.code = code
        self._p: list[pd.DataFrame] = []
        self._l: list[pd.DataFrame] = []
        self.n = 0

    def add_points(self, xy: np.ndarray, **cols: object) -> np.ndarray:
        xy = np.asarray(xy, float).reshape(-1, 2)
        self._p.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], **cols}))
        idx = np.arange(self.n, self.n + len(xy))
        self.n += len(xy)
        return idx

    def add_lines(self, a: np.ndarray, b: np.ndarray, **cols: object) -> None:
        self._l.append(pd.DataFrame({"a": np.asarray(a, int), "b": np.asarray(b, int), **cols}))

    def points(self) -> pd.DataFrame:
        return pd.concat(self._p, ignore_index=True)

    def lines(self) -> pd.DataFrame:
        return pd.concat(self._l, ignore_index=True)


def _geoms(pts: pd.DataFrame, lines: pd.DataFrame) -> np.ndarray:
    """Line geometries: end points, with the bend vertex (vx, vy) where a line has one."""
    xy = pts[["x", "y"]].to_numpy()
    a, b = xy[lines["a"].to_numpy()], xy[lines["b"].to_numpy()]
    geoms = shapely.linestrings(np.stack([a, b], 1))
    if "vx" in lines:
        v = lines["vx"].notna().to_numpy()
        if v.any():
            geoms[v] = shapely.linestrings(np.stack([a[v], lines.loc[v, ["vx", "vy"]].to_numpy(float), b[v]], 1))
    return geoms


def _crossings(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Point crossings of line arrays a and b: (i in a, j in b, distance along a, fraction along b)."""
    i, j = shapely.STRtree(b).query(a, predicate="intersects")
    p = shapely.intersection(a[i], b[j])
    ok = shapely.get_type_id(p) == 0
    i, j, p = i[ok], j[ok], p[ok]
    return i, j, shapely.line_locate_point(a[i], p), shapely.line_locate_point(b[j], p, normalized=True)


def _ground(xy: np.ndarray, seed: int) -> np.ndarray:
    return np.round(district.ground_height(xy[:, 0], xy[:, 1], seed), 2)


# ---------------------------------------------------------------------------------------------- clearances
def _req(a: str, wa: np.ndarray | float, b: str, wb: np.ndarray | float) -> np.ndarray:
    """Least clear distance (m) between pipes of networks a and b side by side, after GB 50289-2016 Table 4.1.9:
    water-drainage 1.0 (water <= DN200) / 1.5, water-gas 0.5, gas-drainage 1.0 (low pressure) / 1.2 (medium,
    which is DN200 and over here); rain-sewer has no value in the table, 1.0 is kept."""
    wa, wb = np.broadcast_arrays(np.asarray(wa, float), np.asarray(wb, float))
    pair = {a, b} - {"YS", "WS"}
    if pair == {"JS", "TR"}:
        return np.full(wa.shape, 0.5)
    if pair == {"JS"}:
        return np.where((wa if a == "JS" else wb) > 0.2, 1.5, 1.0)
    if pair == {"TR"}:
        return np.where((wa if a == "TR" else wb) >= 0.2, 1.2, 1.0)
    return np.full(wa.shape, 1.0)


def _nearest(ref_axis: np.ndarray, ref_s: np.ndarray, axis: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Distance along the axis from each (axis, s) to the nearest reference station on the same axis."""
    key = np.sort(np.asarray(ref_axis, float) * 1e8 + ref_s)
    q = np.asarray(axis, float) * 1e8 + s
    if not len(key):
        return np.full(q.shape, np.inf)
    i = np.searchsorted(key, q)
    return np.minimum(np.abs(q - key[np.clip(i - 1, 0, len(key) - 1)]), np.abs(key[np.clip(i, 0, len(key) - 1)] - q))


def _valves(g: _Grid, lay: _Layout, sg: _Segs, code: str, w_axis: np.ndarray, others: list[dict],
            r: np.random.Generator, avoid: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
    """Valves on the branches leaving every tee / cross (8 % of branches have none), each at the first place
    >= 2.5 m out that is clear (GB 50289 + half widths + 0.2 m) of the other networks' lines crossing the branch
    and >= 0.8 m from the `avoid` stations (service crossings). Returns (axis, along, segment, end 0 / 1)."""
    k1 = lay.ax_s.shape[1] - 1
    k = np.arange(len(sg.axis)) % k1
    cross = g.crossing(sg.axis)
    d = 2.5 + 0.25 * np.arange(160)
    out = []
    for end in (0, 1):
        seg = np.flatnonzero((k >= 1 if end == 0 else k <= k1 - 2) & (r.random(len(sg.axis)) > 0.08))
        c = cross[seg, k[seg] - 1] if end == 0 else cross[seg, k[seg]]
        s_node = (sg.s0 if end == 0 else sg.s1)[seg]
        direction = 1.0 if end == 0 else -1.0
        w_self = w_axis[sg.axis[seg]]
        ok = np.broadcast_to(d < (sg.s1 - sg.s0)[seg, None] - 5.0, (len(seg), len(d))).copy()
        for o in others:
            at = (o["f"] - OFFSETS[code]) * g.width[c] * direction
            if "geom" in o:  # the widest of its pipes passing where its line crosses this branch
                w_o = np.zeros(len(seg))
                where = shapely.points(_at(g, lay.perp, sg.axis[seg], s_node + direction * at))
                bi, pj = shapely.STRtree(o["geom"]).query(where, predicate="dwithin", distance=1.0)
                np.maximum.at(w_o, bi, o["w"][pj])
            else:
                w_o = o["w_axis"][c]
            clear = np.where(w_o > 0, _req(code, w_self, o["code"], w_o) + (w_self + w_o) / 2 + 0.2, 0.0)
            ok &= np.abs(d[None] - at[:, None]) >= clear[:, None]
        if avoid is not None:
            pos = s_node[:, None] + direction * d[None]
            ok &= _nearest(*avoid, np.broadcast_to(sg.axis[seg, None], pos.shape), pos) >= 0.8
        has = ok.any(1)
        dist = d[ok.argmax(1)][has]
        out.append((sg.axis[seg][has], s_node[has] + direction * dist, seg[has], np.full(has.sum(), end)))
    return tuple(np.concatenate(x) for x in zip(*out, strict=True))


# ------------------------------------------------------------------------------------------------ water supply
def _services(g: _Grid, lay: _Layout, sg: _Segs, roads_ok: np.ndarray, bld: gpd.GeoDataFrame,
              avoid: tuple[np.ndarray, np.ndarray]) -> dict:
    """Service tap per building within 60 m of a usable road: the shortest straight service, tapped from any
    near segment at a few positions along it, that keeps 1.3 m from other buildings, avoids other roads'
    corridors and the `avoid` points (xy, radius: drainage manholes). Returns building, segment, axis, along."""
    fp = bld.geometry.values
    cand = np.flatnonzero(roads_ok[sg.axis] & (sg.lo < sg.hi))
    ax = sg.axis[cand]
    k = cand - ax * (lay.ax_cc.shape[1] - 1)
    centre = shapely.linestrings(np.stack([_at(g, g.pos, ax, lay.ax_cc[ax, k]),
                                           _at(g, g.pos, ax, lay.ax_cc[ax, k + 1])], 1))
    bi, j = shapely.STRtree(centre).query(fp, predicate="dwithin", distance=70.0)
    keep = shapely.distance(fp[bi], centre[j]) - g.width[ax[j]] / 2 <= 60.0
    bi, si = bi[keep], cand[j[keep]]
    wline = shapely.linestrings(np.stack([lay.node_xy[sg.n0[si]], lay.node_xy[sg.n1[si]]], 1))
    near = shapely.get_coordinates(shapely.shortest_line(fp[bi], wline)).reshape(-1, 2, 2)[:, 1]
    steps = np.array([4.0, 8.0, 12.0, 16.0, 20.0, 25.0, 30.0, 35.0, 45.0])
    shift = np.concatenate([[0.0], np.repeat(steps, 2) * np.tile([-1.0, 1.0], len(steps))])
    bi, si = np.repeat(bi, len(shift)), np.repeat(si, len(shift))
    axis = sg.axis[si]
    # taps on a 1 m grid along the road: taps of different services coincide or are >= 1 m apart
    s = np.clip(np.round(np.repeat(np.where(g.ns[axis[::len(shift)]], near[:, 1], near[:, 0]), len(shift))
                         + np.tile(shift, len(near))), np.ceil(sg.lo[si]), np.floor(sg.hi[si]))
    tap = _at(g, lay.perp, axis, s)
    end = shapely.get_coordinates(shapely.shortest_line(shapely.points(tap), fp[bi])).reshape(-1, 2, 2)[:, 1]
    line = shapely.linestrings(np.stack([tap, end], 1))
    length = shapely.length(line)
    bad = (length < 0.5) | (np.ceil(sg.lo[si]) > np.floor(sg.hi[si]))
    li, fj = shapely.STRtree(fp).query(line, predicate="dwithin", distance=1.3)  # GB 50289: 1.0 m from others
    bad[li[fj != bi[li]]] = True
    every = np.arange(len(g.ns))
    lo = np.where(g.ns, ORIGIN[1], ORIGIN[0])
    corr = shapely.buffer(shapely.linestrings(np.stack([_at(g, g.pos, every, lo), _at(g, g.pos, every, lo + SIZE)], 1)),
                          g.width / 2, cap_style="flat")
    li, cj = shapely.STRtree(corr).query(line, predicate="intersects")
    bad[li[cj != axis[li]]] = True
    pts, radius = avoid
    li, pj = shapely.STRtree(shapely.points(pts)).query(line, predicate="dwithin", distance=float(radius.max()))
    near = shapely.distance(line[li], shapely.points(pts[pj])) < radius[pj]
    bad[li[near]] = True
    o = np.lexsort((np.arange(len(bi)), length + 1e4 * bad, bi))
    first = np.ones(len(o), bool)
    first[1:] = bi[o][1:] != bi[o][:-1]
    best = o[first & ~bad[o]]
    return {"bldg": bi[best], "seg": si[best], "axis": axis[best], "s": s[best]}


def _water(g: _Grid, bld: gpd.GeoDataFrame, river: shapely.Geometry, drains: list[tuple[_Net, dict]],
           seed: int) -> tuple[_Net, dict]:
    r = district._rng(seed, 20)
    lay, lay_gas = _layout(g, OFFSETS["JS"]), _layout(g, OFFSETS["TR"])
    sg = _segs(lay, r)
    nseg = len(sg.axis)
    net = _Net("JS")
    net.add_points(lay.node_xy, role="node")
    size = {"arterial": [400, 500, 600], "secondary": [300, 400], "local": [100, 150, 200]}
    ax_gj = np.array([r.choice(size[c]) for c in g.cls])

    # valves on every branch of a tee / cross, clear of the other networks' lines crossing it
    others = [{"code": dn.code, "f": OFFSETS[dn.code], "geom": di["geom"], "w": di["width"]} for dn, di in drains]
    others.append({"code": "TR", "f": OFFSETS["TR"], "w_axis": np.full(len(g.ns), 0.3)})
    v_axis, v_s, v_seg, v_end = _valves(g, lay, sg, "JS", ax_gj / 1000, others, r)
    state = r.random(len(v_s))
    valves = net.add_points(_at(g, lay.perp, v_axis, v_s), role="valve", FSW="阀门",
                            FMZT=np.where(state < 0.02, "关", "开"),
                            KCZ=np.where((state >= 0.02) & (state < 0.05), "否", "是"))
    lo, hi = sg.lo.copy(), sg.hi.copy()  # taps stay 1.5 m clear of the valves
    np.maximum.at(lo, v_seg[v_end == 0], v_s[v_end == 0] + 1.5)
    np.minimum.at(hi, v_seg[v_end == 1], v_s[v_end == 1] - 1.5)
    sg = _Segs(sg.axis, sg.n0, sg.n1, sg.s0, sg.s1, lo, hi, sg.year)

    # service taps (local and secondary roads) and hydrant taps (every ~100-120 m), merged within 1 m
    dpts = [(di["xy"][di["point_w"] > 0], di["point_w"][di["point_w"] > 0]) for _, di in drains]
    avoid = (np.concatenate([x for x, _ in dpts]), 1.0 + (0.05 + np.concatenate([w for _, w in dpts])) / 2 + 0.2)
    svc = _services(g, lay, sg, g.cls != "arterial", bld, avoid)
    span = np.clip(sg.hi - sg.lo, 0, None)
    n_h = np.round(span / 100.0).astype(int)
    h_seg = np.repeat(np.arange(nseg), n_h)
    h_k = np.arange(len(h_seg)) - np.repeat(np.cumsum(n_h) - n_h, n_h)
    h_s = sg.lo[h_seg] + span[h_seg] * (h_k + 0.5) / n_h[h_seg] + r.uniform(-5, 5, len(h_seg))
    h_s = np.clip(np.round(h_s), np.ceil(sg.lo[h_seg]), np.floor(sg.hi[h_seg]))
    h_axis = sg.axis[h_seg]
    h_len = np.minimum(r.uniform(2.0, 2.8, len(h_seg)), 0.25 * g.width[h_axis] - 0.2)
    h_xy = _at(g, lay.perp, h_axis, h_s, h_len)
    dry = ~shapely.intersects(shapely.buffer(river, 8.0), shapely.points(h_xy))
    h_seg, h_axis, h_s, h_len = h_seg[dry], h_axis[dry], h_s[dry], h_len[dry]
    cid, t_axis, t_s = _cluster(np.concatenate([svc["axis"], h_axis]), np.concatenate([svc["s"], h_s]), 0.5)
    taps = net.add_points(_at(g, lay.perp, t_axis, t_s), role="tap")

    # survey points where the gas lines cross, and plain points on long runs
    na, ns_, nid = _node_stations(lay)
    cross_axis = np.repeat(np.arange(len(g.ns)), lay.ax_s.shape[1] - 2)
    cross_s = lay_gas.perp[g.crossing(np.arange(len(g.ns)))].ravel()
    crosses = net.add_points(_at(g, lay.perp, cross_axis, cross_s), role="cross")
    st_axis = np.concatenate([na, v_axis, t_axis, cross_axis])
    st_s = np.concatenate([ns_, v_s, t_s, cross_s])
    f_axis, f_s = _fill_runs(st_axis, st_s)
    plain = net.add_points(_at(g, lay.perp, f_axis, f_s), role="plain")
    pa, pb, e_axis, e_mid = _chain(np.concatenate([st_axis, f_axis]), np.concatenate([st_s, f_s]),
                                   np.concatenate([nid, valves, taps, crosses, plain]))
    seg = sg.of(e_axis, e_mid)
    pe = (g.cls[sg.axis] == "local") & (sg.year >= 2005) & (r.random(nseg) < 0.7)
    net.add_lines(pa, pb, role="main", GJ=ax_gj[e_axis], CZ=np.where(pe[seg], "PE", "球墨铸铁"),
                  MSND=sg.year[seg], SZDL=g.name[e_axis], seg=seg)

    # hydrants on 2-3 m laterals towards the road edge
    n_svc = len(svc["bldg"])
    hyd = net.add_points(_at(g, lay.perp, h_axis, t_s[cid[n_svc:]], h_len), role="hydrant", FSW="消火栓")
    net.add_lines(taps[cid[n_svc:]], hyd, role="hydrant", GJ=100, CZ="球墨铸铁", MSND=sg.year[h_seg],
                  SZDL=g.name[h_axis], seg=h_seg)

    # service lines to the nearest footprint edge, with a meter near the building on ~30 %
    b = bld.iloc[svc["bldg"]]
    tap_xy = _at(g, lay.perp, t_axis, t_s)[cid[:n_svc]]
    end = shapely.get_coordinates(shapely.shortest_line(shapely.points(tap_xy), b.geometry.values))
    end = end.reshape(-1, 2, 2)[:, 1]
    ends = net.add_points(end, role="connection", TZ="接户", JHJZ=b["bldg_code"].to_numpy(object))
    length = np.hypot(*(end - tap_xy).T)
    meter = (r.random(n_svc) < 0.3) & (length > 4.0)
    back = r.uniform(1.0, 1.5, n_svc)
    m_xy = end - (end - tap_xy) * (back / np.maximum(length, 1e-9))[:, None]
    meters = net.add_points(m_xy[meter], role="meter", FSW="水表")
    floors = b["floors"].to_numpy(float, na_value=np.nan)
    gj = np.select([floors <= 3, floors <= 6, floors <= 12, floors > 12], [25, 32, 40, 50], 32)
    year = np.clip(np.maximum(sg.year[svc["seg"]], b["year"].to_numpy()) + r.integers(0, 3, n_svc), 1990, 2024)
    sid = np.arange(n_svc)
    mid_pt = np.full(n_svc, -1)
    mid_pt[meter] = meters
    first_to = np.where(meter, mid_pt, ends)
    svc_cols = {"role": "service", "CZ": "PE"}
    net.add_lines(taps[cid[:n_svc]], first_to, GJ=gj, MSND=year, SZDL=g.name[svc["axis"]], seg=svc["seg"], svc=sid,
                  f0=0.0, f1=np.where(meter, 1 - back / np.maximum(length, 1e-9), 1.0), **svc_cols)
    net.add_lines(meters, ends[meter], GJ=gj[meter], MSND=year[meter], SZDL=g.name[svc["axis"][meter]],
                  seg=svc["seg"][meter], svc=sid[meter], f0=1 - back[meter] / length[meter], f1=1.0, **svc_cols)
    return net, {"lay": lay, "segs": sg, "gj": ax_gj}


def _pick_source(net: _Net, lay: _Layout, g: _Grid, seed: int, head: float | None, exclude: int = -1) -> int:
    """Node id of the source: the lowest-ground arterial boundary end whose head (ground + head) commands
    >= 97 % of the network's points with 10 m to spare, else the highest one; the lowest when head is None."""
    ends = np.flatnonzero(~lay.grid_node)
    ax_of_end = np.concatenate([np.arange(g.n_ns), np.arange(g.n_ns), g.n_ns + np.arange(len(g.ns) - g.n_ns),
                                g.n_ns + np.arange(len(g.ns) - g.n_ns)])
    cand = ends[(g.cls[ax_of_end] == "arterial") & (ends != exclude)]
    z = district.ground_height(lay.node_xy[cand, 0], lay.node_xy[cand, 1], seed)
    if head is None:
        return int(cand[np.argmin(z)])
    p = net.points()
    zp = district.ground_height(p["x"].to_numpy(), p["y"].to_numpy(), seed)
    share = (zp[None, :] <= (z + head - 10.0)[:, None]).mean(1)
    ok = share >= 0.97
    return int(cand[ok][np.argmin(z[ok])]) if ok.any() else int(cand[np.argmax(z)])


# -------------------------------------------------------------------------------------------------------- gas
def _gas(g: _Grid, water: _Net, winfo: dict, drains: list[tuple[_Net, dict]], seed: int) -> tuple[_Net, dict]:
    r = district._rng(seed, 21)
    lay, lay_w = _layout(g, OFFSETS["TR"]), winfo["lay"]
    sg = _segs(lay, r)
    net = _Net("TR")
    net.add_points(lay.node_xy, role="node")
    ax_gj = np.array([r.choice({"arterial": [250, 300], "secondary": [200], "local": [110, 160]}[c]) for c in g.cls])
    # where the water services cross the gas lines: valves and plain points keep clear of them
    wp, wl = water.points(), water.lines()
    wgeom = _geoms(wp, wl)
    svc_geom = wgeom[(wl["role"] == "service").to_numpy()]
    every = np.arange(len(g.ns))
    edge = np.where(g.ns, ORIGIN[1], ORIGIN[0])
    axes = shapely.linestrings(np.stack([_at(g, lay.perp, every, edge), _at(g, lay.perp, every, edge + SIZE)], 1))
    si, ai = shapely.STRtree(axes).query(svc_geom, predicate="intersects")
    pt = shapely.get_coordinates(shapely.intersection(svc_geom[si], axes[ai]))
    svc_cross = (ai, np.where(g.ns[ai], pt[:, 1], pt[:, 0]))

    others = [{"code": dn.code, "f": OFFSETS[dn.code], "geom": di["geom"], "w": di["width"]} for dn, di in drains]
    others.append({"code": "JS", "f": OFFSETS["JS"], "w_axis": winfo["gj"] / 1000})
    v_axis, v_s, _, _ = _valves(g, lay, sg, "TR", ax_gj / 1000, others, r, avoid=svc_cross)
    valves = net.add_points(_at(g, lay.perp, v_axis, v_s), role="valve", FSW="阀门", FMZT="开",
                            KCZ=np.where(r.random(len(v_s)) < 0.03, "否", "是"))
    cross_axis = np.repeat(np.arange(len(g.ns)), lay.ax_s.shape[1] - 2)
    cross_s = lay_w.perp[g.crossing(np.arange(len(g.ns)))].ravel()
    crosses = net.add_points(_at(g, lay.perp, cross_axis, cross_s), role="cross")

    # planted: a low-pressure stub crossing to 0.4 m beside one long water run of a local road, for 30 m
    wseg = winfo["segs"]
    main = (wl["role"] == "main").to_numpy()
    length = shapely.length(wgeom)
    xy = wp[["x", "y"]].to_numpy()
    ax_l = wl["seg"].to_numpy() // wseg.n_per_axis
    s_a = np.where(g.ns[ax_l], xy[wl["a"], 1], xy[wl["a"], 0])
    segi = wl["seg"].to_numpy()
    cand = np.flatnonzero(main & (length >= 40.0) & (g.cls[ax_l] == "local") & (s_a >= wseg.lo[segi])
                          & (s_a + length <= wseg.hi[segi]))
    other = wgeom[~main]
    dpts = [(di["xy"][di["point_w"] > 0], di["point_w"][di["point_w"] > 0]) for _, di in drains]
    d_xy, d_w = np.concatenate([x for x, _ in dpts]), np.concatenate([w for _, w in dpts])
    stub = None
    for c in cand[r.permutation(len(cand))]:
        a = ax_l[c]
        s_leg = s_a[c] + 5.0
        side = np.sign(OFFSETS["TR"] - OFFSETS["JS"])
        run_perp = lay_w.perp[a] + side * _STUB_GAP
        p0 = _at(g, lay.perp, np.array([a]), np.array([s_leg]))[0]
        run = np.full(len(g.ns), run_perp)
        p1 = _at(g, run, np.array([a]), np.array([s_leg]))[0]
        p2 = _at(g, run, np.array([a]), np.array([s_leg + _STUB_LEN]))[0]
        leg, run = shapely.linestrings([p0, p1]), shapely.linestrings([p1, p2])
        if shapely.intersects(wgeom, leg).any() or shapely.intersects(wgeom, run).any():
            continue
        if (shapely.distance(other, leg) < 2.0).any():
            continue
        if (shapely.distance(shapely.points(d_xy), leg) < 1.0 + (0.11 + d_w) / 2 + 0.3).any():
            continue
        stub = {"axis": a, "s": s_leg, "bend": p1, "end": p2, "water": int(c)}
        break
    if stub is None:
        raise RuntimeError("no place for the planted gas stub")
    tee = net.add_points(_at(g, lay.perp, np.array([stub["axis"]]), np.array([stub["s"]])), role="tee")
    na, ns_, nid = _node_stations(lay)
    st_axis = np.concatenate([na, v_axis, cross_axis, [stub["axis"]]])
    st_s = np.concatenate([ns_, v_s, cross_s, [stub["s"]]])
    f_axis, f_s = _fill_runs(st_axis, st_s)
    shift = np.concatenate([[0.0], np.repeat(np.arange(0.5, 15.1, 0.5), 2) * np.tile([1, -1], 30)])
    cand = f_s[:, None] + shift[None]
    ax2 = np.broadcast_to(f_axis[:, None], cand.shape)
    ok = (_nearest(*svc_cross, ax2, cand) >= 1.0) & (_nearest(st_axis, st_s, ax2, cand) >= 1.0)
    f_s = cand[np.arange(len(f_s)), ok.argmax(1)]
    plain = net.add_points(_at(g, lay.perp, f_axis, f_s), role="plain")
    pa, pb, e_axis, e_mid = _chain(np.concatenate([st_axis, f_axis]), np.concatenate([st_s, f_s]),
                                   np.concatenate([nid, valves, crosses, tee, plain]))
    seg = sg.of(e_axis, e_mid)
    mp = g.cls[e_axis] != "local"
    cz = np.where(mp, np.where(sg.year[seg] < 2008, "钢", "PE"), "PE")
    net.add_lines(pa, pb, role="main", GJ=ax_gj[e_axis], CZ=cz, YL=np.where(mp, "中压A", "低压"), MSND=sg.year[seg],
                  SZDL=g.name[e_axis], seg=seg)
    end = net.add_points(stub["end"], role="stub", TZ="预留口")
    sseg = sg.of(np.array([stub["axis"]]), np.array([stub["s"]]))
    net.add_lines(tee, end, role="stub", GJ=110, CZ="PE", YL="低压", MSND=2016, SZDL=g.name[stub["axis"]], seg=sseg,
                  vx=stub["bend"][0], vy=stub["bend"][1], priority=0)  # one run with a bend vertex
    return net, {"lay": lay, "segs": sg, "stub_water": stub["water"]}


# ------------------------------------------------------------------------------------------------------ depths
def _pressure_depths(water: _Net, gas: _Net, seed: int) -> None:
    """Crown depths (QDMS / ZDMS) of water and gas, gas on top where they cross; checks the crossing gaps."""
    rw, rg = district._rng(seed, 22), district._rng(seed, 23)
    for _ in range(20):  # survey points where ground curvature would eat into a crossing's gap
        wp, wl, gp, gl = water.points(), water.lines(), gas.points(), gas.lines()
        wg, gg = _geoms(wp, wl), _geoms(gp, gl)
        wi, gi, _, fg = _crossings(wg, gg)
        p = shapely.get_coordinates(shapely.intersection(wg[wi], gg[gi]))
        fw = shapely.line_locate_point(wg[wi], shapely.points(p), normalized=True)
        zw0, zw1 = (_ground(wp[["x", "y"]].to_numpy()[wl[c].to_numpy()[wi]], seed) for c in "ab")
        zg0, zg1 = (_ground(gp[["x", "y"]].to_numpy()[gl[c].to_numpy()[gi]], seed) for c in "ab")
        lw, lg = shapely.length(wg[wi]), shapely.length(gg[gi])
        pts = shapely.points(p)
        # no runs shorter than 1 m, and no new point within 0.8 m of another crossing line
        crowd_w = np.zeros(len(wi), bool)
        k, m = shapely.STRtree(gg).query(pts, predicate="dwithin", distance=0.8)
        crowd_w[k[(m != gi[k]) & ~shapely.intersects(gg[m], pts[k])]] = True
        crowd_g = np.zeros(len(gi), bool)
        k, m = shapely.STRtree(wg).query(pts, predicate="dwithin", distance=0.8)
        crowd_g[k[(m != wi[k]) & ~shapely.intersects(wg[m], pts[k])]] = True
        cut_w = (np.minimum(fw, 1 - fw) * lw > 1.0) & ~crowd_w
        cut_g = (np.minimum(fg, 1 - fg) * lg > 1.0) & ~crowd_g
        short = zg0 + (zg1 - zg0) * fg - zw0 - (zw1 - zw0) * fw < -0.01
        need = np.flatnonzero(short & (cut_w | cut_g))
        if not len(need):
            break
        need = need[np.unique(wi[need], return_index=True)[1]]
        need = need[np.unique(gi[need], return_index=True)[1]]
        w, g_ = need[cut_w[need]], need[cut_g[need]]
        water._l = [_split(water, wl, wi[w], p[w], fw[w])]
        gas._l = [_split(gas, gl, gi[g_], p[g_], fg[g_])]
    wp, wl, gp, gl = water.points(), water.lines(), gas.points(), gas.lines()
    wi, gi, _, _ = _crossings(_geoms(wp, wl), _geoms(gp, gl))
    w_cross = np.zeros(len(wl), bool)
    w_cross[wi] = True
    g_cross = np.zeros(len(gl), bool)
    g_cross[gi] = True
    # water: points of the road runs 1.0-1.4 m, >= 1.37 m where gas crosses
    dw = rw.uniform(1.0, 1.4, len(wp))
    deep = (wp["role"] == "cross").to_numpy()
    dw[deep] = rw.uniform(1.37, 1.40, deep.sum())
    role = wl["role"].to_numpy()
    a, b = wl["a"].to_numpy(), wl["b"].to_numpy()
    q, z = dw[a], dw[b]
    svc = role == "service"
    sid = wl["svc"].to_numpy(float)
    n_svc = int(np.nanmax(sid)) + 1 if svc.any() else 0
    crossing_svc = np.zeros(n_svc, bool)
    crossing_svc[sid[w_cross & svc].astype(int)] = True
    d0, d1 = rw.uniform(1.0, 1.4, n_svc), rw.uniform(1.0, 1.4, n_svc)
    d0[crossing_svc] = rw.uniform(1.37, 1.40, crossing_svc.sum())
    d1[crossing_svc] = rw.uniform(1.37, 1.40, crossing_svc.sum())
    si = sid[svc].astype(int)
    f0, f1 = wl["f0"].to_numpy(float)[svc], wl["f1"].to_numpy(float)[svc]
    q[svc] = d0[si] + (d1[si] - d0[si]) * f0
    z[svc] = d0[si] + (d1[si] - d0[si]) * f1
    hyd = role == "hydrant"
    q[hyd], z[hyd] = rw.uniform(1.0, 1.4, hyd.sum()), rw.uniform(1.0, 1.4, hyd.sum())
    wl["QDMS"], wl["ZDMS"] = np.round(q, 2), np.round(z, 2)

    # gas: 0.9-1.5 m, on top (crown 0.90 .. 1.20 - D) at points of runs crossed by water
    dg = rg.uniform(0.9, 1.5, len(gp))
    ga, gb = gl["a"].to_numpy(), gl["b"].to_numpy()
    dmax = np.zeros(len(gp))
    gj = gl["GJ"].to_numpy(float) / 1000
    np.maximum.at(dmax, ga, gj)
    np.maximum.at(dmax, gb, gj)
    top = (gp["role"] == "cross").to_numpy().copy()
    top[ga[g_cross]] = top[gb[g_cross]] = True
    dg[top] = 0.90 + rg.random(top.sum()) * np.maximum(0.0, 0.30 - dmax[top])
    stub = (gl["role"] == "stub").to_numpy()
    q, z = dg[ga], dg[gb]
    q[stub], z[stub] = 0.90, 0.92
    gl["QDMS"], gl["ZDMS"] = np.round(q, 2), np.round(z, 2)
    water._l, gas._l = [wl], [gl]
    gaps = _vertical_gaps(wp, wl, gp, gl, wi, gi, seed)
    if (gaps < 0.15).any():
        raise RuntimeError(f"water/gas crossing gap {gaps.min():.3f} m < 0.15 m")


def _split(net: _Net, lines: pd.DataFrame, idx: np.ndarray, xy: np.ndarray, frac: np.ndarray) -> pd.DataFrame:
    """Lines idx split at xy (fraction frac along them) by new plain points; returns the new line table."""
    pid = net.add_points(xy, role="plain")
    tail = lines.loc[idx].copy()
    lines = lines.copy()
    lines.loc[idx, "b"] = pid
    tail["a"] = pid
    if "f0" in lines:
        f0, f1 = lines.loc[idx, "f0"].to_numpy(float), lines.loc[idx, "f1"].to_numpy(float)
        lines.loc[idx, "f1"] = tail["f0"] = f0 + (f1 - f0) * frac
    if "priority" in tail:
        tail["priority"] = np.nan
    return pd.concat([lines, tail], ignore_index=True)


def _crown_z(pts: pd.DataFrame, lines: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Crown elevations of line ends: invert + height for drainage (QDGC set), ground - crown depth otherwise."""
    xy = pts[["x", "y"]].to_numpy()
    ga, gb = _ground(xy[lines["a"].to_numpy()], seed), _ground(xy[lines["b"].to_numpy()], seed)
    if "QDGC" in lines and lines["QDGC"].notna().all():
        h = lines["H"].to_numpy(float)
        return lines["QDGC"].to_numpy(float) + h, lines["ZDGC"].to_numpy(float) + h
    return ga - lines["QDMS"].to_numpy(float), gb - lines["ZDMS"].to_numpy(float)


def _height(lines: pd.DataFrame) -> np.ndarray:
    return lines["H"].to_numpy(float) if "H" in lines else lines["GJ"].to_numpy(float) / 1000


def _vertical_gaps(pa: pd.DataFrame, la: pd.DataFrame, pb: pd.DataFrame, lb: pd.DataFrame, i: np.ndarray,
                   j: np.ndarray, seed: int) -> np.ndarray:
    """Clear vertical gaps (m) at crossings (i of a, j of b) with straight 3D pipes between the end elevations."""
    ga, gb = _geoms(pa, la), _geoms(pb, lb)
    p = shapely.intersection(ga[i], gb[j])
    fa = shapely.line_locate_point(ga[i], p, normalized=True)
    fb = shapely.line_locate_point(gb[j], p, normalized=True)
    za0, za1 = _crown_z(pa, la, seed)
    zb0, zb1 = _crown_z(pb, lb, seed)
    ca = za0[i] + (za1[i] - za0[i]) * fa
    cb = zb0[j] + (zb1[j] - zb0[j]) * fb
    return np.maximum(cb - _height(lb)[j] - ca, ca - _height(la)[i] - cb)


# ---------------------------------------------------------------------------------------------------- drainage
def _forest(n: int, ea: np.ndarray, eb: np.ndarray, cost_ab: np.ndarray, cost_ba: np.ndarray,
            sinks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parent (downstream node) of every node in the cheapest-path forest to the sinks (-1 for sinks and nodes
    that cannot reach one) and the path cost. Bellman-Ford, one vectorised relaxation per hop."""
    src, dst = np.concatenate([ea, eb]), np.concatenate([eb, ea])
    w = np.concatenate([cost_ab, cost_ba])
    dist = np.full(n, np.inf)
    dist[sinks] = 0.0
    for _ in range(n):
        new = dist.copy()
        np.minimum.at(new, src, dist[dst] + w)
        if np.array_equal(new, dist):
            break
        dist = new
    cand = dist[dst] + w
    is_sink = np.zeros(n, bool)
    is_sink[sinks] = True
    ok = np.isfinite(cand) & (cand <= dist[src] + 1e-9) & ~is_sink[src]
    o = np.lexsort((cand[ok], src[ok]))
    s, d = src[ok][o], dst[ok][o]
    first = np.ones(len(s), bool)
    first[1:] = s[1:] != s[:-1]
    parent = np.full(n, -1)
    parent[s[first]] = d[first]
    return parent, dist


def _tree(n: int, ea: np.ndarray, eb: np.ndarray, cost_ab: np.ndarray, cost_ba: np.ndarray, z: np.ndarray,
          sinks: np.ndarray, max_rise: float) -> tuple[np.ndarray, np.ndarray]:
    """Flow forest to the sinks without the nodes that would climb more than max_rise; (parent, cost)."""
    parent, dist = _forest(n, ea, eb, cost_ab, cost_ba, sinks)
    level = _levels(parent, sinks)
    rise = np.zeros(n)  # ground climbed on the way to the sink; stretches over a ridge drain elsewhere
    for lv in range(1, level.max() + 1):
        i = np.flatnonzero(level == lv)
        rise[i] = rise[parent[i]] + np.maximum(0.0, z[parent[i]] - z[i])
    parent[rise > max_rise] = -1
    return parent, dist


def _levels(parent: np.ndarray, sinks: np.ndarray) -> np.ndarray:
    """Hops to the sink (0 at sinks, -1 when unconnected)."""
    level = np.full(len(parent), -1)
    level[sinks] = 0
    todo = parent >= 0
    while True:
        step = todo & (level < 0) & (level[np.maximum(parent, 0)] >= 0)
        if not step.any():
            return level
        level[step] = level[parent[step]] + 1


_RAIN_SIZES = ((150, 300), (300, 400), (500, 500), (800, 600), (1300, 800), (2000, 1000), (np.inf, 1200))
_SEWER_SIZES = ((400, 300), (1000, 400), (2000, 500), (4000, 600), (8000, 800), (15000, 1000), (np.inf, 1200))
_BOXES = ((1500, 1000), (2000, 1200), (2500, 1500))


def _drain_sizes(acc: np.ndarray, table: tuple, boxes: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GJ (mm, 0 for boxes), box width and height (mm) from upstream pipe length; the longest trunks as boxes."""
    limits = np.array([t[0] for t in table], float)
    gj = np.array([t[1] for t in table])[np.searchsorted(limits, acc, side="right").clip(0, len(table) - 1)]
    bw, bh = np.zeros(len(acc), int), np.zeros(len(acc), int)
    if boxes and len(acc) > 8:
        cut = min(4000.0, np.sort(acc)[-6])
        k = np.clip(((acc - cut) / 2500.0).astype(int), 0, len(_BOXES) - 1)
        box = acc >= cut
        bw[box], bh[box] = np.array(_BOXES)[k[box]].T
        gj[box] = 0
    return gj, bw, bh


def _drain_layout(code: str, g: _Grid, river: shapely.Geometry, seed: int) -> tuple[_Net, dict]:
    """Gravity network (rain 'YS' or sewer 'WS') under every road: manholes, flow forest and sizes."""
    r = district._rng(seed, 24 if code == "YS" else 25)
    lay = _layout(g, OFFSETS[code])
    sg = _segs(lay, r)
    wet_zone = shapely.buffer(river, 3.0)
    shapely.prepare(wet_zone)
    na, ns_, nid = _node_stations(lay)
    ln = sg.s1 - sg.s0
    k = np.maximum(0, np.round(ln / 40.0).astype(int) - 1)
    rep = np.repeat(np.arange(len(ln)), k)
    m = np.arange(len(rep)) - np.repeat(np.cumsum(k) - k, k) + 1
    i_s = sg.s0[rep] + ln[rep] * m / (k[rep] + 1) + r.uniform(-3, 3, len(rep))
    i_axis = sg.axis[rep]
    n_nodes = len(lay.node_xy)
    xy = np.concatenate([lay.node_xy, _at(g, lay.perp, i_axis, i_s)])
    wet = shapely.intersects(wet_zone, shapely.points(xy))
    st_axis, st_s = np.concatenate([na, i_axis]), np.concatenate([ns_, i_s])
    st_pid = np.concatenate([nid, n_nodes + np.arange(len(i_s))])
    o = np.lexsort((st_s, st_axis))
    st_axis, st_s, st_pid = st_axis[o], st_s[o], st_pid[o]
    out_xy: list[np.ndarray] = []
    if code == "YS":
        same = st_axis[1:] == st_axis[:-1]
        ea, eb, e_axis = st_pid[:-1][same], st_pid[1:][same], st_axis[:-1][same]
        hit = shapely.intersects(wet_zone, shapely.linestrings(np.stack([xy[ea], xy[eb]], 1)))
        keep = ~hit & ~wet[ea] & ~wet[eb]
        extra_a, extra_b, extra_axis, bank = [], [], [], []
        every = np.arange(len(g.ns))
        edge = np.where(g.ns, ORIGIN[1], ORIGIN[0])
        lines = np.stack([shapely.linestrings(np.stack([_at(g, g.pos + OFFSETS[c] * g.width, every, edge),
                                                        _at(g, g.pos + OFFSETS[c] * g.width, every, edge + SIZE)], 1))
                          for c in ("JS", "TR", "WS")], 1)
        across = {ns: shapely.multilinestrings(lines[g.ns != ns].ravel()) for ns in (True, False)}
        back = np.linspace(1.0, 0.0, 41)
        for e in np.flatnonzero(hit & ~(wet[ea] & wet[eb])):  # cut at the bank: an outlet on each dry side
            parts = shapely.get_parts(shapely.difference(shapely.linestrings([xy[ea[e]], xy[eb[e]]]), wet_zone))
            for p in (ea[e], eb[e]):
                if wet[p]:
                    continue
                for part in parts:
                    c = shapely.get_coordinates(part)
                    d = np.hypot(*(c[[0, -1]] - xy[p]).T)
                    if d.min() < 1e-6 and shapely.length(part) < 1.0:  # the manhole is on the bank
                        bank.append(p)
                        break
                    if d.min() < 1e-6:
                        far = c[-1] if d[0] < 1e-6 else c[0]
                        cand = xy[p] + (far - xy[p]) * back[:, None]
                        # keep 3.3 m off the other networks' lines across this road
                        ok = (shapely.distance(shapely.points(cand), across[bool(g.ns[e_axis[e]])]) >= 3.3) & (
                            np.hypot(*(cand - xy[p]).T) >= 1.0)
                        if not ok.any():
                            bank.append(p)
                            break
                        out_xy.append(cand[ok.argmax()])
                        extra_a.append(p)
                        extra_b.append(len(xy) + len(out_xy) - 1)
                        extra_axis.append(e_axis[e])
                        break
        ea = np.concatenate([ea[keep], np.array(extra_a, int)])
        eb = np.concatenate([eb[keep], np.array(extra_b, int)])
        e_axis = np.concatenate([e_axis[keep], np.array(extra_axis, int)])
        xy = np.concatenate([xy, np.array(out_xy).reshape(-1, 2)])
        sinks = np.unique(np.concatenate([np.arange(len(xy) - len(out_xy), len(xy)), np.array(bank, int)]))
    else:
        barrier = wet[st_pid] & (st_pid < n_nodes) & ~g.ns[st_axis]
        nb = np.cumsum(barrier)
        kept = ~wet[st_pid]
        ka, kp, kb = st_axis[kept], st_pid[kept], nb[kept]
        same = (ka[1:] == ka[:-1]) & (kb[1:] == kb[:-1])
        ea, eb, e_axis = kp[:-1][same], kp[1:][same], ka[:-1][same]
    n = len(xy)
    z = district.ground_height(xy[:, 0], xy[:, 1], seed)
    elen = np.hypot(*(xy[eb] - xy[ea]).T)
    river_edge = shapely.intersects(shapely.buffer(river, 0.0), shapely.linestrings(np.stack([xy[ea], xy[eb]], 1)))
    pen = np.where(river_edge, 3.0, 0.0) + 0.001 * elen
    cost_ab = np.maximum(0, _SLOPE * elen + z[eb] - z[ea]) + pen
    cost_ba = np.maximum(0, _SLOPE * elen + z[ea] - z[eb]) + pen
    if code == "WS":  # the plant site: the dry district-edge end that drains most of the district, shallowest
        ends = np.flatnonzero(~lay.grid_node & ~wet[:n_nodes])
        score = []
        for c in ends:
            parent, dist = _tree(n, ea, eb, cost_ab, cost_ba, z, np.array([c]), _MAX_RISE[code])
            score.append(((parent >= 0).sum(), -np.max(dist[parent >= 0], initial=0.0)))
        sinks = ends[[max(range(len(ends)), key=lambda i: score[i])]]
    parent, _ = _tree(n, ea, eb, cost_ab, cost_ba, z, sinks, _MAX_RISE[code])
    level = _levels(parent, sinks)
    up = np.flatnonzero(parent >= 0)
    dn = parent[up]
    L = np.hypot(*(xy[dn] - xy[up]).T)
    key_e = np.minimum(ea, eb) * n + np.maximum(ea, eb)
    oe = np.argsort(key_e)
    ax = e_axis[oe][np.searchsorted(key_e[oe], np.minimum(up, dn) * n + np.maximum(up, dn))]
    mid = (xy[up] + xy[dn]) / 2
    seg = sg.of(ax, np.where(g.ns[ax], mid[:, 1], mid[:, 0]))

    # sizes from the upstream pipe length (monotone downstream), processed by hop level
    P = len(up)
    pipe_of = np.full(n, -1)
    pipe_of[up] = np.arange(P)
    plev = level[up]
    acc = L.copy()
    for lv in range(plev.max(), 1, -1):
        i = np.flatnonzero(plev == lv)
        np.add.at(acc, pipe_of[dn[i]], acc[i])
    gj, bw, bh = _drain_sizes(acc, _RAIN_SIZES if code == "YS" else _SEWER_SIZES, code == "YS")
    H = np.where(gj > 0, gj, bh) / 1000.0

    net = _Net(code)
    is_out = np.zeros(n, bool)
    is_out[sinks] = True
    net.add_points(xy, role=np.where(is_out, "outlet", "manhole"), FSW=np.where(is_out, "出水口", "检查井"))
    dgeom = shapely.linestrings(np.stack([xy[up], xy[dn]], 1))
    in_river = shapely.intersects(river, dgeom)
    cz = np.where((gj == 0) | (gj >= 600) | (r.random(P) < 0.4), "钢筋混凝土", "HDPE")
    width = np.where(gj > 0, gj, bw) / 1000.0
    net.add_lines(up, dn, role="pipe", GJ=gj, bw=bw, bh=bh, H=H, W=width, CZ=cz, MSND=sg.year[seg], SZDL=g.name[ax],
                  seg=seg, MSFS=np.where(in_river, "顶管", "直埋"))
    point_w = np.zeros(n)  # widest pipe at each used point
    np.maximum.at(point_w, up, width)
    np.maximum.at(point_w, dn, width)
    info = {"up": up, "dn": dn, "L": L, "H": H, "level": plev, "pipe_of": pipe_of, "sinks": sinks, "z": z,
            "xy": xy, "n": n, "rng": r, "width": width, "point_w": point_w, "geom": dgeom}
    return net, info


def _drain_inverts(net: _Net, info: dict, pressure: list[tuple[str, _Net]], seed: int,
                   rain: _Net | None = None) -> None:
    """Invert levels of a drainage network, designed from the upstream ends down (see the module docstring)."""
    up, dn, L, H, plev, pipe_of = info["up"], info["dn"], info["L"], info["H"], info["level"], info["pipe_of"]
    xy, z, n, r, dgeom = info["xy"], info["z"], info["n"], info["rng"], info["geom"]
    P = len(up)
    # cover samples every <= 5 m plus crossings under pressure pipes; the sewer passes rain pipes over or under
    c_base = (1.0 if net.code == "YS" else 1.2) + r.uniform(0.0, 0.3, P)
    ns_smp = np.ceil(L / 5.0).astype(int) + 1
    sp = np.repeat(np.arange(P), ns_smp)
    frac = (np.arange(len(sp)) - np.repeat(np.cumsum(ns_smp) - ns_smp, ns_smp)) / (ns_smp[sp] - 1)
    sxy = xy[up][sp] + (xy[dn] - xy[up])[sp] * frac[:, None]
    smp_p, smp_t = [sp], [frac * L[sp]]
    smp_c = [district.ground_height(sxy[:, 0], sxy[:, 1], seed) - c_base[sp] - H[sp]]
    crossings = []
    rc = (np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros(0))  # rain crossings: pipe, t, invert, crown
    for pcode, pnet in pressure + ([("YS", rain)] if rain is not None else []):
        pp, pl = pnet.points(), pnet.lines()
        i, j, t, f = _crossings(dgeom, _geoms(pp, pl))
        z0, z1 = _crown_z(pp, pl, seed)
        crown = z0[j] + (z1[j] - z0[j]) * f
        bottom = crown - _height(pl)[j]
        crossings.append((pcode, i, j, t, bottom))
        if pcode == "YS":
            rc = (i, t, bottom, crown)
            continue
        smp_p.append(i)
        smp_t.append(t)
        smp_c.append(bottom - _GAP[pcode] - H[i])
    sp, st, sc = np.concatenate(smp_p), np.concatenate(smp_t), np.concatenate(smp_c)
    s = np.maximum(_SLOPE, (z[up] - z[dn]) / L)
    bound = np.full(P, np.inf)
    np.minimum.at(bound, sp, sc + s[sp] * st)
    inv0, inv1 = bound.copy(), np.empty(P)
    h_next = np.where(pipe_of[dn] >= 0, H[np.maximum(pipe_of[dn], 0)], H)
    best_in = np.full(n, np.inf)
    rc_lev, gap = plev[rc[0]], _GAP["YS"]
    for lv in range(plev.max(), 0, -1):
        i = np.flatnonzero(plev == lv)
        inv0[i] = np.minimum(bound[i], best_in[up[i]])
        k = np.flatnonzero(rc_lev == lv)
        q = rc[0][k]
        for _ in range(len(k)):  # under every rain pipe it cannot clear from above
            at = inv0[q] - s[q] * rc[1][k]
            band = (at < rc[3][k] + gap) & (at + H[q] > rc[2][k] - gap)
            if not band.any():
                break
            np.minimum.at(inv0, q[band], rc[2][k][band] - gap - H[q[band]] + s[q[band]] * rc[1][k][band])
        inv1[i] = inv0[i] - s[i] * L[i]
        np.minimum.at(best_in, dn[i], inv1[i] - np.maximum(0.0, h_next[i] - H[i]))
    info.update({"s": s, "bound": bound, "samples": (sp, st, sc), "n_cover": len(smp_p[0]), "crossings": crossings})
    lines = net.lines()
    lines["QDGC"], lines["ZDGC"] = inv0, inv1
    net._l = [lines]


def _plant_vertical(sewer: _Net, info: dict, water: _Net, seed: int) -> int:
    """Raise one leaf sewer pipe crossed by exactly one water service so that the service clears its crown by
    only _PLANT_GAP; returns the water line index."""
    sp, st, sc = info["samples"]
    up, s, L = info["up"], info["s"], info["L"]
    has_child = np.zeros(len(up), bool)
    child_of = info["pipe_of"][info["dn"]]
    has_child[child_of[child_of >= 0]] = True  # pipes that receive another pipe
    n_cross = np.zeros(len(up), int)
    for _, i, *_ in info["crossings"]:
        np.add.at(n_cross, i, 1)
    wl = water.lines()
    for pcode, i, j, t, bottom in info["crossings"]:
        if pcode != "JS":
            continue
        ok = ~has_child[i] & (n_cross[i] == 1) & (wl["role"].to_numpy()[j] == "service")
        for c in np.flatnonzero(ok):
            p = i[c]
            planted = bottom[c] - _PLANT_GAP - info["H"][p] + s[p] * t[c]
            cover = sp[:info["n_cover"]] == p  # the pipe's only crossing is this one
            others = sc[:info["n_cover"]][cover] + s[p] * st[:info["n_cover"]][cover]
            if planted < others.min() - 0.02:
                lines = sewer._l[0]
                lines.loc[p, "QDGC"] = planted
                lines.loc[p, "ZDGC"] = planted - s[p] * L[p]
                lines.loc[p, "priority"] = 0
                return int(j[c])
    raise RuntimeError("no place for the planted vertical clearance issue")


def _inlets(rain: _Net, info: dict, g: _Grid, water: _Net, gas: _Net, sewer: _Net, seed: int) -> None:
    """Rain inlets at the curb on ~35 % of the mid-block manholes, on short laterals that cross nothing."""
    r = district._rng(seed, 26)
    lay, lay_i = _layout(g, OFFSETS["YS"]), _layout(g, INLET_OFFSET)
    pts, lines = rain.points(), rain.lines()
    n_nodes = len(lay.node_xy)
    xy = pts[["x", "y"]].to_numpy()
    used = np.zeros(len(pts), bool)
    used[lines["a"]] = used[lines["b"]] = True
    cand = np.flatnonzero(used & (pts["role"] == "manhole").to_numpy() & (np.arange(len(pts)) >= n_nodes))
    cand = cand[r.random(len(cand)) < 0.35]
    # axis of each candidate: the network line it lies on
    d_ns = np.abs(xy[cand, 0][:, None] - lay.perp[None, :g.n_ns]).min(1)
    d_ew = np.abs(xy[cand, 1][:, None] - lay.perp[None, g.n_ns:]).min(1)
    on_ns = d_ns < d_ew
    axis = np.where(on_ns, np.abs(xy[cand, 0][:, None] - lay.perp[None, :g.n_ns]).argmin(1),
                    g.n_ns + np.abs(xy[cand, 1][:, None] - lay.perp[None, g.n_ns:]).argmin(1))
    s = np.where(on_ns, xy[cand, 1], xy[cand, 0])
    sg = _segs(lay, district._rng(seed, 24))
    seg = sg.of(axis, s)
    inside = (s >= sg.lo[seg]) & (s <= sg.hi[seg])
    cand, axis, s, seg = cand[inside], axis[inside], s[inside], seg[inside]
    ixy = _at(g, lay_i.perp, axis, s)
    lat = shapely.linestrings(np.stack([ixy, xy[cand]], 1))
    clear = np.ones(len(cand), bool)
    for net, dist in ((water, 1.5), (gas, 1.5), (sewer, 0.1)):
        other = _geoms(net.points(), net.lines())
        li, _ = shapely.STRtree(other).query(lat, predicate="dwithin", distance=dist)
        clear[li] = False
    cand, ixy, seg, lat = cand[clear], ixy[clear], seg[clear], lat[clear]
    # lowest invert of the manhole's pipes; the lateral must drop into it
    low = np.full(len(pts), np.inf)
    np.minimum.at(low, lines["a"].to_numpy(), lines["QDGC"].to_numpy(float))
    np.minimum.at(low, lines["b"].to_numpy(), lines["ZDGC"].to_numpy(float))
    ln = shapely.length(lat)
    zi = district.ground_height(ixy[:, 0], ixy[:, 1], seed)
    inv0 = zi - r.uniform(1.0, 1.2, len(cand)) - 0.3
    inv1 = inv0 - r.uniform(0.01, 0.02, len(cand)) * np.maximum(ln, 1.0) - 0.01
    zm = district.ground_height(xy[cand, 0], xy[cand, 1], seed)
    ok = (inv1 > low[cand] + 0.05) & (zm - inv1 - 0.3 >= 1.0)
    inl = rain.add_points(ixy[ok], role="inlet", FSW="雨水篦")
    rain.add_lines(inl, cand[ok], role="lateral", GJ=300, bw=0, bh=0, H=0.3, CZ="HDPE", MSND=sg.year[seg[ok]],
                   SZDL=g.name[sg.axis[seg[ok]]], seg=seg[ok], MSFS="直埋", QDGC=inv0[ok], ZDGC=inv1[ok])


# ------------------------------------------------------------------------------------------------- assembling
def _round_drainage(lines: pd.DataFrame, pts: pd.DataFrame) -> None:
    """Inverts to mm, keeping every pipe's fall >= 0.003 after rounding."""
    xy = pts[["x", "y"]].to_numpy()
    L = np.hypot(*(xy[lines["b"].to_numpy()] - xy[lines["a"].to_numpy()]).T)
    q = np.round(lines["QDGC"].to_numpy(float), 3)
    z = np.minimum(np.round(lines["ZDGC"].to_numpy(float), 3), np.floor((q - 0.003 * L) * 1000 - 1e-6) / 1000)
    lines["QDGC"], lines["ZDGC"] = q, z


def _tz(pts: pd.DataFrame, lines: pd.DataFrame) -> np.ndarray:
    """Feature per point: given TZ, else 四通 / 三通 by degree, 直线点 or 弯头 for two pipes, 预留口 for an open end
    without appurtenance."""
    a, b = lines["a"].to_numpy(), lines["b"].to_numpy()
    n = len(pts)
    deg = np.bincount(np.concatenate([a, b]), minlength=n)
    xy = pts[["x", "y"]].to_numpy()
    ends = np.concatenate([a, b])
    other = np.concatenate([b, a])
    o = np.argsort(ends, kind="stable")
    e, f = ends[o], other[o]
    two = np.flatnonzero(deg == 2)
    start = np.searchsorted(e, two)
    u = xy[f[start]] - xy[two]
    v = xy[f[start + 1]] - xy[two]
    cos = (u * v).sum(1) / np.maximum(np.hypot(*u.T) * np.hypot(*v.T), 1e-12)
    tz = np.full(n, None, dtype=object)
    tz[deg >= 4] = "四通"
    tz[deg == 3] = "三通"
    tz[two] = np.where(cos < -0.999, "直线点", "弯头")
    fsw = pts["FSW"].to_numpy(object) if "FSW" in pts else np.full(n, None, object)
    no_fsw = pd.isna(fsw)
    tz[(deg == 1) & no_fsw] = "预留口"
    given = pts["TZ"].to_numpy(object) if "TZ" in pts else np.full(n, None, object)
    return np.where(pd.notna(given), given, tz)


def _finish(net: _Net, seed: int, owner: str) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, pd.DataFrame]:
    """GIS layers of a network: drop unused points, number points and lines (planted first), CJJ fields."""
    pts, lines = net.points(), net.lines()
    used = np.zeros(len(pts), bool)
    used[lines["a"]] = used[lines["b"]] = True
    new = np.cumsum(used) - 1
    pts = pts[used].reset_index(drop=True)
    lines = lines.assign(a=new[lines["a"]], b=new[lines["b"]])
    prio = lines["priority"].to_numpy(float) if "priority" in lines else np.full(len(lines), np.nan)
    lines = lines.iloc[np.lexsort((np.arange(len(lines)), np.nan_to_num(prio, nan=1.0)))].reset_index(drop=True)
    code = net.code
    wtdh = np.char.add(f"{code}-P", np.char.zfill(np.arange(1, len(pts) + 1).astype(str), 6)).astype(object)
    gxbh = np.char.add(code, np.char.zfill(np.arange(1, len(lines) + 1).astype(str), 6)).astype(object)
    xy = pts[["x", "y"]].to_numpy()
    dmgc = _ground(xy, seed)
    a, b = lines["a"].to_numpy(), lines["b"].to_numpy()
    drain = code in ("YS", "WS")
    if drain:
        _round_drainage(lines, pts)
        low = np.full(len(pts), np.inf)
        np.minimum.at(low, a, lines["QDGC"].to_numpy(float))
        np.minimum.at(low, b, lines["ZDGC"].to_numpy(float))
        js = np.round(dmgc - low, 3)
        qdms = np.round(dmgc[a] - lines["QDGC"].to_numpy(float), 3)
        zdms = np.round(dmgc[b] - lines["ZDGC"].to_numpy(float), 3)
        qdgc, zdgc = lines["QDGC"].to_numpy(float), lines["ZDGC"].to_numpy(float)
        gj = pd.array(np.where(lines["GJ"] > 0, lines["GJ"], 0), dtype="Int64")
        gj[lines["GJ"].to_numpy() == 0] = pd.NA
        dmcc = np.where(lines["GJ"].to_numpy() == 0,
                        lines["bw"].astype(int).astype(str) + "X" + lines["bh"].astype(int).astype(str), None)
    else:
        js = np.full(len(pts), np.nan)
        qdms, zdms = lines["QDMS"].to_numpy(float), lines["ZDMS"].to_numpy(float)
        qdgc = zdgc = np.full(len(lines), np.nan)
        gj = pd.array(lines["GJ"].to_numpy(int), dtype="Int64")
        dmcc = np.full(len(lines), None, object)

    def col(df: pd.DataFrame, name: str) -> np.ndarray:
        return df[name].to_numpy(object) if name in df else np.full(len(df), None, object)

    pgdf = gpd.GeoDataFrame({
        "WTDH": wtdh, "GXDM": code, "TZ": _tz(pts, lines), "FSW": col(pts, "FSW"), "DMGC": dmgc, "JS": js,
        "FMZT": col(pts, "FMZT"), "KCZ": col(pts, "KCZ"), "JHJZ": col(pts, "JHJZ"),
    }, geometry=shapely.points(xy), crs=CRS)
    lgdf = gpd.GeoDataFrame({
        "GXBH": gxbh, "GXDM": code, "QDDH": wtdh[a], "ZDDH": wtdh[b], "QDMS": qdms, "ZDMS": zdms,
        "QDGC": qdgc, "ZDGC": zdgc, "GJ": gj, "DMCC": dmcc, "CZ": col(lines, "CZ"), "YL": col(lines, "YL"),
        "MSND": lines["MSND"].to_numpy(int), "QSDW": owner, "MSFS": col(lines, "MSFS"), "SZDL": col(lines, "SZDL"),
    }, geometry=_geoms(pts, lines), crs=CRS)
    lgdf["MSFS"] = lgdf["MSFS"].fillna("直埋")
    if drain:  # deep trunks and river crossings are jacked
        lgdf.loc[np.maximum(qdms, zdms) > 6.0, "MSFS"] = "顶管"
    for gdf in (pgdf, lgdf):  # text fields as pandas str (missing = NaN)
        for c in gdf.columns.drop("geometry"):
            if gdf[c].dtype == object:
                gdf[c] = gdf[c].astype("str")
    return pgdf, lgdf, lines


def _build(seed: int) -> dict:
    layers = district.district_layers(seed)
    g = _grid(layers["roads"])
    river = layers["river"].geometry.iloc[0]
    rain, rinfo = _drain_layout("YS", g, river, seed)
    sewer, sinfo = _drain_layout("WS", g, river, seed)
    drains = [(rain, rinfo), (sewer, sinfo)]
    water, winfo = _water(g, layers["buildings"], river, drains, seed)
    gas, ginfo = _gas(g, water, winfo, drains, seed)
    _pressure_depths(water, gas, seed)
    src_w = _pick_source(water, winfo["lay"], g, seed, SOURCE_HEAD)
    src_g = _pick_source(gas, ginfo["lay"], g, seed, None, exclude=src_w)
    water._p[0].loc[src_w, "FSW"] = "水厂"
    gas._p[0].loc[src_g, "FSW"] = "调压站"
    wl = water.lines()
    wl.loc[ginfo["stub_water"], "priority"] = 0
    water._l = [wl]
    _drain_inverts(rain, rinfo, [("JS", water), ("TR", gas)], seed)
    _drain_inverts(sewer, sinfo, [("JS", water), ("TR", gas)], seed, rain=rain)
    j = _plant_vertical(sewer, sinfo, water, seed)
    wl = water._l[0]
    wl.loc[j, "priority"] = 0.5
    _inlets(rain, rinfo, g, water, gas, sewer, seed)
    out = {}
    for key, nets, owner in (("water", [water], WATER_OWNER), ("gas", [gas], GAS_OWNER),
                             ("drainage", [rain, sewer], DRAIN_OWNER)):
        parts = [_finish(n, seed, owner) for n in nets]
        out[f"{key}_points"] = pd.concat([p[0] for p in parts], ignore_index=True)
        out[f"{key}_lines"] = pd.concat([p[1] for p in parts], ignore_index=True)
    return {name: out[name] for name in LAYERS}


def pipe_layers(seed: int = DEFAULT_SEED) -> dict[str, gpd.GeoDataFrame]:
    """Water, drainage (rain + sewer) and gas networks as CJJ 61-2017 style line and point layers."""
    return _build(seed)


def write_pipes(path: Path, seed: int = DEFAULT_SEED) -> Path:
    """Write the six pipe layers to a fresh GeoPackage."""
    return write_layers(path, pipe_layers(seed))


def water_model(layers: dict[str, gpd.GeoDataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """EPANET node and link tables of the water layers (see cim.exporters.epanet.write_inp)."""
    p, ln = layers["water_points"], layers["water_lines"]
    xy = shapely.get_coordinates(p.geometry.values)
    src = (p["FSW"] == "水厂").to_numpy()
    fsw, tz = p["FSW"].to_numpy(object), p["TZ"].to_numpy(object)
    conn = (tz == "接户")
    tag = np.select([fsw == "阀门", fsw == "消火栓", fsw == "水表", conn, np.isin(tz, ["三通", "四通"])],
                    ["valve", "hydrant", "meter", "connection:" + p["JHJZ"].fillna("").astype(str), "tee"], None)
    tag = np.where(src, None, tag)
    nodes = pd.DataFrame({"id": p["WTDH"], "type": np.where(src, "reservoir", "junction"), "elevation": p["DMGC"],
                          "demand": np.where(conn, SERVICE_DEMAND, 0.0), "x": xy[:, 0], "y": xy[:, 1], "tag": tag,
                          "head": np.where(src, p["DMGC"] + SOURCE_HEAD, np.nan)})
    coords = [shapely.get_coordinates(x) for x in ln.geometry.values]
    links = pd.DataFrame({"id": ln["GXBH"], "type": "pipe", "from": ln["QDDH"], "to": ln["ZDDH"],
                          "length": np.round(ln.geometry.length.to_numpy(), 3), "diameter": ln["GJ"].astype(float),
                          "roughness": np.where(ln["CZ"] == "PE", 140.0, 130.0),
                          "vertices": [[tuple(v) for v in c[1:-1]] or None for c in coords], "tag": None})
    return nodes, links


def write_water_inp(path: Path, seed: int = DEFAULT_SEED) -> Path:
    """Write the water network as an EPANET .inp (LPS, Hazen-Williams; the plant as a reservoir at ground + 40 m)."""
    from cim.exporters.epanet import write_inp

    nodes, links = water_model(pipe_layers(seed))
    return write_inp(path, nodes, links, title=f"cim sample district water network (seed {seed})", units="LPS")
