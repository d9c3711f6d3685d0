"""3D queries across collections: what meets a 3D box, what lies within a 3D distance of a point or a line, what
lies in an elevation range, and what lies beneath a footprint (pipes under a building or a road). And the text
search a viewer's search box asks: objects by unified code, name, address or source id, each with where to fly.

Objects are solids as cim_3d_distance sees them (migration 0004): LOD1 blocks from base to roof, pipes with
their diameter, BIM elements and other surfaces as surfaces. Results are GeoJSON pages like /items, each
feature with its `collection`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import orjson
import shapely
from fastapi import APIRouter, Depends, Query, Request
from shapely.errors import GEOSException
from sqlalchemy import Numeric, String, Text, case, cast, false, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement
from starlette.responses import Response

from cim.api import params, spatial3d
from cim.api.app import ApiState, state
from cim.api.catalog import NODE_KINDS, PIPE_KINDS, Collection, Queryable, mixed_join, mixed_queryables
from cim.api.crs import CRS84, Crs, parse_crs, to_storage
from cim.api.features import Page, add_bbox, check_properties
from cim.api.problems import ApiError
from cim.api.render import GEOJSON, JSON, Format, respond, self_links, url
from cim.api.routes.features import feature_collection, geo_headers, run_page
from cim.model.schema import city_object
from cim.tiler.georef import Geoid, ecef, find_geoid, geodetic

router = APIRouter(prefix="/search", tags=["3D queries"])
obj = city_object.c
DEFAULT_WIDTH = {"road": 7.0, "railway": 3.0}  # m: corridor of a line object without a `width` attribute


@dataclass
class Scope:
    """Several collections searched as one (the same interface as a Collection for Page)."""

    collections: list[Collection]
    queryables: dict[str, Queryable] = field(default_factory=mixed_queryables)
    id: str = "search"
    family: str = "objects"

    @property
    def title(self) -> str:
        return ", ".join(c.id for c in self.collections)

    @property
    def attribute_keys(self) -> frozenset[str]:
        return frozenset().union(*(c.attribute_keys for c in self.collections))

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for c in self.collections for k in c.kinds))

    def join(self):
        return mixed_join()

    def where(self) -> ColumnElement:
        return or_(*(c.where() for c in self.collections)) if self.collections else literal(False)


def collection_id() -> ColumnElement:
    return case((obj.kind.in_(sorted(NODE_KINDS)), obj.layer + "-nodes"), else_=obj.layer)


async def _scope(st: ApiState, names: str | None, default: str = "all") -> Scope:
    """The collections a 3D query looks in; terrain is left out (its geometry is the DEM's outline, not the
    ground surface)."""
    found = {cid: c for cid, c in (await st.catalog.current()).items() if "terrain" not in c.kinds}
    wanted = params.names(names)
    if wanted:
        missing = [n for n in wanted if n not in found]
        if missing:
            raise ApiError(400, f"collections: no collection {', '.join(map(repr, missing))} for 3D queries "
                                "(terrain is a raster); see /collections")
        return Scope([found[n] for n in wanted])
    if default == "networks":
        return Scope([c for c in found.values() if c.family in ("pipes", "nodes")])
    return Scope(list(found.values()))


def _geometry(text: str, param: str, crs: Crs, srid: int) -> shapely.Geometry:
    """A point or line as comma-separated x,y,z triples, or WKT, in `crs`, into the storage CRS."""
    text = text.strip()
    try:
        if text[:1].isalpha():
            geom = shapely.from_wkt(text)
        else:
            nums = params.numbers(text, param, tuple(range(3, 3 * 1000 + 1, 3)))
            points = [nums[i:i + 3] for i in range(0, len(nums), 3)]
            geom = shapely.Point(points[0]) if len(points) == 1 else shapely.LineString(points)
    except (GEOSException, ValueError) as exc:
        raise ApiError(400, f"{param}: not x,y,z[,x,y,z…] numbers nor WKT ({exc})") from None
    if geom.is_empty or not shapely.has_z(geom):
        raise ApiError(400, f"{param}: a 3D query needs heights (z)")
    return to_storage(geom, crs, srid)


def _paged(request: Request, st: ApiState, scope: Scope, conditions: list, crs: str | None, limit: int | None,
           offset: int, properties: str | None, sortby: list, extra: dict | None = None) -> Page:
    page = Page(scope, parse_crs(crs, "crs", st.db.known_srids), params.limit(limit, st.cfg), offset, conditions,
                sortby, params.names(properties),
                {"collection": collection_id(), **(extra or {})})
    check_properties(page)
    return page


async def _respond(request: Request, st: ApiState, page: Page, query: dict) -> Response:
    returned, matched, features = await run_page(st, page)
    body = feature_collection(request, page, returned, matched, features,
                              {"query": query, "collections": [c.id for c in page.collection.collections]})
    return Response(body, media_type=GEOJSON, headers=geo_headers(page.out_crs))


Limit = Query(None, ge=1)
Offset = Query(0, ge=0, le=10_000_000)
Collections = Query(None, description="Comma-separated collection ids (default: all).")


@router.get("", summary="The 3D queries")
async def index(request: Request, f: Format | None = None) -> Response:
    data = {"title": "3D queries", "links": [
        *self_links(request),
        {"href": url(request, "/search/box"), "rel": "search", "type": GEOJSON,
         "title": "objects meeting a 3D box: bbox=x1,y1,z1,x2,y2,z2"},
        {"href": url(request, "/search/near"), "rel": "search", "type": GEOJSON,
         "title": "objects within a 3D distance of a point or line: point=x,y,z or line=…, distance=m"},
        {"href": url(request, "/search/elevation"), "rel": "search", "type": GEOJSON,
         "title": "objects in an elevation range: zmin, zmax"},
        {"href": url(request, "/search/beneath"), "rel": "search", "type": GEOJSON,
         "title": "objects beneath a footprint: code=… (a building or road) or footprint=WKT&below=z"},
        {"href": url(request, "/search/text"), "rel": "search", "type": GEOJSON,
         "title": "objects by unified code, name, address or source id: q=text"},
    ]}
    return respond(request, f, data, media=JSON)


@router.get("/box", summary="Objects meeting a 3D box", response_class=Response,
            responses={200: {"content": {GEOJSON: {}}}})
async def box(
    request: Request,
    bbox: str = Query(..., description="x1,y1,z1,x2,y2,z2 (z: orthometric metres)"),
    bbox_crs: str | None = Query(None, alias="bbox-crs"),
    collections: str | None = Collections, crs: str | None = None, limit: int | None = Limit,
    offset: int = Offset, properties: str | None = None, st: ApiState = Depends(state),
) -> Response:
    coords = params.bbox(bbox)
    if coords is None or len(coords) != 6:
        raise ApiError(400, "bbox: a 3D box has 6 numbers x1,y1,z1,x2,y2,z2")
    box_crs = parse_crs(bbox_crs, "bbox-crs", st.db.known_srids)
    q = spatial3d.box_param(coords, box_crs, st.db.srid)
    scope = await _scope(st, collections)
    cond = spatial3d.within_3d(q, 0.0, st.catalog.max_radius)
    page = _paged(request, st, scope, [cond], crs, limit, offset, properties, [])
    return await _respond(request, st, page, {"box": coords, "crs": box_crs.uri})


@router.get("/near", summary="Objects within a 3D distance of a point or line", response_class=Response,
            responses={200: {"content": {GEOJSON: {}}}})
async def near(
    request: Request,
    point: str | None = Query(None, description="x,y,z"),
    line: str | None = Query(None, description="x1,y1,z1,x2,y2,z2[,…] or WKT LINESTRING Z"),
    distance: float = Query(..., ge=0, le=10_000, description="metres, 3D"),
    geom_crs: str | None = Query(None, alias="geom-crs", description="CRS of point/line (default CRS84)."),
    collections: str | None = Collections, crs: str | None = None, limit: int | None = Limit,
    offset: int = Offset, properties: str | None = None, st: ApiState = Depends(state),
) -> Response:
    if bool(point) == bool(line):
        raise ApiError(400, "give either point or line")
    gcrs = parse_crs(geom_crs, "geom-crs", st.db.known_srids)
    geom = _geometry(point or line, "point" if point else "line", gcrs, st.db.srid)
    q = spatial3d.geom_param(geom, st.db.srid)
    scope = await _scope(st, collections)
    dist = spatial3d.distance_3d(q)
    scope.queryables["distance_m"] = Queryable("distance_m", "number", dist)
    cond = spatial3d.within_3d(q, distance, st.catalog.max_radius)
    page = _paged(request, st, scope, [cond], crs, limit, offset, properties, [("distance_m", True)],
                  {"distance_m": func.round(cast(dist, Numeric), 3)})
    return await _respond(request, st, page, {"geometry": shapely.to_wkt(geom, rounding_precision=3),
                                             "distance_m": distance,
                                             "crs": f"EPSG:{st.db.srid} (easting, northing)"})


@router.get("/elevation", summary="Objects in an elevation range", response_class=Response,
            responses={200: {"content": {GEOJSON: {}}}})
async def elevation(
    request: Request,
    zmin: float | None = Query(None, description="metres (orthometric)"),
    zmax: float | None = Query(None, description="metres (orthometric)"),
    mode: str = Query("overlaps", pattern="^(overlaps|within)$",
                      description="overlaps: [base_z, top_z] meets the range; within: lies inside it"),
    bbox: str | None = None, bbox_crs: str | None = Query(None, alias="bbox-crs"),
    collections: str | None = Collections, crs: str | None = None, limit: int | None = Limit,
    offset: int = Offset, properties: str | None = None, st: ApiState = Depends(state),
) -> Response:
    if zmin is None and zmax is None:
        raise ApiError(400, "give zmin, zmax or both")
    if zmin is not None and zmax is not None and zmin > zmax:
        raise ApiError(400, "zmin is above zmax")
    scope = await _scope(st, collections)
    page = _paged(request, st, scope, [spatial3d.elevation(zmin, zmax, mode == "within")], crs, limit, offset,
                  properties, [])
    box_ = params.bbox(bbox)
    if box_ is not None:
        add_bbox(page, box_, parse_crs(bbox_crs, "bbox-crs", st.db.known_srids), st.db.srid)
    return await _respond(request, st, page, {"zmin": zmin, "zmax": zmax, "mode": mode})


async def _footprint_of(st: ApiState, code: str) -> tuple[bytes, float, str]:
    """An object's 2D footprint (lines by their width), its base level and kind."""
    width = func.coalesce(
        case((obj.attributes["width"].astext.op("~")(r"^[0-9]+(\.[0-9]+)?$"),
              cast(obj.attributes["width"].astext, Numeric)), else_=None),
        case(*((obj.kind == k, literal(w)) for k, w in DEFAULT_WIDTH.items()), else_=literal(3.0)))
    flat = func.ST_Force2D(func.cim_footprint(obj.geom))
    shape = case((func.GeometryType(obj.geom).in_(("LINESTRING", "MULTILINESTRING")),
                  func.ST_Buffer(flat, width / 2, literal("endcap=flat join=round", String))),
                 (func.GeometryType(obj.geom).in_(("POINT", "MULTIPOINT")), func.ST_Buffer(flat, 1.0)),
                 else_=flat)
    stmt = select(func.ST_AsBinary(shape), func.coalesce(obj.base_z, func.ST_ZMin(obj.geom)), obj.kind) \
        .where(obj.code == code)
    async with st.db.engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None:
        raise ApiError(404, f"no object {code!r} in the model")
    return bytes(row[0]), float(row[1]), row[2]


