"""The acceptance, as a user meets it: the whole sample served with `cim serve --live` (broker, ingester and
simulator beside the API, what `make demo` ends with); one manhole cover reading pushed past its limits over MQTT
shows the alarm on the manhole over the WebSocket and in the API within a second, and it clears with hysteresis;
the viewer URL the command prints shows the district in Chromium, coloured by the simulator's live readings."""

from __future__ import annotations

import re
import subprocess
import time

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from cim.db.server import drop_database
from cim.iot.mqtt import Publisher, end_session
from tests.api.conftest import start_server
from tests.conftest import _new_model, import_sample
from tests.viewer.browser import Browser
from tests.viewer.conftest import ARTIFACTS

SENSOR = "MC-0001"


@pytest.fixture(scope="module")
def live(server, broker, sample_dir, sample_tiles_dir, tmp_path_factory):
    """A model of the whole sample served with --live over the sample's tiles; (url, model, log)."""
    m = _new_model()
    import_sample(m, sample_dir)
    out = tmp_path_factory.mktemp("live")
    started = time.time()
    proc, url = start_server(m, sample_tiles_dir, out / "serve.log", "--live")
    try:
        # the simulator's readings come through MQTT and the ingester: a state newer than the start shows it
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = httpx.get(url + "/iot/states", params={"limit": 1000}, timeout=10).json()["features"]
            if any(f["properties"]["time"] and _epoch(f["properties"]["time"]) > started for f in states):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no live reading arrived: {(out / 'serve.log').read_text()[-2000:]}")
        yield url, m, out / "serve.log"
    finally:
        proc.terminate()
        try:
            proc.wait(45)  # it stops its ingester and simulator first
        except subprocess.TimeoutExpired:
            proc.kill()
        left = subprocess.run(["pgrep", "-f", f"--model {m.info.name}"], capture_output=True, text=True).stdout
        if left.strip():
            subprocess.run(["pkill", "-f", f"--model {m.info.name}"])
        drop_database(m.url)
        for client_id in (f"cim-ingest-{m.info.name}", f"cim-simulator-{m.info.name}"):
            end_session(client_id)
        assert not left.strip(), "cim serve --live left its ingester or simulator running"


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _next_alarm(ws, rule: str, event: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = orjson.loads(ws.recv(timeout=left))
        except TimeoutError:
            break
        if msg["type"] == "alarm" and msg["rule"] == rule and msg["event"] == event:
            return msg
    raise AssertionError(f"no {rule} {event} within {timeout} s")


def _open_rules(url: str, obj: str) -> set[str]:
    detail = httpx.get(f"{url}/objects/{obj}", timeout=10).json()
    return {a["rule"] for a in detail["alarms"]}


def test_a_reading_past_the_limit_shows_on_the_object_within_a_second_and_clears_with_hysteresis(live):
    url, m, _ = live
    sensor = httpx.get(f"{url}/iot/sensors/{SENSOR}", timeout=10).json()["properties"]
    manhole = sensor["objects"][0]
    assert sensor["observes"][0]["collection"] == "drainage-nodes"
    rules = sensor["rules"]
    h, hh, band = rules["h"], rules["hh"], rules["deadband"]
    pub = Publisher(f"test-live-{m.info.name}", clean=True)
    # stamped 30 s ahead: the simulator's own readings of this sensor, older, then only go to history and
    # cannot clear the alarm in between
    t = time.time() + 30
    with connect(url.replace("http://", "ws://") + f"/iot/ws?object={manhole}") as ws:
        sent = time.monotonic()
        pub.send(SENSOR, t, hh + 5)
        raised = _next_alarm(ws, "HH", "raised", 1.0)
        took = time.monotonic() - sent
        assert manhole in raised["objects"] and raised["value"] == hh + 5
        assert {"H", "HH"} <= _open_rules(url, manhole)
        assert time.monotonic() - sent < 1.0, "the alarm was in the API later than a second after the reading"
        item = httpx.get(f"{url}/collections/drainage-nodes/items/{manhole}", timeout=10).json()
        assert item["properties"]["live"]["status"] == "alarm" and item["properties"]["live"]["severity"] == 3

        pub.send(SENSOR, t + 1, h - band / 2)  # below HH - deadband, but within H's band: H stays
        _next_alarm(ws, "HH", "cleared", 1.0)
        assert "H" in _open_rules(url, manhole) and "HH" not in _open_rules(url, manhole)

        pub.send(SENSOR, t + 2, h - 2 * band)  # below H - deadband: cleared
        cleared = _next_alarm(ws, "H", "cleared", 1.0)
        assert cleared["value"] == h - 2 * band
        assert not {"H", "HH"} & _open_rules(url, manhole)
    pub.close(10)
    print(f"reading → alarm on the WebSocket in {took * 1000:.0f} ms")


def test_the_printed_viewer_url_shows_the_district_coloured_live(live):
    _, m, log = live
    printed = re.search(r"viewer: (http://\S+)", log.read_text())
    assert printed, log.read_text()[-2000:]
    with Browser.launch(timeout=180, log_path=ARTIFACTS / "logs" / "live_demo.log") as b:
        b.goto(printed.group(1))
        b.wait_for("window.cim !== undefined", timeout=180, polling=0.25)
        b.wait_for("cim.settled()", timeout=180, polling=0.25)
        assert b.evaluate("cim.painter.features.size") > 500 and b.evaluate("cim.layers.failed") == []
        # the simulator's readings arrive over the WebSocket and colour the objects they observe
        b.wait_for("cim.live.received > 0", timeout=60, polling=0.25)
        sensors = b.evaluate("cim.live.sensors.size")
        assert sensors == len(httpx.get(printed.group(1).replace("/viewer/", "/iot/sensors"),
                                         params={"limit": 1000}, timeout=10).json()["features"])
        assert b.evaluate("cim.painter.live.size") > 0
        b.screenshot(ARTIFACTS / "00_demo_url.png")
        events = b.events()
    assert events["externalRequests"] == [] and events["consoleErrors"] == [] and events["pageErrors"] == []
    assert events["failedRequests"] == [] and events["badResponses"] == []
