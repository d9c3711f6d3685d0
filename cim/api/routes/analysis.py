"""Pipe network analyses over HTTP: traces, shortest path, burst isolation, valve segments, clearances,
excavation impact and cross-sections. Each answers GeoJSON of the objects involved (property `role`), the
unified codes to highlight by role, a summary and the whole result.

Points and lines come in `crs` (default CRS84) and are taken into the storage CRS with pyproj; the analyses
themselves are cim.analysis's, run in a worker thread."""

from __future__ import annotations

import dataclasses
import json

import shapely
from fastapi import APIRouter, Depends, Query, Request
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field
from shapely.errors import GEOSException
from sqlalchemy import literal
from sqlalchemy.dialects.postgresql import JSONB
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cim.analysis.network import NetworkError, load_graph, nearest_pipe
from cim.analysis.results import json_safe
from cim.api import params
from cim.api.app import ApiState, state
from cim.api.crs import Crs, parse_crs, to_storage
from cim.api.features import Page
from cim.api.problems import ApiError
from cim.api.render import GEOJSON, JSON, Format, respond, self_links, url
from cim.api.routes.features import feature_collection, geo_headers, run_page
from cim.api.routes.search import Scope, collection_id
from cim.importers.errors import InputError
from cim.model.schema import city_object

router = APIRouter(prefix="/analysis", tags=["Pipe network analyses"])
obj = city_object.c
MAX_FEATURES = 20_000  # objects drawn in one answer; codes are always complete

Layer = Query("water", description="Model layer holding the network.")
CrsParam = Query(None, description="CRS of `at`, `line` or `polygon` (default CRS84).")


async def _call(fn, *args):
    try:
        return await run_in_threadpool(fn, *args)
    except NetworkError as exc:
        raise ApiError(400, str(exc)) from None
    except InputError as exc:
        raise ApiError(400, str(exc)) from None


async def _answer(request: Request, st: ApiState, roles: dict[str, list[str]], summary: dict, result: object,
                  out_crs: str | None) -> Response:
    """GeoJSON of every object named in `roles` (role → codes; a code keeps its first role)."""
    role_of: dict[str, str] = {}
    for role, codes in roles.items():
        for code in codes:
            role_of.setdefault(code, role)
    crs = parse_crs(out_crs, "crs", st.db.known_srids)
    scope = Scope(list((await st.catalog.current()).values()))
    lookup = literal(Jsonb(role_of), JSONB)  # psycopg's own wrapper: pages run on psycopg directly
    page = Page(scope, crs, max(1, min(len(role_of), MAX_FEATURES)), 0,
                [obj.code.in_(list(role_of)[:MAX_FEATURES])], [], None,
                {"role": lookup[obj.code].astext, "collection": collection_id()})
    returned, _, features = await run_page(st, page) if role_of else (0, 0, "")
    data = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
    extra = {"summary": json_safe(summary), "highlight": roles, "codes": list(role_of), "result": json_safe(data)}
    body = feature_collection(request, page, returned, len(role_of), features, extra)
    return Response(body, media_type=GEOJSON, headers=geo_headers(crs))


def _point(at: str, crs: Crs, srid: int) -> tuple[float, float]:
    x, y = params.numbers(at, "at", (2,))
    p = to_storage(shapely.Point(x, y), crs, srid)
    return p.x, p.y


async def _start(st: ApiState, layer: str, start: str | None, at: str | None, at_crs: str | None) -> str:
    if bool(start) == bool(at):
        raise ApiError(400, "give either a pipe or node code (start/target) or at=x,y")
    if start:
        return start
    x, y = _point(at, parse_crs(at_crs, "crs", st.db.known_srids), st.db.srid)
    return await _call(nearest_pipe, st.db.model, layer, x, y)


async def _pipe_layers(st: ApiState, names: list[str] | None) -> list[str] | None:
    """The `layers` of an analysis, each checked to hold pipes (None = all)."""
    if names:
        pipe_layers = {c.layer for c in (await st.catalog.current()).values() if c.family == "pipes"}
        unknown = sorted(set(names) - pipe_layers)
        if unknown:
            raise ApiError(400, f"layers: {', '.join(unknown)} hold no pipes (pipe layers: "
                                f"{', '.join(sorted(pipe_layers))})")
    return names or None