@router.get("/beneath", summary="Objects beneath a footprint (pipes under a building or road)",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
async def beneath(
    request: Request,
    code: str | None = Query(None, description="An object whose footprint to look under (a line by its width)."),
    footprint: str | None = Query(None, description="Or a WKT polygon in geom-crs."),
    geom_crs: str | None = Query(None, alias="geom-crs"),
    below: float | None = Query(None, description="Level (m) the objects lie below; default: the object's "
                                                  "base. Needed with footprint."),
    collections: str | None = Query(None, description="Default: every pipe and node collection."),
    crs: str | None = None, limit: int | None = Limit, offset: int = Offset, properties: str | None = None,
    st: ApiState = Depends(state),
) -> Response:
    if bool(code) == bool(footprint):
        raise ApiError(400, "give either code or footprint")
    if code:
        wkb, base, kind = await _footprint_of(st, code)
        area = shapely.from_wkb(wkb)
        level = base if below is None else below
    else:
        if below is None:
            raise ApiError(400, "below: give the level (m) the objects lie below when the footprint is a polygon")
        try:
            area = shapely.from_wkt(footprint)
        except (GEOSException, ValueError) as exc:
            raise ApiError(400, f"footprint: not WKT ({exc})") from None
        if area.geom_type not in ("Polygon", "MultiPolygon") or not area.is_valid:
            raise ApiError(400, "footprint: a valid WKT POLYGON or MULTIPOLYGON")
        area = to_storage(area, parse_crs(geom_crs, "geom-crs", st.db.known_srids), st.db.srid)
        level, kind = below, None
    q = spatial3d.geom_param(shapely.force_2d(area), st.db.srid)
    top = func.coalesce(obj.top_z, func.ST_ZMax(obj.geom))
    conditions = [spatial3d.relate_2d("INTERSECTS", q), top < level]
    if code:
        conditions.append(obj.code != code)
    scope = await _scope(st, collections, default="networks")
    page = _paged(request, st, scope, conditions, crs, limit, offset, properties, [],
                  {"depth_below_m": func.round(cast(level - top, Numeric), 3)})
    return await _respond(request, st, page, {"code": code, "kind": kind, "below": level,
                                             "footprint_area_m2": round(area.area, 1)})


# --- text search ---------------------------------------------------------------------------------------------

TEXT_MAX = 200  # characters of q, after stripping
MIN_RADIUS = 1.0  # m: a point object (sensor, node) still gives a sphere to fly to
FIELDS = ("code", "name", "address", "source_id")  # `matched` names the first at the best tier


@lru_cache(maxsize=1)
def _geoid() -> Geoid:
    """The geoid the tiler places tiles with (same settings, same grid), so that a view height is a tile height."""
    return find_geoid()


def _like(text: str) -> str:
    """`text` for LIKE/ILIKE … ESCAPE '\\': its wildcards and the escape character are data."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text_query(q: str, layers: list[str] | None, limit: int):
    """The ranked search as one statement with bound parameters (q is never SQL text). Tiers: 0 the code itself,
    1 a whole name / address / source id or the code's serial number (or a suffix from a dash: BLD-0001131),
    2 a prefix (or the code's end), 3 anywhere; ties by code."""
    text_ = literal(q, Text)
    esc = _like(q)
    exact = func.lower(text_)

    def ilike(col, pattern: str):
        return col.ilike(literal(pattern, Text), escape="\\")

    def tier(col):
        return case((func.lower(col) == exact, 1), (ilike(col, esc + "%"), 2), (ilike(col, "%" + esc + "%"), 3),
                    else_=None)

    serial = q.lstrip("0") if q.isdigit() else ""
    by_serial = (func.regexp_replace(obj.code, literal("^.*-0*", Text), literal("", Text)) == literal(serial, Text)
                 if serial else false())
    code_tier = case((func.lower(obj.code) == exact, 0),
                     (or_(by_serial, ilike(obj.code, "%-" + esc)), 1),
                     (or_(ilike(obj.code, esc + "%"), ilike(obj.code, "%" + esc)), 2),
                     (ilike(obj.code, "%" + esc + "%"), 3), else_=None)
    name_attr, address = obj.attributes["name"].astext, obj.attributes["address"].astext
    tiers = {"code": code_tier, "name": func.least(tier(obj.name), tier(name_attr)), "address": tier(address),
             "source_id": tier(obj.source_id)}
    contains = "%" + esc + "%"
    # every tier implies one of these (an index on each at city scale; see docs/api.md)
    found = or_(*(ilike(col, contains) for col in (obj.code, obj.name, name_attr, address, obj.source_id)),
                *((ilike(obj.code, "%" + _like(serial)),) if serial else ()))
    conditions = [found, obj.kind != "terrain"]
    if layers:
        conditions.append(obj.layer.in_(layers))
    x0, y0, z0 = func.ST_X(func.ST_StartPoint(obj.bbox3d)), func.ST_Y(func.ST_StartPoint(obj.bbox3d)), \
        func.ST_Z(func.ST_StartPoint(obj.bbox3d))
    x1, y1, z1 = func.ST_X(func.ST_EndPoint(obj.bbox3d)), func.ST_Y(func.ST_EndPoint(obj.bbox3d)), \
        func.ST_Z(func.ST_EndPoint(obj.bbox3d))
    inner = select(obj.code, obj.kind, obj.layer, collection_id().label("collection"),
                   func.coalesce(obj.name, name_attr).label("name"), address.label("address"), obj.geom, obj.top_z,
                   *(t.label(f"t_{f}") for f, t in tiers.items()),
                   x0.label("x0"), y0.label("y0"), z0.label("z0"), x1.label("x1"), y1.label("y1"), z1.label("z1")) \
        .where(*conditions).subquery()
    c = inner.c
    best = func.least(*(c[f"t_{f}"] for f in FIELDS))
    matched = case(*((c[f"t_{f}"] == best, f) for f in FIELDS[:-1]), else_=FIELDS[-1])
    # pipes and nodes carry the name of their road: in a tie the road (or building) itself comes first
    network_last = case((c.kind.in_(sorted(PIPE_KINDS | NODE_KINDS)), 1), else_=0)
    gtype = func.GeometryType(c.geom)
    point = case((gtype == "POINT", c.geom), (gtype == "LINESTRING", func.ST_LineInterpolatePoint(c.geom, 0.5)),
                 else_=func.ST_PointOnSurface(func.ST_Force2D(func.cim_footprint(c.geom))))
    height = case((gtype.in_(("POINT", "LINESTRING")), func.ST_Z(point)),
                  else_=func.coalesce(c.top_z, func.ST_ZMax(c.geom)))
    return select(c.code, c.kind, c.layer, c.collection, c.name, c.address, matched.label("matched"),
                  best.label("tier"), func.ST_X(point), func.ST_Y(point), height,
                  c.x0, c.y0, c.z0, c.x1, c.y1, c.z1) \
        .where(best.is_not(None)).order_by(best, network_last, c.code).limit(limit)


def _text_features(rows: list, srid: int) -> list[dict]:
    """GeoJSON features: the representative point (CRS84, orthometric Z as /items gives it) and the bounding
    sphere of the object's 3D extent with an ellipsoidal height, as the 3D Tiles place the object."""
    if not rows:
        return []
    geoid = _geoid()
    arr = np.array([r[8:] for r in rows], dtype=float)
    point, lo, hi = arr[:, 0:3], arr[:, 3:6], arr[:, 6:9]
    lonlat = geodetic(point, srid, geoid)[:, :2]
    centre = geodetic((lo + hi) / 2, srid, geoid)
    radius = np.maximum(np.linalg.norm(ecef(hi, srid, geoid) - ecef(lo, srid, geoid), axis=1) / 2, MIN_RADIUS)
    out = []
    for i, (code, kind, layer, collection, name, address, matched, _tier, *_) in enumerate(rows):
        out.append({
            "type": "Feature", "id": code,
            "geometry": {"type": "Point", "coordinates": [round(float(lonlat[i, 0]), 8), round(float(lonlat[i, 1]), 8),
                                                          round(float(point[i, 2]), 3)]},
            "properties": {"code": code, "kind": kind, "layer": layer, "collection": collection, "name": name,
                           "address": address, "matched": matched,
                           "view": {"lon": round(float(centre[i, 0]), 8), "lat": round(float(centre[i, 1]), 8),
                                    "height": round(float(centre[i, 2]), 3), "radius": round(float(radius[i]), 3)}},
        })
    return out


@router.get("/text", summary="Objects by unified code, name, address or source id", response_class=Response,
            responses={200: {"content": {GEOJSON: {}}}})
async def text_search(
    request: Request,
    q: str = Query(..., min_length=1, description=f"What was typed: a unified code or its digits, a name, an "
                                                  f"address or a source id (1 to {TEXT_MAX} characters)."),
    limit: int = Query(10, ge=1, le=50, description="How many objects, best first."),
    layer: str | None = Query(None, description="Comma-separated model layers to look in (default: all)."),
    st: ApiState = Depends(state),
) -> Response:
    text_ = q.strip()
    if not text_ or len(text_) > TEXT_MAX:
        raise ApiError(400, f"q: 1 to {TEXT_MAX} characters (not counting spaces around them)")
    if any(ord(ch) < 32 for ch in text_):
        raise ApiError(400, "q: control characters cannot be searched for")
    layers = params.names(layer)
    if layers:
        known = {c.layer for c in (await st.catalog.current()).values() if "terrain" not in c.kinds}
        missing = [name for name in layers if name not in known]
        if missing:
            raise ApiError(400, f"layer: no layer {', '.join(map(repr, missing))} to search "
                                f"(layers: {', '.join(sorted(known))})")
    async with st.db.engine.connect() as conn:
        rows = (await conn.execute(_text_query(text_, layers, limit))).all()
    features = _text_features([tuple(r) for r in rows], st.db.srid)
    body = {"type": "FeatureCollection", "numberReturned": len(features),
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "links": self_links(request, GEOJSON, False),
            "features": features}
    return Response(orjson.dumps(body), media_type=GEOJSON, headers={"Content-Crs": f"<{CRS84}>"})
