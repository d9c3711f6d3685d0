"""The viewer tests' browser: a real headless Chromium (tests/viewer/browser.py), and where their artifacts go."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cim.db.server import drop_database
from cim.model.store import Model
from tests.api.conftest import Server, start_server, stop_server
from tests.conftest import _new_model, import_sample
from tests.viewer.browser import REPO, Browser

ARTIFACTS = REPO / "tests" / "artifacts" / "viewer"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """<repo>/tests/artifacts/viewer/ (git-ignored), kept after the run: screenshots, and the browser logs in logs/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def browser(request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Browser]:
    """A fresh Chromium page per test (launching takes about a second), 1280x800.

    node's stderr (console messages, page errors, blocked and failed requests, command timings) is kept in
    artifacts/logs/<test>.log.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
    with Browser.launch(log_path=artifacts / "logs" / f"{name}.log") as b:
        yield b


@pytest.fixture(scope="package")
def viewer_model(server, sample_dir) -> Iterator[Model]:
    """The whole sample in a model of the viewer tests' own (they post readings and raise alarms; the shared
    full_model stays read-only). Same sample, same import order: the same codes as the shared tiles."""
    m = _new_model()
    import_sample(m, sample_dir)
    yield m
    drop_database(m.url)


@pytest.fixture(scope="package")
def viewer_server(viewer_model, sample_tiles_dir, tmp_path_factory) -> Iterator[Server]:
    """`cim serve` over the viewer's model and the sample's tiles, with an API key for writes."""
    log = tmp_path_factory.mktemp("viewer") / "serve.log"
    proc, url = start_server(viewer_model, sample_tiles_dir, log)
    yield Server(url, viewer_model, sample_tiles_dir, log)
    stop_server(proc)