@router.get("", summary="The analyses")
async def index(request: Request, f: Format | None = None) -> Response:
    names = {"trace": "connected / upstream / downstream trace", "path": "shortest path between two objects",
             "isolation": "burst isolation (关阀分析): valves to close, what goes out, plan B",
             "segments": "valve segments and critical valves", "clearance": "GB 50289 clearance check",
             "excavation": "excavation impact (POST a pit polygon)", "profile": "cross-section along a cut line"}
    data = {"title": "Pipe network analyses", "links": [*self_links(request), *(
        {"href": url(request, f"/analysis/{k}"), "rel": "service", "type": GEOJSON, "title": v}
        for k, v in names.items())]}
    return respond(request, f, data, media=JSON)


@router.get("/trace", summary="Connected, upstream or downstream trace", response_class=Response,
            responses={200: {"content": {GEOJSON: {}}}})
async def trace(
    request: Request, layer: str = Layer,
    start: str | None = Query(None, description="Pipe or node: unified code or source id."),
    at: str | None = Query(None, description="x,y: start at the nearest pipe."),
    kind: str = Query("connected", pattern="^(connected|upstream|downstream)$"),
    crs: str | None = CrsParam, st: ApiState = Depends(state),
) -> Response:
    from cim.analysis.trace import trace as run

    code = await _start(st, layer, start, at, crs)
    graph = await _call(load_graph, st.db.model, layer)
    result = await _call(run, graph, code, kind)
    roles = {"start": [await _call(_unified, graph, code)], "pipe": result.pipes, "node": result.nodes,
             "building": result.buildings}
    return await _answer(request, st, roles, result.summary(), result, crs)


@router.get("/path", summary="Shortest path along open pipes", response_class=Response,
            responses={200: {"content": {GEOJSON: {}}}})
async def path(request: Request, start: str, end: str, layer: str = Layer, crs: str | None = CrsParam,
               st: ApiState = Depends(state)) -> Response:
    from cim.analysis.trace import shortest_path

    graph = await _call(load_graph, st.db.model, layer)
    result = await _call(shortest_path, graph, start, end)
    return await _answer(request, st, {"pipe": result.pipes, "node": result.nodes}, result.summary(), result, crs)


def _unified(graph, code: str) -> str:
    """The unified code of a pipe or node given by code or source id."""
    what, i = graph.find(code)
    return str(graph.node_code[i] if what == "node" else graph.pipe_code[i])


def _isolate(model, layer: str, code: str, failed: list[str], plan_b: bool):
    from cim.analysis.isolation import isolate, valve_segments

    graph = load_graph(model, layer)
    return isolate(valve_segments(graph), code, failed, plan_b), _unified(graph, code)


