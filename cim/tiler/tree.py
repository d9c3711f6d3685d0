"""Spatial tiling of objects: an aligned quadtree (octree where objects spread in depth) with a triangle
budget per tile; a parent keeps its most significant objects (additive refinement) and hands the rest
down, so coarse levels show the big things first."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_DEPTH = 16
PARENT_SHARE = 0.5  # of the triangle budget, filled by the most significant objects of a split tile


@dataclass
class Tile:
    id: str  # "0", "0-3", "0-3-1", ... (child number per level)
    members: np.ndarray  # indices of the objects drawn by this tile
    error: float  # geometric error: size of the largest object left to descendants (0 for leaves)
    children: list[Tile] = field(default_factory=list)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def aligned_cell(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float]:
    """A cube of power-of-two side holding [lo, hi], on a horizontal grid aligned to that side (so that adding
    data leaves unchanged areas in the same tiles) and starting at the whole metre below the lowest point."""
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError("aligned_cell: non-finite coordinates")
    side = 2.0 ** np.ceil(np.log2(max(float(np.max(hi - lo)), 1.0)))
    while True:
        origin = np.r_[np.floor(lo[:2] / side) * side, np.floor(lo[2])]
        if np.all(hi < origin + side):
            return origin, side
        side *= 2


def build_tree(centre: np.ndarray, size: np.ndarray, triangles: np.ndarray, order_key: np.ndarray,
               budget: int) -> Tile:
    """Tile tree of objects given their centres (n, 3), sizes (m), triangle counts and a tie-break key."""
    # Most significant first: larger size, then the key (the unified code) for a stable order.
    rank = np.lexsort((order_key, -size))
    position = np.empty(len(rank), np.int64)
    position[rank] = np.arange(len(rank))
    origin, side = aligned_cell(centre.min(axis=0), centre.max(axis=0))

    def node(idx: np.ndarray, cell_lo: np.ndarray, cell_side: float, tile_id: str, depth: int) -> Tile:
        idx = idx[np.argsort(position[idx])]
        tris = np.cumsum(triangles[idx])
        if tris[-1] <= budget or depth >= MAX_DEPTH:
            return Tile(tile_id, idx, 0.0)
        keep = max(1, int(np.searchsorted(tris, budget * PARENT_SHARE, side="right")))
        own, rest = idx[:keep], idx[keep:]
        tile = Tile(tile_id, own, float(size[rest[0]]))
        half = cell_side / 2
        c = centre[rest]
        # Split in depth too when the objects spread vertically over half the cell.
        split_z = np.ptp(c[:, 2]) > half
        bits = (c[:, 0] >= cell_lo[0] + half).astype(int) + 2 * (c[:, 1] >= cell_lo[1] + half)
        if split_z:
            bits += 4 * (c[:, 2] >= cell_lo[2] + half)
        for b in np.unique(bits):
            offset = np.array([b & 1, (b >> 1) & 1, (b >> 2) & 1]) * half
            tile.children.append(node(rest[bits == b], cell_lo + offset, half, f"{tile_id}-{b}", depth + 1))
        return tile

    return node(np.arange(len(centre)), origin, side, "0", 0)
