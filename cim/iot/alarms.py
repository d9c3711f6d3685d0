"""The alarm lifecycle after raising: acknowledge (an operator has seen it); clearing happens at ingest."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from cim.iot.ingest import iso, notify


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
