"""`cim tile`: the model's layers → one 3D Tiles 1.1 tileset each plus a root tileset, rewriting only the
tiles whose objects changed (each layer keeps a tile ↔ object index next to its tileset)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from cim.config import settings
from cim.model.store import Model
from cim.model.terrain import Ground
from cim.tiler import ground as ground_map
from cim.tiler import terrain_tiles
from cim.tiler.content import write_mesh
from cim.tiler.georef import Frame, Geoid, find_geoid
from cim.tiler.mesh import Mesh
from cim.tiler.shapes.nodes import node_solids
from cim.tiler.shapes.prisms import prisms
from cim.tiler.shapes.surfaces import draped, surfaces
from cim.tiler.shapes.tubes import tubes
from cim.tiler.sources import TERRAIN, TilesetSource, discover, fetch_sql, plan_sql
from cim.tiler.tileset import LayerIndex, TileRecord, write_layer_tileset, write_root_tileset
from cim.tiler.tree import build_tree

TILER_VERSION = "1"
TUBE_SIDES = 8
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
                progress: Progress | None = None) -> TileReport:
    """Tile the model into `out`; `layers` limits it to those tilesets, `full` rewrites every tile."""
    geoid = find_geoid()
    report = TileReport(out, geoid.description)
    out.mkdir(parents=True, exist_ok=True)
    with model.connect() as conn:
        sources = discover(conn, layers)
        if layers is None or TERRAIN in layers:
            rep = terrain_tiles.build(conn, model.info.srid, geoid, out / TERRAIN, settings_key(geoid), full,
                                      progress)
            if rep is not None:
                report.layers.append(LayerReport(TERRAIN, *rep))
        ground = None
        for source in sources:
            started = time.perf_counter()
            if ground is None:
                ground = Ground.load(conn)
            objects, tiles, written, removed = _build_layer(conn, model.info.srid, geoid, source, out / source.name,
                                                            full, ground, progress)
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
    return report


def _triangles(shape: np.ndarray, npts: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Rough triangle count per object, for the per-tile budget."""
    est = np.select(
        [shape == "prism", shape == "surface", shape == "tube", shape == "node"],
        [4 * npts, np.maximum(npts // 3, 1), (npts - 1) * 2 * TUBE_SIDES + 2 * TUBE_SIDES, np.full_like(npts, 48)],
        default=4 * npts + 2 * (size // 10).astype(np.int64))
    return np.maximum(est, 1)


def _build_layer(conn, srid: int, geoid: Geoid, source: TilesetSource, folder: Path, full: bool,
                 ground: Ground, progress: Progress | None) -> tuple[int, int, int, int]:
    sql, params = plan_sql(source)
    plan = pd.DataFrame(conn.execute(sql, params).fetchall(),
                        columns=["code", "shape", "x0", "y0", "z0", "x1", "y1", "z1", "npts", "size", "fp"])
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
    records: dict[str, TileRecord] = {}
    tiles = list(root.walk())
    written = 0
    sql = fetch_sql(source)
    for n, tile in enumerate(tiles, 1):
        digest = hashlib.sha1("|".join([key, tile.id, *map(str, origin),
                                        *sorted(fingerprints[tile.members])]).encode()).hexdigest()
        old = index.unchanged(folder, tile.id, digest) if index is not None else None
        uri = f"t/{tile.id}.glb"
        if old is not None:
            records[tile.id] = old
        else:
            rows = pd.DataFrame(conn.execute(sql, (list(codes[tile.members]),)).fetchall(),
                                columns=["code", "shape", "kind", "name", "base_z", "top_z", "attributes", "wkb",
                                         "segment", "node", "node_pipe_mm"])
            rows = rows.set_index("code", drop=False).loc[codes[tile.members]].reset_index(drop=True)
            box = _write_tile(folder / uri, rows, frame, source.class_name, ground)
            if box is None:  # nothing drawable: the tile only groups its children, around its objects
                corners = np.concatenate([lo[tile.members], hi[tile.members]])
                local = frame.to_local(corners)
                box, uri = (local.min(axis=0).tolist(), local.max(axis=0).tolist()), ""
            records[tile.id] = TileRecord(digest, box[0], box[1], uri)
            written += 1
        if progress:
            progress(source.name, n, len(tiles))
    removed = write_layer_tileset(folder, root, records, frame, LayerIndex(key, list(map(float, origin)), records),
                                  size.max(), geoid.description, source.name)
    return len(plan), len(tiles), written, removed


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


def _write_tile(path: Path, rows: pd.DataFrame, frame: Frame, class_name: str,
                ground: Ground) -> tuple[list[float], list[float]] | None:
    mesh, double = tile_mesh(rows, ground)
    return write_mesh(path, mesh, rows, frame, class_name, double)


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
