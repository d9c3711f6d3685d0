"""Traces over a pipe network: connected, upstream, downstream, shortest path.

Closed valves stop every trace. Drainage flows from each pipe's start to its end (the importer orients
pipes downhill). A pressure network (water, gas, heat) flows away from its sources: each pipe is oriented
from its end nearer a source (by pipe length) to the farther one; a network without sources keeps the
digitised direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import breadth_first_order, dijkstra

from cim.analysis.network import Graph, NetworkError


@dataclass
class Trace:
    kind: str
    start: str
    pipes: list[str]
    nodes: list[str]
    length_m: float
    customers: list[str]
    buildings: list[str]

    def summary(self) -> dict:
        return {"trace": self.kind, "start": self.start, "pipes": len(self.pipes), "nodes": len(self.nodes),
                "length_m": round(self.length_m, 1), "customers": len(self.customers),
                "buildings": len(self.buildings)}


def _open(graph: Graph) -> np.ndarray:
    """Incidences that carry flow: none at a closed valve."""
    _, node = graph.incidences()
    return ~graph.closed[node]


def flow_direction(graph: Graph) -> np.ndarray:
    """Per pipe: True when flow runs from its from_node to its to_node."""
    if graph.gravity or not len(graph.sources()):
        return np.ones(graph.p, bool)
    dist = dijkstra(graph.bipartite(keep=_open(graph)), directed=False, indices=graph.sources(), min_only=True)
    d_from, d_to = dist[graph.pipe_from], dist[graph.pipe_to]
    return ~(d_to < d_from)


def _result(graph: Graph, kind: str, start: str, reached: np.ndarray) -> Trace:
    nodes = reached[reached < graph.n]
    pipes = reached[reached >= graph.n] - graph.n
    conn, buildings = graph.customers(nodes)
    if kind != "shortest_path":  # a path keeps its order
        nodes, pipes = np.sort(nodes), np.sort(pipes)
    return Trace(kind, start, graph.pipe_code[pipes].tolist(), graph.node_code[nodes].tolist(),
                 float(graph.length[pipes].sum()), graph.node_code[conn].tolist(), buildings)


def trace(graph: Graph, start: str, kind: str = "connected") -> Trace:
    """Everything connected to `start` (a pipe or node code), or upstream / downstream of it."""
    if kind not in ("connected", "upstream", "downstream"):
        raise NetworkError(f"unknown trace {kind!r}: connected, upstream or downstream")
    what, i = graph.find(start)
    vertex = i if what == "node" else graph.n + i
    keep = _open(graph)
    if kind == "connected":
        matrix = graph.bipartite(keep=keep)
    else:
        matrix = graph.bipartite(keep=keep, directed=flow_direction(graph))
        if kind == "upstream":
            matrix = matrix.T.tocsr()
    reached = breadth_first_order(matrix, vertex, directed=kind != "connected", return_predecessors=False)
    return _result(graph, kind, start, reached)


def shortest_path(graph: Graph, start: str, end: str) -> Trace:
    """The shortest route along open pipes between two pipes or nodes."""
    vertices = []
    for code in (start, end):
        what, i = graph.find(code)
        vertices.append(i if what == "node" else graph.n + i)
    dist, pred = dijkstra(graph.bipartite(keep=_open(graph)), directed=False, indices=vertices[0],
                          return_predecessors=True)
    if not np.isfinite(dist[vertices[1]]):
        raise NetworkError(f"no open path from {start} to {end}")
    path = [vertices[1]]
    while path[-1] != vertices[0]:
        path.append(pred[path[-1]])
    return _result(graph, "shortest_path", f"{start} → {end}", np.array(path[::-1]))
