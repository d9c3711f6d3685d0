"""The tiler's unit of parallel work: one spatial chunk of a layer's tiles (consecutive tiles of the tree walk),
fetched from PostGIS in one query, meshed and written as glb files. A pure function of plain, picklable data,
so that a local process pool or a Dask worker on another machine can run it, and run it again when a worker
is lost: every file is written to a temporary name in its folder and moved into place."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import shapely

from cim.model.terrain import Ground
from cim.tiler.content import write_mesh
from cim.tiler.georef import Frame, Geoid
from cim.tiler.mesh import Mesh
from cim.tiler.shapes.nodes import node_solids
from cim.tiler.shapes.prisms import prisms
from cim.tiler.shapes.surfaces import draped, surfaces
from cim.tiler.shapes.tubes import tubes
from cim.tiler.sources import TilesetSource, fetch_sql

TUBE_SIDES = 8
ROW_COLUMNS = ["code", "shape", "kind", "name", "base_z", "top_z", "attributes", "wkb", "segment", "node",
               "node_pipe_mm"]


@dataclass(frozen=True)
class LayerJob:
    """What every chunk of one layer shares."""

    dsn: str  # libpq connection string of the model: workers must reach the same PostgreSQL
    run: str  # one build: a worker's cached terrain is not reused by the next build
    srid: int
    geoid: Geoid
    source: TilesetSource
    folder: str  # the layer's folder: workers must see the same filesystem
    origin: tuple[float, float, float]


@dataclass(frozen=True)
class TileWork:
    id: str
    codes: tuple[str, ...]  # the tile's objects, in the order of its property table


@dataclass(frozen=True)
class TileResult:
    id: str
    box: tuple[list[float], list[float]] | None  # ENU content box; None = nothing drawable, no file
    uri: str


def chunk_key(job: LayerJob, tiles: list[TileWork]) -> str:
    """A deterministic task name: the same chunk of the same build is the same task (Dask reruns it on loss)."""
    digest = hashlib.sha1(repr((job, [(t.id, t.codes) for t in tiles])).encode()).hexdigest()
    return f"cim-tile-{job.source.name}-{digest}"


class _Cache(threading.local):
    """Per worker thread (a Dask worker may run several): one connection per model, the frame and terrain of
    the current build."""

    def __init__(self) -> None:
        self.conns: dict[str, psycopg.Connection] = {}
        self.frames: dict[tuple, Frame] = {}
        self.grounds: dict[tuple[str, str], Ground] = {}


_cache = _Cache()


def _conn(dsn: str) -> psycopg.Connection:
    conn = _cache.conns.get(dsn)
    if conn is None or conn.closed or conn.broken:
        conn = _cache.conns[dsn] = psycopg.connect(dsn, autocommit=True)
    return conn


def _frame(job: LayerJob) -> Frame:
    key = (job.origin, job.srid, job.geoid)
    if key not in _cache.frames:
        _cache.frames.clear()
        _cache.frames[key] = Frame(job.origin, job.srid, job.geoid)
    return _cache.frames[key]


def _ground(job: LayerJob, conn: psycopg.Connection) -> Ground:
    key = (job.dsn, job.run)
    if key not in _cache.grounds:
        _cache.grounds.clear()  # (a previous build's terrain)
        _cache.grounds[key] = Ground.load(conn)
    return _cache.grounds[key]


def tile_mesh(rows: pd.DataFrame, ground: Ground) -> tuple[Mesh, bool]:
    """The mesh of a tile's objects (feature = row) and whether it needs double-sided faces."""
    meshes = []
    double = False
    for shape, group in rows.groupby("shape", sort=False):
        at = group.index.to_numpy()
        if shape == "prism":
            mesh = prisms(shapely.from_wkb(group["wkb"].map(bytes).to_numpy()), group["base_z"].to_numpy(float),
                          group["top_z"].to_numpy(float))
        elif shape == "surface":
            mesh = surfaces(group["wkb"].map(bytes).tolist())
            double = True
        elif shape == "drape":
            geoms = shapely.from_wkb(group["wkb"].map(bytes).to_numpy())
            mesh = draped(geoms, ground.sample, group["base_z"].fillna(0).to_numpy(float))
            double = True
        elif shape == "tube":
            mesh = _tubes(group)
        elif shape == "node":
            mesh = _nodes(group)
        else:
            continue
        mesh.feature = at[mesh.feature]
        meshes.append(mesh)
    return Mesh.concat(meshes), double


