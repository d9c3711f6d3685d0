"""Valve segments (the smallest parts of a network that valves can isolate), burst isolation (关阀分析) and
valve criticality.

A valve is either a valve node, which separates every pipe that meets it, or a valve placed on one end of a
pipe (WNTR's valve layer: pipe + node). A segment is a connected set of pipes and nodes once all valves are
cut out. Isolating a segment closes its boundary valves; a valve that cannot close (seized, or failed) widens
the outage to the segment beyond it. With the boundary closed, segments no longer connected to any source
are out of supply too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from cim.analysis.network import Graph, NetworkError


@dataclass
class Segments:
    graph: Graph
    pipe_seg: np.ndarray  # segment of each pipe
    node_seg: np.ndarray  # segment of each node (-1 for a valve node: it lies between segments)
    count: int
    valve_code: np.ndarray  # one entry per valve
    valve_node: np.ndarray  # the valve node, or the node a pipe-end valve sits at
    valve_operable: np.ndarray
    valve_closed: np.ndarray
    vs_valve: np.ndarray  # valve–segment adjacency, one row per pair
    vs_seg: np.ndarray
    seg_valves: csr_matrix  # segment × valve
    source_seg: np.ndarray  # segments holding a source
    seg_length: np.ndarray
    seg_pipes: np.ndarray
    seg_customers: np.ndarray
    joins: tuple[np.ndarray, np.ndarray, np.ndarray] = ()  # segment pairs each valve joins: (a, b, valve)

    valve_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        same = np.flatnonzero(self.vs_valve[1:] == self.vs_valve[:-1])  # pairs are sorted by valve
        self.joins = (self.vs_seg[same], self.vs_seg[same + 1], self.vs_valve[same])
        self.valve_index = {c: i for i, c in enumerate(self.valve_code)}

    def valves_of(self, segs: np.ndarray) -> np.ndarray:
        return np.unique(self.seg_valves[segs].indices)

    def segs_of_valves(self, valves: np.ndarray) -> np.ndarray:
        return np.unique(self.vs_seg[np.isin(self.vs_valve, valves)])


def valve_segments(graph: Graph, pipe_end_valves: Iterable[tuple[str, str]] = ()) -> Segments:
    """Segments of the whole network: valve nodes plus valves on pipe ends given as (pipe code, node code)."""
    pipe, node = graph.incidences()
    is_valve = graph.node_type == "valve"
    cut = is_valve[node]
    extra = []
    for pipe_code, node_code in pipe_end_valves:
        _, pi = graph.find(str(pipe_code), "pipe")
        _, ni = graph.find(str(node_code), "node")
        if ni not in (graph.pipe_from[pi], graph.pipe_to[pi]):
            raise NetworkError(f"valve ({pipe_code}, {node_code}): the node must be an end of the pipe")
        extra.append((pi, ni))
    extra_arr = np.array(sorted(set(extra)), dtype=np.int64).reshape(-1, 2)
    if len(extra_arr):
        key = pipe * (graph.n + 1) + node
        cut |= np.isin(key, extra_arr[:, 0] * (graph.n + 1) + extra_arr[:, 1])
    n_comp, label = connected_components(graph.bipartite(keep=~cut), directed=False)
    pipe_label, node_label = label[graph.n:], label[:graph.n]
    used, pipe_seg = np.unique(pipe_label, return_inverse=True)  # segments are numbered by their pipes
    remap = np.full(n_comp, -1)
    remap[used] = np.arange(len(used))
    node_seg = remap[node_label]
    # valve nodes first (adjacent to the segments of their pipes), then pipe-end valves (the pipe's segment
    # and the node's)
    vnodes = np.flatnonzero(is_valve)
    at_vnode = cut & is_valve[node]
    vn_pos = np.full(graph.n, -1)
    vn_pos[vnodes] = np.arange(len(vnodes))
    pairs_valve = [vn_pos[node[at_vnode]]]
    pairs_seg = [pipe_seg[pipe[at_vnode]]]
    ext = len(vnodes) + np.arange(len(extra_arr))
    if len(extra_arr):
        pairs_valve += [ext, ext]
        pairs_seg += [pipe_seg[extra_arr[:, 0]], node_seg[extra_arr[:, 1]]]
    vs_valve, vs_seg = np.concatenate(pairs_valve), np.concatenate(pairs_seg)
    ok = vs_seg >= 0  # a pipe-end valve at a valve node: the node side is no segment
    pairs = np.unique(np.column_stack([vs_valve[ok], vs_seg[ok]]), axis=0)
    vs_valve, vs_seg = pairs[:, 0], pairs[:, 1]
    n_valves = len(vnodes) + len(extra_arr)
    codes = np.concatenate([graph.node_code[vnodes],
                            np.array([f"{graph.pipe_code[p]}@{graph.node_code[n]}" for p, n in extra_arr], object)])
    valve_node = np.concatenate([vnodes, extra_arr[:, 1]]).astype(np.int64)
    operable = np.concatenate([graph.operable[vnodes], np.ones(len(extra_arr), bool)])
    closed = np.concatenate([graph.closed[vnodes], np.zeros(len(extra_arr), bool)])
    seg_valves = csr_matrix((np.ones(len(vs_valve)), (vs_seg, vs_valve)), shape=(len(used), n_valves))
    src = graph.sources()
    source_seg = np.unique(node_seg[src][node_seg[src] >= 0])
    conn = np.flatnonzero((graph.node_type == "connection") & (node_seg >= 0))
    return Segments(
        graph, pipe_seg, node_seg, len(used), codes, valve_node, operable, closed, vs_valve, vs_seg, seg_valves,
        source_seg, np.bincount(pipe_seg, weights=graph.length, minlength=len(used)),
        np.bincount(pipe_seg, minlength=len(used)), np.bincount(node_seg[conn], minlength=len(used)),
    )


@dataclass
class Isolation:
    target: str
    segments: list[int]
    valves_to_close: list[str]
    already_closed: list[str]
    could_not_close: list[str]  # seized or failed valves the plan had to go around
    isolated_pipes: list[str]
    isolated_nodes: list[str]
    cut_off_pipes: list[str]  # still intact but no longer connected to a source
    cut_off_nodes: list[str]
    customers: list[str]
    buildings: list[str]
    isolated_length_m: float
    if_fails: dict[str, dict] = field(default_factory=dict)  # valve → extra valves, pipes, customers

    def summary(self) -> dict:
        return {"target": self.target, "valves_to_close": len(self.valves_to_close),
                "isolated_pipes": len(self.isolated_pipes), "cut_off_pipes": len(self.cut_off_pipes),
                "isolated_length_m": round(self.isolated_length_m, 1), "customers": len(self.customers),
                "buildings": len(self.buildings)}


def _target_segments(seg: Segments, code: str) -> np.ndarray:
    kind, i = seg.graph.find(code)
    if kind == "pipe":
        return np.array([seg.pipe_seg[i]])
    if seg.node_seg[i] >= 0:
        return np.array([seg.node_seg[i]])
    valve = np.flatnonzero(seg.valve_node == i)  # a burst at a valve: the segments on both sides
    return seg.segs_of_valves(valve)


def _plan(seg: Segments, segs: np.ndarray, failed: set[int]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Grow the outage across valves that cannot close: (segments, boundary valves, valves gone around)."""
    segs = np.unique(segs)
    around: list[int] = []
    while True:
        valves = seg.valves_of(segs)
        # a valve whose segments all lie inside the outage need not close
        outer = seg.vs_valve[np.isin(seg.vs_valve, valves) & ~np.isin(seg.vs_seg, segs)]
        boundary = np.unique(outer)
        stuck = boundary[~seg.valve_closed[boundary] & (~seg.valve_operable[boundary]
                                                         | np.isin(boundary, list(failed)))]
        if not len(stuck):
            return segs, boundary, around
        around.extend(int(v) for v in stuck)
        segs = np.union1d(segs, seg.segs_of_valves(stuck))


