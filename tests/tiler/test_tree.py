"""Tiling: bounded tiles, the most significant objects on top, errors that shrink downwards, stable cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from cim.model.terrain import Ground
from cim.tiler.build import tile_mesh
from cim.tiler.tree import aligned_cell, build_tree


def _objects(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    centre = np.column_stack([rng.uniform(0, 3000, n), rng.uniform(0, 3000, n), rng.uniform(0, 30, n)])
    size = rng.uniform(5, 80, n)
    return centre, size, np.full(n, 12), np.array([f"c{i:06d}" for i in range(n)])


def test_budget_significance_and_errors():
    centre, size, tris, codes = _objects(20000)
    root = build_tree(centre, size, tris, codes, budget=6000)
    tiles = list(root.walk())
    assert sorted(np.concatenate([t.members for t in tiles]).tolist()) == list(range(20000))
    for t in tiles:
        assert tris[t.members].sum() <= 6000
        below = np.concatenate([d.members for c in t.children for d in c.walk()]) if t.children else []
        if len(below):
            assert size[t.members].min() >= size[below].max()  # parents hold the biggest
            assert t.error == size[below].max()
            assert all(c.error <= t.error for c in t.children)
        else:
            assert t.error == 0


def test_octree_only_where_objects_spread_in_depth():
    centre, size, tris, codes = _objects(4000)
    flat = build_tree(centre, size, tris, codes, budget=2000)
    assert max(len(c.children) for c in flat.walk()) <= 4
    tower = centre / np.array([100, 100, 0.5])  # 30 m across, 60 m tall
    deep = build_tree(tower, size, tris, codes, budget=2000)
    assert max(len(c.children) for c in deep.walk()) > 4


def test_adding_an_object_changes_only_its_branch():
    centre, size, tris, codes = _objects(5000)
    before = {t.id: set(codes[t.members]) for t in build_tree(centre, size, tris, codes, 3000).walk()}
    extra = np.array([[2990.0, 2990.0, 1.0]])
    after = {t.id: set(np.append(codes, "new")[t.members]) for t in build_tree(
        np.vstack([centre, extra]), np.append(size, 1.0), np.append(tris, 12), np.append(codes, "new"),
        3000).walk()}
    changed = {k for k in after if after[k] != before.get(k)}
    assert len(changed) == 1 and "new" in after[changed.pop()]
    origin, side = aligned_cell(centre.min(0), centre.max(0))
    assert side == 4096 and (origin[:2] % side == 0).all()


def test_zero_length_pump_links_are_drawn_as_devices():
    pump = shapely.to_wkb(shapely.LineString([(0, 0, 5), (0, 0, 5)]))
    pipe = shapely.to_wkb(shapely.LineString([(0, 0, 5), (10, 0, 5)]))
    rows = pd.DataFrame({
        "shape": ["tube", "tube"], "wkb": [pump, pipe],
        "segment": [{"link_type": "pump", "shape": "circular", "diameter_mm": 300},
                    {"link_type": "pipe", "shape": "circular", "diameter_mm": 300}]})
    mesh, _ = tile_mesh(rows, Ground([]))
    assert set(np.unique(mesh.feature)) == {0, 1}
    pump_pts = mesh.positions[mesh.feature == 0]
    assert np.ptp(pump_pts[:, 0]) > 1.0  # a 1.5 m pump box, not nothing
