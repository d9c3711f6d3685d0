"""The SQL of feature pages: conditions from the query parameters, sorting, and GeoJSON written by PostGIS.

One statement per page returns the features as GeoJSON text (PostGIS writes the geometry, PostgreSQL the
properties), how many were returned, and numberMatched. Pages that differ only in values (bbox, datetime,
equality tests, limit, offset) share one compiled SQL text with named parameters (`compiled`), so the common
request costs no SQL building and the server prepares its plan once per connection. Objects that sensors observe
carry a `live` property, looked up for the page's rows only (`live_states`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

import shapely
from sqlalchemy import (
    LargeBinary,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from cim.api import spatial3d
from cim.api.catalog import Collection, Queryable
from cim.api.crs import Crs, bbox_to_storage
from cim.api.problems import ApiError
from cim.model.schema import alarm, city_object, sensor_binding, sensor_state

obj = city_object.c
LIVE = "live"  # the property of objects observed by sensors (and of the sensors themselves)


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
    values: dict[str, object] = field(default_factory=dict)  # named parameters of the conditions
    shape: list | None = field(default_factory=list)  # what the conditions look like; None: a one-off SQL

    def __post_init__(self) -> None:
        if self.conditions:  # given as expressions: their SQL is a one-off
            self.shape = None

    def where(self, condition: ColumnElement, shape: object = None, **values: object) -> None:
        """Add a condition; `shape` says what it looks like when its values are the named parameters only."""
        self.conditions.append(condition)
        if shape is None or self.shape is None:
            self.shape = None
        else:
            self.shape.append(shape)
        self.values.update(values)


def add_bbox(page: Page, box: tuple[float, ...], crs: Crs, srid: int) -> None:
    """Footprint meets the box (2D); with 6 numbers, also the elevation range meets [z1, z2]."""
    poly, zs = bbox_to_storage(box, crs, srid)
    if poly.is_empty:
        page.where(false(), "nothing")  # outside the model's area
        return
    wkb = shapely.to_wkb(poly, output_dimension=2)
    env = func.ST_GeomFromWKB(bindparam("bbox_wkb", wkb, type_=LargeBinary), srid)
    cond = spatial3d.relate_2d("INTERSECTS", env)
    values = {"bbox_wkb": wkb}
    if zs:
        cond = cond & spatial3d.elevation(bindparam("bbox_z1", zs[0]), bindparam("bbox_z2", zs[1]))
        values.update(bbox_z1=zs[0], bbox_z2=zs[1])
    page.where(cond, ("bbox", bool(zs)), **values)


def add_datetime(page: Page, start: datetime | None, end: datetime | None) -> None:
    """Objects valid at some time in [start, end]: validity [valid_from, valid_to], open where null."""
    parts = []
    if end is not None:
        parts.append(obj.valid_from.is_(None) | (obj.valid_from <= bindparam("dt_end", end)))
    if start is not None:
        parts.append(obj.valid_to.is_(None) | (obj.valid_to >= bindparam("dt_start", start)))
    page.where(and_(*parts), ("datetime", start is not None, end is not None), dt_start=start, dt_end=end)


def add_equality(page: Page, q: Queryable, value: str) -> None:
    """A queryable given as a query parameter: `?material=PE` means material = 'PE'."""
    if q.type in ("number", "integer"):
        try:
            typed: object = float(value)
        except ValueError:
            raise ApiError(400, f"{q.name}: {value!r} is not a number") from None
    elif q.type == "boolean":
        if value.lower() not in ("true", "false"):
            raise ApiError(400, f"{q.name}: expected true or false")
        typed = value.lower() == "true"
    elif q.type in ("geometry", "date-time"):
        raise ApiError(400, f"{q.name}: use bbox, datetime or filter for this property")
    else:
        typed = value
    name = f"eq{len(page.conditions)}"
    page.where(q.expr == bindparam(name, typed), ("eq", q.name, name), **{name: typed})


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


def _worst_alarm() -> ColumnElement:
    """The worst of the open alarms joined to a group (most severe, unacknowledged first, then the oldest) as
    JSON, else null."""
    a = alarm.c
    one = func.jsonb_build_object(
        _key("id"), a.id, _key("rule"), a.rule, _key("sensor"), a.sensor_code, _key("severity"), a.severity,
        _key("state"), a.state, _key("since"), a.raised_at, _key("message"), a.message)
    worst_first = aggregate_order_by(one, a.severity.desc(), (a.state == literal_column("'active'")).desc(),
                                     a.raised_at)
    return type_coerce(func.array_agg(worst_first).filter(a.id.isnot(None)), ARRAY(JSONB))[1]


def _open_alarms(sensor_code: ColumnElement) -> ColumnElement:
    """The join condition of a sensor's open alarms (the partial index alarm_open_uq holds just those)."""
    return and_(alarm.c.sensor_code == sensor_code, alarm.c.state != literal_column("'cleared'"))