def _fed(seg: Segments, out: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """Per segment: connected to a source through open valves, with `out` isolated behind `boundary`."""
    open_valve = ~seg.valve_closed
    open_valve[boundary] = False
    a, b, v = seg.joins
    keep = open_valve[v] & ~np.isin(a, out) & ~np.isin(b, out)
    joined = csr_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(seg.count, seg.count))
    _, label = connected_components(joined, directed=False)
    return np.isin(label, label[np.setdiff1d(seg.source_seg, out)])


def _cut_off(seg: Segments, out: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """Segments that had supply and lose it when `out` is isolated (none if the network has no sources); a
    part already dry behind a normally closed valve is not cut off by the burst."""
    if not len(seg.source_seg):
        return np.array([], dtype=np.int64)
    empty = np.array([], dtype=np.int64)
    lost = _fed(seg, empty, empty) & ~_fed(seg, out, boundary)
    lost[out] = False
    return np.flatnonzero(lost)


def isolate(seg: Segments, code: str, failed: Iterable[str] = (), alternatives: bool = False) -> Isolation:
    """The valves to close to isolate a burst on a pipe or at a node, and what goes out of service; with
    `alternatives`, also the plan for each of those valves failing to close."""
    graph = seg.graph
    failed_idx = set()
    for v in failed:
        if v not in seg.valve_index:
            raise NetworkError(f"{v!r} is not a valve of layer {graph.layer!r}")
        failed_idx.add(seg.valve_index[v])
    start = _target_segments(seg, code)
    segs, boundary, around = _plan(seg, start, failed_idx)
    cut = _cut_off(seg, segs, boundary)
    pipes_in = np.flatnonzero(np.isin(seg.pipe_seg, segs))
    nodes_in = np.flatnonzero(np.isin(seg.node_seg, segs))
    pipes_cut = np.flatnonzero(np.isin(seg.pipe_seg, cut))
    nodes_cut = np.flatnonzero(np.isin(seg.node_seg, cut))
    conn, buildings = graph.customers(np.concatenate([nodes_in, nodes_cut]))
    closing = boundary[~seg.valve_closed[boundary]]
    result = Isolation(
        code, segs.tolist(), seg.valve_code[closing].tolist(), seg.valve_code[boundary[seg.valve_closed[boundary]]]
        .tolist(), seg.valve_code[around].tolist(), graph.pipe_code[pipes_in].tolist(),
        graph.node_code[nodes_in].tolist(), graph.pipe_code[pipes_cut].tolist(), graph.node_code[nodes_cut].tolist(),
        graph.node_code[conn].tolist(), buildings, float(graph.length[pipes_in].sum()),
    )
    if alternatives:
        for v in closing:
            alt = isolate(seg, code, [*seg.valve_code[list(failed_idx)], seg.valve_code[v]], alternatives=False)
            result.if_fails[str(seg.valve_code[v])] = {
                "valves_to_close": alt.valves_to_close,
                "isolated_pipes": len(alt.isolated_pipes), "cut_off_pipes": len(alt.cut_off_pipes),
                "customers": len(alt.customers), "buildings": len(alt.buildings),
                "isolated_length_m": round(alt.isolated_length_m, 1),
            }
    return result


def critical(seg: Segments, top: int = 10) -> dict:
    """The largest segments (by customers, then length) and the valves whose failure isolates the most
    (the union of the segments they join)."""
    seg_order = np.lexsort((-seg.seg_length, -seg.seg_customers))[:top]
    # a failed valve merges its segments: customers and length of that union
    fail_customers = np.bincount(seg.vs_valve, weights=seg.seg_customers[seg.vs_seg], minlength=len(seg.valve_code))
    fail_length = np.bincount(seg.vs_valve, weights=seg.seg_length[seg.vs_seg], minlength=len(seg.valve_code))
    n_segs = np.bincount(seg.vs_valve, minlength=len(seg.valve_code))
    valve_order = np.lexsort((-fail_length, -fail_customers))[:top]
    return {
        "segments": [{"segment": int(s), "pipes": int(seg.seg_pipes[s]), "length_m": round(float(seg.seg_length[s]), 1),
                      "customers": int(seg.seg_customers[s]), "valves": int(seg.seg_valves[s].nnz)}
                     for s in seg_order],
        "valves": [{"valve": str(seg.valve_code[v]), "segments": int(n_segs[v]),
                    "failure_length_m": round(float(fail_length[v]), 1), "failure_customers": int(fail_customers[v])}
                   for v in valve_order],
    }
