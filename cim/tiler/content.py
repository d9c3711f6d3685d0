"""A tile's mesh → its glb file: ENU coordinates around the content centre, colours and property table."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from cim.tiler.georef import Frame
from cim.tiler.glb import write_glb
from cim.tiler.mesh import Mesh
from cim.tiler.style import colours
from cim.tiler.table import columns

TMP_SUFFIX = ".tmp"


def to_gltf_axes(v: np.ndarray) -> np.ndarray:
    """East-north-up → glTF's y-up axes (x, z, -y); 3D Tiles turns them back (gltfUpAxis Y)."""
    return np.column_stack([v[:, 0], v[:, 2], -v[:, 1]])


def write_mesh(path: Path, mesh: Mesh, rows: pd.DataFrame, frame: Frame, class_name: str,
               double: bool) -> tuple[list[float], list[float]] | None:
    """Write a tile's glb (vertices float32 around the content's centre); its ENU bounding box. Rows that
    drew nothing (degenerate geometry) leave the property table; None (and no file) when none drew."""
    path.unlink(missing_ok=True)
    if not mesh.triangle_count:
        return None
    used, feature = np.unique(mesh.feature, return_inverse=True)
    rows = rows.iloc[used].reset_index(drop=True)
    mesh = Mesh(mesh.positions, mesh.normals, mesh.indices, feature)
    enu = frame.to_local(mesh.positions)
    lo, hi = enu.min(axis=0), enu.max(axis=0)
    centre = np.round((lo + hi) / 2, 3)
    data = write_glb(to_gltf_axes(enu - centre), to_gltf_axes(frame.local_normals(mesh.normals)),
                     colours(rows)[mesh.feature], mesh.feature, mesh.indices, to_gltf_axes(centre[None])[0],
                     class_name, columns(rows), double)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own in the same folder: two runs of the same tile (a task redone after its worker was lost)
    # never write into one temporary file, and a reader only ever sees a whole glb.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return [float(v) for v in lo], [float(v) for v in hi]
