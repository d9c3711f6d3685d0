"""Triangulate IFC elements on all cores (ifcopenshell.geom.iterator) into numpy meshes, and write meshes
as EWKB TIN Z without a Python loop per triangle."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import ifcopenshell
import ifcopenshell.geom
import numpy as np

from cim.importers.polyhedral import polyhedral_ewkb


@dataclass
class Meshes:
    """All triangulated elements of a model, packed: world vertices (metres) and triangles per element."""

    guids: list[str]
    vertices: np.ndarray  # (n, 3) float64, world coordinates of the model in metres
    vertex_offsets: np.ndarray  # (elements + 1,) start of each element's vertices
    triangles: np.ndarray  # (m, 3) int64, indices into its element's vertices
    triangle_offsets: np.ndarray  # (elements + 1,)


def iterator_settings() -> ifcopenshell.geom.settings:
    """Settings of the import's iterator: local coordinates, welded vertices, no normals."""
    settings = ifcopenshell.geom.settings()
    # Local coordinates + the placement matrix: the matrix is applied below with numpy, which is faster
    # than ifcopenshell's world-coordinate mode and keeps full float64 precision.
    settings.set("use-world-coords", False)
    settings.set("weld-vertices", True)
    settings.set("no-normals", True)
    return settings


def triangulate(f: ifcopenshell.file, entities: list[ifcopenshell.entity_instance],
                progress: Callable[[int], None] | None = None, cores: int | None = None) -> Meshes:
    """Triangulate these entities with the multi-core iterator; entities without a body are left out."""
    guids, verts, tris = [], [], []
    if entities:
        it = ifcopenshell.geom.iterator(iterator_settings(), f, cores or os.cpu_count() or 1, include=entities)
        if it.initialize():
            while True:
                shape = it.get()
                geometry = shape.geometry
                local = np.frombuffer(geometry.verts_buffer, dtype=np.float64).reshape(-1, 3)
                faces = np.frombuffer(geometry.faces_buffer, dtype=np.int32).reshape(-1, 3)
                if len(faces):
                    matrix = np.frombuffer(shape.transformation_buffer, dtype=np.float64).reshape((4, 4), order="F")
                    verts.append(local @ matrix[:3, :3].T + matrix[:3, 3])
                    tris.append(faces.astype(np.int64))
                    guids.append(shape.guid)
                if progress:
                    progress(1)
                if not it.next():
                    break
    return Meshes(
        guids,
        np.concatenate(verts) if verts else np.empty((0, 3)),
        np.concatenate([[0], np.cumsum([len(v) for v in verts])]).astype(np.int64),
        np.concatenate(tris) if tris else np.empty((0, 3), dtype=np.int64),
        np.concatenate([[0], np.cumsum([len(t) for t in tris])]).astype(np.int64),
    )


_TRIANGLE = np.dtype([("order", "u1"), ("type", "<u4"), ("rings", "<u4"), ("points", "<u4"),
                      ("xyz", "<f8", (4, 3))])
_TIN, _TRIANGLE_TYPE, _Z, _SRID = 16, 17, 0x80000000, 0x20000000


def tin_ewkb(vertices: np.ndarray, triangles: np.ndarray, srid: int) -> str:
    """Hex EWKB of a TIN Z: each triangle a closed ring of four points."""
    body = np.empty(len(triangles), dtype=_TRIANGLE)
    body["order"], body["type"], body["rings"], body["points"] = 1, _TRIANGLE_TYPE | _Z, 1, 4
    corners = vertices[triangles]
    body["xyz"][:, :3] = corners
    body["xyz"][:, 3] = corners[:, 0]
    head = np.array([(1, _TIN | _Z | _SRID, srid, len(triangles))],
                    dtype=[("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("n", "<u4")])
    return (head.tobytes() + body.tobytes()).hex()


# The six faces of a box, outward, as indices into its corners numbered by (x, y, z) bits.
_BOX_FACES = ((0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (1, 3, 7, 5), (0, 4, 6, 2))
_CORNER_BITS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=bool)


def box_ewkb(lo: np.ndarray, hi: np.ndarray, srid: int) -> str:
    """A closed axis-aligned box as a PolyhedralSurfaceZ (the extent of a storey, building or site)."""
    corners = np.where(_CORNER_BITS, hi, lo)
    return polyhedral_ewkb([[corners[list(face)]] for face in _BOX_FACES], srid)
