"""OGC API - Features: collections, queryables, items (bbox, crs, datetime, CQL2 filter, sortby, properties,
paging), single items, and edits of an item's properties (Part 4 style PATCH, with an API key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from sqlalchemy import bindparam
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cim.api import cql2, params
from cim.api.app import ApiState, state
from cim.api.catalog import Collection
from cim.api.crs import CRS84, Crs, listed_uris, parse_crs
from cim.api.edits import apply_edit
from cim.api.features import Page, add_bbox, add_datetime, add_equality, check_properties, compiled
from cim.api.problems import ApiError
from cim.api.render import (
    GEOJSON,
    HTML,
    JSON,
    Format,
    html_response,
    json_response,
    respond,
    segment,
    self_links,
    url,
    wants_html,
)
from cim.api.routes.core import READ
from cim.api.security import require_key
from cim.model.schema import city_object

router = APIRouter(tags=["Features"])
TILES_TYPE = "application/json+3dtiles"
ITEM_PARAMS = {"f", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "properties", "sortby", "filter",
               "filter-lang", "filter-crs"}


def collection_json(request: Request, st: ApiState, coll: Collection) -> dict:
    base = f"/collections/{segment(coll.id)}"
    links = [
        {"href": url(request, base), "rel": "self", "type": JSON, "title": coll.title},
        {"href": url(request, base, f="html"), "rel": "alternate", "type": HTML, "title": "as HTML"},
        {"href": url(request, f"{base}/items"), "rel": "items", "type": GEOJSON, "title": "features (GeoJSON)"},
        {"href": url(request, f"{base}/items", f="html"), "rel": "items", "type": HTML, "title": "features (HTML)"},
        {"href": url(request, f"{base}/queryables"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
         "type": "application/schema+json", "title": "queryables"},
    ]
    content = []
    tileset = coll.tileset(st.cfg.tiles_dir)
    if tileset is not None:
        href = url(request, f"/tiles/{tileset}")
        content.append({"href": href, "rel": "original", "type": TILES_TYPE, "title": f"{coll.id} as 3D Tiles 1.1"})
        links.append({"href": href, "rel": "http://www.opengis.net/def/rel/ogc/1.0/tileset", "type": TILES_TYPE,
                      "title": "3D Tiles 1.1 tileset"})
    t0, t1 = coll.time_range
    out = {
        "id": coll.id,
        "title": coll.title,
        "description": coll.description,
        "itemType": "feature",
        "links": links,
        "extent": {
            "spatial": {"bbox": [coll.bbox], "crs": CRS84},
            "temporal": {"interval": [[t0, t1]], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"},
            "vertical": {"interval": [list(coll.z_range)], "vrs": "orthometric height, metres"},
        },
        "crs": listed_uris(st.db.known_srids, st.db.srid),
        "storageCrs": f"http://www.opengis.net/def/crs/EPSG/0/{st.db.srid}",
        "x-cim-layer": coll.layer,
        "x-cim-kinds": list(coll.kinds),
        "x-cim-count": coll.count,
    }
    if content:
        out["content"] = content
        out["collectionType"] = "3d-container"
    return out


@router.api_route("/collections", methods=READ, summary="The model's collections")
async def collections(request: Request, f: Format | None = None, st: ApiState = Depends(state)) -> Response:
    found = await st.catalog.current()
    data = {"title": "Collections", "links": self_links(request),
            "collections": [collection_json(request, st, c) for c in found.values()],
            "crs": listed_uris(st.db.known_srids, st.db.srid)}
    return respond(request, f, data, "collections.html")


@router.api_route("/collections/{collectionId}", methods=READ, summary="One collection")
async def collection(request: Request, collectionId: str, f: Format | None = None,
                     st: ApiState = Depends(state)) -> Response:
    coll = await st.catalog.get(collectionId)
    return respond(request, f, collection_json(request, st, coll), "collection.html")


@router.api_route("/collections/{collectionId}/queryables", methods=READ,
                  summary="Properties that filters and sortby can name",
                  responses={200: {"content": {"application/schema+json": {}, HTML: {}}}})
async def queryables(request: Request, collectionId: str, f: Format | None = None,
                     st: ApiState = Depends(state)) -> Response:
    coll = await st.catalog.get(collectionId)
    data = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": url(request, f"/collections/{segment(coll.id)}/queryables"),
        "type": "object",
        "title": f"{coll.title}: queryables",
        "properties": {name: q.schema() for name, q in coll.queryables.items()},
        "additionalProperties": False,
    }
    return respond(request, f, data, media="application/schema+json")


def _filter(request: Request, st: ApiState, page: Page, bbox: str | None, bbox_crs: str | None,
            when: str | None, filter_: str | None, filter_lang: str | None, filter_crs: str | None) -> None:
    """The conditions of the query parameters, added to the page."""
    box = params.bbox(bbox)
    box_crs = parse_crs(bbox_crs, "bbox-crs", st.db.known_srids)
    if box is not None:
        add_bbox(page, box, box_crs, st.db.srid)
    span = params.interval(when)
    if span is not None:
        add_datetime(page, *span)
    if filter_ is not None:
        tree = cql2.parse(filter_, filter_lang)
        fcrs = parse_crs(filter_crs, "filter-crs", st.db.known_srids)
        page.where(cql2.to_sql(tree, page.collection, fcrs, st.db.srid, st.catalog.max_radius))
    for key, value in request.query_params.multi_items():
        if key in ITEM_PARAMS:
            continue
        q = page.collection.queryables.get(key)
        if q is None:
            raise ApiError(400, f"unknown query parameter {key!r}")
        add_equality(page, q, value)


def _page_links(request: Request, page: Page, returned: int, matched: int, media: str) -> list[dict]:
    links = self_links(request, media)
    params_ = {k: v for k, v in request.query_params.multi_items() if k not in ("offset", "limit", "f")}
    if page.offset + returned < matched:
        links.append({"href": url(request, request.url.path, **params_, offset=page.offset + page.limit,
                                  limit=page.limit), "rel": "next", "type": media, "title": "next page"})
    if page.offset > 0:
        links.append({"href": url(request, request.url.path, **params_, offset=max(page.offset - page.limit, 0),
                                  limit=page.limit), "rel": "prev", "type": media, "title": "previous page"})
    if isinstance(page.collection, Collection):  # not for searches across collections
        links.append({"href": url(request, f"/collections/{segment(page.collection.id)}"), "rel": "collection",
                      "type": JSON, "title": page.collection.title})
    return links


async def run_page(st: ApiState, page: Page) -> tuple[int, int, str]:
    """(returned, matched, features text) of a page: its compiled SQL straight to psycopg."""
    sql, values = compiled(page, st.db.srid, st.db.engine.dialect)
    async with st.db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        cur = await raw.execute(sql, values)
        return tuple(await cur.fetchone())


def feature_collection(request: Request, page: Page, returned: int, matched: int, features: str,
                       extra: dict | None = None) -> bytes:
    """The FeatureCollection around PostgreSQL's feature text, without parsing it again."""
    head = {"type": "FeatureCollection", "numberMatched": matched, "numberReturned": returned,
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "links": _page_links(request, page, returned, matched, GEOJSON), **(extra or {})}
    return orjson.dumps(head)[:-1] + b',"features":[' + features.encode() + b"]}"


