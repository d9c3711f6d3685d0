"""Helpers the tests share: the real CLI in a subprocess, one-value queries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cim.model.store import Model

ROOT = Path(__file__).resolve().parent.parent


def run_cim(*args: str, model: Model | None = None) -> subprocess.CompletedProcess:
    """Run the real `cim` command line in a subprocess."""
    env = dict(os.environ)
    if model is not None:
        env["CIM_MODEL"] = model.info.name
    return subprocess.run([sys.executable, "-m", "cim", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def scalar(model: Model, query: str, params: tuple = ()):
    return fetch(model, query, params)[0][0]


def fetch(model: Model, query: str, params: tuple = ()) -> list[tuple]:
    with model.connect() as conn:
        return conn.execute(query, params).fetchall()
