"""CQL2 filters (text and JSON) to SQLAlchemy expressions over a collection's queryables.

The cql2 package (the reference CQL2 parser, in Rust) parses and validates both encodings into CQL2 JSON;
pygeofilter 0.4's own CQL2 readers follow an older draft (no function-style T_ operators, no POINT Z, no
escaped quotes). That JSON becomes a pygeofilter AST, which an evaluator built on pygeofilter's turns into
bound-parameter SQL: values never become SQL text. Geometry literals are taken from `filter-crs` into the
storage CRS with pyproj.

Beyond CQL2's 2D spatial operators, three functions work in 3D (metres of the storage CRS; see
cim.api.spatial3d): INTERSECTS3D(geometry, g), DWITHIN3D(geometry, g, d) and DWITHIN(geometry, g, d) (2D),
and S_INTERSECTS with a 6-number BBOX is the 3D box test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time

import cql2
import shapely
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import Evaluator, handle
from pygeofilter.backends.sqlalchemy import filters
from pygeofilter.cql2 import SPATIAL_PREDICATES_MAP, TEMPORAL_PREDICATES_MAP
from sqlalchemy import and_, func, literal, not_, null, or_, true
from sqlalchemy.sql.elements import ColumnElement

from cim.api import spatial3d
from cim.api.catalog import Collection, Queryable
from cim.api.crs import Crs, to_storage
from cim.api.problems import ApiError

COMPARISONS = {"=": ast.Equal, "<>": ast.NotEqual, "<": ast.LessThan, "<=": ast.LessEqual, ">": ast.GreaterThan,
               ">=": ast.GreaterEqual}
ARITHMETIC = {"+": ast.Add, "-": ast.Sub, "*": ast.Mul, "/": ast.Div}
FUNCTIONS = {
    "casei": "CASEI(string): the string in lower case (case-insensitive comparison)",
    "intersects3d": "INTERSECTS3D(geometry, g): the object's solid meets g in 3D",
    "dwithin3d": "DWITHIN3D(geometry, g, metres): the object's solid lies within that 3D distance of g",
    "dwithin": "DWITHIN(geometry, g, metres): within that 2D (map) distance of g",
}
FUNCTION_ARGS = {"intersects3d": 2, "dwithin3d": 3, "dwithin": 3, "casei": 1}
CONFORMANCE = [
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
]


class FilterError(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, f"filter: {detail}")


@dataclass
class Box3D:
    """A 6-number BBOX literal: the 3D box test."""

    coords: tuple[float, ...]


@dataclass
class TimeIntersects(ast.TemporalPredicate):
    """CQL2 T_INTERSECTS (pygeofilter maps it to T_OVERLAPS, which is another relation)."""

    op = ast.TemporalComparisonOp.TOVERLAPS


# -- CQL2 JSON → pygeofilter AST -----------------------------------------------------------------------------
def parse(text: str, lang: str | None) -> object:
    """A filter in cql2-text (default) or cql2-json as a pygeofilter AST."""
    if lang not in (None, "", "cql2-text", "cql2-json"):
        raise ApiError(400, f"filter-lang: {lang!r} is not supported; use cql2-text or cql2-json")
    try:
        expr = cql2.parse_json(text) if lang == "cql2-json" else cql2.parse_text(text)
        expr.validate()
        tree = expr.to_json()
    except ValueError as exc:  # cql2 raises ValueError subclasses (ParseError, ValidationError)
        message = " ".join(str(exc).split())
        raise FilterError(message[:300]) from None
    except Exception as exc:  # noqa: BLE001 - the Rust extension raises its own types; all mean bad input
        raise FilterError(" ".join(str(exc).split())[:300]) from None
    return _walk(tree)


def _literal(node: object) -> object:
    if isinstance(node, float) and node.is_integer() and abs(node) < 2**53:
        return int(node)
    return node


def _instant(text: str) -> date | datetime | None:
    if text == "..":
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{text!r} is not a date or timestamp") from None


def _walk(node: object) -> object:  # noqa: C901 - one branch per CQL2 JSON form
    if isinstance(node, bool | str) or node is None:
        return node
    if isinstance(node, int | float):
        return _literal(node)
    if isinstance(node, list):
        return [_walk(n) for n in node]
    if not isinstance(node, dict):
        raise FilterError(f"unexpected {node!r}")
    if "property" in node:
        return ast.Attribute(node["property"])
    if "type" in node and ("coordinates" in node or "geometries" in node):
        return values.Geometry(node)
    if "bbox" in node:
        box = tuple(float(v) for v in node["bbox"])
        return Box3D(box) if len(box) == 6 else values.Envelope(box[0], box[2], box[1], box[3])
    if "date" in node:
        return _instant(node["date"])
    if "timestamp" in node:
        return _instant(node["timestamp"])
    if "interval" in node:
        start, end = (_instant(v) if isinstance(v, str) else _walk(v) for v in node["interval"])
        return values.Interval(start, end)
    op, args = str(node.get("op", "")).lower(), node.get("args", [])
    if op in ("and", "or"):
        return (ast.And if op == "and" else ast.Or).from_items(*(_walk(a) for a in args))
    if op == "not":
        return ast.Not(_walk(args[0]))
    if op in COMPARISONS:
        return COMPARISONS[op](_walk(args[0]), _walk(args[1]))
    if op in ARITHMETIC or op in ("%", "div", "^"):
        if op not in ARITHMETIC:
            raise FilterError(f"the operator {op!r} is not supported")
        return ARITHMETIC[op](_walk(args[0]), _walk(args[1]))
    if op == "like":
        return ast.Like(_walk(args[0]), _walk(args[1]), nocase=False, wildcard="%", singlechar="_",
                        escapechar="\\", not_=False)
    if op == "between":
        return ast.Between(_walk(args[0]), _walk(args[1]), _walk(args[2]), not_=False)
    if op == "in":
        return ast.In(_walk(args[0]), _walk(args[1]), not_=False)
    if op == "isnull":
        return ast.IsNull(_walk(args[0]), not_=False)
    if op in SPATIAL_PREDICATES_MAP:
        return SPATIAL_PREDICATES_MAP[op](_walk(args[0]), _walk(args[1]))
    if op == "t_intersects":
        return TimeIntersects(_walk(args[0]), _walk(args[1]))
    if op in TEMPORAL_PREDICATES_MAP:
        return TEMPORAL_PREDICATES_MAP[op](_walk(args[0]), _walk(args[1]))
    if op in FUNCTIONS:
        if len(args) != FUNCTION_ARGS[op]:
            raise FilterError(f"{op.upper()} takes {FUNCTION_ARGS[op]} arguments")
        return ast.Function(op, [_walk(a) for a in args])
    if op.startswith("a_"):
        raise FilterError(f"{op.upper()}: this model has no array-valued queryables")
    if op == "accenti":
        raise FilterError("ACCENTI is not supported")
    raise FilterError(f"unknown function or operator {op!r} (see /functions)")


# -- AST → SQLAlchemy ----------------------------------------------------------------------------------------
TYPE_FAMILY = {"number": "number", "integer": "number", "string": "string", "boolean": "boolean",
               "date-time": "time", "geometry": "geometry"}


class SqlEvaluator(Evaluator):
    """pygeofilter AST → a SQLAlchemy boolean expression over one collection's queryables."""

    def __init__(self, collection: Collection, crs: Crs, storage_srid: int, max_radius: float) -> None:
        self.queryables = collection.queryables
        self.crs = crs
        self.srid = storage_srid
        self.max_radius = max_radius
        self.family = collection.family

    # types, for clear errors before the database sees the query
    def _type(self, node: object) -> str | None:
        if isinstance(node, ast.Attribute):
            return TYPE_FAMILY[self._queryable(node.name).type]
        if isinstance(node, bool):
            return "boolean"
        if isinstance(node, int | float):
            return "number"
        if isinstance(node, str):
            return "string"
        if isinstance(node, date | datetime | time | values.Interval):
            return "time"
        if isinstance(node, values.Geometry | values.Envelope | Box3D):
            return "geometry"
        if isinstance(node, ast.Arithmetic):
            return "number"
        if isinstance(node, ast.Function) and node.name == "casei":
            return "string"
        return None

    def _same_type(self, *nodes: object) -> None:
        kinds = {t for t in (self._type(n) for n in nodes) if t is not None}
        if "geometry" in kinds:
            raise FilterError("geometries are compared with the spatial operators (S_INTERSECTS, …)")
        if len(kinds) > 1:
            names = ", ".join(repr(n.name) for n in nodes if isinstance(n, ast.Attribute))
            raise FilterError(f"cannot compare {' and '.join(sorted(kinds))} values ({names or 'literals'})")

    def _queryable(self, name: str) -> Queryable:
        q = self.queryables.get(name) or (self.queryables["geometry"] if name == "geom" else None)
        if q is None:
            raise FilterError(f"unknown property {name!r}; see the collection's queryables")
        return q

    def _geometry_arg(self, node: object, value: object) -> ColumnElement:
        if not (isinstance(node, ast.Attribute) and self._queryable(node.name).type == "geometry"):
            raise FilterError("the first argument of a spatial operator is the geometry property")
        return value

    def _literal_geom(self, value: object) -> tuple[ColumnElement, shapely.Geometry]:
        if isinstance(value, values.Geometry):
            try:
                geom = shapely.from_geojson(json.dumps(value.geometry))
            except (shapely.errors.GEOSException, ValueError) as exc:
                raise FilterError(f"invalid geometry: {exc}") from None
        elif isinstance(value, values.Envelope):
            geom = shapely.box(value.x1, value.y1, value.x2, value.y2)
        else:
            raise FilterError("a spatial operator compares the geometry with a geometry literal")
        if geom.is_empty:
            raise FilterError("empty geometry")
        geom = to_storage(geom, self.crs, self.srid)
        return spatial3d.geom_param(geom, self.srid), geom

    @handle(ast.Not)
    def not_(self, node, sub):
        return not_(sub)

    @handle(ast.And, ast.Or)
    def combination(self, node, lhs, rhs):
        return and_(lhs, rhs) if node.op.value == "AND" else or_(lhs, rhs)

    @handle(ast.Comparison, subclasses=True)
    def comparison(self, node, lhs, rhs):
        self._same_type(node.lhs, node.rhs)
        return filters.runop(lhs, rhs, node.op.value)

    @handle(ast.Between)
    def between(self, node, lhs, low, high):
        self._same_type(node.lhs, node.low, node.high)
        return filters.between(lhs, low, high, node.not_)

    @handle(ast.Like)
    def like(self, node, lhs):
        pattern, nocase = node.pattern, False
        if isinstance(pattern, ast.Function) and pattern.name == "casei":
            pattern, nocase = pattern.arguments[0], True
        if isinstance(node.lhs, ast.Function) and node.lhs.name == "casei":
            nocase = True
        if not isinstance(pattern, str):
            raise FilterError("LIKE takes a string pattern")
        self._same_type(node.lhs, pattern)
        return lhs.ilike(pattern) if nocase else lhs.like(pattern)

    @handle(ast.In)
    def in_(self, node, lhs, *options):
        self._same_type(node.lhs, *node.sub_nodes)
        return lhs.in_(list(options))

    @handle(ast.IsNull)
    def null(self, node, lhs):
        return lhs.is_(None)

    @handle(ast.Attribute)
    def attribute(self, node):
        return self._queryable(node.name).expr

    @handle(ast.Arithmetic, subclasses=True)
    def arithmetic(self, node, lhs, rhs):
        for side in (node.lhs, node.rhs):
            if self._type(side) not in (None, "number"):
                raise FilterError("arithmetic works on numbers")
        return filters.runop(lhs, rhs, node.op.value)

    @handle(ast.Function)
    def function(self, node, *args):
        if node.name == "casei":
            if self._type(node.arguments[0]) not in (None, "string"):
                raise FilterError("CASEI takes a string")
            return func.lower(args[0])
        self._geometry_arg(node.arguments[0], args[0])
        target = node.arguments[1]
        if isinstance(target, Box3D):
            q = spatial3d.box_param(target.coords, self.crs, self.srid)
        else:
            q, _ = self._literal_geom(target)
        if node.name == "intersects3d":
            return spatial3d.within_3d(q, 0.0, self.max_radius)
        distance = args[2]
        if not isinstance(distance, int | float) or distance < 0:
            raise FilterError(f"{node.name.upper()}: the distance is a number of metres, 0 or more")
        if node.name == "dwithin3d":
            return spatial3d.within_3d(q, float(distance), self.max_radius)
        return spatial3d.dwithin_2d(q, float(distance))

    @handle(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial(self, node, lhs, rhs):
        self._geometry_arg(node.lhs, lhs)
        if isinstance(node.rhs, Box3D):
            if node.op.name != "INTERSECTS":
                raise FilterError("a 6-number BBOX works with S_INTERSECTS (the 3D box test)")
            return spatial3d.within_3d(spatial3d.box_param(node.rhs.coords, self.crs, self.srid), 0.0,
                                       self.max_radius)
        q = rhs
        return spatial3d.relate_2d(node.op.name, q)

    @handle(ast.TemporalPredicate, subclasses=True)
    def temporal(self, node, lhs, rhs):
        if self._type(node.lhs) != "time":
            raise FilterError(f"{type(node).__name__}: the first argument is a date-time property")
        if isinstance(node.rhs, ast.Attribute):
            raise FilterError("temporal operators compare a property with a date, timestamp or interval")
        start, end = (rhs.start, rhs.end) if isinstance(rhs, values.Interval) else (rhs, rhs)
        op = type(node)
        known = lhs.isnot(None)
        if op in (TimeIntersects, ast.TimeDisjoint, ast.TimeDuring, ast.TimeEquals, ast.TimeContains):
            parts = [known]
            strict = op is ast.TimeDuring
            if start is not None:
                parts.append(lhs > literal(start) if strict else lhs >= literal(start))
            if end is not None:
                parts.append(lhs < literal(end) if strict else lhs <= literal(end))
            inside = and_(*parts)
            return and_(known, not_(inside)) if op is ast.TimeDisjoint else inside
        if op is ast.TimeBefore:
            return lhs < literal(start) if start is not None else null()
        if op is ast.TimeAfter:
            return lhs > literal(end) if end is not None else null()
        raise FilterError(f"{type(node).__name__}: the model's date-time properties are instants; use "
                          "T_INTERSECTS, T_DISJOINT, T_DURING, T_EQUALS, T_BEFORE or T_AFTER")

    @handle(values.Geometry)
    def geometry(self, node):
        return self._literal_geom(node)[0]

    @handle(values.Envelope)
    def envelope(self, node):
        return self._literal_geom(node)[0]

    @handle(Box3D)
    def box3d(self, node):
        return None  # used only by S_INTERSECTS / the 3D functions, which read the node

    @handle(values.Interval)
    def interval(self, node, *args):
        return node

    @handle(str, int, float, bool, date, datetime, time)
    def literal(self, node):
        return node

    @handle(list)
    def array(self, node, *items):
        return list(items)

    def adopt(self, node, *sub_args):
        if isinstance(node, list):
            return [self.evaluate(n, False) for n in node]
        raise FilterError(f"{type(node).__name__} is not supported here")


def to_sql(tree: object, collection: Collection, crs: Crs, storage_srid: int, max_radius: float) -> ColumnElement:
    result = SqlEvaluator(collection, crs, storage_srid, max_radius).evaluate(tree)
    if isinstance(result, bool):
        return true() if result else not_(true())
    if not isinstance(result, ColumnElement):
        raise FilterError("the filter is not a condition")
    return result
