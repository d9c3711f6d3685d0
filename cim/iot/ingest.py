"""Ingest readings: one transaction per batch writes the history, moves the latest states, raises and clears
alarms and tells live listeners (NOTIFY) what changed. MQTT and HTTP both come through `Ingest.write`."""

from __future__ import annotations

import logging
import math
import time as clock
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson
import psycopg

from cim.config import Settings
from cim.iot.registry import Registry, Sensor
from cim.iot.rules import SEVERITY, Change, evaluate_series, message, status_of

log = logging.getLogger("cim.iot")

LIVE_CHANNEL = "cim_live"  # NOTIFY payloads: {"s": [[code, time, value, status, severity], …], "a": [alarm, …]}
_NOTIFY_BYTES = 7000  # PostgreSQL refuses payloads of 8000 bytes or more
_FROM_US = "(timestamptz 'epoch' + {} * interval '1 microsecond')"  # epoch microseconds → timestamptz, exactly


@dataclass
class Outcome:
    """What one batch did; `rejected` counts readings by reason (unknown sensor, malformed, …)."""

    stored: int = 0
    duplicates: int = 0
    states: int = 0
    alarms: list[dict] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    unknown: set[str] = field(default_factory=set)  # unknown sensor references (a few, for the log)

    def add(self, other: Outcome) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.states += other.states
        self.alarms += other.alarms
        self.rejected.update(other.rejected)
        self.unknown |= other.unknown


