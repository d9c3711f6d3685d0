"""The MQTT ingester against the real broker: a kill -9 mid-stream and a broker restart lose and duplicate
nothing (history and alarms), and malformed messages are counted without stopping it."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from cim.config import Settings
from cim.db.server import drop_database
from cim.iot.broker import LocalBroker
from cim.iot.mqtt import Publisher, end_session
from cim.iot.rules import Rules, evaluate
from cim.model.store import Model
from tests.helpers import ROOT, fetch, run_cim, scalar
from tests.iot.conftest import new_iot_model

SENSORS = ("MC-1", "MC-2", "PP-1")
RULES = {"MC-1": Rules(h=5, hh=20, deadband=1), "MC-2": Rules(h=5, hh=20, deadband=1),
         "PP-1": Rules(ll=0.15, l=0.2, h=0.6, hh=0.7, deadband=0.02, roc=0.3)}
PER_SENSOR = 4000
# a topic prefix of this module's own: other tests' publishers on the suite's broker are not heard here
PREFIX = f"test{uuid.uuid4().hex[:8]}"
CFG = Settings(mqtt_topic_prefix=PREFIX)


@pytest.fixture
def fresh_model(server, broker, sample_dir, tmp_path) -> Model:
    m = new_iot_model(sample_dir, tmp_path)
    yield m
    drop_database(m.url)
    for client_id in (f"cim-ingest-{m.info.name}", f"test-publisher-{m.info.name}", f"test-late-{m.info.name}"):
        end_session(client_id)


def series(sensor: str, t0: float) -> list[tuple[float, float]]:
    """Readings that cross the sensor's limits back and forth (a slow wave with noise-free steps)."""
    if sensor == "PP-1":
        return [(t0 + i * 0.001, round(0.4 + 0.35 * math.sin(i / 40), 4)) for i in range(PER_SENSOR)]
    phase = 0 if sensor == "MC-1" else 1.0
    return [(t0 + i * 0.001, round(12 + 11 * math.sin(i / 30 + phase), 3)) for i in range(PER_SENSOR)]


def expected_events(sensor: str, readings: list[tuple[float, float]]) -> list[tuple[str, str, float]]:
    open_rules, prev_t, prev_v, seen = set(), None, None, []
    for t, v in readings:
        seen += [(c.rule, "raised" if c.raised else "cleared", v)
                 for c in evaluate(RULES[sensor], open_rules, prev_t, prev_v, t, v)]
        prev_t, prev_v = t, v
    return seen


def start_ingester(model: Model, log: Path) -> subprocess.Popen:
    env = {**os.environ, "CIM_MODEL": model.info.name, "CIM_IOT_STALE_CHECK_S": "3600", "CIM_MQTT_TOPIC_PREFIX": PREFIX}
    fh = log.open("a")
    proc = subprocess.Popen([sys.executable, "-m", "cim", "iot", "ingest"], cwd=ROOT, env=env, stdout=fh,
                            stderr=subprocess.STDOUT)
    wait_for(lambda: "subscribed to" in log.read_text() or proc.poll() is not None, 30, "the ingester subscribing")
    assert proc.poll() is None, log.read_text()
    return proc


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stored(model: Model) -> int:
    return scalar(model, "SELECT count(*) FROM observation")


def publish_all(model: Model, t0: float) -> tuple[dict, threading.Thread]:
    """Publish every sensor's series, interleaved, from a thread; returns the series and the thread."""
    data = {s: series(s, t0) for s in SENSORS}
    pub = Publisher(f"test-publisher-{model.info.name}", CFG)

    def run() -> None:
        for i in range(PER_SENSOR):
            for s in SENSORS:
                pub.send(s, *data[s][i])
        pub.close(120)

    thread = threading.Thread(target=run)
    thread.start()
    return data, thread