def live_states(page: Page, ordered) -> CTE:
    """{code: `{"live": {...}}`} of the page's features that have sensors: a sensor's own state, or what the
    sensors bound to an object say together (the worst status and severity, the worst open alarm). One join of
    the page's codes with the bindings, states and open alarms, not a probe per feature."""
    b, s = sensor_binding.c, sensor_state.c
    if page.collection.kinds == ("sensor",):
        live = func.jsonb_build_object(
            _key("status"), s.status, _key("severity"), s.severity, _key("sensors"), literal_column("1"),
            _key("value"), s.value, _key("time"), s.time, _key("alarm"), _worst_alarm())
        joined = ordered.join(sensor_state, s.code == ordered.c.code).outerjoin(alarm, _open_alarms(s.code))
        query = select(s.code.label("code"), func.jsonb_build_object(_key(LIVE), live).label("props")) \
            .select_from(joined).group_by(s.id)
    else:
        status = case((func.bool_or(s.status == literal_column("'alarm'")), literal_column("'alarm'")),
                      (func.bool_or(s.status == literal_column("'offline'")), literal_column("'offline'")),
                      (func.bool_or(s.status == literal_column("'ok'")), literal_column("'ok'")),
                      else_=literal_column("'unknown'"))
        live = func.jsonb_build_object(
            _key("status"), status, _key("severity"), func.max(s.severity),
            _key("sensors"), func.count(b.sensor_code.distinct()), _key("alarm"), _worst_alarm())
        joined = ordered.join(sensor_binding, b.object_code == ordered.c.code) \
            .join(sensor_state, s.code == b.sensor_code).outerjoin(alarm, _open_alarms(b.sensor_code))
        query = select(b.object_code.label("code"), func.jsonb_build_object(_key(LIVE), live).label("props")) \
            .select_from(joined).group_by(b.object_code)
    # one row, code → props, that each feature looks up (a join would compare every pair: the planner cannot
    # guess the page's size), computed once
    per_object = query.subquery("per_object")
    return select(func.jsonb_object_agg(per_object.c.code, per_object.c.props).label("by_code")) \
        .cte("live").prefix_with("MATERIALIZED")


def properties_json(page: Page, live: ColumnElement | None = None) -> ColumnElement:
    """The feature's properties: the attributes, then the typed columns (which win on a name clash), then the
    `live` state where the object has sensors."""
    coll = page.collection
    typed = [q for q in coll.queryables.values() if not q.attribute and q.type != "geometry"]
    if page.properties is None:
        pairs = [x for q in typed if not q.sparse for x in (_key(q.name), q.output if q.output is not None
                                                              else q.expr)]
        for name, expr in page.extra.items():
            pairs += [_key(name), expr]
        out = obj.attributes.op("||")(func.jsonb_build_object(*pairs))
        sparse = [x for q in typed if q.sparse for x in (_key(q.name), q.expr)]
        if sparse:
            out = out.op("||")(func.jsonb_strip_nulls(func.jsonb_build_object(*sparse)))
        return out.op("||")(func.coalesce(live, literal_column("'{}'::jsonb"))) if live is not None else out
    pairs = []
    for name in page.properties:
        if name in page.extra:
            pairs += [_key(name), page.extra[name]]
            continue
        if name == LIVE and live is not None:
            pairs += [_key(name), live.op("->")(_key(LIVE))]
            continue
        q = coll.queryables.get(name)
        if q is not None and q.type == "geometry":
            continue
        expr = (q.output if q.output is not None else q.expr) if q is not None else obj.attributes[name]
        pairs += [_key(name), expr]
    return func.jsonb_build_object(*pairs) if pairs else cast(literal("{}"), JSONB)