def parse_time(value: object) -> float | None:
    """Epoch seconds from ISO 8601 text with an offset or a number of seconds; None when neither."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None  # a time without an offset is ambiguous
        return parsed.timestamp()
    return None


def reading(item: dict) -> tuple[float | None, object]:
    """(epoch seconds or None, value) of one reading as MQTT and HTTP carry it: `time` and `value`, or the
    SensorThings names `phenomenonTime` and `result`."""
    t = item.get("time")
    if t is None:
        t = item.get("phenomenonTime")
    v = item.get("value")
    if v is None:
        v = item.get("result")
    return (t if type(t) is float and math.isfinite(t) else parse_time(t)), v


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def isos(times: list[float]) -> list[str]:
    """`iso` of many times at once (numpy), to the microsecond."""
    stamps = np.round(np.asarray(times, dtype=np.float64) * 1e6).astype("datetime64[us]")
    return [s + "Z" for s in np.datetime_as_string(stamps, unit="us").tolist()]


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Ingest:
    """Batches of (sensor reference, epoch seconds, value) into a model; one per process, not thread-safe."""

    def __init__(self, conn: psycopg.Connection, cfg: Settings, registry: Registry | None = None) -> None:
        if not conn.autocommit:
            raise ValueError("Ingest wants an autocommit connection (it opens its own transactions)")
        self.conn = conn
        self.cfg = cfg
        self.registry = registry or Registry.load(conn)
        self._checked_at = clock.monotonic()
        self._days: set[int] = set()
        self.started = clock.time()

    def refresh(self, now: bool = False) -> None:
        """Reload the registry when an import or edit changed it (checked at most once a second, or now)."""
        at = clock.monotonic()
        if not now and at - self._checked_at < 1.0:
            return
        self._checked_at = at
        if Registry.current_signature(self.conn) != self.registry.signature:
            self.registry = Registry.load(self.conn)

    def _partitions(self, times: np.ndarray) -> None:
        days = np.unique((times // 86400).astype(np.int64))
        missing = [d for d in days.tolist() if d not in self._days]
        if missing:
            for lo, hi in _runs(missing):
                self.conn.execute("SELECT cim_observation_partitions(%s, %s)", (_ts(lo * 86400), _ts(hi * 86400)))
            self._days.update(missing)

    def write(self, refs: list[str], times: list[float | None], values: list[object], actor: str = "ingest") -> Outcome:
        """Store a batch; readings of unknown sensors or with bad times or values are counted, not stored."""
        out = Outcome()
        self.refresh()
        by_ref = self.registry.by_ref
        if any(r not in by_ref for r in set(refs)):  # maybe imported a moment ago
            self.refresh(now=True)
            by_ref = self.registry.by_ref
        n = len(refs)
        ids = {ref: s.state_id for ref, s in by_ref.items()}
        sid = np.fromiter((ids.get(r, 0) for r in refs), dtype=np.int32, count=n)
        t = np.array(times, dtype=np.float64)  # None → NaN
        numeric = np.fromiter((type(x) is float or type(x) is int for x in values), dtype=bool, count=n)
        v = np.array([x if ok else np.nan for x, ok in zip(values, numeric, strict=True)], dtype=np.float64)
        now = clock.time()
        checks = (("unknown sensor", sid == 0), ("bad time", np.isnan(t)),
                  ("time out of range", (t < now - self.cfg.iot_max_age_days * 86400)
                   | (t > now + self.cfg.iot_max_future_s)),
                  ("bad value", ~np.isfinite(v)))
        if checks[0][1].any():
            out.unknown = {refs[i] for i in np.flatnonzero(checks[0][1])[:20].tolist()}
        bad = np.zeros(n, dtype=bool)
        for reason, mask in checks:
            mask = mask & ~bad  # each reading counts once, for its first reason
            if mask.any():
                out.rejected[reason] += int(mask.sum())
                bad |= mask
        if bad.all():
            return out
        # whole microseconds, as PostgreSQL keeps them: what "the same reading" and "newer" compare
        tu = np.where(bad, 0, np.round(np.nan_to_num(t) * 1e6)).astype(np.int64)
        order = np.lexsort((tu, sid))  # stable: of two copies of a reading, the first sent comes first
        order = order[~bad[order]]
        sid, tu, v = sid[order], tu[order], v[order]
        first = np.r_[True, (sid[1:] != sid[:-1]) | (tu[1:] != tu[:-1])]
        out.duplicates = int((~first).sum())  # copies within the batch: the first one counts, as in history
        sid, tu, v = sid[first], tu[first], v[first]
        self._partitions(tu / 1e6)
        try:
            with self.conn.transaction():
                out.add(self._store(sid, tu, v, actor))
        except psycopg.errors.CheckViolation:  # a day's partition was dropped (cim iot prune) since we saw it
            self._days.clear()
            self._partitions(tu / 1e6)
            with self.conn.transaction():
                out.add(self._store(sid, tu, v, actor))
        return out

    def _store(self, sid: np.ndarray, tu: np.ndarray, v: np.ndarray, actor: str) -> Outcome:
        """Write readings sorted by sensor and time (tu: epoch microseconds) in the caller's transaction."""
        out = Outcome()
        cur = self.conn.cursor()
        # the commit is what the broker (and an HTTP client) is told: durable, whatever the server's default
        cur.execute("SET LOCAL synchronous_commit = on")
        out.stored = cur.execute(
            f"INSERT INTO observation (sensor_id, time, value) SELECT s, {_FROM_US.format('t')}, v "
            "FROM unnest(%s::int4[], %s::int8[], %s::float8[]) AS r(s, t, v) ON CONFLICT DO NOTHING",
            (_array(sid), _array(tu), _array(v)),
        ).rowcount
        out.duplicates = len(sid) - out.stored
        sensors = np.unique(sid)
        # the sensors' rows are locked in id order (no deadlock between ingesters) before their alarms are read
        state = {row[0]: row[1:] for row in cur.execute(
            "SELECT id, (extract(epoch FROM time) * 1000000)::int8, value FROM sensor_state WHERE id = ANY(%s) "
            "ORDER BY id FOR UPDATE", (sensors.tolist(),))}
        registry = self.registry.by_id
        codes = [registry[i].code for i in sensors.tolist()]
        open_alarms: dict[str, dict[str, int]] = {}
        for alarm_id, code, rule in cur.execute(
            "SELECT id, sensor_code, rule FROM alarm WHERE sensor_code = ANY(%s) AND state <> 'cleared'", (codes,)
        ):
            open_alarms.setdefault(code, {})[rule] = alarm_id
        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        ends = np.r_[starts[1:], len(sid)]
        latest: list[tuple] = []
        changes: list[tuple[Sensor, Change]] = []
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            sensor = registry[int(sid[a])]
            prev_tu, prev_v = state.get(sensor.state_id, (None, None))
            rules_open = set(open_alarms.get(sensor.code, {}))
            newer = tu[a:b] > prev_tu if prev_tu is not None else np.ones(b - a, dtype=bool)
            if not newer.any():
                continue  # late or redelivered readings: history only
            ts, vs = tu[a:b][newer], v[a:b][newer]
            if rules_open or sensor.rules.limits() or sensor.rules.roc is not None:
                prev_t = prev_tu / 1e6 if prev_tu is not None else None
                found = evaluate_series(sensor.rules, rules_open, prev_t, prev_v, ts / 1e6, vs)
                changes += [(sensor, c) for c in found]
            status, severity = status_of(rules_open)
            latest.append((sensor.state_id, int(ts[-1]), float(vs[-1]), status, severity, sensor.code))
        if latest:
            cur.execute(
                f"UPDATE sensor_state s SET time = {_FROM_US.format('u.t')}, value = u.v, received_at = now(), "
                "status = u.status, severity = u.sev "
                "FROM unnest(%s::int4[], %s::int8[], %s::float8[], %s::text[], %s::int2[]) "
                "AS u(id, t, v, status, sev) "
                "WHERE s.id = u.id",
                tuple(list(col) for col in zip(*(row[:5] for row in latest), strict=True)),
            )
        out.states = len(latest)
        out.alarms = self._alarms(cur, changes, open_alarms, actor)
        stamps = isos([row[1] / 1e6 for row in latest])
        notify(cur, [[row[5], at, row[2], row[3], row[4]] for row, at in zip(latest, stamps, strict=True)],
               out.alarms)
        return out

    def _alarms(self, cur: psycopg.Cursor, changes: list[tuple[Sensor, Change]], open_alarms: dict[str, dict[str, int]],
                actor: str) -> list[dict]:
        """Write a batch's alarm transitions in three statements (a noisy batch has thousands): the clears of
        alarms opened before, the alarms raised in it (cleared already where it also clears them), the events."""
        if not changes:
            return []
        raised = [c for _, c in changes if c.raised]
        ids = [row[0] for row in cur.execute(  # the new alarms' ids up front, so events can name them
            "SELECT nextval(pg_get_serial_sequence('alarm', 'id')) FROM generate_series(1, %s)", (len(raised),))]
        new: dict[int, list] = {}  # id → the row to insert
        cleared_before: list[tuple[int, float, float]] = []
        events = []
        fresh = iter(ids)
        stamps = isos([c.time for _, c in changes])
        for (sensor, change), at in zip(changes, stamps, strict=True):
            if change.raised:
                alarm_id = next(fresh)
                new[alarm_id] = [alarm_id, sensor.code, change.rule, SEVERITY[change.rule], "active", change.time,
                                 change.value, change.limit,
                                 message(change.rule, change.value, change.limit, sensor.unit), None, None]
                open_alarms.setdefault(sensor.code, {})[change.rule] = alarm_id
            else:
                alarm_id = open_alarms[sensor.code].pop(change.rule)
                if alarm_id in new:
                    new[alarm_id][4], new[alarm_id][9], new[alarm_id][10] = "cleared", change.time, change.value
                else:
                    cleared_before.append((alarm_id, change.time, change.value))
            events.append({"id": alarm_id, "event": "raised" if change.raised else "cleared", "sensor": sensor.code,
                           "rule": change.rule, "severity": SEVERITY[change.rule], "time": at,
                           "value": change.value, "limit": change.limit})
        if cleared_before:  # first: a rule raised again in this batch may only open once the old alarm is closed
            cur.execute(
                "UPDATE alarm a SET state = 'cleared', cleared_at = to_timestamp(u.t), clear_value = u.v "
                "FROM unnest(%s::int8[], %s::float8[], %s::float8[]) AS u(id, t, v) WHERE a.id = u.id",
                [_array(np.array(col)) for col in zip(*cleared_before, strict=True)])
        if new:
            cur.execute(
                "INSERT INTO alarm (id, sensor_code, rule, severity, state, raised_at, value, limit_value, message, "
                "cleared_at, clear_value) SELECT id, code, rule, sev, state, to_timestamp(t), v, lim, msg, "
                "to_timestamp(ct), cv FROM unnest(%s::int8[], %s::text[], %s::text[], %s::int2[], %s::text[], "
                "%s::float8[], %s::float8[], %s::float8[], %s::text[], %s::float8[], %s::float8[]) "
                "AS r(id, code, rule, sev, state, t, v, lim, msg, ct, cv)",
                [list(col) if k in (1, 2, 4, 8) else _array(np.array(col, dtype=int if k in (0, 3) else float))
                 for k, col in enumerate(zip(*new.values(), strict=True))])
        cur.execute(
            "INSERT INTO alarm_event (alarm_id, at, event, value, actor) SELECT id, to_timestamp(t), event, v, %s "
            "FROM unnest(%s::int8[], %s::float8[], %s::text[], %s::float8[]) AS e(id, t, event, v)",
            (actor, _array(np.array([e["id"] for e in events])), _array(np.array([c.time for _, c in changes])),
             [e["event"] for e in events], _array(np.array([c.value for _, c in changes]))))
        return events

    def sweep_stale(self, now: float | None = None) -> list[dict]:
        """Raise STALE alarms for sensors from which nothing new arrived for their timeout; returns the alarm
        events. Silence is measured in arrival time (a device's clock may lag), and only since this Ingest
        started (after an outage the backlog is still on its way)."""
        self.refresh()
        now = clock.time() if now is None else now
        due = [(s.code, s.stale_after) for s in self.registry.sensors if s.stale_after]
        if not due:
            return []
        codes, limits = zip(*due, strict=True)
        events = []
        with self.conn.transaction():
            cur = self.conn.cursor()
            rows = cur.execute("""
                SELECT s.code, extract(epoch FROM s.time)::float8, s.value, d.lim
                FROM sensor_state s JOIN unnest(%s::text[], %s::float8[]) AS d(code, lim) ON d.code = s.code
                WHERE greatest(s.received_at, to_timestamp(%s)) < to_timestamp(%s) - make_interval(secs => d.lim)
                  AND NOT EXISTS (SELECT 1 FROM alarm a WHERE a.sensor_code = s.code AND a.rule = 'STALE'
                                                        AND a.state <> 'cleared')
                ORDER BY s.id FOR UPDATE OF s SKIP LOCKED
            """, (list(codes), list(limits), self.started, now)).fetchall()
            for code, last, value, limit in rows:
                alarm_id = cur.execute(
                    "INSERT INTO alarm (sensor_code, rule, severity, state, raised_at, value, limit_value, message) "
                    "VALUES (%s, 'STALE', %s, 'active', %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
                    (code, SEVERITY["STALE"], _ts(now), value, limit, message("STALE", value, limit, "")),
                ).fetchone()
                if alarm_id is None:
                    continue
                cur.execute("INSERT INTO alarm_event (alarm_id, at, event, value, actor) "
                            "VALUES (%s, %s, 'raised', %s, 'stale check')", (alarm_id[0], _ts(now), value))
                events.append({"id": alarm_id[0], "event": "raised", "sensor": code, "rule": "STALE",
                               "severity": SEVERITY["STALE"], "time": iso(now), "value": value, "limit": limit,
                               "last_reading": iso(last)})
            if events:
                # a sensor in alarm stays "alarm"; one that was ok goes offline
                states = cur.execute(
                    "UPDATE sensor_state SET status = CASE WHEN status = 'alarm' THEN 'alarm' ELSE 'offline' END, "
                    "severity = greatest(severity, %s) WHERE code = ANY(%s) "
                    "RETURNING code, extract(epoch FROM time)::float8, value, status, severity",
                    (SEVERITY["STALE"], [e["sensor"] for e in events])).fetchall()
                notify(cur, [[code, iso(t), v, status, sev] for code, t, v, status, sev in states], events)
        return events


