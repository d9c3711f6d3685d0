"""Excavation impact: which pipes a pit of a given plan and depth hits, and which it comes too close to.

The pit bottom lies `depth` below the ground (the model's terrain, else the ground the pipe survey gave at the
pipe's ends, interpolated). A pipe is hit when its outer wall reaches into the pit in plan and its crown is above
the bottom there; it is too close when it is not hit but lies within `margin` of the pit: beside it (plan distance
from the outer wall to the pit edge below margin) or under it (crown less than margin below the bottom).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from cim.analysis.clearance import PIPE_FILTER
from cim.importers.errors import InputError
from cim.model.store import Model
from cim.model.terrain import Ground

STEP = 1.0  # metres: pipes are sampled at least this densely where they meet the pit (terrain varies)


def size_label(shape: str, diameter_mm: float | None, width_mm: float | None, height_mm: float | None) -> str:
    def num(v):
        return f"{v:g}"

    if shape == "box" and _ok(width_mm) and _ok(height_mm):
        return f"{num(width_mm)}×{num(height_mm)}"
    if _ok(diameter_mm):
        return f"DN{num(diameter_mm)}"
    return "?"


def _ok(v) -> bool:
    return v is not None and not pd.isna(v)


def near_pipes(conn, srid: int, area: shapely.Geometry, reach: float, layers: list[str] | None) -> pd.DataFrame:
    """Pipes within `reach` (2D) of an area: sizes in metres, ends' ground and the 3D centreline."""
    rows = conn.execute(
        "SELECT s.code, o.source_id, s.network, o.layer, s.shape, s.diameter_mm, s.width_mm, s.height_mm, "
        "s.ground_start, s.ground_end, ST_AsBinary(o.geom) FROM city_object o JOIN pipe_segment s USING (code) "
        "WHERE o.kind LIKE '%%\\_pipe' AND ST_DWithin(o.geom, ST_GeomFromWKB(%(area)s, %(srid)s), %(reach)s) AND "
        + PIPE_FILTER.format(s="s", o="o") + " ORDER BY s.code",
        {"area": shapely.to_wkb(area), "srid": srid, "reach": reach, "layers": layers},
    ).fetchall()
    frame = pd.DataFrame(rows, columns=["code", "source_id", "network", "layer", "shape", "diameter_mm", "width_mm",
                                        "height_mm", "ground_start", "ground_end", "wkb"])
    for c in ("diameter_mm", "width_mm", "height_mm", "ground_start", "ground_end"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    frame["w"] = frame["width_mm"].fillna(frame["diameter_mm"]).fillna(0.0).to_numpy(float) / 1000.0
    frame["h"] = frame["height_mm"].fillna(frame["diameter_mm"]).fillna(0.0).to_numpy(float) / 1000.0
    frame["geom"] = shapely.from_wkb(frame.pop("wkb").map(bytes).to_numpy()) if len(frame) else []
    return frame


def widest(conn, layers: list[str] | None) -> float:
    """The largest outer width of the pipes, metres."""
    value = conn.execute(
        "SELECT max(coalesce(s.width_mm, s.diameter_mm)) FROM pipe_segment s JOIN city_object o USING (code) "
        "WHERE " + PIPE_FILTER.format(s="s", o="o"), {"layers": layers}).fetchone()[0]
    return float(value or 0.0) / 1000.0


def heights_at(pipes: pd.DataFrame, owner: np.ndarray, xy: np.ndarray, ground: Ground
               ) -> tuple[np.ndarray, np.ndarray]:
    """Centreline z of pipe `owner` at plan points xy on it, and the ground there: the terrain, else the
    ground of the pipe's ends interpolated along it."""
    lines = pipes["geom"].to_numpy()[owner]
    flat = shapely.force_2d(lines)
    pts = shapely.points(xy)
    along = shapely.line_locate_point(flat, pts)
    z = shapely.get_coordinates(shapely.line_interpolate_point(lines, along), include_z=True)[:, 2]
    g = ground.sample(xy[:, 0], xy[:, 1]) if ground else np.full(len(xy), np.nan)
    length = shapely.length(flat)
    frac = np.divide(along, length, out=np.zeros_like(along), where=length > 0)
    gs, ge = pipes["ground_start"].to_numpy(float)[owner], pipes["ground_end"].to_numpy(float)[owner]
    by_ends = np.where(np.isfinite(gs) & np.isfinite(ge), gs + (ge - gs) * frac, np.where(np.isfinite(gs), gs, ge))
    return z, np.where(np.isfinite(g), g, by_ends)


@dataclass
class PipeImpact:
    code: str
    source_id: str | None
    network: str
    layer: str
    impact: str  # hit | too_close
    shape: str
    size: str  # DN300, or W×H in mm for a box
    horizontal_m: float  # plan distance from the outer wall to the pit edge, 0 when it reaches into the pit
    vertical_gap_m: float  # pit bottom minus pipe crown where tightest: negative = the crown is above the bottom
    length_inside_m: float  # centreline length inside the pit polygon (plan)
    crown_z: float  # at the tightest point
    bottom_z: float  # pit bottom there
    x: float
    y: float


@dataclass
class ExcavationImpact:
    depth_m: float
    margin_m: float
    area_m2: float
    hit: list[PipeImpact] = field(default_factory=list)
    too_close: list[PipeImpact] = field(default_factory=list)

    def summary(self) -> dict:
        return {"pit_area_m2": round(self.area_m2, 1), "depth_m": self.depth_m, "margin_m": self.margin_m,
                "hit": len(self.hit), "too_close": len(self.too_close),
                "networks_hit": sorted({p.network for p in self.hit})}


def check_pit(polygon: object, depth_m: float, margin_m: float) -> shapely.Geometry:
    """The pit outline as a valid 2D (Multi)Polygon, or an InputError saying what is wrong."""
    if not isinstance(polygon, shapely.Polygon | shapely.MultiPolygon):
        kind = polygon.geom_type if isinstance(polygon, shapely.Geometry) else type(polygon).__name__
        raise InputError("polygon", f"the pit outline must be a polygon, not {kind}")
    if polygon.is_empty:
        raise InputError("polygon", "the pit outline is empty")
    if not polygon.is_valid:
        raise InputError("polygon", f"the pit outline is not a valid polygon: {shapely.is_valid_reason(polygon)}")
    if polygon.area <= 0:
        raise InputError("polygon", "the pit outline has no area")
    for name, value, least in (("depth", depth_m, "> 0"), ("margin", margin_m, "≥ 0")):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or \
                (value <= 0 if least == "> 0" else value < 0):
            raise InputError(name, f"the pit {name} must be a number of metres {least}, not {value!r}")
    return shapely.force_2d(polygon)


def excavation_impact(model: Model, polygon: shapely.Polygon, depth_m: float, margin_m: float = 1.0,
                      layers: list[str] | None = None) -> ExcavationImpact:
    """Pipes a pit (plan outline in the storage CRS, depth below ground) hits or comes within margin of."""
    pit = check_pit(polygon, depth_m, margin_m)
    depth_m, margin_m = float(depth_m), float(margin_m)
    result = ExcavationImpact(depth_m, margin_m, float(pit.area))
    with model.connect() as conn:
        reach = margin_m + widest(conn, layers) / 2
        pipes = near_pipes(conn, model.info.srid, pit, reach, layers)
        ground = Ground.load(conn) if len(pipes) else Ground([])
    if pipes.empty:
        return result
    flat = shapely.force_2d(pipes["geom"].to_numpy())
    half = pipes["w"].to_numpy() / 2
    plan = shapely.distance(flat, pit)
    horizontal = np.maximum(plan - half, 0.0)
    inside_len = shapely.length(shapely.intersection(flat, pit))
    # the pipe where its outer wall is within the pit (inner) and within margin of it (zone)
    inner = shapely.segmentize(shapely.intersection(flat, shapely.buffer(pit, half)), STEP)
    zone = shapely.segmentize(shapely.intersection(flat, shapely.buffer(pit, margin_m + half)), STEP)
    gaps = {}
    for name, parts in (("inner", inner), ("zone", zone)):
        xy, owner = shapely.get_coordinates(parts, return_index=True)
        z, g = heights_at(pipes, owner, xy, ground)
        crown = z + pipes["h"].to_numpy()[owner] / 2
        bottom = g - depth_m
        if np.isnan(bottom).any():
            code = pipes["code"].iloc[owner[np.isnan(bottom)][0]]
            raise InputError("polygon", f"no ground height at the pit for pipe {code}: the model has no terrain "
                                        f"there (cim import dem) and the pipe no ground heights")
        points = pd.DataFrame({"owner": owner, "gap": bottom - crown, "crown": crown, "bottom": bottom,
                               "x": xy[:, 0], "y": xy[:, 1]})
        gaps[name] = points.sort_values("gap", kind="stable").drop_duplicates("owner").set_index("owner")
    for i, row in enumerate(pipes.itertuples()):
        where = None
        if i in gaps["inner"].index and gaps["inner"].at[i, "gap"] < 0:
            where, impact = gaps["inner"].loc[i], "hit"
        elif i in gaps["zone"].index and gaps["zone"].at[i, "gap"] < margin_m:
            where, impact = gaps["zone"].loc[i], "too_close"
        if where is None:
            continue
        found = PipeImpact(row.code, row.source_id, row.network, row.layer, impact, row.shape,
                           size_label(row.shape, row.diameter_mm, row.width_mm, row.height_mm),
                           float(horizontal[i]), float(where["gap"]), float(inside_len[i]), float(where["crown"]),
                           float(where["bottom"]), float(where["x"]), float(where["y"]))
        (result.hit if impact == "hit" else result.too_close).append(found)
    result.hit.sort(key=lambda p: (p.vertical_gap_m, p.code))
    result.too_close.sort(key=lambda p: (p.horizontal_m, p.vertical_gap_m, p.code))
    return result
