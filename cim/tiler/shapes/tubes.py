"""Pipes as closed tubes swept along their centrelines: circular or box sections, mitred joints, flat end caps.

All lines are processed together: their vertices are concatenated with a line index and every per-vertex quantity
(directions, section frames, mitre planes, rings) is one numpy array over all of them.

Section frames: a segment with unit direction t has the upright frame u = horizontal, to the right of t (t x z,
normalised), v = u x t (upwards for a sloping pipe). A vertical segment (riser) has no horizontal right-hand side: it
takes u from the nearest non-vertical segment of the same line (before it, else after it), else east.

Joints are mitred: one ring on the bisector plane of the two segments, shared by both. The incoming section moved along
its axis onto that plane meets the outgoing one exactly when the outgoing frame is the incoming one reflected in the
plane. Circular tubes therefore turn each segment's frame by the accumulated twist (parallel transport): every joint is
exact. Box tubes keep upright frames (turned over by half a turn where needed, which is the same rectangle); that is
exact for bends in a horizontal or a vertical plane; for a bend that turns and climbs at once the joint ring is the
mean of the two projections (sides slightly twisted, no gap), and where the sections would be twisted by more than
15 degrees (a box coming out of a riser in another direction than it went in) the line is cut instead: the first tube
ends and the second starts at that point, each closed with caps.

Bends sharper than 120 degrees would make the mitre ring more than twice as wide as the pipe: the line is cut there
too.
"""

from __future__ import annotations

import numpy as np

from cim.tiler.mesh import Mesh

_DUPLICATE = 1e-6  # metres: consecutive centreline points closer than this (on every axis) are one point
_VERTICAL = 1e-3  # a segment whose horizontal direction component is below this is vertical
_SHARP_COS = -0.5  # cosine of the turning angle beyond which a line is cut instead of mitred (120 degrees)
_BOX_TWIST = np.radians(15)  # a box joint whose sections are turned more than this about the pipe is cut


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


class _Section:
    """A section profile: corner points (unit), ring vertices (corner + normal) and the quads between them."""

    def __init__(self, corners: np.ndarray, ring_corner: np.ndarray, ring_normal: np.ndarray, quads: np.ndarray):
        self.corners = corners  # (C, 2) in (u, v), counter-clockwise from u to v
        self.ring_corner = ring_corner  # (K,) corner of each ring vertex
        self.ring_normal = ring_normal  # (K, 2) normal of each ring vertex in (u, v)
        self.quads = quads  # (Q, 2) ring vertices (a, b) bounding one side quad, b following a from u to v
        k = len(ring_corner)
        a, b = quads[:, 0], quads[:, 1]
        # ring at the segment start is 0..K-1, at its end K..2K-1; outward with (A_a, B_a, B_b), (A_a, B_b, A_b)
        self.side_tris = np.concatenate([np.stack([a, k + a, k + b], 1), np.stack([a, k + b, b], 1)])
        c = len(corners)
        i = np.arange(1, c - 1)
        self.start_cap = np.stack([np.zeros_like(i), i, i + 1], 1)  # normal -t
        self.end_cap = self.start_cap[:, [0, 2, 1]]  # normal +t


def _circle(sides: int) -> _Section:
    theta = 2 * np.pi * np.arange(sides) / sides
    corners = np.stack([np.cos(theta), np.sin(theta)], 1)
    idx = np.arange(sides)
    return _Section(corners, idx, corners, np.stack([idx, (idx + 1) % sides], 1))


def _box() -> _Section:
    # corners at 45, 135, 225, 315 degrees; faces top (+v), left (-u), bottom (-v), right (+u); scaled by (w, h)
    corners = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
    faces = np.arange(4)
    ring_corner = np.stack([faces, (faces + 1) % 4], 1).ravel()
    face_normal = np.array([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])
    ring_normal = np.repeat(face_normal, 2, axis=0)
    quads = np.stack([2 * faces, 2 * faces + 1], 1)
    return _Section(corners, ring_corner, ring_normal, quads)


def _template(tris: np.ndarray, count: int, stride: int) -> np.ndarray:
    """`tris` repeated for `count` blocks of `stride` vertices each."""
    offsets = (np.arange(count, dtype=np.uint32) * np.uint32(stride))[:, None, None]
    return (tris.astype(np.uint32)[None] + offsets).reshape(-1, 3)


