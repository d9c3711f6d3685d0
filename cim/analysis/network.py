"""A pipe network layer as arrays for graph analyses, loaded once per import state of the layer.

Nodes are vertices 0…N-1 and pipes (any link: pipe, pump, valve) vertices N…N+P-1 of one bipartite graph, so
that parallel pipes, pipes closed at one end and valves placed on a pipe end are all plain edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from threading import Lock

import numpy as np
import pandas as pd
import psycopg
from scipy.sparse import csr_matrix

from cim.model.kinds import SOURCE_NODE_TYPES
from cim.model.store import Model

EPS = 1e-6  # weight of a zero-length link: sparse matrices drop explicit zeros


class NetworkError(ValueError):
    """A network, object or valve that the layer does not hold."""


@dataclass
class Graph:
    layer: str
    network: str
    signature: tuple
    node_code: np.ndarray
    node_type: np.ndarray
    node_xy: np.ndarray
    operable: np.ndarray  # valves that can be closed
    closed: np.ndarray  # valves closed in normal operation
    building: np.ndarray  # building served (unified code, else the source's id), None elsewhere
    pipe_code: np.ndarray
    pipe_from: np.ndarray
    pipe_to: np.ndarray
    length: np.ndarray
    link_type: np.ndarray
    node_source: np.ndarray  # the ids the source data gave (EPANET names, survey point numbers)
    pipe_source: np.ndarray
    index: dict[str, tuple[str, int]] = field(default_factory=dict)
    by_source: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.node_code)

    @property
    def p(self) -> int:
        return len(self.pipe_code)

    @property
    def gravity(self) -> bool:
        return self.network == "drainage"

    def find(self, code: str, kind: str | None = None) -> tuple[str, int]:
        """A pipe or node by unified code, else by the id its source gave it; `kind` ("pipe" or "node")
        settles a source id that names both (EPANET keeps node and link ids apart)."""
        found = self.index.get(code) or (self.by_source[kind].get(code) if kind else None)
        if found is None or (kind and found[0] != kind):
            what = kind or "pipe or node"
            raise NetworkError(f"layer {self.layer!r} has no {what} {code!r}")
        return found

    def __post_init__(self) -> None:
        self.by_source = {what: {sid: (what, i) for i, sid in enumerate(ids) if sid is not None}
                          for what, ids in (("node", self.node_source), ("pipe", self.pipe_source))}
        both = self.by_source["node"].keys() & self.by_source["pipe"].keys()
        self.index = {**{k: v for d in self.by_source.values() for k, v in d.items() if k not in both},
                      **{c: ("node", i) for i, c in enumerate(self.node_code)},
                      **{c: ("pipe", i) for i, c in enumerate(self.pipe_code)}}

    def incidences(self) -> tuple[np.ndarray, np.ndarray]:
        """(pipe, node) of both ends of every pipe."""
        return (np.concatenate([np.arange(self.p), np.arange(self.p)]),
                np.concatenate([self.pipe_from, self.pipe_to]))

    def bipartite(self, keep: np.ndarray | None = None, directed: np.ndarray | None = None) -> csr_matrix:
        """Node–pipe graph over the kept incidences, weighted by half the pipe length. With `directed` (one
        flag per pipe: True = flows from→to, False = to→from) edges follow the flow."""
        pipe, node = self.incidences()
        if keep is not None:
            pipe, node = pipe[keep], node[keep]
        w = np.maximum(self.length[pipe] / 2, EPS)
        size = self.n + self.p
        if directed is None:
            rows, cols, ws = np.concatenate([node, self.n + pipe]), np.concatenate([self.n + pipe, node]), \
                np.concatenate([w, w])
        else:
            start = np.concatenate([np.ones(self.p, bool), np.zeros(self.p, bool)])
            if keep is not None:
                start = start[keep]
            upstream_end = start == directed[pipe]  # this end is where the flow enters the pipe
            rows = np.where(upstream_end, node, self.n + pipe)
            cols = np.where(upstream_end, self.n + pipe, node)
            ws = w
        return csr_matrix((ws, (rows, cols)), shape=(size, size))

    def sources(self) -> np.ndarray:
        return np.flatnonzero(np.isin(self.node_type, list(SOURCE_NODE_TYPES)))

    def customers(self, nodes: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Service connections among these nodes and the distinct buildings they serve."""
        nodes = np.asarray(nodes, dtype=np.int64)
        conn = nodes[self.node_type[nodes] == "connection"]
        buildings = sorted({b for b in self.building[conn] if b})
        return conn, buildings


