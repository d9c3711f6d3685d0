"""The one error a user sees for bad input: file, record, reason on one line."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    def __init__(self, file: Path | str, reason: str, record: object | None = None) -> None:
        super().__init__(reason)
        self.file = str(file)
        self.reason = reason
        self.record = record

    def __str__(self) -> str:
        where = f"{self.file}: record {self.record}" if self.record is not None else self.file
        return f"{where}: {' '.join(self.reason.split())}"