def notify(cur: psycopg.Cursor, states: list[list], alarms: list[dict]) -> None:
    """Tell live listeners (the API's push) about new states and alarm events, in payloads under 8 kB (all in
    one statement)."""
    payloads = []
    for key, items in (("s", states), ("a", alarms)):
        chunk: list = []
        size = 0
        for item in items:
            encoded = orjson.dumps(item)
            if chunk and size + len(encoded) > _NOTIFY_BYTES:
                payloads.append(orjson.dumps({key: chunk}).decode())
                chunk, size = [], 0
            chunk.append(item)
            size += len(encoded) + 1
        if chunk:
            payloads.append(orjson.dumps({key: chunk}).decode())
    if payloads:  # one text parameter: psycopg would escape every quote of a text array's elements
        cur.execute("SELECT count(pg_notify(%s, p)) FROM json_array_elements_text(%s::json) AS n(p)",
                    (LIVE_CHANNEL, orjson.dumps(payloads).decode()))


def _array(values: np.ndarray) -> str:
    """A PostgreSQL array literal of numbers (NaN as NULL): for thousands of them far cheaper than psycopg's
    per-element dumping."""
    items = values.tolist()
    if values.dtype.kind == "f" and np.isnan(values).any():
        return "{" + ",".join("NULL" if x != x else repr(x) for x in items) + "}"
    return "{" + ",".join(map(repr, items)) + "}"


def _runs(days: list[int]) -> list[tuple[int, int]]:
    """Consecutive days as (first, last) runs."""
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and d == runs[-1][1] + 1:
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return [(a, b) for a, b in runs]
