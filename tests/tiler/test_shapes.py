"""Mesh builders: tubes, node solids and terrain grids (pure numpy, no database)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from affine import Affine

from cim.tiler.mesh import Mesh, face_normals
from cim.tiler.shapes.nodes import NODE_SOLIDS, node_solids
from cim.tiler.shapes.terrain import grid_mesh
from cim.tiler.shapes.tubes import tubes


def check_normals(mesh: Mesh) -> None:
    """Unit normals that agree with the winding of every triangle they belong to."""
    assert mesh.normals.dtype == np.float32 and mesh.indices.dtype == np.uint32 and mesh.feature.dtype == np.int64
    assert len(mesh.positions) == len(mesh.normals) == len(mesh.feature)
    np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-5)
    a, b, c = (mesh.positions[mesh.indices[:, i]] for i in range(3))
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    assert (area > 1e-12).all(), "degenerate triangles"
    dots = np.einsum("tij,tj->ti", mesh.normals[mesh.indices], face_normals(mesh.positions, mesh.indices))
    assert dots.min() > 0


def solid(mesh: Mesh, feature: int | None = None) -> trimesh.Trimesh:
    """The (merged) trimesh of a mesh or of one feature's part of it, checked closed and outward."""
    if feature is not None:
        mine = mesh.feature == feature
        tris = mesh.indices[mine[mesh.indices].all(axis=1)]
        assert mine[mesh.indices].any(axis=1).sum() == len(tris), "triangle mixes features"
        mesh = Mesh(mesh.positions[mine], mesh.normals[mine], (np.cumsum(mine) - 1)[tris], mesh.feature[mine])
    tm = trimesh.Trimesh(mesh.positions, mesh.indices, process=True)
    assert tm.is_watertight
    assert tm.volume > 0
    return tm


def axis_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    t = (b - a) / np.linalg.norm(b - a)
    rel = p - a
    return np.linalg.norm(rel - np.outer(rel @ t, t), axis=1)


def polygon_area(sides: int, r: float) -> float:
    return sides / 2 * r * r * np.sin(2 * np.pi / sides)


# --- tubes ---------------------------------------------------------------------------------------------------------


def test_straight_circular_volume_and_counts():
    line = np.array([[100.0, 200.0, 5.0], [110.0, 203.0, 4.0]])
    length = np.linalg.norm(line[1] - line[0])
    mesh = tubes([line], np.array(["circular"]), np.array([0.6]), np.array([np.nan]), sides=8)
    check_normals(mesh)
    assert (len(mesh.positions), mesh.triangle_count) == (4 * 8, 2 * 8 + 2 * 6)
    volume = solid(mesh).volume
    assert volume == pytest.approx(polygon_area(8, 0.3) * length, rel=1e-9)
    assert 0.89 < volume / (np.pi * 0.3**2 * length) < 1.0
    np.testing.assert_allclose(axis_distance(mesh.positions, *line), 0.3, atol=1e-9)
    side = np.abs(mesh.normals @ ((line[1] - line[0]) / length)) < 1e-6
    np.testing.assert_allclose(np.linalg.norm(mesh.normals[side], axis=1), 1, atol=1e-6)  # radial (smooth)
    assert len(np.unique(np.round(mesh.normals[side], 5), axis=0)) == 8


