"""The triangle mesh every shape builder returns, in storage-CRS coordinates, one feature id per vertex."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Mesh:
    positions: np.ndarray  # (n, 3) float64: storage-CRS x, y and orthometric z
    normals: np.ndarray  # (n, 3) float32 unit vectors in the same axes (z up)
    indices: np.ndarray  # (m, 3) uint32 triangles, counter-clockwise seen from the side the normal points to
    feature: np.ndarray  # (n,) int64: row of the object (in the builder's input) each vertex belongs to

    @classmethod
    def empty(cls) -> Mesh:
        return cls(np.zeros((0, 3)), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32),
                   np.zeros(0, np.int64))

    @property
    def triangle_count(self) -> int:
        return len(self.indices)

    @classmethod
    def concat(cls, meshes: list[Mesh]) -> Mesh:
        meshes = [m for m in meshes if len(m.positions)]
        if not meshes:
            return cls.empty()
        offsets = np.cumsum([0] + [len(m.positions) for m in meshes[:-1]])
        return cls(
            np.concatenate([m.positions for m in meshes]),
            np.concatenate([m.normals for m in meshes]).astype(np.float32),
            np.concatenate([m.indices + np.uint32(o) for m, o in zip(meshes, offsets, strict=True)]).astype(np.uint32),
            np.concatenate([m.feature for m in meshes]),
        )


def face_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Unit normal of each triangle (right-hand rule); degenerate triangles get (0, 0, 1)."""
    a, b, c = (positions[indices[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    length = np.linalg.norm(n, axis=1)
    ok = length > 0
    n[ok] /= length[ok, None]
    n[~ok] = (0.0, 0.0, 1.0)
    return n
