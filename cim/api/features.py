"""The SQL of feature pages: conditions from the query parameters, sorting, and GeoJSON written by PostGIS.

One statement per page returns the features as GeoJSON text (PostGIS writes the geometry, PostgreSQL the
properties), how many were returned, and numberMatched (counted only when the page alone cannot tell it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Text, and_, case, cast, false, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from cim.api import spatial3d
from cim.api.catalog import Collection, Queryable
from cim.api.crs import Crs, bbox_to_storage
from cim.api.problems import ApiError
from cim.model.schema import city_object

obj = city_object.c


@dataclass
class Page:
    """What one request asks of a collection."""

    collection: Collection
    out_crs: Crs
    limit: int
    offset: int = 0
    conditions: list[ColumnElement] = field(default_factory=list)
    sortby: list[tuple[str, bool]] = field(default_factory=list)
    properties: list[str] | None = None
    extra: dict[str, ColumnElement] = field(default_factory=dict)  # computed properties (e.g. depth below)


def bbox_condition(box: tuple[float, ...], crs: Crs, srid: int) -> ColumnElement:
    """Footprint meets the box (2D); with 6 numbers, also the elevation range meets [z1, z2]."""
    poly, zs = bbox_to_storage(box, crs, srid)
    if poly.is_empty:
        return false()  # outside the model's area
    env = spatial3d.geom_param(poly, srid)
    cond = spatial3d.relate_2d("INTERSECTS", env)
    if zs:
        cond = cond & spatial3d.elevation(*zs)
    return cond


def datetime_condition(start: datetime | None, end: datetime | None) -> ColumnElement:
    """Objects valid at some time in [start, end]: validity [valid_from, valid_to], open where null."""
    parts = []
    if end is not None:
        parts.append(obj.valid_from.is_(None) | (obj.valid_from <= end))
    if start is not None:
        parts.append(obj.valid_to.is_(None) | (obj.valid_to >= start))
    return and_(*parts)


def equality_condition(q: Queryable, value: str) -> ColumnElement:
    """A queryable given as a query parameter: `?material=PE` means material = 'PE'."""
    if q.type in ("number", "integer"):
        try:
            return q.expr == float(value)
        except ValueError:
            raise ApiError(400, f"{q.name}: {value!r} is not a number") from None
    if q.type == "boolean":
        if value.lower() not in ("true", "false"):
            raise ApiError(400, f"{q.name}: expected true or false")
        return q.expr == (value.lower() == "true")
    if q.type in ("geometry", "date-time"):
        raise ApiError(400, f"{q.name}: use bbox, datetime or filter for this property")
    return q.expr == value


def _queryable(coll: Collection, name: str, param: str) -> Queryable:
    q = coll.queryables.get(name)
    if q is None or q.type == "geometry":
        raise ApiError(400, f"{param}: {coll.id!r} has no property {name!r}; see its queryables")
    return q


def sort_keys(page: Page) -> list[tuple[ColumnElement, bool]]:
    """(expression, ascending) of each sortby property, then the code (a stable order for paging)."""
    keys = [(_queryable(page.collection, name, "sortby").expr, ascending) for name, ascending in page.sortby]
    return [*keys, (obj.code, True)]


def _ordered(columns, keys) -> list[ColumnElement]:
    return [c.asc().nulls_last() if asc else c.desc().nulls_last() for c, (_, asc) in zip(columns, keys, strict=True)]


SURFACES = ("TIN", "POLYHEDRALSURFACE", "TRIANGLE")


def geometry_json(crs: Crs, srid: int) -> ColumnElement:
    # cim_simple only where needed: a call of it costs more than the rest of the row
    geom = case((func.GeometryType(obj.geom).in_(SURFACES), func.cim_simple(obj.geom)), else_=obj.geom)
    if crs.srid != srid:
        geom = func.ST_Transform(geom, crs.srid)
    if crs.swapped:
        geom = func.ST_FlipCoordinates(geom)
    return func.ST_AsGeoJSON(geom, crs.digits, 0)


def _key(name: str) -> ColumnElement:
    """A property name as a typed parameter (jsonb_build_object cannot infer an untyped one)."""
    return cast(literal(name), Text)


def properties_json(page: Page) -> ColumnElement:
    """The feature's properties: the attributes, then the typed columns (which win on a name clash)."""
    coll = page.collection
    typed = [q for q in coll.queryables.values() if not q.attribute and q.type != "geometry"]
    if page.properties is None:
        pairs = [x for q in typed if not q.sparse for x in (_key(q.name), q.output if q.output is not None
                                                              else q.expr)]
        for name, expr in page.extra.items():
            pairs += [_key(name), expr]
        out = obj.attributes.op("||")(func.jsonb_build_object(*pairs))
        sparse = [x for q in typed if q.sparse for x in (_key(q.name), q.expr)]
        return out.op("||")(func.jsonb_strip_nulls(func.jsonb_build_object(*sparse))) if sparse else out
    pairs = []
    for name in page.properties:
        if name in page.extra:
            pairs += [_key(name), page.extra[name]]
            continue
        q = coll.queryables.get(name)
        if q is not None and q.type == "geometry":
            continue
        expr = (q.output if q.output is not None else q.expr) if q is not None else obj.attributes[name]
        pairs += [_key(name), expr]
    return func.jsonb_build_object(*pairs) if pairs else cast(literal("{}"), JSONB)


def feature_text(page: Page, srid: int) -> ColumnElement:
    """One GeoJSON Feature as text, assembled by PostgreSQL without re-parsing the geometry's JSON."""
    return func.concat(
        literal_column("""'{"type":"Feature","id":'"""), cast(func.to_json(obj.code), Text),
        literal_column("""',"geometry":'"""),
        func.coalesce(geometry_json(page.out_crs, srid), literal_column("'null'")),
        literal_column("""',"properties":'"""), cast(properties_json(page), Text), literal_column("'}'"),
    )


def check_properties(page: Page) -> None:
    """`properties` may name queryables, attributes seen in the collection, or computed properties."""
    known = getattr(page.collection, "attribute_keys", frozenset())
    for name in page.properties or []:
        if name not in page.collection.queryables and name not in page.extra and name not in known:
            raise ApiError(400, f"properties: {name!r} is not a property of {page.collection.id!r}")


def items_statement(page: Page, srid: int) -> Select:
    """(returned, matched, features) for one page."""
    coll = page.collection
    where = and_(coll.where(), *page.conditions)
    keys = sort_keys(page)
    exprs = [e for e, _ in keys]
    ordered = select(*(e.label(f"k{i}") for i, e in enumerate(exprs[:-1])), obj.code) \
        .select_from(coll.join()).where(where).order_by(*_ordered(exprs, keys)) \
        .limit(page.limit).offset(page.offset).cte("page")
    returned = func.count(ordered.c.code)
    matched = select(func.count()).select_from(coll.join()).where(where).scalar_subquery()
    # the count runs only when this page does not show the total (PostgreSQL evaluates the subquery lazily)
    number_matched = case((and_(literal(page.offset) == 0, returned < page.limit), returned), else_=matched)
    page_cols = [*(ordered.c[f"k{i}"] for i in range(len(keys) - 1)), ordered.c.code]
    features = func.string_agg(feature_text(page, srid),
                               aggregate_order_by(literal_column("','"), *_ordered(page_cols, keys)))
    from_ = coll.join().join(ordered, obj.code == ordered.c.code)
    return select(returned, number_matched, func.coalesce(features, literal(""))).select_from(from_)
