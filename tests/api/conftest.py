"""A real `cim serve` (uvicorn in a subprocess) over the whole sample district and its tiles, and a client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cim.api.security import digest
from cim.model.store import Model
from tests.conftest import ROOT

API_KEY = "test-key-of-the-api-suite"


@dataclass
class Server:
    url: str
    model: Model
    tiles: Path
    log: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Model, tiles: Path, log: Path, *args: str, **env: str) -> tuple[subprocess.Popen, str]:
    """`python -m cim serve [args]` on a free port; returns when it answers."""
    port = _free_port()
    environ = {**os.environ, "CIM_MODEL": model.info.name, "CIM_TILES_DIR": str(tiles),
               "CIM_API_KEYS": digest(API_KEY), "CIM_API_CATALOG_TTL_S": "0", **env}
    fh = log.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "cim", "serve", "--port", str(port), *args], cwd=ROOT, env=environ,
                            stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cim serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/conformance", timeout=2).status_code in (200, 401):  # 401: reads closed
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"cim serve did not answer within 60 s: {log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def api(full_model, sample_tiles_dir, tmp_path_factory) -> Iterator[Server]:
    """The API over the whole sample (read-only: tests that write use `make_api` with a model of their own)."""
    log = tmp_path_factory.mktemp("api-log") / "serve.log"
    proc, url = start_server(full_model, sample_tiles_dir, log)
    yield Server(url, full_model, sample_tiles_dir, log)
    stop_server(proc)


@pytest.fixture
def client(api) -> Iterator[httpx.Client]:
    with api.client() as c:
        yield c


@pytest.fixture
def make_api(tmp_path) -> Iterator:
    """Start a server over a model of the test's own (with extra settings as environment variables)."""
    procs = []

    def make(model: Model, tiles: Path | None = None, **env: str) -> Server:
        tiles = tiles or tmp_path / "no-tiles"
        proc, url = start_server(model, tiles, tmp_path / f"serve-{len(procs)}.log", **env)
        procs.append(proc)
        return Server(url, model, tiles, tmp_path / f"serve-{len(procs) - 1}.log")

    yield make
    for p in procs:
        stop_server(p)
