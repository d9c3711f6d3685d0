"""The whole sample district (terrain, GIS layers, CityJSON landmarks, BIM, three pipe networks) tiled once."""

from __future__ import annotations

from pathlib import Path

import pytest

from cim.db.server import drop_database
from cim.model.store import Model
from cim.tiler.build import TileReport, build_tiles
from tests.conftest import ROOT, _new_model

ARTIFACTS = ROOT / "tests" / "artifacts"


def import_sample(m: Model, sample_dir: Path) -> None:
    from cim.importers.cityjson import import_cityjson
    from cim.importers.dem import import_dem
    from cim.importers.gis import import_gis
    from cim.importers.ifc import import_ifc
    from cim.importers.pipes.gis import import_pipes

    import_dem(m, sample_dir / "dem.tif")
    for layer in ("buildings", "roads", "river"):
        import_gis(m, sample_dir / "district.gpkg", layer)
    import_cityjson(m, sample_dir / "landmarks.city.json", "landmarks")
    import_ifc(m, sample_dir / "bim.ifc")
    for network in ("water", "drainage", "gas"):
        import_pipes(m, sample_dir / "pipes.gpkg", network)


@pytest.fixture(scope="package")
def full_model(server, sample_dir) -> Model:
    m = _new_model()
    import_sample(m, sample_dir)
    yield m
    drop_database(m.url)


@pytest.fixture(scope="package")
def sample_tiles(full_model) -> tuple[Path, TileReport]:
    """The sample's tilesets, kept in tests/artifacts/sample-tiles (CI checks them against the schemas)."""
    out = ARTIFACTS / "sample-tiles"
    report = build_tiles(full_model, out, full=True)
    return out, report
