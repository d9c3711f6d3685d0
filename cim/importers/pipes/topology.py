"""Pipe network topology from lines and points: named (from/to point ids) or by snapping ends within a
tolerance, with the defects a utility data check reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

REPORT_LIMIT = 100  # ids listed per defect; the count says how many there were


@dataclass
class Topology:
    """Nodes (position, point feature or -1, stable key) and segments (line, from, to) of one network."""

    node_xy: np.ndarray
    node_point: np.ndarray
    node_key: np.ndarray
    lines: np.ndarray  # 2D LineStrings whose ends sit exactly on their nodes
    line_source: np.ndarray  # index of the source line each segment comes from (a split line gives several)
    seg_from: np.ndarray
    seg_to: np.ndarray
    report: dict = field(default_factory=dict)
    node_type: np.ndarray | None = None  # from the point features; "junction" where a node has none


def _ends(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    counts = np.bincount(owner, minlength=len(lines))
    last = np.cumsum(counts) - 1
    return coords[last - counts + 1], coords[last]


def _snap_ends(lines: np.ndarray, start_xy: np.ndarray, end_xy: np.ndarray) -> np.ndarray:
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    counts = np.bincount(owner, minlength=len(lines))
    last = np.cumsum(counts) - 1
    coords[last - counts + 1] = start_xy
    coords[last] = end_xy
    return shapely.set_coordinates(shapely.force_2d(lines.copy()), coords)


def _split_at_points(lines: np.ndarray, source: np.ndarray, point_xy: np.ndarray, tol: float,
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """Split lines where a point feature lies on their interior (a valve drawn on a continuous main)."""
    if not len(point_xy) or not len(lines):
        return lines, source, 0
    points = shapely.points(point_xy)
    starts, ends = _ends(lines)
    tree = shapely.STRtree(lines)
    pt_idx, line_idx = tree.query(points, predicate="dwithin", distance=tol)
    if not len(pt_idx):
        return lines, source, 0
    xy = point_xy[pt_idx]
    at_end = (np.hypot(*(xy - starts[line_idx]).T) <= tol) | (np.hypot(*(xy - ends[line_idx]).T) <= tol)
    pt_idx, line_idx = pt_idx[~at_end], line_idx[~at_end]
    if not len(pt_idx):
        return lines, source, 0
    where = shapely.line_locate_point(lines[line_idx], points[pt_idx])
    keep = np.ones(len(lines), bool)
    new_lines, new_source = [], []
    order = np.lexsort((where, line_idx))
    for li in np.unique(line_idx):  # one Python step per split line, not per vertex
        cuts = where[order][line_idx[order] == li]
        line = lines[li]
        bounds = np.concatenate([[0.0], np.unique(cuts), [line.length]])
        parts = [shapely.ops.substring(line, a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
                 if b - a > 0]
        keep[li] = False
        new_lines.extend(parts)
        new_source.extend([source[li]] * len(parts))
    lines = np.concatenate([lines[keep], np.array(new_lines, dtype=object)])
    source = np.concatenate([source[keep], np.array(new_source, dtype=np.int64)])
    return lines, source, int(len(np.unique(pt_idx)))


def _clusters(xy: np.ndarray, tol: float) -> np.ndarray:
    """Label of each position: positions within tol of each other (transitively) share one."""
    pairs = cKDTree(xy).query_pairs(tol, output_type="ndarray")
    n = len(xy)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def listed(ids: np.ndarray) -> dict:
    return {"count": int(len(ids)), "ids": [str(v) for v in ids[:REPORT_LIMIT]]}


def build_topology(lines: np.ndarray, line_ids: np.ndarray, point_xy: np.ndarray, point_ids: np.ndarray,
                   point_types: np.ndarray, tol: float, from_ids: np.ndarray | None = None,
                   to_ids: np.ndarray | None = None) -> Topology:
    """Nodes and segments: from/to ids name the points when given (named topology), else line ends and
    points within `tol` metres are one node (snapped topology)."""
    lines = shapely.force_2d(np.asarray(lines, dtype=object))
    source = np.arange(len(lines))
    report: dict = {"snap_tolerance_m": tol}
    if from_ids is not None:
        report["topology"] = "named (from/to point ids)"
        topo = _named(lines, source, point_xy, point_ids, from_ids, to_ids, tol, report)
    else:
        report["topology"] = f"snapped ends within {tol} m"
        lines, source, split = _split_at_points(lines, source, point_xy, tol)
        report["lines_split_at_points"] = split
        topo = _snapped(lines, source, point_xy, point_ids, tol, report)
    _check(topo, line_ids, point_types, tol)
    return topo


def _named(lines, source, point_xy, point_ids, from_ids, to_ids, tol, report) -> Topology:
    starts, ends = _ends(lines)
    names = np.concatenate([point_ids.astype(str), from_ids.astype(str), to_ids.astype(str)])
    xy = np.concatenate([point_xy, starts, ends])
    uniq, first, inverse = np.unique(names, return_index=True, return_inverse=True)
    n_pts, n_lines = len(point_ids), len(lines)
    node_xy = xy[first]  # a point feature comes first in `names`, so its position wins over line ends
    node_point = np.where(first < n_pts, first, -1)
    seg_from, seg_to = inverse[n_pts:n_pts + n_lines], inverse[n_pts + n_lines:]
    off = np.concatenate([np.hypot(*(starts - node_xy[seg_from]).T), np.hypot(*(ends - node_xy[seg_to]).T)])
    far = np.flatnonzero(off > tol) % n_lines
    report["ends_away_from_their_point"] = listed(np.unique(far))
    lines = _snap_ends(lines, node_xy[seg_from], node_xy[seg_to])
    return Topology(node_xy, node_point, uniq.astype(object), lines, source, seg_from, seg_to, report)


def _snapped(lines, source, point_xy, point_ids, tol, report) -> Topology:
    starts, ends = _ends(lines)
    n_pts, n_lines = len(point_xy), len(lines)
    xy = np.concatenate([point_xy, starts, ends])
    label = _clusters(xy, tol)
    uniq, inverse = np.unique(label, return_inverse=True)
    k = len(uniq)
    # a cluster's position: its point feature's if it has one, else its first line end
    order = np.arange(len(xy))
    first = np.full(k, len(xy))
    np.minimum.at(first, inverse, order)
    node_xy = xy[first]
    node_point = np.where(first < n_pts, first, -1)
    pts_per_node = np.bincount(inverse[:n_pts], minlength=k)
    report["points_on_one_spot"] = listed(point_ids[np.isin(inverse[:n_pts], np.flatnonzero(pts_per_node > 1))])
    keys = np.array([f"@{x:.3f},{y:.3f}" for x, y in node_xy], dtype=object)
    keys[node_point >= 0] = point_ids[node_point[node_point >= 0]].astype(str)
    seg_from, seg_to = inverse[n_pts:n_pts + n_lines], inverse[n_pts + n_lines:]
    lines = _snap_ends(lines, node_xy[seg_from], node_xy[seg_to])
    return Topology(node_xy, node_point, keys, lines, source, seg_from, seg_to, report)


def _check(topo: Topology, line_ids: np.ndarray, point_types: np.ndarray, tol: float) -> None:
    """Drop zero-length and duplicate segments; report them and self-intersections."""
    report = topo.report
    ids = line_ids[topo.line_source]
    zero = (topo.seg_from == topo.seg_to) | (shapely.length(topo.lines) < tol)
    report["zero_length"] = listed(ids[zero])
    lo, hi = np.minimum(topo.seg_from, topo.seg_to), np.maximum(topo.seg_from, topo.seg_to)
    # same end nodes and the same shape (within tol, both ways round) = the same pipe drawn twice
    dup = np.zeros(len(lo), bool)
    pair = lo.astype(np.int64) * (len(topo.node_xy) + 1) + hi
    order = np.argsort(pair, kind="stable")
    same = np.flatnonzero(pair[order][1:] == pair[order][:-1])
    for i in same:
        a, b = order[i], order[i + 1]
        if not zero[a] and not zero[b] and shapely.hausdorff_distance(topo.lines[a], topo.lines[b]) <= tol:
            dup[b] = True
    report["duplicates"] = listed(ids[dup])
    keep = ~zero & ~dup
    report["self_intersecting"] = listed(ids[keep & ~shapely.is_simple(topo.lines)])
    topo.lines, topo.line_source = topo.lines[keep], topo.line_source[keep]
    topo.seg_from, topo.seg_to = topo.seg_from[keep], topo.seg_to[keep]
    degree = np.bincount(np.concatenate([topo.seg_from, topo.seg_to]), minlength=len(topo.node_xy))
    used = (degree > 0) | (topo.node_point >= 0)  # a line end left alone by a dropped segment goes too
    if not used.all():
        new_index = np.cumsum(used) - 1
        topo.seg_from, topo.seg_to = new_index[topo.seg_from], new_index[topo.seg_to]
        topo.node_xy, topo.node_point, topo.node_key = topo.node_xy[used], topo.node_point[used], topo.node_key[used]
        degree = degree[used]
    types = np.full(len(topo.node_xy), "junction", dtype=object)
    has_pt = topo.node_point >= 0
    types[has_pt] = point_types[topo.node_point[has_pt]]
    topo.node_type = types
