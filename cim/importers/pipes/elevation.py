"""Pipe centreline heights from inverts, depths or a default cover (the convention is in docs/pipes.md).

At each end, in order: the given elevation (of the crown, invert or centre, per the depth reference);
else ground minus the given depth; else ground minus the network's default cover. Ground is the surveyed
ground of the end's point when given, else the model's terrain. Between the ends a gravity pipe, or one
given by elevations, is straight; any other pipe keeps its cover and follows the terrain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely

OFFSET = {"crown": -0.5, "invert": 0.5, "centre": 0.0}  # centre = reference + OFFSET × height


@dataclass
class Heights:
    z: np.ndarray  # per vertex, in get_coordinates order
    ground_start: np.ndarray
    ground_end: np.ndarray
    invert_start: np.ndarray
    invert_end: np.ndarray
    depth_start: np.ndarray  # cover to crown
    depth_end: np.ndarray
    rule: np.ndarray  # how the ends got their heights, per segment
    missing: np.ndarray  # segments with an end that has neither an elevation nor a ground


def _along(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, owner segment, fraction of 2D length at each vertex, index of each segment's first vertex."""
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    step = np.zeros(len(coords))
    step[1:] = np.hypot(*np.diff(coords, axis=0).T)
    counts = np.bincount(owner, minlength=len(lines))
    first = np.cumsum(counts) - counts
    step[first] = 0.0
    run = np.cumsum(step)
    run -= run[first][owner]
    total = run[first + counts - 1]
    frac = np.divide(run, total[owner], out=np.zeros_like(run), where=total[owner] > 0)
    return coords, owner, frac, first


def _end(elev: np.ndarray, depth: np.ndarray, ground: np.ndarray, height: np.ndarray, ref: str,
         cover: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre height and the rule that gave it, at one end of every segment."""
    off = OFFSET[ref] * height
    by_elev = np.isfinite(elev)
    by_depth = ~by_elev & np.isfinite(depth) & np.isfinite(ground)
    centre = np.select([by_elev, by_depth], [elev + off, ground - depth + off], ground - cover - 0.5 * height)
    rule = np.select([by_elev, by_depth], ["elevation", "ground - depth"], "ground - default cover")
    return centre, rule


def centreline_heights(lines: np.ndarray, height_m: np.ndarray, node_ground: np.ndarray, seg_from: np.ndarray,
                       seg_to: np.ndarray, elev: tuple[np.ndarray, np.ndarray], depth: tuple[np.ndarray, np.ndarray],
                       terrain: Callable[[np.ndarray, np.ndarray], np.ndarray] | None, ref: str, cover: float,
                       gravity: bool) -> Heights:
    """Heights of every vertex of every segment and the derived invert, cover and ground at each end."""
    coords, owner, frac, first = _along(lines)
    last = first + np.bincount(owner, minlength=len(lines)) - 1
    ground_v = terrain(coords[:, 0], coords[:, 1]) if terrain is not None else np.full(len(coords), np.nan)
    gs = np.where(np.isfinite(node_ground[seg_from]), node_ground[seg_from], ground_v[first])
    ge = np.where(np.isfinite(node_ground[seg_to]), node_ground[seg_to], ground_v[last])
    h = np.nan_to_num(height_m, nan=0.0)
    cs, rule_s = _end(elev[0], depth[0], gs, h, ref, cover)
    ce, rule_e = _end(elev[1], depth[1], ge, h, ref, cover)
    straight = gravity | (rule_s == "elevation") & (rule_e == "elevation")
    linear = cs[owner] + (ce - cs)[owner] * frac
    cover_c = (gs - cs)[owner] + ((ge - ce) - (gs - cs))[owner] * frac  # ground to centre, interpolated
    follow = ~straight[owner] & np.isfinite(ground_v) & np.isfinite(cover_c)
    z = np.where(follow, ground_v - cover_c, linear)
    z[first], z[last] = cs, ce
    rule = np.where(rule_s == rule_e, rule_s, np.char.add(np.char.add(rule_s.astype(str), " / "),
                                                          rule_e.astype(str)))
    missing = ~np.isfinite(cs) | ~np.isfinite(ce)
    return Heights(z, gs, ge, cs - h / 2, ce - h / 2, gs - (cs + h / 2), ge - (ce + h / 2), rule, missing)