@pytest.mark.parametrize("bend", [
    [[0, 0, 1], [10, 0, 1], [14, 9, 1]],  # turn in a horizontal plane
    [[0, 0, 1], [10, 0, 1], [17, 0, 6]],  # slope change in a vertical plane
    [[0, 0, 0], [3, 4, 0], [3, 4, 6]],  # into a riser
    [[0, 0, 0], [10, 0, 0], [14, 9, 4]],  # turning and climbing at once
])
def test_mitred_bend_keeps_radius(bend):
    line = np.array(bend, dtype=float)
    r = 0.25
    mesh = tubes([line], np.array(["circular"]), np.array([2 * r]), np.array([np.nan]), sides=12)
    check_normals(mesh)
    solid(mesh)
    d0, d1 = axis_distance(mesh.positions, line[0], line[1]), axis_distance(mesh.positions, line[1], line[2])
    assert (np.minimum(np.abs(d0 - r), np.abs(d1 - r)) < 0.02).all()
    t0, t1 = (line[1] - line[0]) / np.linalg.norm(line[1] - line[0]), (line[2] - line[1]) / np.linalg.norm(
        line[2] - line[1])
    m = (t0 + t1) / np.linalg.norm(t0 + t1)
    joint = np.abs((mesh.positions - line[1]) @ m) < 1e-9
    assert joint.sum() == 2 * 12  # the ring ending one segment and the ring starting the next
    assert (np.abs(d0[joint] - r) < 0.02).all() and (np.abs(d1[joint] - r) < 0.02).all()
    # measured perpendicular to each segment away from the joint: the side vertices of its far ring
    for end, dist in ((line[0], d0), (line[2], d1)):
        far = np.linalg.norm(mesh.positions - end, axis=1) < r + 1e-6
        assert far.sum() == 2 * 12  # side ring and cap
        np.testing.assert_allclose(dist[far], r, atol=0.02)


def test_winding_bend_and_multiple_lines():
    lines = [
        np.array([[0, 0, 0], [10, 0, 0], [10, 10, 2], [10, 10, 10], [10, 10, 10], [20, 12, 10]], dtype=float),
        np.array([[50, 0, 0], [50, 0, 0]], dtype=float),  # collapses: nothing
        np.array([[0, 50, 0], [0, 50, -4]], dtype=float),  # riser, downwards
        np.array([[0, 80, 0], [10, 80, 0], [1, 81, 0]], dtype=float),  # hairpin: cut into two closed tubes
    ]
    lines.append(np.array([[0, 0, 0], [10, 0, 0], [14, 9, 4], [20, 9, 4], [25, 9, 0]], dtype=float))
    for shape in ("circular", "box"):
        mesh = tubes(lines, [shape] * 5, np.array([0.5, 0.3, 0.4, 0.3, 0.5]), np.array([0.4, 0.2, 0.3, 0.2, 0.3]))
        check_normals(mesh)
        assert set(np.unique(mesh.feature)) == {0, 2, 3, 4}
        for i in (0, 2, 4):
            part = mesh.positions[mesh.feature == i]
            assert np.all(part.min(axis=0) > lines[i].min(axis=0) - 0.6)
            assert np.all(part.max(axis=0) < lines[i].max(axis=0) + 0.6)
            solid(mesh, i)
        solid(mesh, 3)
        assert (mesh.feature == 3).sum() == (64 if shape == "circular" else 48)  # two tubes of one segment


def test_box_section_is_width_by_height_and_upright():
    line = np.array([[0.0, 0.0, 10.0], [30.0, 40.0, 8.0]])
    w, h = 0.8, 0.5
    mesh = tubes([line], np.array(["box"]), np.array([w]), np.array([h]))
    check_normals(mesh)
    assert (len(mesh.positions), mesh.triangle_count) == (24, 12)
    t = (line[1] - line[0]) / np.linalg.norm(line[1] - line[0])
    u = np.cross(t, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u)
    v = np.cross(u, t)
    rel = mesh.positions - line[0]
    np.testing.assert_allclose(np.abs(rel @ u), w / 2, atol=1e-9)
    np.testing.assert_allclose(np.abs(rel @ v), h / 2, atol=1e-9)
    assert solid(mesh).volume == pytest.approx(w * h * np.linalg.norm(line[1] - line[0]), rel=1e-9)
    side = np.abs(mesh.normals @ t) < 1e-6
    vertical = np.abs(mesh.normals[side, 2]) < 1e-6  # the left and right faces stay vertical
    assert vertical.sum() == 8
    np.testing.assert_allclose(np.abs(mesh.normals[side][~vertical, 2]), abs(v[2]), atol=1e-6)


