"""Live IoT: the sensors and their latest states, HTTP batch ingest, alarms and their acknowledgement, an
object's history in time buckets, and the live push (WebSocket /iot/ws, SSE /iot/stream; see cim.api.live)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request, WebSocket
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from cim.api import openapi, params
from cim.api.app import ApiState, state
from cim.api.crs import CRS84, Crs, bbox_to_storage
from cim.api.edits import edit_sensor
from cim.api.ingest import HttpIngest
from cim.api.live import Filter, Subscriber, check_access, parse_filter, sse_frame
from cim.api.problems import ApiError, problem
from cim.api.render import GEOJSON, JSON, json_response, segment, url
from cim.api.routes.objects import OBSERVES_SQL, OPEN_ALARMS_SQL, collection_of
from cim.api.security import require_key
from cim.iot.alarms import AlarmError, acknowledge
from cim.iot.ingest import Outcome, reading
from cim.iot.registry import describe
from cim.model.store import Model

router = APIRouter(tags=["IoT"])
STATUSES = ("unknown", "ok", "alarm", "offline")
ALARM_STATES = ("open", "active", "acknowledged", "cleared", "all")
KEEPALIVE_S = 15.0
MAX_BUCKETS = 5000
TARGET_POINTS = 300
BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
           604800)  # s: the automatic bucket is the smallest giving at most TARGET_POINTS
UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
LONLAT = Crs(CRS84, 4326, False, True)
STREAM_PARAMS = {"bbox", "layer", "kind", "sensor", "object", "alarms", "api_key"}


# -- HTTP ingest ------------------------------------------------------------------------------------
@dataclass
class Readings:
    refs: list[str] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)
    values: list[object] = field(default_factory=list)
    received: int = 0
    rejected: Counter = field(default_factory=Counter)


def parse_observations(body: bytes, max_batch: int) -> Readings:
    """A JSON array of {"sensor", "time", "value"} (or {"observations": [...]}; SensorThings' phenomenonTime
    and result too); 400 when it is not one, 413 over `max_batch` readings."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from None
    if isinstance(data, dict) and "observations" in data:
        data = data["observations"]
    if not isinstance(data, list):
        raise ApiError(400, 'the body is a JSON array of {"sensor": …, "time": …, "value": …} '
                            '(or {"observations": [...]})')
    if len(data) > max_batch:
        raise ApiError(413, f"{len(data):,} observations in one request; at most {max_batch:,} (CIM_IOT_MAX_BATCH)")
    out = Readings(received=len(data))
    refs, times, values = out.refs, out.times, out.values
    for item in data:  # the hot loop of a 50,000-reading batch: exact type tests, no call for plain numbers
        ref = item.get("sensor") if type(item) is dict else None
        if type(ref) is not str or not ref:
            if type(ref) is not int:  # a device id may come as a number (not a boolean)
                out.rejected["malformed"] += 1
                continue
            ref = str(ref)
        t, v = reading(item)
        refs.append(ref)
        times.append(t)
        values.append(v)
    return out


def _ingest(ingest: HttpIngest, body: bytes, max_batch: int, actor: str) -> dict:
    readings = parse_observations(body, max_batch)
    outcome = ingest.write(readings.refs, readings.times, readings.values, actor) if readings.refs else Outcome()
    rejected = readings.rejected + outcome.rejected
    return {"received": readings.received, "stored": outcome.stored, "duplicates": outcome.duplicates,
            "rejected": dict(rejected), "alarms": outcome.alarms}


@router.post("/iot/observations", summary="Store a batch of readings (API key)",
             openapi_extra={"security": openapi.KEYED, "requestBody": {"required": True, "content": {JSON: {
                 "schema": {"type": "array", "items": {"type": "object", "properties": {
                     "sensor": {"type": "string"}, "time": {"type": "string", "format": "date-time"},
                     "value": {"type": "number"}}}}}}}})
