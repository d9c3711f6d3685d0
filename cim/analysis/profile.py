"""Cross-section (横断面) along a cut line: the pipes it crosses with their heights and cover, and the ground."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely

from cim.analysis.excavation import heights_at, near_pipes, size_label
from cim.importers.errors import InputError
from cim.model.store import Model
from cim.model.terrain import Ground


@dataclass
class ProfilePipe:
    chainage_m: float  # along the cut line from its first point
    code: str
    source_id: str | None
    network: str
    layer: str
    shape: str
    size: str  # DN300, or W×H in mm for a box
    centre_z: float
    crown_z: float
    invert_z: float  # bottom of the pipe
    ground_z: float  # terrain, else the pipe's surveyed ground interpolated; NaN when neither
    cover_m: float  # ground to crown
    x: float
    y: float


@dataclass
class Profile:
    length_m: float
    step_m: float
    pipes: list[ProfilePipe] = field(default_factory=list)
    ground_chainage: list[float] = field(default_factory=list)  # every step_m and the end of the cut
    ground_z: list[float] = field(default_factory=list)  # terrain height there, NaN where there is none

    def summary(self) -> dict:
        known = [z for z in self.ground_z if math.isfinite(z)]
        return {"cut_length_m": round(self.length_m, 2), "pipes_crossed": len(self.pipes),
                "networks": sorted({p.network for p in self.pipes}),
                "ground_m": f"{min(known):.2f}..{max(known):.2f}" if known else "no terrain"}


def check_cut(line: object, step_m: float) -> shapely.LineString:
    if not isinstance(line, shapely.LineString):
        kind = line.geom_type if isinstance(line, shapely.Geometry) else type(line).__name__
        raise InputError("line", f"the cut must be a line, not {kind}")
    if len(line.coords) < 2 or line.length <= 0:
        raise InputError("line", "the cut line needs two distinct points or more")
    if not np.isfinite(shapely.get_coordinates(line)).all():
        raise InputError("line", "the cut line has a coordinate that is not a number")
    if isinstance(step_m, bool) or not isinstance(step_m, int | float) or not math.isfinite(step_m) or step_m <= 0:
        raise InputError("step", f"the ground sampling step must be a number of metres > 0, not {step_m!r}")
    return shapely.force_2d(line)


def cross_section(model: Model, line: shapely.LineString, layers: list[str] | None = None,
                  step_m: float = 5.0) -> Profile:
    """Every pipe the cut line (storage CRS) crosses, by chainage, and the ground along the cut."""
    cut = check_cut(line, step_m)
    length = float(cut.length)
    with model.connect() as conn:
        pipes = near_pipes(conn, model.info.srid, cut, 0.0, layers)
        ground = Ground.load(conn)
    chainage = np.append(np.arange(0.0, length, float(step_m)), length)
    gxy = shapely.get_coordinates(shapely.line_interpolate_point(cut, chainage))
    gz = ground.sample(gxy[:, 0], gxy[:, 1]) if ground else np.full(len(chainage), np.nan)
    profile = Profile(length, float(step_m), [], chainage.tolist(), gz.tolist())
    if pipes.empty:
        return profile
    crossings = shapely.intersection(shapely.force_2d(pipes["geom"].to_numpy()), cut)
    xy, owner = shapely.get_coordinates(crossings, return_index=True)
    if not len(xy):
        return profile
    z, g = heights_at(pipes, owner, xy, ground)
    h = pipes["h"].to_numpy()[owner]
    along = shapely.line_locate_point(cut, shapely.points(xy))
    order = np.lexsort((pipes["code"].to_numpy()[owner], along))
    rows = pipes.iloc[owner]
    for k in order:
        r = rows.iloc[k]
        crown = z[k] + h[k] / 2
        profile.pipes.append(ProfilePipe(
            float(along[k]), r["code"], r["source_id"], r["network"], r["layer"], r["shape"],
            size_label(r["shape"], r["diameter_mm"], r["width_mm"], r["height_mm"]), float(z[k]), float(crown),
            float(z[k] - h[k] / 2), float(g[k]), float(g[k] - crown), float(xy[k, 0]), float(xy[k, 1])))
    return profile
