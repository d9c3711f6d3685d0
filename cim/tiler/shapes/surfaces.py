"""Surface geometry as stored (TIN, PolyhedralSurface, (Multi)Polygon Z) → triangles, flat-shaded, and
2D ground features (roads, water) draped on the terrain."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import numpy as np
import shapely

from cim.tiler.mesh import Mesh, face_normals
from cim.tiler.shapes.prisms import counter_clockwise, triangulate

# ISO WKB type numbers (2D variants; Z adds 1000, EWKB flags are masked off).
POLYGON, MULTIPOLYGON, COLLECTION, POLYHEDRAL, TIN, TRIANGLE = 3, 6, 7, 15, 16, 17
TRIANGLE_Z_BYTES = 1 + 4 + 4 + 4 + 4 * 3 * 8


def _faces(wkb: bytes) -> list[list[np.ndarray]]:
    """The faces (list of rings, each (n, 3)) of one surface WKB geometry."""
    faces: list[list[np.ndarray]] = []

    def read(pos: int) -> int:
        order = "<" if wkb[pos] == 1 else ">"
        (gtype,) = struct.unpack_from(order + "I", wkb, pos + 1)
        has_z = gtype >= 1000 or bool(gtype & 0x80000000)
        base = (gtype & 0x0FFFFFFF) % 1000
        pos += 5
        if base in (POLYGON, TRIANGLE):
            (nrings,) = struct.unpack_from(order + "I", wkb, pos)
            pos += 4
            rings = []
            dims = 3 if has_z else 2
            for _ in range(nrings):
                (npts,) = struct.unpack_from(order + "I", wkb, pos)
                pos += 4
                xy = np.frombuffer(wkb, np.dtype(order + "f8"), npts * dims, pos).reshape(npts, dims)
                pos += npts * dims * 8
                rings.append(xy if dims == 3 else np.column_stack([xy, np.zeros(npts)]))
            faces.append(rings)
            return pos
        if base == TIN and order == "<":  # fixed-size triangles: one strided view, no loop
            (n,) = struct.unpack_from("<I", wkb, pos)
            pos += 4
            block = np.frombuffer(wkb, np.uint8, n * TRIANGLE_Z_BYTES, pos).reshape(n, TRIANGLE_Z_BYTES)
            pts = block[:, 13:].copy().view("<f8").reshape(n, 4, 3)
            faces.extend([[t] for t in pts])
            return pos + n * TRIANGLE_Z_BYTES
        if base in (MULTIPOLYGON, COLLECTION, POLYHEDRAL, TIN):
            (n,) = struct.unpack_from(order + "I", wkb, pos)
            pos += 4
            for _ in range(n):
                pos = read(pos)
            return pos
        raise ValueError(f"unsupported surface geometry type {gtype}")

    read(0)
    return faces


def _newell(ring: np.ndarray) -> np.ndarray:
    nxt = np.roll(ring, -1, axis=0)
    return np.array([np.sum((ring[:, 1] - nxt[:, 1]) * (ring[:, 2] + nxt[:, 2])),
                     np.sum((ring[:, 2] - nxt[:, 2]) * (ring[:, 0] + nxt[:, 0])),
                     np.sum((ring[:, 0] - nxt[:, 0]) * (ring[:, 1] + nxt[:, 1]))])


def surface_triangles(wkbs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Triangles ((t, 3, 3), wound like their source faces) and the index of the geometry each came from."""
    simple: list[np.ndarray] = []
    simple_owner: list[int] = []
    complex_faces: list[shapely.Polygon] = []
    complex_owner: list[int] = []
    complex_normal: list[np.ndarray] = []
    complex_axes: list[tuple[int, int, int]] = []
    for i, wkb in enumerate(wkbs):
        for rings in _faces(bytes(wkb)):
            ext = rings[0]
            if len(rings) == 1 and len(ext) == 4:
                simple.append(ext[:3])
                simple_owner.append(i)
                continue
            normal = _newell(ext)
            if not normal.any():
                continue
            # Project on the plane most facing the face; the dropped axis rides along as Z (GEOS keeps it).
            drop = int(np.argmax(np.abs(normal)))
            axes = tuple(a for a in range(3) if a != drop) + (drop,)
            complex_faces.append(shapely.Polygon(ext[:, axes], [r[:, axes] for r in rings[1:]]))
            complex_owner.append(i)
            complex_normal.append(normal)
            complex_axes.append(axes)
    tris = [np.array(simple).reshape(-1, 3, 3)]
    owners = [np.array(simple_owner, np.int64)]
    if complex_faces:
        tri, face = triangulate(np.array(complex_faces, dtype=object))
        axes = np.array(complex_axes)[face]
        back = np.argsort(axes, axis=1)  # inverse permutation per triangle
        tri = np.take_along_axis(tri, back[:, None, :], axis=2)
        # Match the winding of the source face.
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        flip = np.einsum("ij,ij->i", n, np.array(complex_normal)[face]) < 0
        tri[flip] = tri[flip][:, ::-1]
        tris.append(tri)
        owners.append(np.array(complex_owner, np.int64)[face])
    return np.concatenate(tris), np.concatenate(owners)


def surfaces(wkbs: Sequence[bytes]) -> Mesh:
    """Flat-shaded triangles of stored surfaces; feature = index into `wkbs`."""
    tri, owner = surface_triangles(wkbs)
    return _flat(tri, owner)


def _flat(tri: np.ndarray, owner: np.ndarray) -> Mesh:
    pos = tri.reshape(-1, 3)
    idx = np.arange(len(pos), dtype=np.uint32).reshape(-1, 3)
    normals = np.repeat(face_normals(pos, idx), 3, axis=0).astype(np.float32)
    return Mesh(pos, normals, idx, np.repeat(owner, 3))


def draped(polygons: np.ndarray, ground: Callable[[np.ndarray, np.ndarray], np.ndarray], fallback_z: np.ndarray,
           lift: float = 0.2, spacing: float = 10.0) -> Mesh:
    """Polygons laid on the ground `lift` metres up (vertices every `spacing` m on the outline), facing up;
    `fallback_z` where the ground is unknown. feature = index into `polygons`."""
    parts, owner = shapely.get_parts(shapely.force_2d(polygons), return_index=True)
    keep = ~shapely.is_empty(parts) & (shapely.area(parts) > 0)
    parts, owner = shapely.segmentize(parts[keep], spacing), owner[keep]
    if not len(parts):
        return Mesh.empty()
    tri, part = triangulate(parts)
    tri = counter_clockwise(tri)
    obj = owner[part]
    xy = tri.reshape(-1, 2)
    z = ground(xy[:, 0], xy[:, 1])
    z = np.where(np.isnan(z), np.repeat(fallback_z[obj], 3), z) + lift
    pos = np.column_stack([xy, z])
    idx = np.arange(len(pos), dtype=np.uint32).reshape(-1, 3)
    normals = np.repeat(face_normals(pos, idx), 3, axis=0).astype(np.float32)
    return Mesh(pos, normals, idx, np.repeat(obj, 3))
