"""Retention of the reading history: whole daily partitions are dropped, never rows one by one."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import psycopg

_PARTITION = re.compile(r"observation_(\d{8})$")


def partitions(conn: psycopg.Connection) -> list[tuple[str, datetime]]:
    """The history's daily partitions and their days, oldest first."""
    rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'observation'::regclass").fetchall()
    days = [(name, datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC))
            for (name,) in rows if (m := _PARTITION.match(name))]
    return sorted(days, key=lambda d: d[1])


def prune(conn: psycopg.Connection, keep_days: float, now: datetime | None = None) -> list[str]:
    """Drop the partitions whose whole day is older than keep_days; returns their names."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    dropped = []
    with conn.transaction():
        for name, day in partitions(conn):
            if day + timedelta(days=1) <= cutoff:
                conn.execute(f'DROP TABLE "{name}"')
                dropped.append(name)
    return dropped
