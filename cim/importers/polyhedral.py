"""EWKB for PolyhedralSurfaceZ (shapely has no such type): the stored shape of LoD2 and BIM surfaces."""

from __future__ import annotations

import struct

import numpy as np

_Z = 0x80000000
_SRID = 0x20000000
_POLYGON = 3
_POLYHEDRAL = 15


def polyhedral_ewkb(surfaces: list[list[np.ndarray]], srid: int) -> str:
    """Hex EWKB of a PolyhedralSurfaceZ; each surface is a list of rings, each an (n, 3) array (open or
    closed)."""
    parts = [struct.pack("<BIII", 1, _POLYHEDRAL | _Z | _SRID, srid, len(surfaces))]
    for rings in surfaces:
        parts.append(struct.pack("<BII", 1, _POLYGON | _Z, len(rings)))
        for ring in rings:
            if not np.array_equal(ring[0], ring[-1]):
                ring = np.vstack([ring, ring[:1]])
            parts.append(struct.pack("<I", len(ring)))
            parts.append(np.ascontiguousarray(ring, dtype="<f8").tobytes())
    return b"".join(parts).hex()