def geo_headers(crs: Crs) -> dict[str, str]:
    return {"Content-Crs": f"<{crs.uri}>"}


@router.api_route("/collections/{collectionId}/items", methods=READ, summary="Features of a collection",
            response_class=Response, responses={200: {"content": {GEOJSON: {}, HTML: {}}}})
async def items(
    request: Request,
    collectionId: str,
    limit: int | None = Query(None, ge=1, description="Page size (at most CIM_API_MAX_LIMIT, default 100)."),
    offset: int = Query(0, ge=0, le=10_000_000),
    bbox: str | None = Query(None, description="x1,y1,x2,y2 or x1,y1,z1,x2,y2,z2 in bbox-crs (default CRS84); "
                                               "z is the orthometric height range."),
    bbox_crs: str | None = Query(None, alias="bbox-crs"),
    crs: str | None = Query(None, description="Output CRS URI (default CRS84)."),
    datetime_: str | None = Query(None, alias="datetime", description="Instant or START/END ('..' open): "
                                                                      "objects valid then."),
    properties: str | None = Query(None, description="Comma-separated properties to return."),
    sortby: str | None = Query(None, description="e.g. -top_z,+name"),
    filter_: str | None = Query(None, alias="filter", description="CQL2 filter."),
    filter_lang: Literal["cql2-text", "cql2-json"] | None = Query(None, alias="filter-lang",
                                                                  description="cql2-text (default) or cql2-json."),
    filter_crs: str | None = Query(None, alias="filter-crs"),
    f: Format | None = None,
    st: ApiState = Depends(state),
) -> Response:
    coll = await st.catalog.get(collectionId)
    html = wants_html(request, f)
    out_crs = parse_crs(crs, "crs", st.db.known_srids)
    page = Page(coll, out_crs, params.limit(limit, st.cfg), offset, sortby=params.sortby(sortby),
                properties=params.names(properties))
    _filter(request, st, page, bbox, bbox_crs, datetime_, filter_, filter_lang, filter_crs)
    check_properties(page)
    returned, matched, features = await run_page(st, page)
    body = feature_collection(request, page, returned, matched, features)
    if html:
        data = orjson.loads(body)
        columns = [k for k in dict.fromkeys(k for ft in data["features"] for k in ft["properties"])
                   if k != "code"][:12]  # the code heads each row
        return html_response("items.html", request, data=data, title=f"{coll.title}: features",
                             columns=columns, collection=coll.id)
    return Response(body, media_type=GEOJSON, headers=geo_headers(out_crs))