def test_box_riser_between_horizontal_pipes():
    line = np.array([[0, 0, 0], [5, 0, 0], [5, 0, 3], [5, 6, 3]], dtype=float)
    w, h = 0.6, 0.4
    mesh = tubes([line], np.array(["box"]), np.array([w]), np.array([h]))
    check_normals(mesh)
    # mitred into the riser (bend in a vertical plane); out of it the section would turn 90 degrees: cut there
    assert (len(mesh.positions), mesh.triangle_count) == (3 * 16 + 4 * 4, 3 * 8 + 4 * 2)
    assert solid(mesh).volume == pytest.approx(w * h * 14, rel=1e-9)
    riser_top = mesh.positions[(mesh.positions[:, 2] == 3) & (mesh.normals[:, 2] == 1)]  # its end cap
    assert len(riser_top) == 4
    np.testing.assert_allclose(np.abs(riser_top[:, :2] - [5, 0]), np.tile([h / 2, w / 2], (4, 1)), atol=1e-12)
    elbow = mesh.positions[np.abs(mesh.positions[:, 0] + mesh.positions[:, 2] - 5) < 1e-9]  # on the mitre plane
    assert len(elbow) == 2 * 8
    np.testing.assert_allclose(np.abs(elbow[:, 1]), w / 2)


def test_vertical_riser_circular():
    line = np.array([[1.0, 2.0, -3.0], [1.0, 2.0, 0.5]])
    mesh = tubes([line], ["circular"], [0.2], [np.nan], sides=8)
    check_normals(mesh)
    assert solid(mesh).volume == pytest.approx(polygon_area(8, 0.1) * 3.5, rel=1e-9)
    np.testing.assert_allclose(np.hypot(mesh.positions[:, 0] - 1, mesh.positions[:, 1] - 2), 0.1, atol=1e-9)


def test_many_pipes_vectorised():
    rng = np.random.default_rng(1)
    n = 2000
    a = rng.uniform(0, 100, (n, 3))
    lines = list(np.stack([a, a + rng.normal(0, 5, (n, 3))], 1))
    shape = np.where(rng.random(n) < 0.5, "box", "circular")
    mesh = tubes(lines, shape, rng.uniform(0.1, 1, n), rng.uniform(0.1, 1, n))
    check_normals(mesh)
    counts = np.bincount(mesh.feature, minlength=n)
    np.testing.assert_array_equal(counts, np.where(shape == "box", 24, 32))


# --- node solids ---------------------------------------------------------------------------------------------------


def test_node_solids_closed_and_sized():
    types = [*NODE_SOLIDS, "something-else"]
    n = len(types)
    points = np.c_[np.arange(n) * 20.0, np.zeros(n), np.full(n, 5.0)]
    bottom = np.full(n, 2.0)
    top = np.full(n, 7.0)
    top[types.index("inlet")] = np.nan
    bottom[types.index("inlet")] = np.nan
    heading = np.zeros(n)
    heading[types.index("valve")] = 0.5
    mesh = node_solids(points, np.array(types), np.full(n, 0.3), bottom, top, heading=heading)
    check_normals(mesh)
    assert set(mesh.feature) == set(range(n))
    bounds = {t: solid(mesh, i).bounds for i, t in enumerate(types)}
    assert bounds["manhole"][:, 2] == pytest.approx([2.0, 7.0])
    assert bounds["manhole"][1, 0] - points[0, 0] == pytest.approx(0.7)
    assert bounds["inlet"][:, 2] == pytest.approx([4.0, 6.0])
    assert bounds["hydrant"][:, 2] == pytest.approx([5.0, 7.8])
    assert bounds["tank"][:, 2] == pytest.approx([3.0, 7.0])
    assert np.ptp(bounds["junction"], axis=0) == pytest.approx([0.36] * 3)
    assert np.ptp(bounds["something-else"], axis=0) == pytest.approx([0.36] * 3)
    hx, hy = 0.24, 0.18
    assert np.ptp(bounds["valve"][:, 0]) == pytest.approx(2 * (hx * np.cos(0.5) + hy * np.sin(0.5)))


