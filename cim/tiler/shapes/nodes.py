"""Network nodes as small closed solids (chambers, valves, hydrants, tanks, joints), all vertical prisms.

Every node type maps to a solid kind (a footprint polygon swept vertically) and a size rule giving its half extents
and bottom/top heights; the builder groups nodes by kind and builds each group in one go. Footprints are
axis-aligned unless a heading is given (e.g. a valve turned along its pipe).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cim.tiler.mesh import Mesh

# rule(z, size, bottom, top) -> (half extent along x, half extent along y, bottom z, top z), all (n,) arrays
Rule = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]]


def _chamber(radius_x: float, radius_y: float, margin: float) -> Rule:
    """A chamber from its bottom to its cover (z -/+ 1 m where unknown), reaching `margin` m beyond the pipe."""

    def rule(z, size, bottom, top):
        z0 = np.where(np.isfinite(bottom), bottom, z - 1.0)
        z1 = np.where(np.isfinite(top), top, z + 1.0)
        bad = ~(z1 > z0 + 0.01)
        z0, z1 = np.where(bad, z - 1.0, z0), np.where(bad, z + 1.0, z1)
        return np.maximum(radius_x, size / 2 + margin), np.maximum(radius_y, size / 2 + margin), z0, z1

    return rule


def _centred(length: float, width: float, tall: float, minimum: float) -> Rule:
    """A solid centred on the point, `length` x `width` x `tall` times the size, no edge below `minimum` m."""

    def rule(z, size, bottom, top):
        hx, hy, hz = (np.maximum(f * size, minimum) / 2 for f in (length, width, tall))
        return hx, hy, z - hz, z + hz

    return rule


def _fixed(length: float, width: float, tall: float) -> Rule:
    """A solid of fixed dimensions (metres) centred on the point."""

    def rule(z, size, bottom, top):
        full = np.ones_like(z)
        return full * length / 2, full * width / 2, z - tall / 2, z + tall / 2

    return rule


def _hydrant(z, size, bottom, top):
    """A 0.15 m radius post from the pipe up to 0.8 m above ground (1.5 m above the pipe where ground is unknown)."""
    z1 = np.where(np.isfinite(top), top + 0.8, z + 1.5)
    z1 = np.where(z1 > z + 0.1, z1, z + 1.5)
    return np.full_like(z, 0.15), np.full_like(z, 0.15), z, z1


# solid kind -> (sides of the footprint, smooth side normals)
KINDS: dict[str, tuple[int, bool]] = {
    "box": (4, False),
    "cylinder": (12, True),
    "large_cylinder": (24, True),
}

_JOINT = ("box", _centred(1.2, 1.2, 1.2, 0.2))

# node type -> (solid kind, size rule); other types are drawn as joints
NODE_SOLIDS: dict[str, tuple[str, Rule]] = {
    "manhole": ("cylinder", _chamber(0.7, 0.7, 0.2)),
    "inlet": ("box", _chamber(0.25, 0.15, 0.1)),
    "valve": ("box", _centred(1.6, 1.2, 1.2, 0.25)),
    "hydrant": ("cylinder", _hydrant),
    "meter": ("box", _centred(1.2, 1.2, 1.2, 0.4)),
    "tank": ("large_cylinder", _fixed(6.0, 6.0, 4.0)),
    "source": ("large_cylinder", _fixed(6.0, 6.0, 4.0)),
    "pump": ("box", _fixed(1.5, 1.5, 1.5)),
    "junction": _JOINT,
    "tee": _JOINT,
    "connection": _JOINT,
    "end": _JOINT,
    "outlet": _JOINT,
}


def node_solids(points: np.ndarray, node_type: np.ndarray, size: np.ndarray, bottom: np.ndarray, top: np.ndarray,
                heading: np.ndarray | None = None) -> Mesh:
    """Closed solids for network nodes by type (see NODE_SOLIDS), heading = radians from east of the x extent."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    n = len(points)
    if n == 0:
        return Mesh.empty()
    types = np.asarray(node_type, dtype=object).reshape(n)
    size = np.asarray(size, dtype=np.float64).reshape(n)
    size = np.where(np.isfinite(size) & (size > 0), size, 0.0)
    bottom = np.asarray(bottom, dtype=np.float64).reshape(n)
    top = np.asarray(top, dtype=np.float64).reshape(n)
    heading = np.zeros(n) if heading is None else np.nan_to_num(np.asarray(heading, dtype=np.float64).reshape(n))
    z = points[:, 2]

    kind = np.full(n, _JOINT[0], dtype=object)
    half = np.zeros((n, 2))
    z0, z1 = np.zeros(n), np.zeros(n)
    handled = np.zeros(n, dtype=bool)
    for name, (solid, rule) in [*NODE_SOLIDS.items(), ("", _JOINT)]:
        sel = ~handled & (types == name) if name else ~handled
        if not sel.any():
            continue
        hx, hy, lo, hi = rule(z[sel], size[sel], bottom[sel], top[sel])
        kind[sel], half[sel, 0], half[sel, 1], z0[sel], z1[sel] = solid, hx, hy, lo, hi
        handled |= sel

    ok = np.isfinite(points).all(axis=1)
    meshes = []
    for solid, (sides, smooth) in KINDS.items():
        sel = np.flatnonzero((kind == solid) & ok)
        if len(sel):
            meshes.append(prisms(points[sel, :2], half[sel], heading[sel], z0[sel], z1[sel], sides, smooth, sel))
    return meshes[0] if len(meshes) == 1 else Mesh.concat(meshes)