async def observations(request: Request, st: ApiState = Depends(state)) -> Response:
    editor = require_key(request, st.cfg, "ingest")
    body = await request.body()
    result = await anyio.to_thread.run_sync(_ingest, st.ingest, body, st.cfg.iot_max_batch, f"http {editor}")
    return json_response(result)


# -- sensors and states -----------------------------------------------------------------------------
@dataclass
class Where:
    """Conditions (fixed SQL text) and their named values."""

    parts: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict)

    def add(self, condition: str, **values: object) -> None:
        self.parts.append(condition)
        self.values.update(values)

    def sql(self) -> str:
        return "".join(f" AND {p}" for p in self.parts)


def _names(value: str | None, param: str, allowed: tuple[str, ...] | None = None) -> list[str] | None:
    found = params.names(value)
    if not found:
        return None
    if allowed is not None:
        bad = [v for v in found if v not in allowed]
        if bad:
            raise ApiError(400, f"{param}: {bad[0]!r} is not one of {', '.join(allowed)}")
    return found


def add_bbox(where: Where, value: str | None, srid: int, geom: str = "o.geom") -> None:
    """minlon,minlat,maxlon,maxlat (CRS84) on the sensor's location: the index finds candidates in the
    storage CRS, their longitude and latitude decide (as the live filter does)."""
    if not value:
        return
    box = params.numbers(value, "bbox", (4,))
    if box[0] > box[2] or box[1] > box[3]:
        raise ApiError(400, "bbox: minlon,minlat,maxlon,maxlat with the lower corner first")
    poly, _ = bbox_to_storage(box, LONLAT, srid)
    if poly.is_empty:
        where.add("false")
        return
    where.add(f"{geom} && ST_Expand(ST_GeomFromWKB(:bbox_wkb, {int(srid)}), 1.0) "
              f"AND ST_X(ST_Transform({geom}, 4326)) BETWEEN :x0 AND :x1 "
              f"AND ST_Y(ST_Transform({geom}, 4326)) BETWEEN :y0 AND :y1",
              bbox_wkb=poly.wkb, x0=box[0], y0=box[1], x1=box[2], y1=box[3])


def sensor_where(st: ApiState, bbox: str | None, kind: str | None, layer: str | None, object_: str | None,
                 status: str | None) -> Where:
    where = Where()
    add_bbox(where, bbox, st.db.srid)
    kinds = _names(kind, "kind")
    if kinds:
        where.add("o.attributes->>'sensor_kind' = ANY(:kinds)", kinds=kinds)
    layers = _names(layer, "layer")
    if layers:
        where.add("EXISTS (SELECT 1 FROM sensor_binding b JOIN city_object ob ON ob.code = b.object_code "
                  "WHERE b.sensor_code = o.code AND ob.layer = ANY(:layers))", layers=layers)
    objects = _names(object_, "object")
    if objects:
        where.add("EXISTS (SELECT 1 FROM sensor_binding b WHERE b.sensor_code = o.code "
                  "AND b.object_code = ANY(:objects))", objects=objects)
    statuses = _names(status, "status", STATUSES)
    if statuses:
        where.add("st.status = ANY(:statuses)", statuses=statuses)
    return where


SENSOR_COLUMNS = """o.code, o.name, o.layer, o.source_id, o.attributes, ST_X(g) AS lon, ST_Y(g) AS lat, ST_Z(g) AS z,
    st.time, st.value, st.status, st.severity, st.received_at,
    coalesce((SELECT array_agg(b.object_code ORDER BY b.position) FROM sensor_binding b
              WHERE b.sensor_code = o.code), '{}') AS objects"""
SENSOR_FROM = """FROM sensor_state st JOIN city_object o ON o.code = st.code AND o.kind = 'sensor',
    LATERAL ST_Transform(o.geom, 4326) AS g"""


def _point(row) -> dict | None:
    if row.lon is None or not math.isfinite(row.lon):
        return None
    coords = [round(row.lon, 8), round(row.lat, 8)]
    return {"type": "Point", "coordinates": coords + ([round(row.z, 3)] if row.z is not None else [])}