def tubes(lines: list[np.ndarray], shape: np.ndarray, width: np.ndarray, height: np.ndarray, sides: int = 8) -> Mesh:
    """Closed tubes along pipe centrelines (circular of diameter width, or box width x height), feature = line index."""
    n_lines = len(lines)
    if n_lines == 0:
        return Mesh.empty()
    arrays = [np.asarray(line, dtype=np.float64).reshape(-1, 3) for line in lines]
    lens = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=n_lines)
    pts = np.concatenate(arrays) if lens.sum() else np.zeros((0, 3))
    lid = np.repeat(np.arange(n_lines), lens)
    width = np.asarray(width, dtype=np.float64).reshape(n_lines)
    height = np.asarray(height, dtype=np.float64).reshape(n_lines)
    is_box = np.asarray(shape, dtype=object).reshape(n_lines) == "box"
    height = np.where(np.isfinite(height) & (height > 0), height, width)  # a box without a height is square

    # drop lines without a usable width or with non-finite coordinates, then consecutive duplicate points
    bad = ~(np.isfinite(width) & (width > 0))
    bad[lid[~np.isfinite(pts).all(axis=1)]] = True
    keep = ~bad[lid]
    keep[1:] &= ~((lid[1:] == lid[:-1]) & (np.abs(pts[1:] - pts[:-1]).max(axis=1) <= _DUPLICATE))
    pts, lid = pts[keep], lid[keep]
    keep = np.bincount(lid, minlength=n_lines)[lid] >= 2
    pts, lid = pts[keep], lid[keep]
    if len(pts) == 0:
        return Mesh.empty()

    start = np.r_[True, lid[1:] != lid[:-1]]
    end = np.r_[start[1:], True]
    joint = ~start & ~end
    t_in, t_out = _directions(pts, start, end)
    u_ref, v_ref = _frames(t_out, start, end)  # upright frame of the segment leaving each point

    # twist at each joint: the angle, about the outgoing direction, from the outgoing upright frame to the incoming
    # one reflected in the mitre plane (the frame in which the incoming section meets the outgoing one exactly)
    m = _unit(t_in + t_out)
    u_prev = np.roll(u_ref, 1, axis=0)
    reflected = u_prev - 2 * np.einsum("ij,ij->i", u_prev, m)[:, None] * m
    twist = np.arctan2(np.einsum("ij,ij->i", reflected, v_ref), np.einsum("ij,ij->i", reflected, u_ref))
    sharp = joint & (np.einsum("ij,ij->i", t_in, t_out) < _SHARP_COS)
    twist = np.where(joint & ~sharp, twist, 0.0)
    box_pt = is_box[lid]
    # circles: turn each segment's frame by the twists so far (parallel transport), so every joint ring is exact;
    # boxes: stay upright, only turned over (half a turn, the same rectangle) where that brings the twist under 90
    # degrees; a box joint still twisted more than _BOX_TWIST is cut rather than mitred
    flip = box_pt & (np.abs(twist) > np.pi / 2)
    rest = np.where(flip, twist - np.copysign(np.pi, twist), twist)
    cut = sharp | (box_pt & (np.abs(rest) > _BOX_TWIST))
    turn = np.where(box_pt, np.pi * (_running_sum(flip.astype(np.float64), start) % 2),
                    _running_sum(np.where(cut, 0.0, twist), start))
    cos, sin = np.cos(turn)[:, None], np.sin(turn)[:, None]
    u_out, v_out = cos * u_ref + sin * v_ref, cos * v_ref - sin * u_ref
    u_in = np.where(start[:, None], u_out, np.roll(u_out, 1, axis=0))
    v_in = np.where(start[:, None], v_out, np.roll(v_out, 1, axis=0))
    u_out = np.where(end[:, None], u_in, u_out)
    v_out = np.where(end[:, None], v_in, v_out)
    arrays = [pts, lid, t_in, t_out, u_in, v_in, u_out, v_out]
    if cut.any():  # the cut point ends one tube (incoming section) and starts the next (outgoing section)
        rep = 1 + cut.astype(np.int64)
        first = np.cumsum(rep) - rep
        start = np.zeros(rep.sum(), dtype=bool)
        start[first[np.r_[True, lid[1:] != lid[:-1]]]] = True
        start[first[cut] + 1] = True
        end = np.r_[start[1:], True]
        pts, lid, t_in, t_out, u_in, v_in, u_out, v_out = (np.repeat(x, rep, axis=0) for x in arrays)
        for outgoing, incoming in ((t_out, t_in), (u_out, u_in), (v_out, v_in)):
            outgoing[end] = incoming[end]
            incoming[start] = outgoing[start]
    frames = (pts, lid, start, end, t_in, t_out, u_in, v_in, u_out, v_out)

    meshes = []
    for box in (False, True):
        sel = is_box[lid] == box
        if not sel.any():
            continue
        section = _box() if box else _circle(sides)
        sx = np.where(is_box, width, width / 2)  # corner scale along u
        sy = np.where(is_box, height, width / 2)  # corner scale along v
        meshes.append(_sweep(section, *(a[sel] for a in frames), sx, sy))
    return meshes[0] if len(meshes) == 1 else Mesh.concat(meshes)