def test_node_solid_dimensions_unturned():
    points = np.array([[0.0, 0.0, 1.0], [10.0, 0.0, 1.0], [20.0, 0, 1.0]])
    mesh = node_solids(points, np.array(["valve", "valve", "hydrant"]), np.array([0.5, 0.05, 0.2]),
                       np.full(3, np.nan), np.full(3, np.nan))
    check_normals(mesh)
    assert np.ptp(solid(mesh, 0).bounds, axis=0) == pytest.approx([0.8, 0.6, 0.6])
    assert np.ptp(solid(mesh, 1).bounds, axis=0) == pytest.approx([0.25, 0.25, 0.25])
    assert solid(mesh, 0).volume == pytest.approx(0.8 * 0.6 * 0.6)
    assert solid(mesh, 2).bounds[:, 2] == pytest.approx([1.0, 2.5])


# --- terrain -------------------------------------------------------------------------------------------------------


@pytest.fixture
def dem() -> tuple[np.ndarray, Affine]:
    rows, cols = np.mgrid[0:40, 0:50]
    values = 20 + 0.1 * cols - 0.05 * rows + np.sin(cols / 4.0)
    values[10, 12] = np.nan
    return values, Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 3000000.0)


def test_grid_z_at_cell_centres_and_winding(dem):
    values, transform = dem
    mesh = grid_mesh(values, transform, (0, 0, 40, 50), 1)
    check_normals(mesh)
    assert (face_normals(mesh.positions, mesh.indices)[:, 2] > 0).all()
    assert (mesh.normals[:, 2] > 0).all()
    assert (mesh.feature == 0).all()
    col, row = ~transform @ (mesh.positions[:, 0], mesh.positions[:, 1])
    np.testing.assert_allclose(col % 1, 0.5)
    np.testing.assert_allclose(mesh.positions[:, 2], values[row.astype(int), col.astype(int)])
    assert len(mesh.positions) == 40 * 50 - 1  # the NaN cell's vertex is dropped
    assert mesh.triangle_count == 2 * 39 * 49 - 6  # the six triangles around it are skipped


def test_grid_nan_and_flipped_transform(dem):
    values, transform = dem
    flipped = Affine(2.0, 0.0, 500000.0, 0.0, 2.0, 3000000.0)  # rows run northwards
    mesh = grid_mesh(values, flipped, (5, 5, 20, 20), 2)
    check_normals(mesh)
    assert (face_normals(mesh.positions, mesh.indices)[:, 2] > 0).all()
    assert np.isfinite(mesh.positions).all()
    all_nan = grid_mesh(np.full((5, 5), np.nan), transform, (0, 0, 5, 5), 1)
    assert len(all_nan.positions) == 0 and all_nan.triangle_count == 0


@pytest.mark.parametrize("stride", [1, 3, 4])
def test_adjacent_windows_share_boundary(dem, stride):
    values, transform = dem
    left = grid_mesh(values, transform, (0, 0, 40, 24), stride)
    right = grid_mesh(values, transform, (0, 24, 40, 50), stride)
    below = grid_mesh(values, transform, (20, 0, 40, 24), stride)
    x_boundary = (transform @ (24.5, 0))[0]
    on_left = left.positions[:, 0] == x_boundary
    on_right = right.positions[:, 0] == x_boundary
    assert on_left.sum() > 5
    order_l, order_r = np.argsort(left.positions[on_left, 1]), np.argsort(right.positions[on_right, 1])
    np.testing.assert_array_equal(left.positions[on_left][order_l], right.positions[on_right][order_r])
    np.testing.assert_array_equal(left.normals[on_left][order_l], right.normals[on_right][order_r])
    assert left.positions[:, 0].max() == x_boundary and right.positions[:, 0].min() == x_boundary
    y_boundary = (transform @ (0, 20.5))[1]
    top_half = grid_mesh(values, transform, (0, 0, 20, 24), stride)
    a = top_half.positions[top_half.positions[:, 1] == y_boundary]
    b = below.positions[below.positions[:, 1] == y_boundary]
    assert len(a) > 5
    np.testing.assert_array_equal(a[np.argsort(a[:, 0])], b[np.argsort(b[:, 0])])
    # the raster's last row and column are sampled whatever the stride
    assert right.positions[:, 0].max() == (transform @ (49.5, 0))[0]
    assert left.positions[:, 1].min() == (transform @ (0, 39.5))[1]