def sensor_properties(row) -> dict:
    attrs = row.attributes or {}
    kind, prop, unit = describe(attrs)
    return {"code": row.code, "name": row.name, "device": row.source_id or row.code, "layer": row.layer,
            "kind": kind, "property": prop, "unit": unit,
            "rules": attrs.get("rules") or {}, "interval_s": attrs.get("interval_s"), "objects": list(row.objects),
            "time": row.time, "value": row.value, "status": row.status, "severity": row.severity,
            "received_at": row.received_at}


def _self(request: Request, media: str) -> list[dict]:
    return [{"href": str(request.url), "rel": "self", "type": media, "title": "this document"}]


def _paging_links(request: Request, offset: int, limit: int, returned: int, matched: int, media: str) -> list:
    links = _self(request, media)
    rest = {k: v for k, v in request.query_params.multi_items() if k not in ("offset", "limit")}
    if offset + returned < matched:
        links.append({"href": url(request, request.url.path, **rest, offset=offset + limit, limit=limit),
                      "rel": "next", "type": media, "title": "next page"})
    if offset > 0:
        links.append({"href": url(request, request.url.path, **rest, offset=max(offset - limit, 0), limit=limit),
                      "rel": "prev", "type": media, "title": "previous page"})
    return links


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


Limit = Query(None, ge=1, description="Page size (default 100, at most CIM_API_MAX_LIMIT).")
Offset = Query(0, ge=0, le=10_000_000)
Bbox = Query(None, description="minlon,minlat,maxlon,maxlat (CRS84) around the sensor's location.")
Kinds = Query(None, description="Sensor kinds, comma-separated (e.g. manhole_cover,pipe_pressure).")
Layers = Query(None, description="Layers of the observed objects, comma-separated.")
Objects = Query(None, alias="object", description="Codes of observed objects, comma-separated.")
Statuses = Query(None, description="unknown, ok, alarm or offline, comma-separated.")


async def _page(st: ApiState, columns: str, from_: str, where: Where, order: str, size: int,
                offset: int) -> tuple[list, int]:
    """One page of rows and the number matched (counted apart only when the page is empty)."""
    query = text(f"SELECT {columns}, count(*) OVER () AS matched {from_} WHERE true{where.sql()} "
                 f"ORDER BY {order} LIMIT :limit OFFSET :offset")
    async with st.db.engine.connect() as conn:
        rows = (await conn.execute(query, {**where.values, "limit": size, "offset": offset})).all()
        matched = rows[0].matched if rows else (await conn.execute(text(
            f"SELECT count(*) {from_} WHERE true{where.sql()}"), where.values)).scalar_one()
    return rows, matched


