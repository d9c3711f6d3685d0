"""The alarm lifecycle after raising: acknowledge (an operator has seen it); clearing happens at ingest."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from cim.iot.ingest import iso, notify
from cim.iot.rules import status_of


class AlarmError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def acknowledge(conn: psycopg.Connection, alarm_id: int, actor: str, note: str | None = None) -> dict:
    """Acknowledge an active alarm in one transaction; returns the event (404 unknown, 409 not active)."""
    now = datetime.now(UTC)
    with conn.transaction():
        row = conn.execute(
            "SELECT state, sensor_code, rule, severity, value FROM alarm WHERE id = %s FOR UPDATE", (alarm_id,)
        ).fetchone()
        if row is None:
            raise AlarmError(404, f"no alarm {alarm_id}")
        state, sensor, rule, severity, value = row
        if state != "active":
            raise AlarmError(409, f"alarm {alarm_id} is {state}; only an active alarm can be acknowledged")
        conn.execute("UPDATE alarm SET state = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s "
                     "WHERE id = %s", (now, actor, alarm_id))
        conn.execute("INSERT INTO alarm_event (alarm_id, at, event, value, actor, note) "
                     "VALUES (%s, %s, 'acknowledged', %s, %s, %s)", (alarm_id, now, value, actor, note))
        event = {"id": alarm_id, "event": "acknowledged", "sensor": sensor, "rule": rule, "severity": severity,
                 "time": iso(now.timestamp()), "value": value, "by": actor}
        notify(conn.cursor(), [], [event])
    return event


def clear_alarms(conn: psycopg.Connection, ids: list[int], actor: str, note: str) -> None:
    """Clear open alarms that no reading will ever end (their rule or their sensor is gone), in the caller's
    transaction: events, the sensors' status from what stays open, and a NOTIFY."""
    if not ids:
        return
    now = datetime.now(UTC)
    cleared = conn.execute(
        "UPDATE alarm SET state = 'cleared', cleared_at = %s WHERE id = ANY(%s) AND state <> 'cleared' "
        "RETURNING id, sensor_code, rule, severity", (now, ids)).fetchall()
    with conn.cursor().copy("COPY alarm_event (alarm_id, at, event, actor, note) FROM STDIN") as cp:
        for alarm_id, *_ in cleared:
            cp.write_row((alarm_id, now, "cleared", actor, note))
    sensors = sorted({code for _, code, _, _ in cleared})
    still: dict[str, set[str]] = {code: set() for code in sensors}
    for code, rule in conn.execute("SELECT sensor_code, rule FROM alarm WHERE sensor_code = ANY(%s) "
                                   "AND state <> 'cleared'", (sensors,)):
        still[code].add(rule)
    states = []
    for code in sensors:
        status, severity = status_of(still[code])
        row = conn.execute(
            "UPDATE sensor_state SET status = CASE WHEN time IS NULL THEN 'unknown' ELSE %s END, severity = %s "
            "WHERE code = %s RETURNING extract(epoch FROM time)::float8, value, status, severity",
            (status, severity, code)).fetchone()
        if row and row[0] is not None:
            states.append([code, iso(row[0]), row[1], row[2], row[3]])
    events = [{"id": alarm_id, "event": "cleared", "sensor": code, "rule": rule, "severity": sev,
               "time": iso(now.timestamp()), "value": None, "limit": None, "by": actor, "note": note}
              for alarm_id, code, rule, sev in cleared]
    notify(conn.cursor(), states, events)