def prisms(centre: np.ndarray, half: np.ndarray, heading: np.ndarray, z0: np.ndarray, z1: np.ndarray, sides: int,
           smooth: bool, feature: np.ndarray) -> Mesh:
    """Vertical prisms over a regular `sides`-gon (4 = rectangle of half extents `half`) from z0 to z1."""
    n = len(centre)
    if sides == 4:
        unit = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    else:
        theta = 2 * np.pi * np.arange(sides) / sides
        unit = np.stack([np.cos(theta), np.sin(theta)], 1)
    cos, sin = np.cos(heading)[:, None], np.sin(heading)[:, None]
    local = unit[None] * half[:, None, :]  # (n, K, 2), counter-clockwise seen from above
    ring = np.stack([centre[:, None, 0] + cos * local[..., 0] - sin * local[..., 1],
                     centre[:, None, 1] + sin * local[..., 0] + cos * local[..., 1]], -1)
    zb = np.broadcast_to(z0[:, None, None], (n, sides, 1))
    zt = np.broadcast_to(z1[:, None, None], (n, sides, 1))
    bottom, top = np.concatenate([ring, zb], -1), np.concatenate([ring, zt], -1)

    k = np.arange(sides)
    nxt = (k + 1) % sides
    fan = np.stack([np.zeros(sides - 2, dtype=np.int64), k[1:-1], k[2:]], 1)
    blocks = [(bottom, np.broadcast_to([0.0, 0.0, -1.0], (n, sides, 3)), fan[:, [0, 2, 1]]),
              (top, np.broadcast_to([0.0, 0.0, 1.0], (n, sides, 3)), fan)]
    if smooth:  # one ring below, one above, radial normals (the footprint is a circle's polygon)
        radial = np.stack([cos * unit[None, :, 0] - sin * unit[None, :, 1],
                           sin * unit[None, :, 0] + cos * unit[None, :, 1], np.zeros((n, sides))], -1)
        side = np.concatenate([bottom, top], 1)
        tris = np.concatenate([np.stack([k, nxt, sides + nxt], 1), np.stack([k, sides + nxt, sides + k], 1)])
        blocks.append((side, np.concatenate([radial, radial], 1), tris))
    else:  # four vertices per side face: b_i, b_i+1, t_i+1, t_i with the face's outward normal
        side = np.stack([bottom, bottom[:, nxt], top[:, nxt], top], 2).reshape(n, 4 * sides, 3)
        edge = ring[:, nxt] - ring
        out = np.stack([edge[..., 1], -edge[..., 0], np.zeros((n, sides))], -1)
        out /= np.linalg.norm(out, axis=-1, keepdims=True)
        quad = np.array([[0, 1, 2], [0, 2, 3]])
        tris = (quad[None] + 4 * k[:, None, None]).reshape(-1, 3)
        blocks.append((side, np.repeat(out, 4, axis=1), tris))

    meshes = []
    for pos, nrm, tris in blocks:
        per = pos.shape[1]
        offsets = (np.arange(n, dtype=np.int64) * per)[:, None, None]
        meshes.append(Mesh(pos.reshape(-1, 3), np.ascontiguousarray(nrm, dtype=np.float32).reshape(-1, 3),
                           (tris[None] + offsets).reshape(-1, 3).astype(np.uint32),
                           np.repeat(np.asarray(feature, dtype=np.int64), per)))
    return Mesh.concat(meshes)
