"""The end of a bench: its figures written to bench/results/NAME.json, then each floor said met or not; a missed
floor exits non-zero."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def finish(results: Path, metrics: dict, floors: dict[str, bool], log: Callable[[str], None] = print) -> None:
    results.write_text(json.dumps({"metrics": metrics}, indent=2) + "\n")
    for name, ok in floors.items():
        log(f"floor {name}: {'met' if ok else 'NOT MET'}")
    missed = [name for name, ok in floors.items() if not ok]
    if missed:
        raise SystemExit(f"floors missed: {'; '.join(missed)}")
