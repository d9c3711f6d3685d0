"""The terrain tileset: each DEM of the model as a grid-mesh pyramid (replacement refinement), every level
a 64×64-cell grid at half the resolution of the next."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from scipy.interpolate import RegularGridInterpolator

from cim.model.terrain import read_geotiff
from cim.tiler.content import write_mesh
from cim.tiler.georef import Frame, Geoid
from cim.tiler.shapes.terrain import grid_mesh, sample_lines
from cim.tiler.tileset import LayerIndex, TileRecord, write_layer_tileset
from cim.tiler.tree import Tile

GRID = 64  # cells per tile side at the tile's own resolution


def _residual(values: np.ndarray, window: tuple[int, int, int, int], stride: int) -> float:
    """Largest height difference (m) between the grid at `stride` and the grid at stride/2 in a window."""
    r0, c0, r1, c1 = window
    h, w = values.shape
    rows, cols = sample_lines(r0, r1, stride, h), sample_lines(c0, c1, stride, w)
    if len(rows) < 2 or len(cols) < 2:
        return 0.0
    fine_r, fine_c = sample_lines(r0, r1, max(stride // 2, 1), h), sample_lines(c0, c1, max(stride // 2, 1), w)
    coarse = RegularGridInterpolator((rows, cols), values[np.ix_(rows, cols)], bounds_error=False)
    rr, cc = np.meshgrid(fine_r, fine_c, indexing="ij")
    diff = np.abs(coarse(np.column_stack([rr.ravel(), cc.ravel()])) - values[rr, cc].ravel())
    return float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0


def _pyramid(values: np.ndarray, tile_id: str, window: tuple[int, int, int, int], stride: int,
             windows: dict[str, tuple[tuple[int, int, int, int], int]]) -> Tile:
    windows[tile_id] = (window, stride)
    tile = Tile(tile_id, np.zeros(0, np.int64), 0.0)
    if stride == 1:
        return tile
    r0, c0, r1, c1 = window
    half = GRID * stride // 2
    h, w = values.shape
    n = 0
    for rs in range(r0, min(r1, h), half):
        for cs in range(c0, min(c1, w), half):
            sub = (rs, cs, min(rs + half, r1, h), min(cs + half, c1, w))
            if np.isfinite(values[sub[0]:sub[2], sub[1]:sub[3]]).any():
                tile.children.append(_pyramid(values, f"{tile_id}-{n}", sub, stride // 2, windows))
            n += 1
    child_error = max((c.error for c in tile.children), default=0.0)
    tile.error = max(_residual(values, window, stride) + child_error, child_error * 1.001, 0.01)
    return tile


def build(conn: psycopg.Connection, srid: int, geoid: Geoid, folder: Path, key: str, full: bool,
          progress: Callable[[str, int, int], None] | None) -> tuple[int, int, int, int, float] | None:
    """Tile the model's terrain rasters into `folder`; (objects, tiles, written, removed, seconds)."""
    started = time.perf_counter()
    rows = conn.execute(
        "SELECT t.code, o.kind, o.name, o.base_z, o.top_z, o.attributes, md5(t.geotiff) "
        "FROM terrain_raster t JOIN city_object o USING (code) ORDER BY t.code").fetchall()
    if not rows:
        return (0, 0, 0, LayerIndex.clear(folder), 0.0) if folder.exists() else None
    index = None if full else LayerIndex.read(folder, key)
    rasters = {}
    for code, *_ in rows:
        (data,) = conn.execute("SELECT geotiff FROM terrain_raster WHERE code = %s", (code,)).fetchone()
        rasters[code] = read_geotiff(bytes(data))
    first_values, first_transform = rasters[rows[0][0]]
    h, w = first_values.shape
    cx, cy = first_transform @ (w / 2, h / 2)
    origin = index.origin if index is not None else [round(cx, 3), round(cy, 3),
                                                      round(float(np.nanmedian(first_values)), 3)]
    frame = Frame(np.array(origin), srid, geoid)
    root = Tile("0", np.zeros(0, np.int64), 0.0)
    windows: dict[str, tuple[tuple[int, int, int, int], int]] = {}
    owner: dict[str, int] = {}
    for i, (code, *_) in enumerate(rows):
        values, _ = rasters[code]
        levels = int(np.ceil(np.log2(max(max(values.shape) / GRID, 1))))
        sub = _pyramid(values, f"0-{i}", (0, 0, values.shape[0], values.shape[1]), 2 ** levels, windows)
        root.children.append(sub)
        for t in sub.walk():
            owner[t.id] = i
    root.error = max(c.error for c in root.children) * 1.001
    tiles = [t for t in root.walk() if t.id in windows]
    records: dict[str, TileRecord] = {}
    written = 0
    for n, tile in enumerate(tiles, 1):
        i = owner[tile.id]
        code, kind, name, base_z, top_z, attributes, md5 = rows[i]
        window, stride = windows[tile.id]
        digest = hashlib.sha1(f"{key}|{tile.id}|{origin}|{code}|{md5}|{window}|{stride}".encode()).hexdigest()
        old = index.unchanged(folder, tile.id, digest) if index is not None else None
        uri = f"t/{tile.id}.glb"
        if old is not None:
            records[tile.id] = old
        else:
            values, transform = rasters[code]
            mesh = grid_mesh(values, transform, window, stride)
            table = pd.DataFrame([{"code": code, "kind": kind, "name": name, "base_z": base_z, "top_z": top_z,
                                   "attributes": attributes, "segment": None, "node": None}])
            box = write_mesh(folder / uri, mesh, table, frame, "terrain", False)
            if box is None:  # no cell with four heights: a tile without content
                r0, c0, r1, c1 = window
                corners = np.array([transform @ (c, r) for r in (r0, r1) for c in (c0, c1)])
                z = float(np.nanmedian(values))
                local = frame.to_local(np.column_stack([corners, np.full(4, z)]))
                box, uri = (local.min(axis=0).tolist(), local.max(axis=0).tolist()), ""
            records[tile.id] = TileRecord(digest, box[0], box[1], uri)
            written += 1
        if progress:
            progress("terrain", n, len(tiles))
    if len(rows) == 1:  # one raster: its pyramid is the root
        root = root.children[0]
    index = LayerIndex(key, origin, records)
    removed = write_layer_tileset(folder, root, records, frame, index, root.error, geoid.description, "terrain",
                                  refine="REPLACE")
    return len(rows), len(tiles), written, removed, time.perf_counter() - started