@router.get("/isolation", summary="Burst isolation: valves to close and what goes out of service",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
async def isolation(
    request: Request, layer: str = Layer,
    target: str | None = Query(None, description="Burst pipe or node: unified code or source id."),
    at: str | None = Query(None, description="x,y: the burst is on the nearest pipe."),
    failed: str | None = Query(None, description="Comma-separated valves that fail to close."),
    plan_b: bool = Query(True, alias="plan-b", description="Also plan for each valve failing."),
    crs: str | None = CrsParam, st: ApiState = Depends(state),
) -> Response:
    code = await _start(st, layer, target, at, crs)
    result, unified = await _call(_isolate, st.db.model, layer, code, params.names(failed) or [], plan_b)
    result.target = unified
    roles = {"target": [unified], "valve_to_close": result.valves_to_close, "valve_closed": result.already_closed,
             "valve_failed": result.could_not_close, "isolated_pipe": result.isolated_pipes,
             "isolated_node": result.isolated_nodes, "cut_off_pipe": result.cut_off_pipes,
             "cut_off_node": result.cut_off_nodes, "affected_building": result.buildings}
    return await _answer(request, st, roles, result.summary(), result, crs)


def _segments(model, layer: str, top: int) -> dict:
    from cim.analysis.isolation import critical, valve_segments

    seg = valve_segments(load_graph(model, layer))
    return {"segments_total": seg.count, "valves_total": len(seg.valve_code), **critical(seg, top)}


@router.get("/segments", summary="Valve segments and the most critical valves", response_class=Response,
            responses={200: {"content": {GEOJSON: {}}}})
async def segments(request: Request, layer: str = Layer, top: int = Query(10, ge=1, le=1000),
                   crs: str | None = CrsParam, st: ApiState = Depends(state)) -> Response:
    result = await _call(_segments, st.db.model, layer, top)
    # a valve on a pipe end is named pipe@node: highlight its node
    roles = {"critical_valve": [v["valve"].split("@")[-1] for v in result["valves"]]}
    summary = {"segments": result["segments_total"], "valves": result["valves_total"]}
    return await _answer(request, st, roles, summary, result, crs)


def _clearance(model, layers: list[str] | None, buildings: bool):
    from cim.analysis.clearance import check_buildings, check_clearances, load_table

    table = load_table()
    found = check_clearances(model, layers, table)
    near = check_buildings(model, layers, table) if buildings else []
    return found, list(found) + list(near)


@router.get("/clearance", summary="Clearances between networks (GB 50289 working values)",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
async def clearance(
    request: Request,
    layers: str | None = Query(None, description="Comma-separated pipe layers (default all)."),
    buildings: bool = Query(False, description="Also check pipes against building footprints."),
    crs: str | None = CrsParam, st: ApiState = Depends(state),
) -> Response:
    parse_crs(crs, "crs", st.db.known_srids)  # before the long part
    names = await _pipe_layers(st, params.names(layers))
    found, everything = await _call(_clearance, st.db.model, names, buildings)
    summary = {"pipes": found.pipes, "pairs_measured": found.pairs, "violations": len(everything),
               "unclassified": dict(found.unclassified)}
    roles = {"violating_pipe": sorted({v.code_a for v in everything} | {v.code_b for v in everything
                                                                         if v.kind != "building"}),
             "building": sorted({v.code_b for v in everything if v.kind == "building"})}
    result = {"violations": [dataclasses.asdict(v) for v in everything]}
    return await _answer(request, st, roles, summary, result, crs)


class Pit(BaseModel):
    polygon: dict = Field(..., description="GeoJSON Polygon or MultiPolygon of the pit outline, in `crs`.")
    depth: float = Field(..., gt=0, le=200, description="Pit depth below ground, metres.")
    margin: float = Field(1.0, ge=0, le=100, description="Safety margin beside and under the pit, metres.")
    layers: list[str] | None = Field(None, description="Pipe layers (default all).")
    crs: str | None = Field(None, description="CRS of the polygon (default CRS84).")


@router.post("/excavation", summary="Pipes an excavation hits or comes too close to", response_class=Response,
             responses={200: {"content": {GEOJSON: {}}}})
async def excavation(request: Request, pit: Pit, crs: str | None = Query(None, description="Output CRS."),
                     st: ApiState = Depends(state)) -> Response:
    from cim.analysis.excavation import excavation_impact

    try:
        outline = shapely.from_geojson(json.dumps(pit.polygon))
    except (GEOSException, ValueError) as exc:
        raise ApiError(400, f"polygon: not a GeoJSON geometry ({exc})") from None
    if outline.geom_type not in ("Polygon", "MultiPolygon"):
        raise ApiError(400, f"polygon: the pit outline must be a polygon, not {outline.geom_type}")
    outline = to_storage(outline, parse_crs(pit.crs, "crs", st.db.known_srids), st.db.srid)
    layers = await _pipe_layers(st, pit.layers)
    result = await _call(excavation_impact, st.db.model, outline, pit.depth, pit.margin, layers)
    roles = {"hit": [p.code for p in result.hit], "too_close": [p.code for p in result.too_close]}
    return await _answer(request, st, roles, result.summary(), result, crs)


@router.get("/profile", summary="Cross-section along a cut line", response_class=Response,
            responses={200: {"content": {GEOJSON: {}}}})
async def profile(
    request: Request,
    line: str = Query(..., description="x1,y1,x2,y2[,…] in crs (default CRS84)."),
    step: float = Query(5.0, ge=0.1, le=1000, description="Ground sampling step, metres."),
    layers: str | None = Query(None, description="Comma-separated pipe layers (default all)."),
    crs: str | None = CrsParam, st: ApiState = Depends(state),
) -> Response:
    from cim.analysis.profile import cross_section

    nums = params.numbers(line, "line", tuple(range(4, 2001, 2)))
    cut = shapely.LineString(list(zip(nums[::2], nums[1::2], strict=True)))
    cut = to_storage(cut, parse_crs(crs, "crs", st.db.known_srids), st.db.srid)
    if cut.length <= 0:
        raise ApiError(400, "line: two distinct points or more")
    if cut.length / step > 100_000:
        raise ApiError(400, f"step: {step} m gives over 100,000 ground samples along a {cut.length:.0f} m cut")
    result = await _call(cross_section, st.db.model, cut, await _pipe_layers(st, params.names(layers)),
                         step)
    return await _answer(request, st, {"crossed": [p.code for p in result.pipes]}, result.summary(), result, crs)
