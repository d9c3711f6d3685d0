"""Live push: one LISTEN connection per server process turns the ingest's NOTIFYs (cim.iot.ingest.LIVE_CHANNEL)
into state and alarm messages for every WebSocket (/iot/ws) and SSE (/iot/stream) subscriber whose filter
matches.

Nothing on the push path asks the database: the sensor's kind, objects, layers and location come from an
in-memory Registry, reloaded when the registry changes (cim.iot.registry.REGISTRY_CHANNEL) or a reading names
a sensor it does not know. Each subscriber has a bounded queue; one that falls too far behind is dropped
(WebSocket close 1013, SSE `event: close`) rather than slowing the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import anyio
import orjson
import psycopg
from starlette.requests import HTTPConnection

from cim.api import params
from cim.api.problems import ApiError
from cim.api.security import CHALLENGE, key_id, presented_key
from cim.config import Settings
from cim.db.server import conninfo
from cim.iot.ingest import LIVE_CHANNEL
from cim.iot.registry import REGISTRY_CHANNEL, Registry, Sensor
from cim.iot.rules import message
from cim.model.store import Model

log = logging.getLogger("cim.api")

QUEUE = 5000  # messages a subscriber may lag behind before it is dropped (5 s at 1,000 readings/s)
UNKNOWN_RELOAD_S = 2.0  # a reading of an unknown sensor reloads the registry at most this often
STREAM_PATHS = ("/iot/ws", "/iot/stream")
ALARMS = ("include", "only", "none")


@dataclass(frozen=True)
class Message:
    kind: str  # state | alarm
    sensor: str
    text: str  # the JSON, encoded once for every subscriber


@dataclass(frozen=True)
class Filter:
    """What a subscriber wants; None = anything."""

    bbox: tuple[float, float, float, float] | None = None  # CRS84, on the sensor's location
    layers: frozenset[str] | None = None  # of a bound object
    kinds: frozenset[str] | None = None  # sensor kinds
    sensors: frozenset[str] | None = None  # codes or device ids
    objects: frozenset[str] | None = None  # bound object codes
    alarms: str = "include"  # include | only | none

    def matches(self, code: str, sensor: Sensor | None) -> bool:
        if self.sensors is not None and code not in self.sensors and (
                sensor is None or sensor.device_id not in self.sensors):
            return False
        if sensor is None:  # not (yet) in the registry: only a filter on nothing else lets it through
            return self.bbox is None and self.layers is None and self.kinds is None and self.objects is None
        if self.kinds is not None and sensor.kind not in self.kinds:
            return False
        if self.layers is not None and self.layers.isdisjoint(sensor.layers):
            return False
        if self.objects is not None and self.objects.isdisjoint(sensor.objects):
            return False
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            return x0 <= sensor.lon <= x1 and y0 <= sensor.lat <= y1
        return True


def _set(value: str | None) -> frozenset[str] | None:
    found = params.names(value)
    return frozenset(found) if found else None


def parse_filter(bbox: str | None = None, layer: str | None = None, kind: str | None = None,
                 sensor: str | None = None, object_: str | None = None, alarms: str | None = None) -> Filter:
    """The query parameters of /iot/ws and /iot/stream (400 on a bad one)."""
    box = params.numbers(bbox, "bbox", (4,)) if bbox else None
    if box is not None and (box[0] > box[2] or box[1] > box[3]):
        raise ApiError(400, "bbox: minlon,minlat,maxlon,maxlat with the lower corner first")
    if alarms not in (None, "", *ALARMS):
        raise ApiError(400, f"alarms: {alarms!r} is not one of {', '.join(ALARMS)}")
    return Filter(box, _set(layer), _set(kind), _set(sensor), _set(object_), alarms or "include")


def check_access(conn: HTTPConnection, cfg: Settings) -> None:
    """Reads of the live streams, as other reads; the key may also come as ?api_key= because browsers'
    WebSocket and EventSource cannot set headers."""
    if cfg.api_public_read:
        return
    if not cfg.api_keys:
        raise ApiError(403, "reading is disabled: the server has no API key configured (CIM_API_KEYS)")
    key = presented_key(conn) or conn.query_params.get("api_key")  # type: ignore[arg-type]
    if not key:
        raise ApiError(401, "reading needs an API key (X-API-Key header, Authorization: Bearer or api_key=)",
                       CHALLENGE)
    if key_id(cfg, key) is None:
        raise ApiError(403, "the API key is not valid")


class Subscriber:
    """One client's filter and queue; `closing` says why the hub ended it."""

    def __init__(self, wanted: Filter, limit: int = QUEUE) -> None:
        self.filter = wanted
        self.limit = limit
        self.queue: deque[Message] = deque()
        self.closing: str | None = None
        self.code = 1000
        self.sent = 0
        self._ready = asyncio.Event()
        self._seen: dict[str, bool] = {}  # sensor → matches; cleared when the registry changes

    def offer(self, msg: Message, sensor: Sensor | None) -> bool:
        """Queue a message the filter wants; False when the queue is full (the hub then drops the client)."""
        if (msg.kind == "alarm" and self.filter.alarms == "none") or (
                msg.kind == "state" and self.filter.alarms == "only"):
            return True
        wanted = self._seen.get(msg.sensor)
        if wanted is None:
            wanted = self._seen[msg.sensor] = self.filter.matches(msg.sensor, sensor)
        if not wanted:
            return True
        if len(self.queue) >= self.limit:
            return False
        self.queue.append(msg)
        self._ready.set()
        return True

    def close(self, reason: str, code: int) -> None:
        if self.closing is None:
            self.closing, self.code = reason, code
            self.queue.clear()
            self._ready.set()

    def forget(self) -> None:
        self._seen.clear()

    async def next(self, timeout: float | None = None) -> list[Message]:
        """The messages queued (empty after `timeout` seconds without any, or when closing)."""
        if not self.queue and self.closing is None:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        out = list(self.queue)
        self.queue.clear()
        self.sent += len(out)
        return out


