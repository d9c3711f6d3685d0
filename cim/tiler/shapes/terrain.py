"""Terrain as a regular triangulated grid over a window of a DEM, sampled every `stride` cells.

A window (row0, col0, row1, col1) samples the cell centres of rows row0, row0 + stride, ... and of row row1 itself
(clipped to the raster), likewise for columns, so windows [a, b) and [b, c) both sample row b: neighbouring tiles
share their boundary vertices exactly (when they use the same stride). The normal at a sample depends only on the
raster, its cell and the stride (central differences over +/- stride cells, clipped to the raster, one-sided next to
nodata), so shared boundary vertices get identical normals too.
"""

from __future__ import annotations

import numpy as np
from affine import Affine

from cim.tiler.mesh import Mesh


def sample_lines(start: int, stop: int, stride: int, size: int) -> np.ndarray:
    """Indices start, start + stride, ... < stop, then stop itself, all clipped to [0, size)."""
    start, stop = max(start, 0), min(stop, size - 1)
    if stop < start:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.r_[np.arange(start, stop, stride, dtype=np.int64), stop])


def grid_mesh(values: np.ndarray, transform: Affine, window: tuple[int, int, int, int], stride: int) -> Mesh:
    """Triangulated DEM window (cell centres every `stride` cells, NaN corners dropped), normals up, feature 0."""
    values = np.asarray(values, dtype=np.float64)
    height, width = values.shape
    stride = max(int(stride), 1)
    row0, col0, row1, col1 = (int(v) for v in window)
    rows = sample_lines(row0, row1, stride, height)
    cols = sample_lines(col0, col1, stride, width)
    if len(rows) < 2 or len(cols) < 2:
        return Mesh.empty()
    z = values[np.ix_(rows, cols)]
    valid = np.isfinite(z)
    n_r, n_c = z.shape

    # two triangles per cell along the same diagonal (top-left to bottom-right), counter-clockwise seen from above
    v = np.arange(n_r * n_c, dtype=np.int64).reshape(n_r, n_c)
    tl, tr, bl, br = v[:-1, :-1], v[:-1, 1:], v[1:, :-1], v[1:, 1:]
    ok_tl, ok_tr, ok_bl, ok_br = valid[:-1, :-1], valid[:-1, 1:], valid[1:, :-1], valid[1:, 1:]
    first = np.stack([tl, bl, br], -1)[ok_tl & ok_bl & ok_br]
    second = np.stack([tl, br, tr], -1)[ok_tl & ok_br & ok_tr]
    tris = np.concatenate([first, second])
    a, b, _, d, e, _ = transform[:6]
    if a * e - b * d > 0:  # rows run northwards (or the grid is mirrored): the same order is clockwise from above
        tris = tris[:, [0, 2, 1]]
    if len(tris) == 0:
        return Mesh.empty()

    used = np.zeros(n_r * n_c, dtype=bool)
    used[tris.ravel()] = True
    keep = np.flatnonzero(used)
    remap = np.cumsum(used) - 1
    r, c = rows[keep // n_c], cols[keep % n_c]
    x, y = transform @ (c + 0.5, r + 0.5)
    positions = np.stack([x, y, z.ravel()[keep]], 1)
    return Mesh(positions, _normals(values, r, c, stride, transform), remap[tris].astype(np.uint32),
                np.zeros(len(keep), dtype=np.int64))


def _slope(values: np.ndarray, r: np.ndarray, c: np.ndarray, dr: int, dc: int, stride: int) -> np.ndarray:
    """dz per cell along (dr, dc) at cells (r, c): central over +/- stride, one-sided beside nodata/edges, else 0."""
    height, width = values.shape
    here = values[r, c]
    rp, cp = np.minimum(r + dr * stride, height - 1), np.minimum(c + dc * stride, width - 1)
    rm, cm = np.maximum(r - dr * stride, 0), np.maximum(c - dc * stride, 0)
    ahead, behind = values[rp, cp], values[rm, cm]
    dist_ahead = (rp - r) + (cp - c)
    dist_behind = (r - rm) + (c - cm)
    ok_ahead = np.isfinite(ahead) & (dist_ahead > 0)
    ok_behind = np.isfinite(behind) & (dist_behind > 0)
    top = np.where(ok_ahead, ahead, here)
    low = np.where(ok_behind, behind, here)
    span = np.where(ok_ahead, dist_ahead, 0) + np.where(ok_behind, dist_behind, 0)
    return np.where(span > 0, (top - low) / np.where(span > 0, span, 1), 0.0)


def _normals(values: np.ndarray, r: np.ndarray, c: np.ndarray, stride: int, transform: Affine) -> np.ndarray:
    """Unit upward normals of the height field at cells (r, c)."""
    dz_dc = _slope(values, r, c, 0, 1, stride)
    dz_dr = _slope(values, r, c, 1, 0, stride)
    # (x, y) = J (col, row): the gradient in x, y solves J^T g = (dz/dcol, dz/drow)
    a, b, _, d, e, _ = transform[:6]
    det = a * e - b * d
    gx = (e * dz_dc - d * dz_dr) / det
    gy = (-b * dz_dc + a * dz_dr) / det
    n = np.stack([-gx, -gy, np.ones_like(gx)], 1)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return n.astype(np.float32)
