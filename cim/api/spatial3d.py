"""Spatial conditions over city_object as SQLAlchemy expressions: 2D relations on footprints and the 3D tests
(box, distance, elevation range) built on the model's SQL functions (migration 0004).

Every test pairs an index condition (`geom &&` for 2D, the n-D `bbox3d &&&` for 3D) with the exact one,
because the exact tests go through functions the planner cannot see into.
"""

from __future__ import annotations

import shapely
from geoalchemy2 import Geometry
from sqlalchemy import cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from cim.api.crs import Crs, bbox_to_storage
from cim.api.problems import ApiError
from cim.model.schema import city_object, pipe_segment

obj = city_object.c
RELATIONS = {"INTERSECTS": func.ST_Intersects, "DISJOINT": func.ST_Disjoint, "CONTAINS": func.ST_Contains,
             "WITHIN": func.ST_Within, "TOUCHES": func.ST_Touches, "CROSSES": func.ST_Crosses,
             "OVERLAPS": func.ST_Overlaps, "EQUALS": func.ST_Equals}
FAR = 1e12  # an unbounded side of an index box
GEOMETRY = Geometry(geometry_type=None)  # a cast to plain `geometry` (no 2D typmod)


def geom_param(geom: shapely.Geometry, srid: int) -> ColumnElement:
    """A storage-CRS geometry as a bound parameter (WKB, Z kept)."""
    return func.ST_GeomFromWKB(literal(shapely.to_wkb(geom, output_dimension=3)), srid)


def box_param(coords: tuple[float, ...], crs: Crs, srid: int) -> ColumnElement:
    """A 6-number box (x1, y1, z1, x2, y2, z2 in `crs`) as a closed POLYHEDRALSURFACE Z in the storage CRS."""
    poly, (z1, z2) = bbox_to_storage(coords, crs, srid)
    if poly.is_empty:
        raise ApiError(400, f"the box lies outside the area of the model's CRS (EPSG:{srid})")
    x1, y1, x2, y2 = poly.bounds  # a geographic box becomes the storage rectangle that holds it
    corners = func.ST_3DMakeBox(func.ST_MakePoint(x1, y1, z1), func.ST_MakePoint(x2, y2, z2))
    return func.ST_SetSRID(cast(corners, GEOMETRY), srid)


def _radius() -> ColumnElement:
    """A pipe's half size in metres (0 for anything else): 3D tests measure to its outer surface."""
    ps = pipe_segment.alias("radius_of")  # its own alias: the outer query may join pipe_segment too
    size = func.coalesce(ps.c.diameter_mm, func.greatest(ps.c.width_mm, ps.c.height_mm))
    return select(func.coalesce(size / 2000.0, 0.0)).where(ps.c.code == obj.code).scalar_subquery()


def extent_3d(q: ColumnElement, margin: float) -> ColumnElement:
    """The n-D index box of q grown by `margin` metres in every direction."""
    return func.ST_Expand(func.ST_3DMakeBox(
        func.ST_MakePoint(func.ST_XMin(q), func.ST_YMin(q), func.ST_ZMin(q)),
        func.ST_MakePoint(func.ST_XMax(q), func.ST_YMax(q), func.ST_ZMax(q))), margin)


def distance_3d(q: ColumnElement) -> ColumnElement:
    """3D distance from each object's solid (cim_3d_distance) to the storage-CRS geometry q."""
    return func.cim_3d_distance(obj.geom, obj.base_z, obj.top_z, obj.lod, _radius(), q)


def within_3d(q: ColumnElement, distance: float, max_radius: float) -> ColumnElement:
    """Objects whose solid lies within `distance` metres of q in 3D (0 = meets q)."""
    index = obj.bbox3d.op("&&&")(cast(extent_3d(q, distance + max_radius + 1e-6), GEOMETRY))
    return index & (distance_3d(q) <= distance + 1e-9)


def dwithin_2d(q: ColumnElement, distance: float) -> ColumnElement:
    return obj.geom.op("&&")(func.ST_Expand(q, distance)) & func.ST_DWithin(func.cim_footprint(obj.geom), q, distance)


def relate_2d(op: str, q: ColumnElement) -> ColumnElement:
    """A CQL2 spatial relation of each object's footprint (cim_footprint) with q."""
    exact = RELATIONS[op](func.cim_footprint(obj.geom), q)
    if op == "DISJOINT":
        return exact
    return obj.geom.op("&&")(q) & exact


def elevation(z1: float | None, z2: float | None, within: bool = False) -> ColumnElement:
    """Objects whose elevation range [base_z, top_z] meets [z1, z2] (or lies inside it, `within`)."""
    lo, hi = -FAR if z1 is None else z1, FAR if z2 is None else z2
    band = func.ST_3DMakeBox(func.ST_MakePoint(-FAR, -FAR, lo), func.ST_MakePoint(FAR, FAR, hi))
    index = obj.bbox3d.op("&&&")(cast(band, GEOMETRY))
    base, top = func.coalesce(obj.base_z, func.ST_ZMin(obj.geom)), func.coalesce(obj.top_z, func.ST_ZMax(obj.geom))
    if within:
        return index & (base >= lo) & (top <= hi)
    return index & (top >= lo) & (base <= hi)