def _running_sum(x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sum of x restarting at every start."""
    total = np.cumsum(x)
    first = np.maximum.accumulate(np.where(start, np.arange(len(x)), 0))
    return total - total[first] + x[first]


def _directions(pts: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction of the segment arriving at and leaving each point (the other one at the line's ends)."""
    t_out = np.zeros_like(pts)
    t_out[:-1] = _unit(pts[1:] - pts[:-1])
    t_in = np.roll(t_out, 1, axis=0)
    t_out = np.where(end[:, None], t_in, t_out)
    t_in = np.where(start[:, None], t_out, t_in)
    return t_in, t_out


def _frames(t: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Section axes (u horizontal right, v = u x t) of the segment leaving each point (garbage at line ends)."""
    n = len(t)
    horizontal = np.hypot(t[:, 0], t[:, 1])
    u = np.stack([t[:, 1], -t[:, 0], np.zeros(n)], 1) / np.where(horizontal > 0, horizontal, 1.0)[:, None]
    vertical = horizontal < _VERTICAL
    if vertical.any():
        ok = ~end & ~vertical
        piece = np.cumsum(start) - 1
        idx = np.arange(n)
        before = np.maximum.accumulate(np.where(ok, idx, -1))
        after = np.minimum.accumulate(np.where(ok, idx, n)[::-1])[::-1]
        before_ok = (before >= 0) & (piece[np.maximum(before, 0)] == piece)
        after_ok = (after < n) & (piece[np.minimum(after, n - 1)] == piece)
        ref = np.where(before_ok[:, None], u[np.maximum(before, 0)],
                       np.where(after_ok[:, None], u[np.minimum(after, n - 1)], np.array([1.0, 0.0, 0.0])))
        ref = _unit(ref - np.einsum("ij,ij->i", ref, t)[:, None] * t)
        u = np.where(vertical[:, None], ref, u)
    return u, np.cross(u, t)


def _sweep(section: _Section, pts: np.ndarray, lid: np.ndarray, start: np.ndarray, end: np.ndarray,
           t_in: np.ndarray, t_out: np.ndarray, u_in: np.ndarray, v_in: np.ndarray, u_out: np.ndarray,
           v_out: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> Mesh:
    """Rings on the mitre planes of all points, then side quads per segment and caps per line end."""
    m = _unit(t_in + t_out)
    ca = section.corners[:, 0][None, :] * sx[lid][:, None]  # (N, C)
    cb = section.corners[:, 1][None, :] * sy[lid][:, None]

    def project(i: np.ndarray | slice, u: np.ndarray, v: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Section corners of frame (u, v, t) at the points i, moved along t onto their mitre planes."""
        off = ca[i][:, :, None] * u[i][:, None, :] + cb[i][:, :, None] * v[i][:, None, :]
        along = np.einsum("ncj,nj->nc", off, m[i]) / np.einsum("nj,nj->n", t[i], m[i])[:, None]
        return off - along[:, :, None] * t[i][:, None, :]

    ring = project(slice(None), u_out, v_out, t_out)
    joint = np.flatnonzero(~start & ~end)
    if len(joint):
        ring[joint] = 0.5 * (ring[joint] + project(joint, u_in, v_in, t_in))
    ring += pts[:, None, :]

    k, c = len(section.ring_corner), len(section.corners)
    seg, first, last = np.flatnonzero(~end), np.flatnonzero(start), np.flatnonzero(end)
    ns, n_side, n_cap = len(seg), len(seg) * 2 * k, len(first) * c
    positions = np.empty((n_side + 2 * n_cap, 3))
    normals = np.empty((n_side + 2 * n_cap, 3), dtype=np.float32)
    side_pos = positions[:n_side].reshape(ns, 2, k, 3)
    side_pos[:, 0] = ring[seg][:, section.ring_corner]
    side_pos[:, 1] = ring[seg + 1][:, section.ring_corner]
    side_nrm = normals[:n_side].reshape(ns, 2, k, 3)
    side_nrm[:, 0] = (section.ring_normal[None, :, 0, None] * u_out[seg][:, None, :]
                      + section.ring_normal[None, :, 1, None] * v_out[seg][:, None, :])
    side_nrm[:, 1] = side_nrm[:, 0]
    positions[n_side:n_side + n_cap] = ring[first].reshape(-1, 3)
    positions[n_side + n_cap:] = ring[last].reshape(-1, 3)
    normals[n_side:n_side + n_cap] = np.repeat(-t_out[first], c, axis=0)
    normals[n_side + n_cap:] = np.repeat(t_in[last], c, axis=0)
    indices = np.concatenate([
        _template(section.side_tris, ns, 2 * k),
        _template(section.start_cap, len(first), c) + np.uint32(n_side),
        _template(section.end_cap, len(last), c) + np.uint32(n_side + n_cap),
    ])
    feature = np.concatenate([np.repeat(lid[seg], 2 * k), np.repeat(lid[first], c), np.repeat(lid[last], c)])
    # u, v, t are orthonormal and the section normals unit: the normals need no normalisation
    return Mesh(positions, normals, indices, feature.astype(np.int64))