class LiveHub:
    """The LISTEN connection, the registry and the subscribers of one server process."""

    def __init__(self, model: Model, cfg: Settings, queue: int = QUEUE) -> None:
        self.model = model
        self.cfg = cfg
        self.queue = queue
        self.registry = Registry([])
        self.subscribers: set[Subscriber] = set()
        self.listening = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._reloaded_at = 0.0
        self._signals: dict[int, object] = {}
        self.on_reload: Callable[[], None] | None = None  # e.g. the HTTP ingest's registry goes stale

    # -- life ---------------------------------------------------------------------------------------
    async def start(self, timeout: float = 30) -> None:
        """Load the registry and LISTEN; returns once listening, so nothing committed after start is missed."""
        await self.reload()
        self._task = asyncio.create_task(self._listen(), name="cim-live")
        waiting = asyncio.create_task(self.listening.wait())
        done, _ = await asyncio.wait({waiting, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiting not in done:
            waiting.cancel()
            if self._task.done():
                self._task.result()  # the listener's error
            raise RuntimeError(f"live push: not listening on {LIVE_CHANNEL} after {timeout:g} s")
        self._end_streams_on_signals()

    async def stop(self) -> None:
        self.end_streams("the server is shutting down", 1001)
        for sig, handler in self._signals.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _end_streams_on_signals(self) -> None:
        """Close the streams at SIGINT/SIGTERM: uvicorn waits for open responses before it shuts the app down,
        and an SSE stream never ends by itself."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous = signal.getsignal(sig)

                def handler(signum, frame, previous=previous):
                    loop.call_soon_threadsafe(self.end_streams, "the server is shutting down", 1001)
                    if callable(previous):
                        previous(signum, frame)

                signal.signal(sig, handler)
                self._signals[sig] = previous
            except ValueError:  # not the main thread (an embedding server): its own shutdown ends the streams
                return

    def end_streams(self, reason: str, code: int) -> None:
        for sub in list(self.subscribers):
            sub.close(reason, code)
        self.subscribers.clear()

    # -- subscribers --------------------------------------------------------------------------------
    def subscribe(self, wanted: Filter) -> Subscriber:
        sub = Subscriber(wanted, self.queue)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    # -- the registry -------------------------------------------------------------------------------
    def _load(self) -> Registry:
        with self.model.connect(autocommit=True) as conn:
            return Registry.load(conn)

    async def reload(self) -> None:
        self._reloaded_at = time.monotonic()
        self.registry = await anyio.to_thread.run_sync(self._load)
        for sub in self.subscribers:
            sub.forget()
        if self.on_reload is not None:
            self.on_reload()

    # -- listening ----------------------------------------------------------------------------------
    async def _listen(self) -> None:
        delay = 0.5
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo(self.model.url), autocommit=True) as conn:
                    await conn.execute(f"LISTEN {LIVE_CHANNEL}")
                    await conn.execute(f"LISTEN {REGISTRY_CHANNEL}")
                    if not first:  # changes while disconnected went unheard
                        await self.reload()
                    first, delay = False, 0.5
                    self.listening.set()
                    async for note in conn.notifies():
                        try:
                            await self._on_notify(note.channel, note.payload)
                        except psycopg.Error:
                            raise
                        except Exception:  # one bad notification must not end the push for everyone
                            log.exception("live push: cannot relay a %s notification", note.channel)
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("live push: lost the database (%s); reconnecting in %.1f s",
                            " ".join(str(exc).split())[:200], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _on_notify(self, channel: str, payload: str) -> None:
        if channel == REGISTRY_CHANNEL:
            await self.reload()
            return
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("live push: a %s payload is not JSON: %.200s", LIVE_CHANNEL, payload)
            return
        states, alarms = data.get("s") or [], data.get("a") or []
        codes = {s[0] for s in states if isinstance(s, list) and s} | {
            a.get("sensor") for a in alarms if isinstance(a, dict)}
        if any(c not in self.registry.by_ref for c in codes) and \
                time.monotonic() - self._reloaded_at > UNKNOWN_RELOAD_S:
            await self.reload()
        self.publish(self._messages(states, alarms))

    def _messages(self, states: list, alarms: list) -> Iterable[tuple[Message, Sensor | None]]:
        by_ref = self.registry.by_ref
        for item in states:
            if isinstance(item, list) and len(item) == 5:
                sensor = by_ref.get(item[0])
                yield Message("state", item[0], orjson.dumps(state_message(item, sensor)).decode()), sensor
        for event in alarms:
            if isinstance(event, dict) and isinstance(event.get("sensor"), str):
                sensor = by_ref.get(event["sensor"])
                yield Message("alarm", event["sensor"], orjson.dumps(alarm_message(event, sensor)).decode()), sensor

    def publish(self, messages: Iterable[tuple[Message, Sensor | None]]) -> None:
        """Fan messages out to the subscribers that want them; drop those that cannot keep up."""
        subs = list(self.subscribers)
        if not subs:
            return  # (the messages are made lazily: nobody listening costs nothing)
        for msg, sensor in messages:
            for sub in subs:
                if sub.closing is None and not sub.offer(msg, sensor):
                    sub.close(f"too slow: more than {sub.limit} messages behind", 1013)
                    self.subscribers.discard(sub)
                    log.warning("live push: dropped a client %d messages behind (%d sent)", sub.limit, sub.sent)


def _sensor_fields(sensor: Sensor | None) -> dict:
    if sensor is None:
        return {"device": None, "kind": None, "property": None, "unit": None, "objects": [], "layers": [],
                "lon": None, "lat": None}
    return {"device": sensor.device_id, "kind": sensor.kind, "property": sensor.property, "unit": sensor.unit,
            "objects": list(sensor.objects), "layers": list(sensor.layers), "lon": _finite(sensor.lon),
            "lat": _finite(sensor.lat)}


def _finite(x: float | None) -> float | None:
    return round(x, 8) if x is not None and math.isfinite(x) else None


def state_message(item: list, sensor: Sensor | None) -> dict:
    """A state change as pushed: the NOTIFY item [code, time, value, status, severity] and the sensor."""
    code, at, value, status, severity = item
    fields = _sensor_fields(sensor)
    return {"type": "state", "sensor": code, "device": fields["device"], "kind": fields["kind"],
            "property": fields["property"], "unit": fields["unit"], "objects": fields["objects"],
            "layers": fields["layers"], "time": at, "value": value, "status": status, "severity": severity,
            "lon": fields["lon"], "lat": fields["lat"]}


def alarm_message(event: dict, sensor: Sensor | None) -> dict:
    """An alarm event (raised, acknowledged, cleared) as pushed, with the sensor's context."""
    out = {"type": "alarm", "event": event.get("event"), "id": event.get("id"), "sensor": event.get("sensor"),
           "rule": event.get("rule"), "severity": event.get("severity"), "time": event.get("time"),
           "value": event.get("value"), "limit": event.get("limit")}
    out.update({k: v for k, v in event.items() if k not in out})  # by, last_reading, …
    out.update(_sensor_fields(sensor))
    if out["event"] == "raised" and out["rule"]:
        with contextlib.suppress(TypeError, ValueError):
            out["message"] = message(out["rule"], out["value"], out["limit"], out["unit"] or "")
    return out


def sse_frame(msg: Message) -> bytes:
    return f"event: {msg.kind}\ndata: {msg.text}\n\n".encode()
