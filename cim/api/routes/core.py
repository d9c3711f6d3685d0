"""Landing page, conformance declaration and the CQL2 functions list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from cim.api import cql2, openapi
from cim.api.render import HTML, JSON, Format, json_response, respond, self_links, url

READ = ["GET", "HEAD"]  # HEAD answers the headers of GET
router = APIRouter(tags=["Capabilities"])

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/sorting",
    *cql2.CONFORMANCE,
]


@router.api_route("/", methods=READ, summary="Landing page")
async def landing(request: Request, f: Format | None = None) -> Response:
    data = {
        "title": "cim city model API",
        "description": "The city information model (GIS + BIM + underground pipe networks) as OGC API - Features, "
                       "with 3D queries, object detail, pipe network analyses and OGC 3D Tiles.",
        "links": [
            *self_links(request),
            {"href": url(request, "/api"), "rel": "service-desc", "type": openapi.MEDIA,
             "title": "the API definition (OpenAPI 3.0)"},
            {"href": url(request, "/conformance"), "rel": "conformance", "type": JSON,
             "title": "conformance classes"},
            {"href": url(request, "/collections"), "rel": "data", "type": JSON, "title": "collections"},
            {"href": url(request, "/functions"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/functions",
             "type": JSON, "title": "CQL2 functions"},
            {"href": url(request, "/tiles/tileset.json"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/tileset",
             "type": "application/json+3dtiles", "title": "the whole model as OGC 3D Tiles 1.1"},
            {"href": url(request, "/search/box"), "rel": "search", "type": JSON, "title": "3D queries"},
            {"href": url(request, "/analysis"), "rel": "service", "type": JSON, "title": "pipe network analyses"},
            {"href": url(request, "/", f="html"), "rel": "service-doc", "type": HTML, "title": "these pages"},
            {"href": url(request, "/viewer/"), "rel": "related", "type": HTML,
             "title": "the 3D viewer (CesiumJS): the model with live states and pipe tools"},
        ],
    }
    return respond(request, f, data)


@router.api_route("/api", methods=READ, summary="The API definition (OpenAPI 3.0)", include_in_schema=False)
async def api_definition(request: Request) -> Response:
    return json_response(request.app.openapi(), openapi.MEDIA)


@router.api_route("/conformance", methods=READ, summary="Conformance classes")
async def conformance(request: Request, f: Format | None = None) -> Response:
    return respond(request, f, {"title": "Conformance", "conformsTo": CONFORMANCE, "links": self_links(request)})


@router.api_route("/functions", methods=READ, summary="CQL2 functions")
async def functions(request: Request, f: Format | None = None) -> Response:
    data = {"title": "CQL2 functions", "functions": [
        {"name": name.upper(), "description": text,
         "returns": ["string"] if name == "casei" else ["boolean"]}
        for name, text in cql2.FUNCTIONS.items()], "links": self_links(request)}
    return respond(request, f, data)
