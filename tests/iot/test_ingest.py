"""Batch ingest: history, latest state, alarms as the rules say, idempotence, late readings, rejects, staleness,
daily partitions and the NOTIFY that live push listens to."""

from __future__ import annotations

import time

import orjson
import psycopg
import pytest

from cim.config import settings
from cim.iot.ingest import LIVE_CHANNEL, Ingest
from cim.iot.registry import Registry, import_sensors
from cim.iot.rules import evaluate
from tests.helpers import fetch, scalar
from tests.iot.conftest import SENSORS_CSV, write_sensors


@pytest.fixture
def ingest(iot_model):
    with iot_model.connect(autocommit=True) as conn:
        yield Ingest(conn, settings())


def expected_events(rules, series):
    open_rules, prev_t, prev_v, seen = set(), None, None, []
    for t, v in series:
        seen += [(c.rule, "raised" if c.raised else "cleared", v)
                 for c in evaluate(rules, open_rules, prev_t, prev_v, t, v)]
        prev_t, prev_v = t, v
    return seen


def events_of(model, device):
    return fetch(model, """
        SELECT a.rule, e.event, e.value FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id
        JOIN city_object s ON s.code = a.sensor_code WHERE s.source_id = %s ORDER BY e.at, e.id""", (device,))


def state_of(model, device):
    """(epoch time, value, status) of a sensor's latest state."""
    return fetch(model, "SELECT extract(epoch FROM s.time)::float8, s.value, s.status FROM sensor_state s "
                        "JOIN city_object o ON o.code = s.code WHERE o.source_id = %s", (device,))[0]


def test_readings_move_state_and_alarms_as_the_rules_say(iot_model, ingest):
    t0 = time.time() - 600
    values = [1.0, 4.0, 6.0, 4.5, 22.0, 19.5, 3.0, 8.0, 2.0]
    series = [(t0 + 5 * i, v) for i, v in enumerate(values)]
    out = ingest.write(["MC-1"] * len(series), [t for t, _ in series], values)
    assert (out.stored, out.duplicates, out.states) == (len(values), 0, 1)
    rules = ingest.registry.by_ref["MC-1"].rules
    assert events_of(iot_model, "MC-1") == expected_events(rules, series)
    last_t, last_v, status = state_of(iot_model, "MC-1")
    assert last_t == pytest.approx(series[-1][0], abs=1e-6) and last_v == 2.0 and status == "ok"
    # every alarm is closed again and carries its clearing reading
    assert fetch(iot_model, "SELECT count(*) FILTER (WHERE state <> 'cleared'), count(*) FILTER "
                            "(WHERE clear_value IS NULL) FROM alarm") == [(0, 0)]

    # the same batch again (a redelivery): nothing new anywhere
    events = len(events_of(iot_model, "MC-1"))
    again = ingest.write(["MC-1"] * len(series), [t for t, _ in series], values)
    assert (again.stored, again.duplicates, again.alarms) == (0, len(values), [])
    assert len(events_of(iot_model, "MC-1")) == events

    # a late reading (older than the latest) goes to history only: no state change, no alarm
    late = ingest.write(["MC-1"], [t0 + 1], [50.0])
    assert (late.stored, late.states, late.alarms) == (1, 0, [])
    assert state_of(iot_model, "MC-1")[1] == 2.0


def test_codes_and_device_ids_both_name_a_sensor(iot_model, ingest):
    code = ingest.registry.by_ref["MC-2"].code
    t = time.time() - 100
    out = ingest.write([code, "MC-2"], [t, t + 1], [0.5, 0.6])
    assert out.stored == 2
    assert scalar(iot_model, "SELECT count(*) FROM observation o JOIN sensor_state s ON s.id = o.sensor_id "
                             "WHERE s.code = %s", (code,)) >= 2


def test_bad_readings_are_counted_not_stored(iot_model, ingest):
    rows = scalar(iot_model, "SELECT count(*) FROM observation")
    now = time.time()
    out = ingest.write(["NOPE", "MC-2", "MC-2", "MC-2", "MC-2", "MC-2", "MC-2"],
                       [now, None, 0.0, now + 86400, now, now, now],
                       [1.0, 1.0, 1.0, 1.0, float("nan"), "7", True])
    assert out.stored == 0
    assert dict(out.rejected) == {"unknown sensor": 1, "bad time": 1, "time out of range": 2, "bad value": 3}
    assert scalar(iot_model, "SELECT count(*) FROM observation") == rows