async def one_feature(st: ApiState, coll: Collection, code: str, out_crs: Crs) -> dict:
    page = Page(coll, out_crs, 1)
    page.where(city_object.c.code == bindparam("feature_code", code), "code", feature_code=code)
    returned, _, features = await run_page(st, page)
    if not returned:
        raise ApiError(404, f"collection {coll.id!r} has no feature {code!r}")
    return orjson.loads(features)


@router.api_route("/collections/{collectionId}/items/{featureId}", methods=READ,
                  summary="One feature by its unified code",
            response_class=Response, responses={200: {"content": {GEOJSON: {}, HTML: {}}}})
async def item(request: Request, collectionId: str, featureId: str, crs: str | None = None, f: Format | None = None,
               st: ApiState = Depends(state)) -> Response:
    coll = await st.catalog.get(collectionId)
    out_crs = parse_crs(crs, "crs", st.db.known_srids)
    code = featureId
    feature = await one_feature(st, coll, code, out_crs)
    base = f"/collections/{segment(coll.id)}"
    feature["links"] = [
        *self_links(request, GEOJSON),
        {"href": url(request, base), "rel": "collection", "type": JSON, "title": coll.title},
        {"href": url(request, f"/objects/{segment(code)}"), "rel": "describedby", "type": JSON,
         "title": "object detail: lineage, containment, network, edits"},
    ]
    if wants_html(request, f):
        return html_response("item.html", request, data=feature, title=code, collection=coll.id)
    return json_response(feature, GEOJSON, geo_headers(out_crs))


@router.patch("/collections/{collectionId}/items/{featureId}", summary="Edit an item's properties (API key)",
              response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
async def patch_item(
    request: Request, collectionId: str, featureId: str,
    patch: dict = Body(..., description='JSON merge patch: {"properties": {"status": "demolished", …}}; '
                                        "null removes an attribute."),
    st: ApiState = Depends(state),
) -> Response:
    editor = require_key(request, st.cfg, "editing")
    coll = await st.catalog.get(collectionId)
    code = featureId
    await one_feature(st, coll, code, parse_crs(None, "crs", st.db.known_srids))
    await run_in_threadpool(apply_edit, st.db.model, coll, code, patch, editor)
    feature = await one_feature(st, coll, code, parse_crs(None, "crs", st.db.known_srids))
    return json_response(feature, GEOJSON)