_cache: dict[tuple[str, str], Graph] = {}
_lock = Lock()


def _signature(conn: psycopg.Connection, layer: str) -> tuple:
    """What the cached graph depends on: the layer's imports and any edit since (a valve closed through the
    API changes the next analysis)."""
    return conn.execute(
        "SELECT max(batch_id), count(*), (SELECT max(id) FROM object_edit) FROM city_object WHERE layer = %s",
        (layer,)).fetchone()


def load_graph(model: Model, layer: str) -> Graph:
    """The network of a model layer; cached until the layer is imported again or an object is edited."""
    with model.connect() as conn:
        sig = _signature(conn, layer)
        key = (str(model.url), layer)
        with _lock:
            cached = _cache.get(key)
        if cached is not None and cached.signature == sig:
            return cached
        nodes = pd.DataFrame(conn.execute(
            "SELECT n.code, n.network, n.node_type, ST_X(o.geom), ST_Y(o.geom), coalesce(n.operable, true), "
            "n.normal_state = 'closed', coalesce(n.building_code, n.building_ref), o.source_id "
            "FROM pipe_node n JOIN city_object o USING (code) WHERE o.layer = %s ORDER BY n.code", (layer,),
        ).fetchall(), columns=["code", "network", "type", "x", "y", "operable", "closed", "building", "source_id"])
        pipes = pd.DataFrame(conn.execute(
            "SELECT s.code, s.from_node, s.to_node, s.length_m, s.link_type, o.source_id FROM pipe_segment s "
            "JOIN city_object o USING (code) WHERE o.layer = %s ORDER BY s.code", (layer,),
        ).fetchall(), columns=["code", "from", "to", "length", "link_type", "source_id"])
    if nodes.empty:
        raise NetworkError(f"layer {layer!r} holds no pipe network (import one with `cim import pipes` or "
                           f"`cim import epanet`)")
    networks = nodes["network"].unique()
    if len(networks) > 1:
        raise NetworkError(f"layer {layer!r} mixes networks {sorted(networks)}")
    pos = pd.Series(np.arange(len(nodes)), index=nodes["code"])
    frm, to = pipes["from"].map(pos), pipes["to"].map(pos)
    if frm.isna().any() or to.isna().any():
        raise NetworkError(f"layer {layer!r}: pipe {pipes['code'][frm.isna() | to.isna()].iloc[0]} names a node "
                           f"outside the layer")
    graph = Graph(
        layer, str(networks[0]), sig, nodes["code"].to_numpy(object), nodes["type"].to_numpy(object),
        nodes[["x", "y"]].to_numpy(float), nodes["operable"].to_numpy(bool),
        nodes["closed"].fillna(False).to_numpy(bool), nodes["building"].to_numpy(object),
        pipes["code"].to_numpy(object), frm.to_numpy(np.int64), to.to_numpy(np.int64),
        pipes["length"].to_numpy(float), pipes["link_type"].to_numpy(object),
        nodes["source_id"].to_numpy(object), pipes["source_id"].to_numpy(object),
    )
    with _lock:
        _cache[key] = graph
    return graph


def nearest_pipe(model: Model, layer: str, x: float, y: float, within: float = 50.0) -> str:
    """The pipe of the layer nearest to a map point (storage CRS), within `within` metres."""
    with model.connect() as conn:
        row = conn.execute(
            "SELECT s.code FROM pipe_segment s JOIN city_object o USING (code) WHERE o.layer = %s "
            "AND ST_DWithin(o.geom, ST_SetSRID(ST_MakePoint(%s, %s), %s), %s) "
            "ORDER BY o.geom <-> ST_SetSRID(ST_MakePoint(%s, %s), %s) LIMIT 1",
            (layer, x, y, model.info.srid, within, x, y, model.info.srid),
        ).fetchone()
    if row is None:
        raise NetworkError(f"no pipe of layer {layer!r} within {within} m of ({x}, {y})")
    return row[0]