def test_history_is_partitioned_by_day_with_brin(iot_model, ingest):
    now = time.time()
    days = [now - 2 * 86400, now - 86400, now - 60]
    ingest.write(["PP-1"] * 3, days, [0.3, 0.31, 0.32])
    parts = {r[0] for r in fetch(iot_model, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                            "WHERE i.inhparent = 'observation'::regclass")}
    wanted = {time.strftime("observation_%Y%m%d", time.gmtime(t)) for t in days}
    assert wanted <= parts
    brin = fetch(iot_model, "SELECT count(*) FROM pg_indexes WHERE tablename = ANY(%s) AND indexdef LIKE '%%brin%%'",
                 (sorted(wanted),))[0][0]
    assert brin == len(wanted)


def test_silent_sensors_go_offline_and_come_back(iot_model, ingest):
    now = time.time()
    ingest.write(["EN-1"], [now - 100], [200.0])  # stale after 30 s of silence, in arrival time
    early = ingest.sweep_stale(now)
    assert ingest.registry.by_ref["EN-1"].code not in {e["sensor"] for e in early}
    now += 100  # 100 s later, nothing more arrived
    events = ingest.sweep_stale(now)
    assert [(e["rule"], e["event"]) for e in events if e["sensor"] == ingest.registry.by_ref["EN-1"].code] == \
        [("STALE", "raised")]
    assert ingest.sweep_stale(now) == []  # raised once
    assert state_of(iot_model, "EN-1")[2] == "offline"
    back = ingest.write(["EN-1"], [now], [210.0])
    assert [(a["rule"], a["event"]) for a in back.alarms] == [("STALE", "cleared")]
    assert state_of(iot_model, "EN-1")[2] == "ok"


def test_live_listeners_hear_states_and_alarms(iot_model, ingest):
    with psycopg.connect(iot_model.url.render_as_string(hide_password=False).replace("+psycopg", ""),
                         autocommit=True) as listener:
        listener.execute(f"LISTEN {LIVE_CHANNEL}")
        t = time.time()
        ingest.write(["MC-2", "MC-2"], [t - 1, t], [1.0, 30.0])
        payloads = [orjson.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=2)]
    code = ingest.registry.by_ref["MC-2"].code
    states = [s for p in payloads for s in p.get("s", [])]
    alarms = [a for p in payloads for a in p.get("a", [])]
    assert [(s[0], s[2], s[3], s[4]) for s in states] == [(code, 30.0, "alarm", 3)]
    # (MC-2 may have gone offline in the staleness test: its first reading brings it back)
    assert sorted((a["rule"], a["event"]) for a in alarms if a["rule"] != "STALE") == [("H", "raised"),
                                                                                        ("HH", "raised")]


def test_new_sensors_are_known_without_restart(iot_model, ingest, tmp_path):
    import_sensors(iot_model, write_sensors(tmp_path / "s.csv", SENSORS_CSV + "MC-9,new,manhole_cover,"
                                                                              "drainage:N:WS-P000009,,,5,20,1,,,5\n"))
    out = ingest.write(["MC-9"], [time.time()], [1.0])
    assert out.stored == 1 and "MC-9" in ingest.registry.by_ref
    with iot_model.connect() as conn:
        assert len(Registry.load(conn)) == 5


def test_prune_drops_whole_old_days_only(iot_model, ingest):
    from datetime import UTC, datetime

    from cim.iot.history import partitions, prune

    now = time.time()
    ingest.write(["MC-2", "MC-2"], [now - 10 * 86400, now - 5], [0.1, 0.2])
    with iot_model.connect() as conn:
        before = [name for name, _ in partitions(conn)]
        dropped = prune(conn, 3, datetime.fromtimestamp(now, UTC))
        after = [name for name, _ in partitions(conn)]
    assert time.strftime("observation_%Y%m%d", time.gmtime(now - 10 * 86400)) in dropped
    assert after == [n for n in before if n not in dropped]
    assert time.strftime("observation_%Y%m%d", time.gmtime(now)) in after
    assert scalar(iot_model, "SELECT count(*) FROM observation WHERE time < now() - interval '3 days'") == 0


def test_a_reading_is_its_microsecond_and_its_first_copy(iot_model, ingest):
    t = time.time() - 30 + 0.1234565  # finer than PostgreSQL's microseconds
    first = ingest.write(["PP-1", "PP-1"], [t, t], [0.40, 0.99])  # two copies in one batch: the first counts
    assert (first.stored, first.duplicates) == (1, 1)
    assert state_of(iot_model, "PP-1")[1] == 0.40
    assert fetch(iot_model, "SELECT o.value FROM observation o JOIN sensor_state s ON s.id = o.sensor_id "
                            "JOIN city_object c ON c.code = s.code WHERE c.source_id = 'PP-1' AND "
                            "o.time = timestamptz 'epoch' + %s * interval '1 microsecond'",
                 (round(t * 1e6),)) == [(0.40,)]
    again = ingest.write(["PP-1"], [t + 4e-8], [0.99])  # the same microsecond, redelivered: not newer
    assert (again.stored, again.duplicates, again.states, again.alarms) == (0, 1, 0, [])