@router.get("/iot/sensors", summary="The sensors, their rules, objects and latest state (GeoJSON)",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
async def sensors(request: Request, bbox: str | None = Bbox, kind: str | None = Kinds, layer: str | None = Layers,
                  object_: str | None = Objects, status: str | None = Statuses, limit: int | None = Limit,
                  offset: int = Offset, st: ApiState = Depends(state)) -> Response:
    where = sensor_where(st, bbox, kind, layer, object_, status)
    size = params.limit(limit, st.cfg)
    rows, matched = await _page(st, SENSOR_COLUMNS, SENSOR_FROM, where, "o.code", size, offset)
    features = [{"type": "Feature", "id": r.code, "geometry": _point(r), "properties": sensor_properties(r)}
                for r in rows]
    body = {"type": "FeatureCollection", "numberMatched": matched, "numberReturned": len(features),
            "timeStamp": _now(), "links": _paging_links(request, offset, size, len(features), matched, GEOJSON),
            "features": features}
    return json_response(body, GEOJSON)


async def sensor_feature(request: Request, st: ApiState, ref: str) -> dict:
    """One sensor by code or device id, with its open alarms and the objects it observes."""
    query = text(f"SELECT {SENSOR_COLUMNS} {SENSOR_FROM} WHERE o.code = :ref OR o.source_id = :ref "
                 f"ORDER BY o.code = :ref DESC, o.code LIMIT 1")
    async with st.db.engine.connect() as conn:
        row = (await conn.execute(query, {"ref": ref})).first()
        if row is None:
            raise ApiError(404, f"no sensor {ref!r} (a sensor's code or device id)")
        alarms = (await conn.execute(OPEN_ALARMS_SQL, {"codes": [row.code]})).mappings().all()
        observes = (await conn.execute(OBSERVES_SQL, {"code": row.code})).all()
    props = sensor_properties(row)
    props["alarms"] = [{k: v for k, v in a.items() if k != "sensor"} for a in alarms]
    props["observes"] = [{"code": c, "kind": k, "layer": lay, "name": n, "collection": collection_of(lay, k)}
                         for c, k, lay, n in observes]
    code = row.code
    links = [*_self(request, GEOJSON),
             {"href": url(request, f"/objects/{segment(code)}"), "rel": "describedby", "type": JSON,
              "title": "object detail"},
             {"href": url(request, f"/objects/{segment(code)}/history"), "rel": "related", "type": JSON,
              "title": "history in time buckets"},
             {"href": url(request, "/iot/alarms", sensor=code, state="all"), "rel": "related", "type": JSON,
              "title": "alarms"}]
    return {"type": "Feature", "id": code, "geometry": _point(row), "properties": props, "links": links}


@router.get("/iot/sensors/{code}", summary="One sensor (by unified code or device id)",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
async def sensor(request: Request, code: str, st: ApiState = Depends(state)) -> Response:
    return json_response(await sensor_feature(request, st, code), GEOJSON)


@router.patch("/iot/sensors/{code}", summary="Edit a sensor: name, rules, objects, unit, property, interval_s "
                                             "(API key)", response_class=Response,
              responses={200: {"content": {GEOJSON: {}}}})
async def patch_sensor(
    request: Request, code: str,
    patch: dict = Body(..., description='e.g. {"rules": {"h": 5, "deadband": 0.5}} (a merge patch: null removes '
                                        'a rule), {"objects": ["440402-PSD-0000001"]}, {"unit": "mm"}'),
    st: ApiState = Depends(state),
) -> Response:
    editor = require_key(request, st.cfg, "editing")
    found = await run_in_threadpool(edit_sensor, st.db.model, code, patch, editor)
    st.ingest.mark_stale()
    return json_response(await sensor_feature(request, st, found), GEOJSON)


@router.get("/iot/states", summary="The latest state of each sensor as GeoJSON points",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
async def states(request: Request, bbox: str | None = Bbox, kind: str | None = Kinds, layer: str | None = Layers,
                 object_: str | None = Objects, status: str | None = Statuses,
                 st: ApiState = Depends(state)) -> Response:
    where = sensor_where(st, bbox, kind, layer, object_, status)
    query = text(f"SELECT {SENSOR_COLUMNS} {SENSOR_FROM} WHERE true{where.sql()} ORDER BY o.code")
    async with st.db.engine.connect() as conn:
        rows = (await conn.execute(query, where.values)).all()
    features = []
    for r in rows:
        p = sensor_properties(r)
        features.append({"type": "Feature", "id": r.code, "geometry": _point(r), "properties": {
            "sensor": r.code, "kind": p["kind"], "property": p["property"], "unit": p["unit"], "time": r.time,
            "value": r.value, "status": r.status, "severity": r.severity, "objects": p["objects"]}})
    body = {"type": "FeatureCollection", "numberMatched": len(features), "numberReturned": len(features),
            "timeStamp": _now(), "links": _self(request, GEOJSON), "features": features}
    return json_response(body, GEOJSON)


# -- alarms -----------------------------------------------------------------------------------------
ALARM_COLUMNS = """a.id, a.sensor_code, a.rule, a.severity, a.state, a.raised_at, a.value, a.limit_value, a.message,
    a.acknowledged_at, a.acknowledged_by, a.cleared_at, a.clear_value, o.source_id, o.attributes,
    coalesce((SELECT array_agg(b.object_code ORDER BY b.position) FROM sensor_binding b
              WHERE b.sensor_code = a.sensor_code), '{}') AS objects"""
ALARM_FROM = "FROM alarm a LEFT JOIN city_object o ON o.code = a.sensor_code"
# in the order they happened: `at` of a raise or clear is the reading's time, of an acknowledgement the clock's
EVENTS_SQL = text("SELECT at, event, value, actor, note FROM alarm_event WHERE alarm_id = :id ORDER BY id")


def alarm_json(row) -> dict:
    kind, _, unit = describe(row.attributes)
    return {"id": row.id, "sensor": row.sensor_code, "device": row.source_id, "kind": kind,
            "unit": unit, "rule": row.rule, "severity": row.severity,
            "state": row.state, "raised_at": row.raised_at, "value": row.value, "limit": row.limit_value,
            "message": row.message, "acknowledged_at": row.acknowledged_at, "acknowledged_by": row.acknowledged_by,
            "cleared_at": row.cleared_at, "clear_value": row.clear_value, "objects": list(row.objects)}


def alarm_where(st: ApiState, state_: str, sensor_: str | None, object_: str | None, bbox: str | None,
                since: str | None) -> Where:
    where = Where()
    if state_ not in ALARM_STATES:
        raise ApiError(400, f"state: {state_!r} is not one of {', '.join(ALARM_STATES)}")
    if state_ == "open":
        where.add("a.state <> 'cleared'")
    elif state_ != "all":
        where.add("a.state = :state", state=state_)
    refs = _names(sensor_, "sensor")
    if refs:
        where.add("(a.sensor_code = ANY(:sensors) OR o.source_id = ANY(:sensors))", sensors=refs)
    objects = _names(object_, "object")
    if objects:
        where.add("EXISTS (SELECT 1 FROM sensor_binding b WHERE b.sensor_code = a.sensor_code "
                  "AND b.object_code = ANY(:objects))", objects=objects)
    add_bbox(where, bbox, st.db.srid)
    at = params.instant(since, "since")
    if at is not None:  # open at some time since then
        where.add("coalesce(a.cleared_at, 'infinity') >= :since", since=at)
    return where


@router.get("/iot/alarms", summary="Alarms, most recent first")
async def alarms(
    request: Request,
    state_: str = Query("open", alias="state", description="open (active or acknowledged, the default), active, "
                                                           "acknowledged, cleared or all."),
    sensor_: str | None = Query(None, alias="sensor", description="Sensor codes or device ids, comma-separated."),
    object_: str | None = Objects, bbox: str | None = Bbox,
    since: str | None = Query(None, description="Alarms open at some time since then (RFC 3339)."),
    limit: int | None = Limit, offset: int = Offset, st: ApiState = Depends(state),
) -> Response:
    where = alarm_where(st, state_, sensor_, object_, bbox, since)
    size = params.limit(limit, st.cfg)
    rows, matched = await _page(st, ALARM_COLUMNS, ALARM_FROM, where, "a.raised_at DESC, a.id DESC", size, offset)
    found = [alarm_json(r) for r in rows]
    return json_response({"alarms": found, "numberMatched": matched, "numberReturned": len(found),
                          "timeStamp": _now(),
                          "links": _paging_links(request, offset, size, len(found), matched, JSON)})


AlarmId = Path(..., ge=1, le=2**63 - 1)


async def alarm_detail(request: Request, st: ApiState, alarm_id: int) -> dict:
    async with st.db.engine.connect() as conn:
        row = (await conn.execute(text(f"SELECT {ALARM_COLUMNS} {ALARM_FROM} WHERE a.id = :id"),
                                  {"id": alarm_id})).first()
        if row is None:
            raise ApiError(404, f"no alarm {alarm_id}")
        events = (await conn.execute(EVENTS_SQL, {"id": alarm_id})).mappings().all()
    out = alarm_json(row)
    out["events"] = [dict(e) for e in events]
    out["links"] = [*_self(request, JSON),
                    {"href": url(request, f"/iot/sensors/{segment(row.sensor_code)}"), "rel": "related",
                     "type": GEOJSON, "title": "the sensor"}]
    return out


@router.get("/iot/alarms/{alarm_id}", summary="One alarm with its events")
async def alarm(request: Request, alarm_id: int = AlarmId, st: ApiState = Depends(state)) -> Response:
    return json_response(await alarm_detail(request, st, alarm_id))


def _acknowledge(model: Model, alarm_id: int, editor: str, note: str | None) -> dict:
    with model.connect(autocommit=True) as conn:
        try:
            return acknowledge(conn, alarm_id, editor, note)
        except AlarmError as exc:
            raise ApiError(exc.status, exc.detail) from None


@router.post("/iot/alarms/{alarm_id}/ack", summary="Acknowledge an active alarm (API key)",
             openapi_extra={"security": openapi.KEYED},
             responses={409: {"description": "The alarm is not active (already acknowledged, or cleared)."}})
async def ack(request: Request, alarm_id: int = AlarmId,
              body: dict | None = Body(None, description='Optional: {"note": "crew sent"}'),
              st: ApiState = Depends(state)) -> Response:
    editor = require_key(request, st.cfg, "acknowledging")
    body = body or {}
    note = body.get("note")
    if set(body) - {"note"} or not (note is None or (isinstance(note, str) and len(note) <= 2000)):
        raise ApiError(400, 'the body is {"note": "…"} (a string of at most 2,000 characters), or nothing')
    await run_in_threadpool(_acknowledge, st.db.model, alarm_id, editor, note)
    return json_response(await alarm_detail(request, st, alarm_id))


# -- history ----------------------------------------------------------------------------------------
def parse_bucket(value: str) -> int:
    """`60s`, `5min` (or `5m`), `1h`, `1d` → seconds."""
    m = re.fullmatch(r"\s*(\d{1,7})\s*(s|sec|m|min|h|d)\s*", value or "")
    if m is None or int(m.group(1)) == 0:
        raise ApiError(400, f"bucket: {value!r} is not a duration such as 60s, 5min, 1h or 1d")
    return int(m.group(1)) * UNITS[m.group(2)]


def bucket_name(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def history_window(start: str | None, end: str | None, bucket: str | None) -> tuple[datetime, datetime, int]:
    """[start, end] (default: the last 24 hours) and the bucket in seconds (default: at most ~300 buckets)."""
    t1 = params.instant(end, "end") or datetime.now(UTC)
    try:
        t0 = params.instant(start, "start") or t1 - timedelta(days=1)
    except OverflowError:
        raise ApiError(400, "end: too early for the default start (24 hours before end)") from None
    if t0 >= t1:
        raise ApiError(400, "start: must come before end")
    span = (t1 - t0).total_seconds()
    if bucket:
        seconds = parse_bucket(bucket)
        if span / seconds > MAX_BUCKETS:
            raise ApiError(400, f"bucket: {bucket} makes {math.ceil(span / seconds):,} buckets over this window; "
                                f"at most {MAX_BUCKETS:,} (widen the bucket or narrow start/end)")
    else:
        seconds = next((b for b in BUCKETS if span / b <= TARGET_POINTS), None) or math.ceil(span / TARGET_POINTS)
    return t0, t1, seconds


HISTORY_SENSORS_SQL = text("""
    SELECT st.id, o.code, o.attributes FROM city_object o JOIN sensor_state st ON st.code = o.code
    WHERE o.kind = 'sensor' AND (o.code = :code
          OR o.code IN (SELECT sensor_code FROM sensor_binding WHERE object_code = :code))
    ORDER BY o.code""")
HISTORY_SQL = text("""
    SELECT sensor_id, date_bin(:stride, time, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS t,
           avg(value), min(value), max(value), count(*)
    FROM observation WHERE sensor_id = ANY(:ids) AND time >= :start AND time <= :end
    GROUP BY 1, 2 ORDER BY 1, 2""")
EXISTS_SQL = text("SELECT 1 FROM city_object WHERE code = :code")


@router.get("/objects/{code}/history", summary="Readings of an object's sensors in time buckets",
            tags=["Objects"])
async def history(
    request: Request, code: str,
    start: str | None = Query(None, description="RFC 3339 (default: 24 hours before end)."),
    end: str | None = Query(None, description="RFC 3339 (default: now)."),
    bucket: str | None = Query(None, description="60s, 5min, 1h, 1d… (default: at most ~300 buckets)."),
    st: ApiState = Depends(state),
) -> Response:
    t0, t1, seconds = history_window(start, end, bucket)
    async with st.db.engine.connect() as conn:
        if (await conn.execute(EXISTS_SQL, {"code": code})).first() is None:
            raise ApiError(404, f"no object {code!r} in the model")
        found = (await conn.execute(HISTORY_SENSORS_SQL, {"code": code})).all()
        rows = (await conn.execute(HISTORY_SQL, {"stride": timedelta(seconds=seconds), "ids": [r.id for r in found],
                                                 "start": t0, "end": t1})).all() if found else []
    series: dict[int, list] = {}
    for sid, t, avg, lo, hi, n in rows:
        series.setdefault(sid, []).append({"time": t, "avg": avg, "min": lo, "max": hi, "count": n})
    out = []
    for sid, sensor_code, attrs in found:
        kind, prop, unit = describe(attrs)
        out.append({"sensor": sensor_code, "kind": kind, "property": prop, "unit": unit,
                    "buckets": series.get(sid, [])})
    return json_response({"object": code, "start": t0, "end": t1, "bucket": bucket_name(seconds),
                          "bucket_s": seconds, "sensors": out, "links": _self(request, JSON)})


# -- live push --------------------------------------------------------------------------------------
def stream_filter(query) -> Filter:
    unknown = sorted(set(query) - STREAM_PARAMS)
    if unknown:
        raise ApiError(400, f"unknown query parameter {unknown[0]!r}")
    return parse_filter(query.get("bbox"), query.get("layer"), query.get("kind"), query.get("sensor"),
                        query.get("object"), query.get("alarms"))


async def _deny(websocket: WebSocket, exc: ApiError) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(problem(exc.status, exc.detail, exc.headers))
    else:
        await websocket.close(1008, exc.detail[:120])


@router.websocket("/iot/ws")
async def live_ws(websocket: WebSocket) -> None:
    """Live push over WebSocket: one JSON text message per state change or alarm event (see docs/api.md)."""
    st: ApiState = websocket.app.state.cim
    try:
        check_access(websocket, st.cfg)
        wanted = stream_filter(websocket.query_params)
    except ApiError as exc:
        await _deny(websocket, exc)
        return
    sub = st.live.subscribe(wanted)  # before the handshake ends: nothing published after it is missed
    try:
        await websocket.accept()
        await _pump(websocket, sub)
    finally:
        st.live.unsubscribe(sub)


async def _pump(websocket: WebSocket, sub: Subscriber) -> None:
    async def send() -> None:
        while sub.closing is None:
            for msg in await sub.next():
                await websocket.send_text(msg.text)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(sub.code, sub.closing[:120]), 2)

    async def receive() -> None:  # what the client sends is ignored; its close ends the stream
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


@router.get("/iot/stream", include_in_schema=False)  # never ends: not for generated clients
async def live_sse(request: Request, st: ApiState = Depends(state)) -> Response:
    """Live push as Server-Sent Events: `event: state|alarm`, `data:` the same JSON as the WebSocket's."""
    wanted = stream_filter(request.query_params)
    return StreamingResponse(_events(st, wanted), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(st: ApiState, wanted: Filter):
    sub = st.live.subscribe(wanted)  # here, not in the route: a client gone before the stream starts leaves none
    try:
        yield b"retry: 2000\n: connected\n\n"
        while sub.closing is None:
            batch = await sub.next(KEEPALIVE_S)
            if batch:
                yield b"".join(sse_frame(m) for m in batch)
            elif sub.closing is None:
                yield b": keep-alive\n\n"
        yield b"event: close\ndata: " + orjson.dumps({"reason": sub.closing}) + b"\n\n"
    finally:
        st.live.unsubscribe(sub)
