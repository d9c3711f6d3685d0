"""LOD1 blocks: footprints (with holes, multi-part) extruded from base to top, closed, flat-shaded."""

from __future__ import annotations

import numpy as np
import shapely

from cim.tiler.mesh import Mesh


def triangulate(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Constrained Delaunay triangles of polygons (holes respected, Z kept): ((t, 3, dims) vertices in the
    polygons' own ring orientation order as GEOS returns them, (t,) index of the polygon)."""
    tri = shapely.constrained_delaunay_triangles(polygons)
    parts, owner = shapely.get_parts(tri, return_index=True)
    dims = 3 if shapely.has_z(polygons).any() else 2
    coords = shapely.get_coordinates(parts, include_z=dims == 3)
    return coords.reshape(len(parts), 4, dims)[:, :3], owner


def counter_clockwise(tri: np.ndarray) -> np.ndarray:
    """Triangles (t, 3, ≥2) reordered to run counter-clockwise seen from above (+z)."""
    a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    out = tri.copy()
    flip = cross < 0
    out[flip, 1], out[flip, 2] = tri[flip, 2], tri[flip, 1]
    return out


def prisms(footprints: np.ndarray, base: np.ndarray, top: np.ndarray) -> Mesh:
    """Closed extrusions of polygons/multipolygons; feature = index into `footprints`."""
    base, top = np.asarray(base, float), np.asarray(top, float)
    parts, owner = shapely.get_parts(shapely.force_2d(footprints), return_index=True)
    keep = ~shapely.is_empty(parts) & (shapely.area(parts) > 0)
    parts, owner = shapely.orient_polygons(parts[keep], exterior_cw=False), owner[keep]
    if not len(parts):
        return Mesh.empty()
    return Mesh.concat([_walls(parts, owner, base, top), _caps(parts, owner, base, top)])


def _walls(parts: np.ndarray, owner: np.ndarray, base: np.ndarray, top: np.ndarray) -> Mesh:
    # Exterior rings run counter-clockwise and holes clockwise, so the right-hand side of every edge is
    # outside the solid.
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring_id = shapely.get_coordinates(rings, return_index=True)
    same = ring_id[:-1] == ring_id[1:]
    a, b = xy[:-1][same], xy[1:][same]
    obj = owner[ring_part[ring_id[:-1][same]]]
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    ok = (length > 0) & (top[obj] > base[obj])
    a, b, d, length, obj = a[ok], b[ok], d[ok], length[ok], obj[ok]
    n = len(a)
    z0, z1 = base[obj], top[obj]
    pos = np.empty((n, 4, 3))
    pos[:, 0, :2], pos[:, 0, 2] = a, z0
    pos[:, 1, :2], pos[:, 1, 2] = b, z0
    pos[:, 2, :2], pos[:, 2, 2] = b, z1
    pos[:, 3, :2], pos[:, 3, 2] = a, z1
    normal = np.column_stack([d[:, 1] / length, -d[:, 0] / length, np.zeros(n)])
    quad = np.arange(n, dtype=np.uint32)[:, None] * 4
    idx = np.concatenate([quad + np.array([0, 1, 2], np.uint32), quad + np.array([0, 2, 3], np.uint32)])
    return Mesh(pos.reshape(-1, 3), np.repeat(normal, 4, axis=0).astype(np.float32), idx,
                np.repeat(obj, 4))


def _caps(parts: np.ndarray, owner: np.ndarray, base: np.ndarray, top: np.ndarray) -> Mesh:
    tri, tri_part = triangulate(parts)
    tri = counter_clockwise(tri)
    obj = owner[tri_part]
    t = len(tri)
    roof = np.empty((t, 3, 3))
    roof[:, :, :2] = tri
    roof[:, :, 2] = top[obj][:, None]
    floor = roof[:, ::-1].copy()
    floor[:, :, 2] = base[obj][:, None]
    pos = np.concatenate([roof, floor]).reshape(-1, 3)
    normals = np.repeat(np.array([[0, 0, 1], [0, 0, -1]], np.float32), 3 * t, axis=0)
    return Mesh(pos, normals, np.arange(6 * t, dtype=np.uint32).reshape(-1, 3), np.tile(np.repeat(obj, 3), 2))
