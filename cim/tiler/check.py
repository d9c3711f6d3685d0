"""Structural checks of written tilesets: geometric errors, nesting, content files, property tables and
bounding volumes against the vertices they hold. Used by the tests and `cim tile --check`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygltflib as gl
from pyproj import Transformer

from cim.tiler.glb import FEATURE_ID

TOLERANCE = 0.01  # m, for containment
_GEODETIC = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
_COMPONENTS = {gl.FLOAT: np.float32, gl.UNSIGNED_INT: np.uint32, gl.UNSIGNED_SHORT: np.uint16,
               gl.UNSIGNED_BYTE: np.uint8}
_WIDTH = {gl.SCALAR: 1, gl.VEC3: 3, gl.VEC4: 4}


@dataclass
class Content:
    """What a glb holds, in the tile's z-up frame (node translation applied)."""

    positions: np.ndarray  # (n, 3) float64
    feature: np.ndarray  # (n,) feature id per vertex
    feature_count: int
    rows: int  # of the property table
    table: dict[str, list]  # property table, decoded (STRING and FLOAT64 columns)


def _accessor(g: gl.GLTF2, blob: bytes, index: int) -> np.ndarray:
    acc = g.accessors[index]
    view = g.bufferViews[acc.bufferView]
    dtype = np.dtype(_COMPONENTS[acc.componentType])
    width = _WIDTH[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    data = np.frombuffer(blob, dtype, acc.count * width, start)
    return data.reshape(acc.count, width) if width > 1 else data


def _view(g: gl.GLTF2, blob: bytes, index: int) -> bytes:
    view = g.bufferViews[index]
    return blob[view.byteOffset or 0:(view.byteOffset or 0) + view.byteLength]


def read_content(path: Path) -> Content:
    g = gl.GLTF2.load_binary(str(path))
    blob = g.binary_blob()
    prim = g.meshes[0].primitives[0]
    pos = _accessor(g, blob, prim.attributes.POSITION).astype(np.float64)
    pos = pos + np.array(g.nodes[0].translation or [0, 0, 0])
    pos = np.column_stack([pos[:, 0], -pos[:, 2], pos[:, 1]])  # glTF y-up → 3D Tiles z-up
    feature = _accessor(g, blob, getattr(prim.attributes, FEATURE_ID)).astype(np.int64)
    ids = prim.extensions["EXT_mesh_features"]["featureIds"][0]
    meta = g.extensions["EXT_structural_metadata"]
    table = meta["propertyTables"][ids["propertyTable"]]
    schema = meta["schema"]["classes"][table["class"]]["properties"]
    decoded: dict[str, list] = {}
    for name, prop in table["properties"].items():
        raw = _view(g, blob, prop["values"])
        if schema[name]["type"] == "STRING":
            offsets = np.frombuffer(_view(g, blob, prop["stringOffsets"]), np.uint32)
            decoded[name] = [raw[a:b].decode() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        else:
            decoded[name] = np.frombuffer(raw, np.float64).tolist()
    return Content(pos, feature, ids["featureCount"], table["count"], decoded)


def _matrix(tile: dict) -> np.ndarray:
    return np.array(tile.get("transform", np.eye(4).T.ravel().tolist()), float).reshape(4, 4).T


def _corners(volume: dict, world: np.ndarray) -> np.ndarray:
    """The 8 corners of a box (in ECEF through `world`) or region (lon/lat/h → ECEF)."""
    if "box" in volume:
        b = np.array(volume["box"], float)
        c, axes = b[:3], b[3:].reshape(3, 3)
        signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T
        local = c + signs @ axes
        return (np.column_stack([local, np.ones(8)]) @ world.T)[:, :3]
    w, s, e, n, lo, hi = volume["region"]
    lon, lat, h = np.meshgrid([w, e], [s, n], [lo, hi], indexing="ij")
    x, y, z = _GEODETIC.transform(np.degrees(lon.ravel()), np.degrees(lat.ravel()), h.ravel(), direction="INVERSE")
    return np.column_stack([x, y, z])


def _inside(points: np.ndarray, volume: dict, world: np.ndarray) -> bool:
    if "box" in volume:
        b = np.array(volume["box"], float)
        c, axes = b[:3], b[3:].reshape(3, 3)
        local = (np.column_stack([points, np.ones(len(points))]) @ np.linalg.inv(world).T)[:, :3] - c
        # coordinates along each half-axis, in units of that axis, with a metric tolerance
        lengths = np.linalg.norm(axes, axis=1)
        coord = local @ (axes / lengths[:, None] ** 2).T
        return bool(np.all(np.abs(coord) <= 1 + TOLERANCE / lengths))
    w, s, e, n, lo, hi = volume["region"]
    lon, lat, h = _GEODETIC.transform(points[:, 0], points[:, 1], points[:, 2])
    lon, lat = np.radians(lon), np.radians(lat)
    eps = TOLERANCE / 6.4e6
    return bool(np.all((lon >= w - eps) & (lon <= e + eps) & (lat >= s - eps) & (lat <= n + eps)
                       & (h >= lo - TOLERANCE) & (h <= hi + TOLERANCE)))


def check_tileset(path: Path, read_glbs: bool = True) -> list[str]:
    """Problems found in a tileset.json and everything it references (external tilesets, glb contents)."""
    problems: list[str] = []
    checked: set[Path] = set()

    def tileset(file: Path, parent_world: np.ndarray, parent_volume: dict | None, parent_error: float) -> None:
        if file in checked:
            return
        checked.add(file)
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"{file}: unreadable ({exc})")
            return
        if data.get("asset", {}).get("version") != "1.1":
            problems.append(f"{file}: asset.version is not 1.1")
        if data["geometricError"] > parent_error + 1e-9:
            problems.append(f"{file}: geometricError {data['geometricError']} above its parent's {parent_error}")
        if data["root"]["geometricError"] > data["geometricError"] + 1e-9:
            problems.append(f"{file}: root geometricError above the tileset's")
        tile(file, data["root"], parent_world, parent_volume, data["geometricError"], "root")

    def tile(file: Path, t: dict, parent_world: np.ndarray, parent_volume: dict | None, parent_error: float,
             where: str) -> None:
        world = parent_world @ _matrix(t)
        volume = t["boundingVolume"]
        if t["geometricError"] > parent_error + 1e-9:
            problems.append(f"{file} {where}: geometricError {t['geometricError']} above its parent's {parent_error}")
        if parent_volume is not None and not _inside(_corners(volume, world), *parent_volume):
            problems.append(f"{file} {where}: bounding volume not inside its parent's")
        uri = t.get("content", {}).get("uri")
        if uri:
            target = file.parent / uri
            if not target.is_file():
                problems.append(f"{file} {where}: content {uri} does not exist")
            elif target.suffix == ".json":
                tileset(target, world, (volume, world), t["geometricError"])
            elif read_glbs:
                problems.extend(f"{target}: {p}" for p in check_content(target, volume, world))
        for i, child in enumerate(t.get("children", [])):
            tile(file, child, world, (volume, world), t["geometricError"], f"{where}/{i}")

    tileset(path, np.eye(4), None, float("inf"))
    return problems


def check_content(path: Path, volume: dict, world: np.ndarray) -> list[str]:
    """A glb against its tile: feature ids ↔ property table, vertices inside the bounding volume."""
    c = read_content(path)
    count = c.rows
    problems = []
    if c.feature_count != count:
        problems.append(f"featureCount {c.feature_count} but the property table has {count} rows")
    used = np.unique(c.feature)
    if len(used) != count or used.min() != 0 or used.max() != count - 1:
        problems.append(f"feature ids use {len(used)} distinct rows of {count}")
    codes = c.table.get("code", [])
    if len(codes) != count or len(set(codes)) != count or not all(codes):
        problems.append("codes missing or repeated in the property table")
    world_points = (np.column_stack([c.positions, np.ones(len(c.positions))]) @ world.T)[:, :3]
    if not _inside(world_points, volume, world):
        problems.append("vertices outside the tile's bounding volume")
    return problems
