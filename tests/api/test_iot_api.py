"""The live IoT part of a real `cim serve`: HTTP batch ingest, alarms (hysteresis, acknowledgement), the live
overlay on objects and items, the WebSocket and SSE push with their filters, history buckets and sensor edits.

The module has a model of its own (buildings, drainage and water networks, a few sensors) and a server over it:
the shared sample model stays read-only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from cim.api.live import LiveHub, parse_filter
from cim.api.problems import ApiError
from cim.api.security import digest
from cim.config import Settings
from cim.db.server import drop_database
from cim.iot.registry import Registry, Sensor, import_sensors
from cim.iot.rules import Rules
from cim.model.store import Model
from tests.api.conftest import API_KEY, Server, start_server, stop_server
from tests.conftest import _new_model
from tests.helpers import fetch, scalar

KEY = {"X-API-Key": API_KEY}
EDITOR = digest(API_KEY)[:12]
MAX_BATCH = 1000
MAX_BODY = 2_000_000
RECV_S = 1.0  # a pushed message must arrive within this of the POST's answer


@pytest.fixture(scope="module")
def iot_model(server, sample_dir, tmp_path_factory) -> Iterator[Model]:
    from cim.importers.gis import import_gis
    from cim.importers.pipes.gis import import_pipes

    m = _new_model()
    import_gis(m, sample_dir / "district.gpkg", "buildings")
    for network in ("drainage", "water"):
        import_pipes(m, sample_dir / "pipes.gpkg", network)
    with m.connect() as conn:
        drain = [c for (c,) in conn.execute("SELECT code FROM pipe_node WHERE network = 'drainage' ORDER BY code")]
        water = [c for (c,) in conn.execute("SELECT code FROM pipe_node WHERE network = 'water' ORDER BY code")]
        bld = [c for (c,) in conn.execute("SELECT code FROM city_object WHERE layer = 'buildings' ORDER BY code")]
    rows = [  # id, kind, objects, h, hh, deadband
        ("MC-A", "manhole_cover", drain[0], 5, 20, 1), ("MC-B", "manhole_cover", drain[10], 5, 20, 1),
        ("MC-C", "manhole_cover", drain[20], 5, 20, 1), ("MC-D", "manhole_cover", drain[-1], 5, 20, 1),
        ("MC-E", "manhole_cover", drain[30], 5, 20, 1), ("PP-A", "pipe_pressure", water[0], 0.6, 0.7, 0.02),
        ("BE-A", "building_energy", bld[0], 800, 1000, 20), ("SET-A", "settlement", f"{bld[1]};{bld[2]}", "", "", ""),
    ]
    path = tmp_path_factory.mktemp("iot") / "sensors.csv"
    path.write_text("id,kind,objects,h,hh,deadband\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    import_sensors(m, path)
    yield m
    drop_database(m.url)


@pytest.fixture(scope="module")
def iot(iot_model, tmp_path_factory) -> Iterator[Server]:
    out = tmp_path_factory.mktemp("iot-api")
    proc, url = start_server(iot_model, out / "no-tiles", out / "serve.log", CIM_IOT_MAX_BATCH=str(MAX_BATCH),
                             CIM_IOT_MAX_BODY_BYTES=str(MAX_BODY))
    yield Server(url, iot_model, out / "no-tiles", out / "serve.log")
    stop_server(proc)


@pytest.fixture
def c(iot) -> Iterator[httpx.Client]:
    with iot.client() as client:
        yield client


class Clock:
    """Reading times: each call a second later than the one before, starting two hours ago."""

    def __init__(self) -> None:
        self.t = time.time() - 7200

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


CLOCK = Clock()


def code_of(model: Model, device: str) -> str:
    return scalar(model, "SELECT code FROM city_object WHERE kind = 'sensor' AND source_id = %s", (device,))


def bound(model: Model, device: str) -> list[str]:
    return [c for (c,) in fetch(model, "SELECT b.object_code FROM sensor_binding b JOIN city_object o ON "
                                       "o.code = b.sensor_code WHERE o.source_id = %s ORDER BY position", (device,))]


def post(c: httpx.Client, readings: list, **kwargs) -> dict:
    r = c.post("/iot/observations", json=readings, headers=KEY, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def reading(device: str, value: float, at: float | None = None) -> dict:
    return {"sensor": device, "time": CLOCK() if at is None else at, "value": value}


def open_alarms(c: httpx.Client, device: str) -> list[dict]:
    r = c.get("/iot/alarms", params={"sensor": device})
    assert r.status_code == 200, r.text
    return r.json()["alarms"]


# -- HTTP ingest ------------------------------------------------------------------------------------
def test_ingest_stores_once_and_counts_what_it_refuses(c, iot):
    sid = scalar(iot.model, "SELECT id FROM sensor_state WHERE code = %s", (code_of(iot.model, "MC-C"),))
    t0 = CLOCK.t + 1
    CLOCK.t += 200
    good = [{"sensor": "MC-C", "time": t0 + i, "value": 1.0 + i / 100} for i in range(100)]
    bad = [{"sensor": "NOPE", "time": t0, "value": 1}, {"sensor": "MC-C", "time": "yesterday", "value": 1},
           {"sensor": "MC-C", "time": "2026-01-01T00:00:00", "value": 1},  # no offset: ambiguous
           {"sensor": "MC-C", "time": t0 + 500, "value": "1.5"}, {"sensor": "MC-C", "time": t0 + 501, "value": True},
           {"time": t0, "value": 1}, 42]
    first = post(c, good + bad)
    assert first["received"] == 107 and first["stored"] == 100 and first["duplicates"] == 0
    assert first["rejected"] == {"unknown sensor": 1, "bad time": 2, "bad value": 2, "malformed": 2}
    assert scalar(iot.model, "SELECT count(*) FROM observation WHERE sensor_id = %s", (sid,)) == 100
    again = post(c, good)
    assert again["stored"] == 0 and again["duplicates"] == 100 and again["rejected"] == {}
    assert scalar(iot.model, "SELECT count(*) FROM observation WHERE sensor_id = %s", (sid,)) == 100
    values = fetch(iot.model, "SELECT extract(epoch FROM time), value FROM observation WHERE sensor_id = %s "
                              "ORDER BY time", (sid,))
    assert np.allclose([float(t) for t, _ in values], [g["time"] for g in good], atol=1e-5)
    assert [v for _, v in values] == [g["value"] for g in good]
    state = fetch(iot.model, "SELECT value, status FROM sensor_state WHERE id = %s", (sid,))[0]
    assert state == (good[-1]["value"], "ok")


def test_ingest_accepts_the_wrapper_iso_times_codes_and_sensorthings_names(c, iot):
    code = code_of(iot.model, "MC-C")
    t = CLOCK()
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "+00:00"
    body = {"observations": [{"sensor": code, "phenomenonTime": iso, "result": 2.5},
                             {"sensor": "MC-C", "time": t + 0.5, "value": 2}]}
    out = post(c, body)
    assert (out["stored"], out["rejected"]) == (2, {})
    assert fetch(iot.model, "SELECT value FROM sensor_state WHERE code = %s", (code,))[0][0] == 2.0


def test_ingest_needs_a_key_and_keeps_to_its_limits(c, iot):
    one = [reading("MC-C", 1.0)]
    assert c.post("/iot/observations", json=one).status_code == 401
    assert c.post("/iot/observations", json=one, headers={"X-API-Key": "wrong"}).status_code == 403
    at = CLOCK()
    over = c.post("/iot/observations", json=[reading("MC-C", 1.0, at + i / 10_000) for i in range(MAX_BATCH + 1)],
                  headers=KEY)
    assert over.status_code == 413 and over.headers["content-type"] == "application/problem+json"
    # its own body limit, not the 1 MB of the other routes
    padded = json.dumps([reading("MC-C", 1.0)]).encode() + b" " * 1_500_000
    r = c.post("/iot/observations", content=padded, headers={**KEY, "content-type": "application/json"})
    assert r.status_code == 200 and r.json()["stored"] == 1
    too_big = c.post("/iot/observations", content=b" " * (MAX_BODY + 1),
                     headers={**KEY, "content-type": "application/json"})
    assert too_big.status_code == 413
    assert c.patch("/collections/buildings/items/x", content=b" " * 1_100_000, headers=KEY).status_code == 413
    for body in (b"not json", b'{"a": 1}', b'"x"'):
        r = c.post("/iot/observations", content=body, headers={**KEY, "content-type": "application/json"})
        assert r.status_code == 400, body


# -- alarms and the overlay ---------------------------------------------------------------------------
def test_threshold_raises_and_hysteresis_clears(c, iot):
    code, node = code_of(iot.model, "MC-A"), bound(iot.model, "MC-A")[0]
    assert post(c, [reading("MC-A", 3.0)])["alarms"] == []
    raised = post(c, [reading("MC-A", 6.0)])["alarms"]
    assert [(a["event"], a["rule"], a["sensor"], a["value"], a["limit"]) for a in raised] == \
        [("raised", "H", code, 6.0, 5.0)]
    found = open_alarms(c, "MC-A")
    assert [(a["id"], a["state"], a["rule"], a["severity"]) for a in found] == [(raised[0]["id"], "active", "H", 2)]
    assert found[0]["objects"] == [node] and found[0]["message"] == "6 mm is above the H limit 5 mm"

    detail = c.get(f"/objects/{node}").json()
    assert [(s["code"], s["status"], s["value"], s["unit"]) for s in detail["sensors"]] == [(code, "alarm", 6.0, "mm")]
    assert [a["id"] for a in detail["alarms"]] == [raised[0]["id"]]
    live = c.get(f"/collections/drainage-nodes/items/{node}").json()["properties"]["live"]
    assert (live["status"], live["severity"], live["sensors"]) == ("alarm", 2, 1)
    assert (live["alarm"]["id"], live["alarm"]["rule"], live["alarm"]["sensor"]) == (raised[0]["id"], "H", code)

    # between h - deadband (4) and h (5): still in alarm
    assert post(c, [reading("MC-A", 4.5)])["alarms"] == []
    assert [a["id"] for a in open_alarms(c, "MC-A")] == [raised[0]["id"]]
    cleared = post(c, [reading("MC-A", 3.9)])["alarms"]
    assert [(a["event"], a["id"], a["value"]) for a in cleared] == [("cleared", raised[0]["id"], 3.9)]
    assert open_alarms(c, "MC-A") == []
    past = c.get("/iot/alarms", params={"sensor": code, "state": "cleared"}).json()["alarms"]
    assert [(a["id"], a["clear_value"]) for a in past] == [(raised[0]["id"], 3.9)]
    live = c.get(f"/collections/drainage-nodes/items/{node}").json()["properties"]["live"]
    assert (live["status"], live["severity"], live["alarm"]) == ("ok", 0, None)
    assert c.get(f"/objects/{node}").json()["alarms"] == []


def test_items_carry_live_only_where_sensors_are(c, iot):
    node = bound(iot.model, "MC-A")[0]
    x, y = fetch(iot.model, "SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(geom, 4326) g FROM city_object "
                            "WHERE code = %s) s", (node,))[0]
    page = c.get("/collections/drainage-nodes/items", params={"bbox": f"{x - 0.002},{y - 0.002},{x + 0.002},"
                                                                      f"{y + 0.002}", "limit": 100}).json()
    with_live = {f["id"] for f in page["features"] if "live" in f["properties"]}
    bound_here = {c_ for (c_,) in fetch(iot.model, "SELECT object_code FROM sensor_binding")}
    assert node in with_live and with_live == {f["id"] for f in page["features"]} & bound_here
    assert len(page["features"]) > len(with_live)  # the others carry no `live`
    only = c.get("/collections/drainage-nodes/items", params={"properties": "code,live", "limit": 1000}).json()
    assert {f["id"] for f in only["features"] if f["properties"]["live"]} == bound_here & {
        f["id"] for f in only["features"]}
    sensors = c.get("/collections/sensors/items", params={"limit": 100}).json()["features"]
    assert all(f["properties"]["live"]["sensors"] == 1 for f in sensors)


def test_acknowledge_lifecycle(c, iot):
    raised = post(c, [reading("MC-B", 7.0)])["alarms"][0]
    ack = c.post(f"/iot/alarms/{raised['id']}/ack", json={"note": "crew on the way"})
    assert ack.status_code == 401
    ack = c.post(f"/iot/alarms/{raised['id']}/ack", json={"note": "crew on the way"}, headers=KEY)
    assert ack.status_code == 200, ack.text
    body = ack.json()
    assert (body["state"], body["acknowledged_by"]) == ("acknowledged", EDITOR)
    assert [(e["event"], e["note"]) for e in body["events"]] == [("raised", None), ("acknowledged", "crew on the way")]
    assert c.post(f"/iot/alarms/{raised['id']}/ack", headers=KEY).status_code == 409
    assert [a["state"] for a in open_alarms(c, "MC-B")] == ["acknowledged"]
    node = bound(iot.model, "MC-B")[0]
    live = c.get(f"/collections/drainage-nodes/items/{node}").json()["properties"]["live"]
    assert (live["status"], live["alarm"]["state"]) == ("alarm", "acknowledged")

    post(c, [reading("MC-B", 0.5)])
    done = c.get(f"/iot/alarms/{raised['id']}").json()
    assert done["state"] == "cleared" and done["clear_value"] == 0.5
    assert [e["event"] for e in done["events"]] == ["raised", "acknowledged", "cleared"]
    assert [e["actor"] for e in done["events"]][1] == EDITOR
    again = c.post(f"/iot/alarms/{raised['id']}/ack", headers=KEY)
    assert again.status_code == 409 and "cleared" in again.json()["detail"]
    assert c.post("/iot/alarms/999999999/ack", headers=KEY).status_code == 404
    assert c.get("/iot/alarms/999999999").status_code == 404
    assert c.get("/iot/alarms/0").status_code == 400
    assert c.post(f"/iot/alarms/{raised['id']}/ack", json={"note": 5}, headers=KEY).status_code == 400
    assert c.get("/iot/alarms", params={"state": "burning"}).status_code == 400
    everything = c.get("/iot/alarms", params={"state": "all", "sensor": "MC-B"}).json()
    assert raised["id"] in [a["id"] for a in everything["alarms"]]


# -- the live push ------------------------------------------------------------------------------------
def ws_url(iot: Server, **params) -> str:
    return iot.url.replace("http", "ws", 1) + "/iot/ws?" + "&".join(f"{k}={v}" for k, v in params.items())


def location(c: httpx.Client, device: str) -> tuple[float, float]:
    return tuple(c.get(f"/iot/sensors/{device}").json()["geometry"]["coordinates"][:2])


def next_message(ws) -> dict:
    return json.loads(ws.recv(timeout=RECV_S))


def test_websocket_pushes_states_and_alarms_to_the_filters_that_want_them(c, iot):
    code, pp = code_of(iot.model, "MC-D"), code_of(iot.model, "PP-A")
    lon, lat = location(c, "MC-D")
    others = [location(c, d) for d in ("MC-A", "MC-B", "MC-C", "MC-E", "PP-A", "BE-A", "SET-A")]
    box = (lon - 1e-4, lat - 1e-4, lon + 1e-4, lat + 1e-4)
    assert not any(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in others)
    bbox = ",".join(f"{v:.7f}" for v in box)
    with connect(ws_url(iot, kind="manhole_cover")) as by_kind, connect(ws_url(iot, layer="water")) as by_layer, \
            connect(ws_url(iot, bbox=bbox)) as by_box, connect(ws_url(iot, alarms="only", sensor="MC-D")) as alarms:
        at = CLOCK()
        post(c, [{"sensor": "MC-D", "time": at, "value": 10.0}])
        for ws in (by_kind, by_box):
            state, alarm = next_message(ws), next_message(ws)
            assert state == {"type": "state", "sensor": code, "device": "MC-D", "kind": "manhole_cover",
                             "property": "cover_displacement", "unit": "mm", "objects": bound(iot.model, "MC-D"),
                             "layers": ["drainage"], "time": state["time"], "value": 10.0, "status": "alarm",
                             "severity": 2, "lon": pytest.approx(lon, abs=1e-7), "lat": pytest.approx(lat, abs=1e-7)}
            assert abs(np.datetime64(state["time"].rstrip("Z"), "us").astype(float) / 1e6 - at) < 1e-3
            assert (alarm["type"], alarm["event"], alarm["rule"], alarm["sensor"], alarm["limit"]) == \
                ("alarm", "raised", "H", code, 5.0)
            assert alarm["message"] == "10 mm is above the H limit 5 mm" and alarm["objects"] == state["objects"]
        first = next_message(alarms)
        assert (first["type"], first["event"], first["sensor"]) == ("alarm", "raised", code)

        post(c, [reading("PP-A", 0.4)])
        state = next_message(by_layer)  # MC-D's messages went to the others, not to this one
        assert (state["sensor"], state["value"], state["layers"]) == (pp, 0.4, ["water"])
        post(c, [reading("MC-D", 11.0)])
        for ws in (by_kind, by_box):  # PP-A's state is not theirs
            state = next_message(ws)
            assert (state["sensor"], state["value"]) == (code, 11.0)
        post(c, [reading("MC-D", 1.0)])
        cleared = next_message(alarms)  # no states on an alarms-only stream
        assert (cleared["event"], cleared["sensor"], cleared["value"]) == ("cleared", code, 1.0)


def test_websocket_refuses_bad_filters(iot):
    for params in ({"bbox": "1,2,3"}, {"alarms": "sometimes"}, {"colour": "red"}):
        with pytest.raises(InvalidStatus) as exc:
            connect(ws_url(iot, **params)).close()
        assert exc.value.response.status_code == 400


def sensor(code: str, kind: str, layer: str, lon: float, lat: float) -> Sensor:
    return Sensor(code, 1, f"dev-{code}", None, kind, "p", "u", Rules(), None, (f"obj-{code}",), (layer,), lon, lat)


def test_filters_choose_by_place_layer_kind_sensor_and_object():
    a = sensor("A", "manhole_cover", "drainage", 113.50, 22.20)
    b = sensor("B", "pipe_pressure", "water", 113.60, 22.30)
    cases = {
        parse_filter(bbox="113.4,22.1,113.55,22.25"): {"A"},
        parse_filter(layer="water,gas"): {"B"},
        parse_filter(kind="manhole_cover"): {"A"},
        parse_filter(sensor="dev-B"): {"B"},
        parse_filter(sensor="A,B", kind="pipe_pressure"): {"B"},
        parse_filter(object_="obj-A"): {"A"},
        parse_filter(): {"A", "B"},
    }
    for wanted, expected in cases.items():
        assert {s.code for s in (a, b) if wanted.matches(s.code, s)} == expected, wanted
    assert parse_filter(sensor="X").matches("X", None) and not parse_filter(kind="k").matches("X", None)
    for bad in ({"bbox": "2,2,1,1"}, {"bbox": "a,b,c,d"}, {"alarms": "maybe"}):
        with pytest.raises(ApiError):
            parse_filter(**bad)


def test_a_client_that_falls_behind_is_dropped_and_the_others_keep_up():
    hub = LiveHub(None, Settings(), queue=3)  # no model: nothing here reaches the database
    hub.registry = Registry([sensor("A", "manhole_cover", "drainage", 113.5, 22.2)])
    slow, fast = hub.subscribe(parse_filter()), hub.subscribe(parse_filter())
    alarms_only = hub.subscribe(parse_filter(alarms="only"))
    received = []
    for i in range(5):
        hub.publish(hub._messages([["A", f"2026-01-01T00:00:0{i}Z", float(i), "ok", 0]], []))
        received += [json.loads(m.text)["value"] for m in fast.queue]
        fast.queue.clear()
    assert received == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert (slow.code, slow.closing) == (1013, "too slow: more than 3 messages behind")
    assert slow not in hub.subscribers and not slow.queue and fast in hub.subscribers
    assert not alarms_only.queue and alarms_only in hub.subscribers
    hub.publish(hub._messages([], [{"id": 1, "event": "raised", "sensor": "A", "rule": "H", "severity": 2,
                                    "time": "2026-01-01T00:00:05Z", "value": 9.0, "limit": 5.0}]))
    alarm = json.loads(alarms_only.queue[0].text)
    assert (alarm["type"], alarm["objects"], alarm["message"]) == ("alarm", ["obj-A"], "9 u is above the H limit 5 u")
    hub.end_streams("the server is shutting down", 1001)
    assert (fast.code, alarms_only.code) == (1001, 1001) and not hub.subscribers


def test_sse_delivers_the_same_messages(c, iot):
    code = code_of(iot.model, "MC-E")
    with httpx.Client(base_url=iot.url, timeout=httpx.Timeout(10, read=RECV_S + 1)) as sse, \
            sse.stream("GET", "/iot/stream", params={"sensor": "MC-E"}) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        post(c, [reading("MC-E", 25.0)])
        events = []
        while len(events) < 3:  # the state, then the H and HH alarms
            line = next(lines)
            if line.startswith("event: "):
                kind = line[7:]
                data = json.loads(next(lines)[len("data: "):])
                events.append((kind, data["type"], data["sensor"], data.get("event"), data.get("rule")))
    assert events[0] == ("state", "state", code, None, None)
    assert sorted(events[1:]) == [("alarm", "alarm", code, "raised", "H"), ("alarm", "alarm", code, "raised", "HH")]


def test_streams_need_the_key_when_reads_do(iot, make_api):
    closed = make_api(iot.model, CIM_API_PUBLIC_READ="false")
    with pytest.raises(InvalidStatus) as exc:
        connect(ws_url(closed)).close()
    assert exc.value.response.status_code == 401
    with connect(ws_url(closed, api_key=API_KEY)):
        pass
    with connect(ws_url(closed), additional_headers=KEY):
        pass
    with closed.client() as client:
        assert client.get("/iot/stream").status_code == 401
        assert client.get("/iot/sensors").status_code == 401
        assert client.get("/iot/sensors", params={"api_key": API_KEY}).status_code == 401  # only the streams
        assert client.get("/iot/sensors", headers=KEY).status_code == 200
        with client.stream("GET", "/iot/stream", params={"api_key": API_KEY}) as stream:
            assert stream.status_code == 200


# -- sensors, states and edits ------------------------------------------------------------------------
def test_sensors_and_states_filter_and_page(c, iot):
    every = c.get("/iot/sensors", params={"limit": 3}).json()
    assert every["numberMatched"] == 8 and every["numberReturned"] == 3
    seen = [f["id"] for f in every["features"]]
    nxt = next(link["href"] for link in every["links"] if link["rel"] == "next")
    while nxt:
        page = httpx.get(nxt).json()
        seen += [f["id"] for f in page["features"]]
        nxt = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert seen == sorted(code for (code,) in fetch(iot.model, "SELECT code FROM city_object WHERE kind = 'sensor'"))
    kinds = c.get("/iot/sensors", params={"kind": "manhole_cover,settlement"}).json()["features"]
    assert {f["properties"]["device"] for f in kinds} == {"MC-A", "MC-B", "MC-C", "MC-D", "MC-E", "SET-A"}
    water = c.get("/iot/states", params={"layer": "water"}).json()["features"]
    assert [f["properties"]["sensor"] for f in water] == [code_of(iot.model, "PP-A")]
    node = bound(iot.model, "MC-A")[0]
    assert [f["id"] for f in c.get("/iot/sensors", params={"object": node}).json()["features"]] == \
        [code_of(iot.model, "MC-A")]
    lon, lat = location(c, "SET-A")
    near = c.get("/iot/states", params={"bbox": f"{lon - 1e-5},{lat - 1e-5},{lon + 1e-5},{lat + 1e-5}"}).json()
    assert [f["properties"]["sensor"] for f in near["features"]] == [code_of(iot.model, "SET-A")]
    statuses = {f["properties"]["sensor"]: f["properties"]["status"] for f in c.get("/iot/states").json()["features"]}
    expected = dict(fetch(iot.model, "SELECT code, status FROM sensor_state"))
    assert statuses == expected
    assert c.get("/iot/states", params={"status": "exploded"}).status_code == 400
    assert c.get("/iot/states", params={"bbox": "1,2,3"}).status_code == 400
    one = c.get("/iot/sensors/SET-A").json()
    assert one["id"] == code_of(iot.model, "SET-A") and one["properties"]["objects"] == bound(iot.model, "SET-A")
    assert [o["code"] for o in one["properties"]["observes"]] == bound(iot.model, "SET-A")
    assert c.get(f"/iot/sensors/{one['id']}").json()["properties"]["device"] == "SET-A"
    assert c.get("/iot/sensors/NOPE").status_code == 404
    sensor_detail = c.get(f"/objects/{one['id']}").json()
    assert [o["code"] for o in sensor_detail["sensor"]["objects"]] == bound(iot.model, "SET-A")


def test_patch_sensor_validates_and_changes_evaluation(c, iot):
    code = code_of(iot.model, "BE-A")
    for patch, word in (({"rules": {"h": 2000}}, "rise"), ({"rules": {"h": "high"}}, "rules.h"),
                        ({"rules": {"hot": 1}}, "rules.hot"), ({"objects": ["nope"]}, "nope"),
                        ({"objects": []}, "objects"), ({"colour": "red"}, "colour"), ({"interval_s": -1}, "interval_s"),
                        ({"unit": ""}, "unit"), ({"objects": [code]}, "itself")):
        r = c.patch(f"/iot/sensors/{code}", json=patch, headers=KEY)
        assert r.status_code == 400 and word in r.json()["detail"], (patch, r.text)
    assert c.patch(f"/iot/sensors/{code}", json={"rules": {"h": 900}}).status_code == 401
    assert c.patch("/iot/sensors/NOPE", json={"rules": {"h": 900}}, headers=KEY).status_code == 404
    # the generic edit of the sensors collection leaves what the IoT code reads to the checked edit above
    generic = c.patch(f"/collections/sensors/items/{code}", json={"properties": {"rules": {"h": "x"}}}, headers=KEY)
    assert generic.status_code == 400 and "/iot/sensors" in generic.json()["detail"]

    raised = post(c, [reading("BE-A", 900.0)])["alarms"]
    assert [(a["rule"], a["event"]) for a in raised] == [("H", "raised")]
    r = c.patch("/iot/sensors/BE-A", json={"rules": {"h": None}}, headers=KEY)  # by device id
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["rules"] == {"hh": 1000.0, "deadband": 20.0}
    assert r.json()["properties"]["status"] == "ok"
    gone = c.get(f"/iot/alarms/{raised[0]['id']}").json()
    assert gone["state"] == "cleared" and [e["event"] for e in gone["events"]] == ["raised", "cleared"]
    assert gone["events"][-1]["actor"] == EDITOR
    assert post(c, [reading("BE-A", 900.0)])["alarms"] == []  # no H rule any more

    r = c.patch(f"/iot/sensors/{code}", json={"rules": {"h": 850, "deadband": 5}, "unit": "kW", "name": "meter"},
                headers=KEY)
    assert r.status_code == 200 and r.json()["properties"]["name"] == "meter"
    again = post(c, [reading("BE-A", 900.0)])["alarms"]
    assert [(a["rule"], a["limit"]) for a in again] == [("H", 850.0)]
    assert [(a["event"], a["rule"]) for a in post(c, [reading("BE-A", 844.0)])["alarms"]] == [("cleared", "H")]
    edits = c.get(f"/objects/{code}").json()["lineage"]["edits"]
    assert edits[-1]["editor"] == EDITOR and edits[-1]["after"]["rules"] == {"h": 850.0, "hh": 1000.0,
                                                                             "deadband": 5.0}
    assert edits[-2]["before"]["rules"] == {"h": 800.0, "hh": 1000.0, "deadband": 20.0}

    old = bound(iot.model, "BE-A")[0]
    layer, key, new = fetch(iot.model, "SELECT layer, source_key, code FROM code_registry WHERE layer = "
                                       "'buildings' AND code <> %s ORDER BY code DESC LIMIT 1", (old,))[0]
    with connect(ws_url(iot, object=new)) as ws:
        r = c.patch(f"/iot/sensors/{code}", json={"objects": [f"{layer}:{key}"]}, headers=KEY)
        assert r.status_code == 200 and r.json()["properties"]["objects"] == [new]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the server's registry follows the edit (NOTIFY cim_registry)
            post(c, [reading("BE-A", 100.0)])
            try:
                message = next_message(ws)
                break
            except TimeoutError:
                continue
        assert (message["sensor"], message["objects"], message["layers"]) == (code, [new], ["buildings"])
    assert [s["code"] for s in c.get(f"/objects/{new}").json()["sensors"]] == [code]
    assert c.get(f"/objects/{old}").json()["sensors"] == []


# -- history ------------------------------------------------------------------------------------------
def rfc3339(t: float) -> str:
    return f"{np.datetime64(int(t), 's')}Z"


def test_history_buckets_match_the_readings(c, iot):
    code = code_of(iot.model, "SET-A")
    rng = np.random.default_rng(5)
    t0 = np.floor(time.time() / 300) * 300 - 6 * 3600 + 17.5  # six hours ago, mid-bucket
    times = t0 + np.cumsum(rng.uniform(5, 60, 600))
    values = np.round(rng.normal(3, 1, len(times)), 3)
    post(c, [{"sensor": "SET-A", "time": float(t), "value": float(v)} for t, v in zip(times, values, strict=True)])
    start, end = rfc3339(t0 - 600), rfc3339(times[-1] + 1)
    r = c.get(f"/objects/{bound(iot.model, 'SET-A')[0]}/history", params={"start": start, "end": end,
                                                                          "bucket": "15min"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bucket"] == "15min" and body["bucket_s"] == 900
    series = {s["sensor"]: s for s in body["sensors"]}
    got = series[code]["buckets"]
    assert series[code]["unit"] == "mm"
    bins = np.floor(times / 900) * 900
    expected = [(b, values[bins == b].mean(), values[bins == b].min(), values[bins == b].max(),
                 int((bins == b).sum())) for b in np.unique(bins)]
    assert len(got) == len(expected)
    for g, (b, avg, lo, hi, n) in zip(got, expected, strict=True):
        assert np.datetime64(g["time"][:19], "s").astype(int) == b
        assert (g["count"], g["min"], g["max"]) == (n, lo, hi) and g["avg"] == pytest.approx(avg, rel=1e-12)
    sid = scalar(iot.model, "SELECT id FROM sensor_state WHERE code = %s", (code,))
    assert sum(g["count"] for g in got) == scalar(
        iot.model, "SELECT count(*) FROM observation WHERE sensor_id = %s", (sid,))

    default = c.get(f"/objects/{code}/history").json()  # a sensor's own history; the last 24 hours
    assert default["bucket_s"] == 300 and len(default["sensors"]) == 1
    assert sum(b["count"] for b in default["sensors"][0]["buckets"]) == len(times)
    assert len(default["sensors"][0]["buckets"]) <= 300
    for params in ({"bucket": "0s"}, {"bucket": "5 parsecs"}, {"bucket": "1s"}, {"start": "yesterday"},
                   {"start": end, "end": start}):
        assert c.get(f"/objects/{code}/history", params=params).status_code == 400, params
    assert c.get("/objects/NOPE/history").status_code == 404
    before = {"start": rfc3339(time.time() - 30 * 3600), "end": rfc3339(time.time() - 25 * 3600)}
    empty = c.get(f"/objects/{bound(iot.model, 'MC-A')[0]}/history", params=before).json()
    assert [s["buckets"] for s in empty["sensors"]] == [[]]


def test_openapi_lists_the_iot_operations_with_their_keys(c):
    spec = c.get("/api").json()
    paths = spec["paths"]
    for path in ("/iot/sensors", "/iot/sensors/{code}", "/iot/observations", "/iot/states", "/iot/alarms",
                 "/iot/alarms/{alarm_id}", "/iot/alarms/{alarm_id}/ack", "/objects/{code}/history"):
        assert path in paths, path
    assert paths["/iot/observations"]["post"]["security"] == [{"apiKey": []}, {"bearer": []}]
    assert paths["/iot/alarms/{alarm_id}/ack"]["post"]["security"] == [{"apiKey": []}, {"bearer": []}]
    assert "/iot/stream" not in paths  # an endless stream is no operation for generated clients