def feature_text(page: Page, srid: int, live: ColumnElement | None = None) -> ColumnElement:
    """One GeoJSON Feature as text, assembled by PostgreSQL without re-parsing the geometry's JSON."""
    return func.concat(
        literal_column("""'{"type":"Feature","id":'"""), cast(func.to_json(obj.code), Text),
        literal_column("""',"geometry":'"""),
        func.coalesce(geometry_json(page.out_crs, srid), literal_column("'null'")),
        literal_column("""',"properties":'"""), cast(properties_json(page, live), Text), literal_column("'}'"),
    )


def check_properties(page: Page) -> None:
    """`properties` may name queryables, attributes seen in the collection, or computed properties."""
    known = page.collection.attribute_keys | {LIVE}
    for name in page.properties or []:
        if name not in page.collection.queryables and name not in page.extra and name not in known:
            raise ApiError(400, f"properties: {name!r} is not a property of {page.collection.id!r}")


def items_statement(page: Page, srid: int) -> Select:
    """(returned, matched, features) for one page."""
    coll = page.collection
    where = and_(coll.where(), *page.conditions)
    keys = sort_keys(page)
    exprs = [e for e, _ in keys]
    limit, offset = bindparam("page_limit", page.limit), bindparam("page_offset", page.offset)
    if page.conditions:
        # one scan: the matches (few, thanks to the index) are counted and sorted from a materialized list
        matched = select(*(e.label(f"k{i}") for i, e in enumerate(exprs[:-1])), obj.code) \
            .select_from(coll.join()).where(where).cte("matched").prefix_with("MATERIALIZED")
        mcols = [*(matched.c[f"k{i}"] for i in range(len(keys) - 1)), matched.c.code]
        ordered = select(*mcols).order_by(*_ordered(mcols, keys)).limit(limit).offset(offset).cte("page")
        number_matched = select(func.count()).select_from(matched).scalar_subquery()
        returned = func.count(ordered.c.code)
    else:
        # the whole collection: the page comes in code order from the primary key, the count only when needed
        ordered = select(*(e.label(f"k{i}") for i, e in enumerate(exprs[:-1])), obj.code) \
            .select_from(coll.join()).where(where).order_by(*_ordered(exprs, keys)) \
            .limit(limit).offset(offset).cte("page")
        returned = func.count(ordered.c.code)
        total = select(func.count()).select_from(coll.join()).where(where).scalar_subquery()
        # PostgreSQL evaluates the subquery only when the CASE needs it
        number_matched = case((and_(offset == 0, returned < limit), returned), else_=total)
    page_cols = [*(ordered.c[f"k{i}"] for i in range(len(keys) - 1)), ordered.c.code]
    live = live_states(page, ordered) if page.properties is None or LIVE in page.properties else None
    props = live.c.by_code.op("->")(obj.code) if live is not None else None
    features = func.string_agg(feature_text(page, srid, props),
                               aggregate_order_by(literal_column("','"), *_ordered(page_cols, keys)))
    from_ = coll.join().join(ordered, obj.code == ordered.c.code)
    if live is not None:  # of the page's rows only, after the matches are counted and the page cut
        from_ = from_.join(live, true())
    return select(returned, number_matched, func.coalesce(features, literal(""))).select_from(from_)


TEMPLATES: OrderedDict[tuple, tuple[str, dict]] = OrderedDict()
TEMPLATES_KEPT = 256


def compiled(page: Page, srid: int, dialect: Dialect) -> tuple[str, dict]:
    """The page's SQL text and parameters; pages of the same shape reuse one compiled text."""
    key = None
    if page.shape is not None and not page.extra:
        key = (page.collection.key, page.out_crs, tuple(page.sortby),
               tuple(page.properties) if page.properties is not None else None, tuple(page.shape))
    found = TEMPLATES.get(key) if key is not None else None
    if found is None:
        done = items_statement(page, srid).compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        found = (str(done), dict(done.params))
        if key is not None:
            TEMPLATES[key] = found
            while len(TEMPLATES) > TEMPLATES_KEPT:
                TEMPLATES.popitem(last=False)
    sql, params = found
    return sql, {**params, **page.values, "page_limit": page.limit, "page_offset": page.offset}
