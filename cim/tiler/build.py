"""`cim tile`: the model's layers → one 3D Tiles 1.1 tileset each plus a root tileset, rewriting only the
tiles whose objects changed (each layer keeps a tile ↔ object index next to its tileset)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cim.config import settings
from cim.db.server import conninfo
from cim.model.store import Model
from cim.tiler import ground as ground_map
from cim.tiler import terrain_tiles
from cim.tiler.content import TMP_SUFFIX
from cim.tiler.georef import Frame, Geoid, find_geoid
from cim.tiler.parallel import Executor, executor
from cim.tiler.sources import TERRAIN, TilesetSource, discover, plan_sql
from cim.tiler.tileset import LayerIndex, TileRecord, write_layer_tileset, write_root_tileset
from cim.tiler.tree import build_tree
from cim.tiler.work import TUBE_SIDES, LayerJob, TileWork, tile_mesh

__all__ = ["build_tiles", "describe", "settings_key", "tile_mesh"]

TILER_VERSION = "1"
CHUNK_OBJECTS = 5000  # objects per task: one query and a few tiles, well above a task's fixed cost
Progress = Callable[[str, int, int], None]


@dataclass
class LayerReport:
    name: str
    objects: int
    tiles: int
    written: int
    removed: int
    seconds: float


@dataclass
class TileReport:
    out: Path
    heights: str
    layers: list[LayerReport] = field(default_factory=list)
    ground: ground_map.GroundReport | None = None  # the viewer's heights grid and base map (`<out>/ground/`)
    ground_note: str = ""  # why there is no ground, when it was asked for
    executor: str = ""  # where the tiles' content was written

    @property
    def objects(self) -> int:
        return sum(r.objects for r in self.layers)

    @property
    def tiles(self) -> int:
        return sum(r.tiles for r in self.layers)

    @property
    def tiles_written(self) -> int:
        return sum(r.written for r in self.layers)


def settings_key(geoid: Geoid) -> str:
    """What every tile depends on besides its objects: a change rewrites all tiles."""
    cfg = settings()
    return f"{TILER_VERSION}|{geoid.description}|{cfg.tile_max_triangles}|{TUBE_SIDES}"


def build_tiles(model: Model, out: Path, layers: list[str] | None = None, full: bool = False,
                progress: Progress | None = None, scheduler: str | None = None, workers: int | None = None,
                chunk_objects: int = CHUNK_OBJECTS) -> TileReport:
    """Tile the model into `out`; `layers` limits it to those tilesets, `full` rewrites every tile.

    The tiles' content is written by chunks of about `chunk_objects` objects, on the Dask cluster whose
    scheduler is at `scheduler` (tcp://host:port; its workers must reach the model's database and `out`), else
    on `workers` local processes (default: every core; 1 = this process). The output is the same either way."""
    geoid = find_geoid()
    report = TileReport(out, geoid.description)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(executor(scheduler, workers), conninfo(model.url), chunk_objects)
    report.executor = run.executor.name
    try:
        _build_all(model, out, layers, full, progress, geoid, report, run)
    finally:
        run.executor.close()
    return report


def _build_all(model: Model, out: Path, layers: list[str] | None, full: bool, progress: Progress | None,
               geoid: Geoid, report: TileReport, run: _Run) -> None:
    with model.connect() as conn:
        sources = discover(conn, layers)
        if layers is None or TERRAIN in layers:
            rep = terrain_tiles.build(conn, model.info.srid, geoid, out / TERRAIN, settings_key(geoid), full,
                                      progress)
            if rep is not None:
                report.layers.append(LayerReport(TERRAIN, *rep))
        for source in sources:
            started = time.perf_counter()
            objects, tiles, written, removed = _build_layer(conn, model.info.srid, geoid, source, out / source.name,
                                                            full, run, progress)
            report.layers.append(LayerReport(source.name, objects, tiles, written, removed,
                                             time.perf_counter() - started))
        keep = {TERRAIN} | {s.name for s in discover(conn)}
        # The viewer's ground follows the terrain (and the water, roads and buildings drawn on its base map);
        # a layer named "ground" would own that folder, so it then has none.
        if layers is None or TERRAIN in layers:
            if ground_map.GROUND in keep:
                report.ground_note = f"not written (a layer is named {ground_map.GROUND!r})"
            else:
                report.ground = ground_map.build(conn, model.info.srid, geoid, out / ground_map.GROUND, full,
                                                 progress)
                report.ground_note = "" if report.ground else "none (the model has no DEM)"
    write_root_tileset(out, keep, geoid.description)


def _triangles(shape: np.ndarray, npts: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Rough triangle count per object, for the per-tile budget."""
    est = np.select(
        [shape == "prism", shape == "surface", shape == "tube", shape == "node"],
        [4 * npts, np.maximum(npts // 3, 1), (npts - 1) * 2 * TUBE_SIDES + 2 * TUBE_SIDES, np.full_like(npts, 48)],
        default=4 * npts + 2 * (size // 10).astype(np.int64))
    return np.maximum(est, 1)


def chunks(tiles: list[TileWork], objects: int) -> list[list[TileWork]]:
    """Consecutive tiles of the tree walk (neighbours in space) grouped into chunks of about `objects` objects:
    one task each, reading only its objects from PostGIS."""
    out: list[list[TileWork]] = []
    size = objects
    for tile in tiles:
        if size >= objects:
            out.append([])
            size = 0
        out[-1].append(tile)
        size += len(tile.codes)
    return out


@dataclass
class _Run:
    """One build's way of running chunks."""

    executor: Executor
    dsn: str
    chunk_objects: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


def _build_layer(conn, srid: int, geoid: Geoid, source: TilesetSource, folder: Path, full: bool,
                 run: _Run, progress: Progress | None) -> tuple[int, int, int, int]:
    sql, params = plan_sql(source)
    plan = pd.DataFrame(conn.execute(sql, params).fetchall(),
                        columns=["code", "shape", "x0", "y0", "z0", "x1", "y1", "z1", "npts", "size", "fp"])
    conn.commit()  # no snapshot held open while the tasks run (minutes, for a city)
    key = settings_key(geoid)
    index = None if full else LayerIndex.read(folder, key)
    plan = plan[np.isfinite(plan[["x0", "y0", "x1", "y1"]].to_numpy(float)).all(axis=1)].reset_index(drop=True)
    if plan.empty:  # (empty geometries have no place to be drawn)
        return 0, 0, 0, LayerIndex.clear(folder)
    lo = np.array(plan[["x0", "y0", "z0"]], dtype=float)
    hi = np.array(plan[["x1", "y1", "z1"]], dtype=float)
    lo[:, 2] = np.where(np.isnan(lo[:, 2]), 0.0, lo[:, 2])
    hi[:, 2] = np.where(np.isnan(hi[:, 2]), lo[:, 2], hi[:, 2])
    centre = (lo + hi) / 2
    origin = np.array(index.origin) if index is not None else np.round(
        np.array([*(lo.min(0)[:2] + hi.max(0)[:2]) / 2, np.median(centre[:, 2])]), 3)
    frame = Frame(origin, srid, geoid)
    size = plan["size"].to_numpy(float)
    tris = _triangles(plan["shape"].to_numpy(), plan["npts"].to_numpy(np.int64), size)
    codes = plan["code"].to_numpy()
    root = build_tree(centre, size, tris, codes, settings().tile_max_triangles)
    fingerprints = (plan["code"] + ":" + plan["fp"]).to_numpy()
    tiles = list(root.walk())
    records: dict[str, TileRecord] = {}
    digests: dict[str, str] = {}
    todo: list[TileWork] = []
    for tile in tiles:
        digest = hashlib.sha1("|".join([key, tile.id, *map(str, origin),
                                        *sorted(fingerprints[tile.members])]).encode()).hexdigest()
        old = index.unchanged(folder, tile.id, digest) if index is not None else None
        if old is not None:
            records[tile.id] = old
        else:
            digests[tile.id] = digest
            todo.append(TileWork(tile.id, tuple(codes[tile.members].tolist())))
    done = len(records)
    if progress:
        progress(source.name, done, len(tiles))
    job = LayerJob(run.dsn, run.id, srid, geoid, source, str(folder), tuple(float(v) for v in origin))
    members = {tile.id: tile.members for tile in tiles}
    for chunk, results in run.executor.run(job, chunks(todo, run.chunk_objects)):
        for r in results:
            box, uri = r.box, r.uri
            if box is None:  # nothing drawable: the tile only groups its children, around its objects
                m = members[r.id]
                local = frame.to_local(np.concatenate([lo[m], hi[m]]))
                box = (local.min(axis=0).tolist(), local.max(axis=0).tolist())
            records[r.id] = TileRecord(digests[r.id], box[0], box[1], uri)
        done += len(chunk)
        if progress:
            progress(source.name, done, len(tiles))
    # A task killed while writing leaves its temporary file; every task has finished now.
    for tmp in (folder / "t").glob(f"*{TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
    records = {tile.id: records[tile.id] for tile in tiles}  # (the index lists tiles in walk order)
    removed = write_layer_tileset(folder, root, records, frame, LayerIndex(key, list(map(float, origin)), records),
                                  size.max(), geoid.description, source.name)
    return len(plan), len(tiles), len(todo), removed


def describe(report: TileReport) -> list[str]:
    """One line per tileset and the height conversion used."""
    lines = [f"{r.name}: {r.objects} objects, {r.tiles} tiles, rewrote {r.written}"
             + (f", removed {r.removed}" if r.removed else "") + f" ({r.seconds:.1f} s)" for r in report.layers]
    g = report.ground
    if g is not None:
        lines.append(f"ground: {g.grid[0]}×{g.grid[1]} heights, {g.image[0]}×{g.image[1]} base map, "
                     + ("rewrote it" if g.written else "unchanged") + f" ({g.seconds:.1f} s)")
    elif report.ground_note:
        lines.append(f"ground: {report.ground_note}")
    lines.append(f"heights: {report.heights}")
    return lines
