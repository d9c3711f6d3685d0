"""The whole sample district (terrain, GIS layers, CityJSON landmarks, BIM, three pipe networks) tiled once."""

from __future__ import annotations

from pathlib import Path

import pytest

from cim.tiler.build import TileReport, build_tiles
from tests.conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="package")
def sample_tiles(full_model) -> tuple[Path, TileReport]:
    """The sample's tilesets, kept in tests/artifacts/sample-tiles (CI checks them against the schemas)."""
    out = ARTIFACTS / "sample-tiles"
    report = build_tiles(full_model, out, full=True)
    return out, report