def _tubes(group: pd.DataFrame) -> Mesh:
    geoms = shapely.from_wkb(group["wkb"].map(bytes).to_numpy())
    xyz, line = shapely.get_coordinates(geoms, include_z=True, return_index=True)
    lines = np.split(xyz, np.flatnonzero(np.diff(line)) + 1)
    seg = group["segment"].tolist()
    shape = np.array([s.get("shape") or "circular" for s in seg])
    dia = np.array([s.get("diameter_mm") or s.get("width_mm") or 100.0 for s in seg], float) / 1000
    height = np.array([s.get("height_mm") or s.get("diameter_mm") or 100.0 for s in seg], float) / 1000
    # EPANET pumps and valves often join two nodes at one spot: draw those links as the device.
    short = np.array([np.ptp(c, axis=0).max() < 1e-6 for c in lines])
    mesh = tubes(lines, shape, dia, height, TUBE_SIDES)
    if not short.any():
        return mesh
    at = np.flatnonzero(short)
    device = np.array([seg[i].get("link_type") if seg[i].get("link_type") in ("pump", "valve") else "junction"
                       for i in at])
    solids = node_solids(np.array([lines[i][0] for i in at]), device, dia[at], np.full(len(at), np.nan),
                         np.full(len(at), np.nan))
    solids.feature = at[solids.feature]
    return Mesh.concat([mesh, solids])


def _nodes(group: pd.DataFrame) -> Mesh:
    points = shapely.get_coordinates(shapely.from_wkb(group["wkb"].map(bytes).to_numpy()), include_z=True)
    node = group["node"].tolist()
    kind = np.array([n.get("node_type") or "junction" for n in node])
    size = group["node_pipe_mm"].fillna(200.0).to_numpy(float) / 1000
    bottom = np.array([np.nan if n.get("bottom_z") is None else n["bottom_z"] for n in node], float)
    top = np.array([np.nan if n.get("ground_z") is None else n["ground_z"] for n in node], float)
    return node_solids(points, kind, size, bottom, top)


def release() -> None:
    """Close this process's cached connections and forget its terrain (the serial path calls it when done)."""
    for conn in _cache.conns.values():
        conn.close()
    _cache.conns.clear()
    _cache.frames.clear()
    _cache.grounds.clear()


def run_chunk(job: LayerJob, tiles: list[TileWork]) -> list[TileResult]:
    """Fetch the chunk's objects in one query, write one glb per tile; the tiles' content boxes."""
    conn = _conn(job.dsn)
    codes = [c for t in tiles for c in t.codes]
    by_code = {row[0]: row for row in conn.execute(fetch_sql(job.source), (codes,)).fetchall()}
    frame = _frame(job)
    folder = Path(job.folder)
    results = []
    for tile in tiles:
        # One DataFrame per tile, as the serial tiler always built it: column types follow the tile's own rows.
        rows = pd.DataFrame([by_code[c] for c in tile.codes], columns=ROW_COLUMNS)
        ground = _ground(job, conn) if (rows["shape"] == "drape").any() else Ground([])
        mesh, double = tile_mesh(rows, ground)
        uri = f"t/{tile.id}.glb"
        box = write_mesh(folder / uri, mesh, rows, frame, job.source.class_name, double)
        results.append(TileResult(tile.id, box, uri if box is not None else ""))
    return results
