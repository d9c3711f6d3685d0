"""CRS helpers every room shares (pyproj only): horizontal part, height unit, coordinate transforms."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pyproj import CRS, Transformer


def horizontal(crs: CRS) -> CRS:
    """The horizontal part of a compound CRS."""
    return crs.sub_crs_list[0] if crs.is_compound else crs


def height_factor(crs: CRS) -> float:
    """Metres per unit of the CRS's heights: the vertical axis of a compound CRS; else, for a projected CRS
    in feet, the same feet (the US state-plane convention); else metres."""
    if crs.is_compound and len(crs.sub_crs_list) > 1:
        return crs.sub_crs_list[1].axis_info[0].unit_conversion_factor
    if crs.is_projected:
        return crs.axis_info[0].unit_conversion_factor
    return 1.0


def xyz_transformer(src: CRS, dst: CRS) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function (n, 2|3) → (n, 2|3) taking coordinates from src to dst: x/y by pyproj (x=east, y=north),
    Z scaled to metres and otherwise unchanged (heights stay orthometric); None when nothing changes."""
    src_h, dst_h = horizontal(src), horizontal(dst)
    z_scale = height_factor(src) / height_factor(dst)
    same = src_h.equals(dst_h)
    if same and z_scale == 1.0:
        return None
    tr = None if same else Transformer.from_crs(src_h, dst_h, always_xy=True)

    def fn(coords: np.ndarray) -> np.ndarray:
        if tr is None:
            x, y = coords[:, 0], coords[:, 1]
        else:
            x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y, *(coords[:, 2:].T * z_scale)])

    return fn
