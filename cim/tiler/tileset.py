"""tileset.json files: one per layer (root `transform` = ENU→ECEF, boxes in that frame) and the root
tileset that references them as external tilesets; plus each layer's tile ↔ object index."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cim.tiler.georef import Frame
from cim.tiler.tree import Tile

INDEX = "index.json"
MIN_HALF = 0.005  # m: boxes of flat content keep a volume


@dataclass
class TileRecord:
    hash: str  # digest of the tile's objects (code + fingerprint) and the tiler settings
    lo: list[float]  # content bounding box in the layer's ENU frame
    hi: list[float]
    uri: str


@dataclass
class LayerIndex:
    key: str
    origin: list[float]  # frame origin in the storage CRS: kept so that unchanged tiles stay valid
    tiles: dict[str, TileRecord]
    region: list[float] | None = None
    geometric_error: float = 0.0

    @classmethod
    def read(cls, folder: Path, key: str | None = None) -> LayerIndex | None:
        """The layer's index; None when missing, unreadable or written under other settings than `key`."""
        try:
            raw = json.loads((folder / INDEX).read_text())
            index = cls(raw["key"], raw["origin"], {k: TileRecord(**v) for k, v in raw["tiles"].items()},
                        raw.get("region"), raw.get("geometric_error", 0.0))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return index if key is None or index.key == key else None

    def unchanged(self, folder: Path, tile_id: str, digest: str) -> TileRecord | None:
        """The tile's record when its objects are the same and its file is still there."""
        old = self.tiles.get(tile_id)
        if old is not None and old.hash == digest and (not old.uri or (folder / old.uri).is_file()):
            return old
        return None

    def write(self, folder: Path) -> None:
        write_json(folder / INDEX, {"key": self.key, "origin": self.origin, "region": self.region,
                                    "geometric_error": self.geometric_error,
                                    "tiles": {k: asdict(v) for k, v in self.tiles.items()}})

    @staticmethod
    def clear(folder: Path) -> int:
        """Remove a layer's tiles (it has no objects any more); how many glb files went."""
        if not folder.exists():
            return 0
        count = sum(1 for _ in folder.rglob("*.glb"))
        shutil.rmtree(folder)
        return count


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def box(lo: np.ndarray, hi: np.ndarray) -> list[float]:
    """3D Tiles `box`: centre and half-axes along the frame's axes."""
    c = (lo + hi) / 2
    h = np.maximum((hi - lo) / 2, MIN_HALF)
    return [float(c[0]), float(c[1]), float(c[2]), float(h[0]), 0.0, 0.0, 0.0, float(h[1]), 0.0, 0.0, 0.0,
            float(h[2])]


def _tile_json(tile: Tile, records: dict[str, TileRecord], refine: str) -> tuple[dict, np.ndarray, np.ndarray]:
    rec = records.get(tile.id)  # a tile without content only groups its children
    lo, hi = (np.array(rec.lo), np.array(rec.hi)) if rec else (np.full(3, np.inf), np.full(3, -np.inf))
    children = []
    for child in tile.children:
        cj, clo, chi = _tile_json(child, records, refine)
        children.append(cj)
        lo, hi = np.minimum(lo, clo), np.maximum(hi, chi)
    node = {"boundingVolume": {"box": box(lo, hi)}, "geometricError": tile.error, "refine": refine}
    if rec and rec.uri:
        node["content"] = {"uri": rec.uri}
    if children:
        node["children"] = children
    return node, lo, hi


def write_layer_tileset(folder: Path, root: Tile, records: dict[str, TileRecord], frame: Frame,
                        index: LayerIndex, max_size: float, heights: str, name: str, refine: str = "ADD") -> int:
    """Write `folder`/tileset.json and the index; remove tiles no longer in the tree. Returns how many."""
    node, lo, hi = _tile_json(root, records, refine)
    node["transform"] = frame.matrix()
    # What is lost when the layer is not drawn at all: the layer itself, not its biggest object. (A pipe network
    # with 0.5 m here would vanish from CesiumJS a hundred metres away.)
    extent = float(np.linalg.norm(hi - lo)) if np.isfinite(lo).all() and np.isfinite(hi).all() else 0.0
    error = float(max(max_size, root.error, extent))
    write_json(folder / "tileset.json", {
        "asset": {"version": "1.1", "generator": "cim", "extras": {"heights": heights}},
        "extras": {"layer": name, "srid": frame.srid, "origin": index.origin, "longitude": frame.lonlat[0],
                   "latitude": frame.lonlat[1]},
        "geometricError": error, "root": node})
    index.region = frame.to_region(lo, hi)
    index.geometric_error = error
    index.write(folder)
    keep = {folder / r.uri for r in records.values() if r.uri}
    removed = 0
    for glb in (folder / "t").glob("*.glb"):
        if glb not in keep:
            glb.unlink()
            removed += 1
    return removed


def write_root_tileset(out: Path, names: set[str], heights: str) -> None:
    """tiles/tileset.json: every layer tileset on disk that the model still has, as external tilesets."""
    for folder in out.iterdir():
        if folder.is_dir() and (folder / INDEX).is_file() and folder.name not in names:
            shutil.rmtree(folder)  # a layer the model no longer has
    children = []
    for name in sorted(names):
        index = LayerIndex.read(out / name)
        if index is None or index.region is None:
            continue
        children.append({"boundingVolume": {"region": index.region}, "geometricError": index.geometric_error,
                         "refine": "ADD", "content": {"uri": f"{name}/tileset.json"}})
    if not children:
        return
    regions = np.array([c["boundingVolume"]["region"] for c in children])
    region = [*regions[:, :2].min(0), *regions[:, 2:4].max(0), regions[:, 4].min(), regions[:, 5].max()]
    error = max(c["geometricError"] for c in children)
    write_json(out / "tileset.json", {
        "asset": {"version": "1.1", "generator": "cim", "extras": {"heights": heights}},
        "geometricError": error,
        "root": {"boundingVolume": {"region": [float(v) for v in region]}, "geometricError": error,
                 "refine": "ADD", "children": children}})