def check_exactly_once(model: Model, data: dict, extra: int = 0) -> None:
    """Every published reading stored once (besides `extra` others), and the alarm history equals the rules over
    the series."""
    total = len(SENSORS) * PER_SENSOR + extra
    wait_for(lambda: stored(model) >= total, 120, f"{total} readings in the database")
    for sensor, readings in data.items():
        rows = fetch(model, """
            SELECT round(extract(epoch FROM o.time)::numeric, 6), o.value FROM observation o
            JOIN sensor_state s ON s.id = o.sensor_id JOIN city_object c ON c.code = s.code
            WHERE c.source_id = %s ORDER BY o.time""", (sensor,))
        assert [(float(t), v) for t, v in rows] == [(pytest.approx(t, abs=2e-6), v) for t, v in readings]
        events = fetch(model, """
            SELECT a.rule, e.event, e.value FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id
            JOIN city_object c ON c.code = a.sensor_code
            WHERE c.source_id = %s AND a.rule <> 'STALE' ORDER BY e.at, e.id""", (sensor,))
        assert events == expected_events(sensor, readings) and len(events) > 10
    assert stored(model) == total
    # one 'raised' per alarm, at most one 'cleared'
    assert fetch(model, "SELECT count(*) FROM (SELECT alarm_id FROM alarm_event GROUP BY alarm_id, event "
                        "HAVING count(*) > 1) d") == [(0,)]


def test_kill_9_of_the_ingester_mid_stream_loses_and_duplicates_nothing(fresh_model, tmp_path):
    log = tmp_path / "ingest.log"
    proc = start_ingester(fresh_model, log)
    data, thread = publish_all(fresh_model, time.time() - 60)
    wait_for(lambda: stored(fresh_model) > 1000, 60, "the first readings")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = stored(fresh_model)
    assert killed_at < len(SENSORS) * PER_SENSOR, "the ingester was killed after the stream ended"
    proc = start_ingester(fresh_model, log)
    try:
        thread.join(120)
        check_exactly_once(fresh_model, data)
        assert "session resumed" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_broker_restart_is_survived(fresh_model, tmp_path):
    log = tmp_path / "ingest.log"
    proc = start_ingester(fresh_model, log)
    broker = LocalBroker()
    late = Publisher(f"test-late-{fresh_model.info.name}", CFG)
    try:
        data, thread = publish_all(fresh_model, time.time() - 60)
        wait_for(lambda: stored(fresh_model) > 1000, 60, "the first readings")
        assert broker.down() == "stopped"
        t_late = time.time()
        for i in range(50):  # sent while the broker is down: paho keeps them and sends them after reconnecting
            late.send("EN-1", t_late + i, 100.0 + i)
        time.sleep(1)
        assert broker.up() == "started"
        thread.join(120)
        assert not thread.is_alive()
        late.close(60)
        check_exactly_once(fresh_model, data, extra=50)
        assert proc.poll() is None and "disconnected from the broker" in log.read_text()
    finally:
        broker.up()
        proc.terminate()
        proc.wait(10)


def test_unknown_sensors_and_malformed_payloads_are_counted(fresh_model, tmp_path):
    log = tmp_path / "ingest.log"
    proc = start_ingester(fresh_model, log)
    pub = Publisher(f"test-bad-{fresh_model.info.name}", CFG, clean=True)
    now = time.time()
    pub.send_raw(f"{PREFIX}/sensors/MC-1/observations", b"{not json")
    pub.send_raw(f"{PREFIX}/sensors/MC-1/observations", b"[1, 2]")
    pub.send("NO-SUCH-SENSOR", now, 1.0)
    pub.send_raw(f"{PREFIX}/sensors/MC-1/observations", b'{"time": "yesterday", "value": 1}')
    pub.send_raw(f"{PREFIX}/sensors/MC-1/observations", b'{"phenomenonTime": %.3f, "result": 2.5}' % now)
    pub.close(10)
    wait_for(lambda: stored(fresh_model) >= 1, 30, "the one good reading")
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    text = log.read_text()
    assert proc.returncode == 0, text
    summary = text.split("ingest stopped: ", 1)[1]
    for part in ("5 messages", "1 readings stored", "1 payload not JSON", "1 payload not an object",
                 "1 unknown sensor", "1 bad time"):
        assert part in summary, summary
    assert fetch(fresh_model, "SELECT value FROM observation") == [(2.5,)]


def test_one_ingester_per_model(fresh_model, tmp_path):
    proc = start_ingester(fresh_model, tmp_path / "ingest.log")
    try:
        second = run_cim("iot", "ingest", model=fresh_model)
        assert second.returncode != 0 and "Traceback" not in second.stderr
        assert "another `cim iot ingest` is running" in second.stderr
    finally:
        proc.terminate()
        proc.wait(10)
