"""HTTP batch ingest's side of the server: one ingest connection per process, behind a lock."""

from __future__ import annotations

import contextlib
import threading

import psycopg

from cim.config import Settings
from cim.iot.ingest import Ingest, Outcome
from cim.model.store import Model


class HttpIngest:
    """One long-lived autocommit connection and Ingest per process, one batch at a time (Ingest is not
    thread-safe); a lost connection is opened again."""

    def __init__(self, model: Model, cfg: Settings) -> None:
        self.model = model
        self.cfg = cfg
        self._lock = threading.Lock()
        self._ingest: Ingest | None = None
        self._stale = False

    def mark_stale(self) -> None:
        """The registry changed (an edit, an import): reload it before the next batch."""
        self._stale = True

    def write(self, refs: list[str], times: list[float | None], values: list[object], actor: str) -> Outcome:
        with self._lock:
            try:
                return self._write(refs, times, values, actor)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self.close()  # a lost connection (a database restart): once more on a new one; a batch is idempotent
            return self._write(refs, times, values, actor)

    def _write(self, refs: list[str], times: list[float | None], values: list[object], actor: str) -> Outcome:
        if self._ingest is None:
            self._ingest = Ingest(self.model.connect(autocommit=True), self.cfg)
            self._stale = False
        if self._stale:
            self._stale = False
            self._ingest.refresh(now=True)
        return self._ingest.write(refs, times, values, actor)

    def close(self) -> None:
        if self._ingest is not None:
            with contextlib.suppress(psycopg.Error):
                self._ingest.conn.close()
            self._ingest = None
