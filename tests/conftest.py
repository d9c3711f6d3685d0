"""Fixtures: a real PostGIS (the project's own test cluster, or CIM_DATABASE_URL), fresh models, the sample."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The suite runs its own cluster beside the demo's, so `make test` never touches demo data.
os.environ.setdefault("CIM_DATA_DIR", str(ROOT / ".cim" / "test"))
os.environ.setdefault("CIM_PG_PORT", "55439")
os.environ.setdefault("CIM_MQTT_PORT", "11884")

from cim.config import settings  # noqa: E402
from cim.db.cluster import LocalCluster  # noqa: E402
from cim.db.server import drop_database, model_url  # noqa: E402
from cim.model.store import Model, init_model  # noqa: E402
from cim.sample.district import generate  # noqa: E402


@pytest.fixture(scope="session")
def server() -> None:
    """A running PostgreSQL+PostGIS server for the whole session."""
    if not settings().database_url:
        LocalCluster().up()


@pytest.fixture(scope="session")
def broker() -> None:
    """The suite's own Mosquitto (beside the demo's), or the broker CIM_MQTT_URL names."""
    from cim.iot.broker import ensure_broker

    ensure_broker()


def _new_model(crs: str = "EPSG:4547") -> Model:
    name = f"cim_test_{uuid.uuid4().hex[:10]}"
    init_model(model_url(name), crs, "440402", "orthometric")
    return Model.open(name)


@pytest.fixture
def make_model(server):
    """Factory of fresh, empty models (dropped afterwards)."""
    made: list[Model] = []

    def make(crs: str = "EPSG:4547") -> Model:
        made.append(_new_model(crs))
        return made[-1]

    yield make
    for m in made:
        drop_database(m.url)


@pytest.fixture
def model(make_model) -> Model:
    return make_model()


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out)
    return out


@pytest.fixture(scope="module")
def sample_model(server, sample_dir) -> Model:
    """A model holding the whole sample district, imported once per test module."""
    from cim.importers.cityjson import import_cityjson
    from cim.importers.dem import import_dem
    from cim.importers.gis import import_gis
    from cim.importers.ifc import import_ifc

    m = _new_model()
    import_dem(m, sample_dir / "dem.tif")
    for layer in ("buildings", "roads", "river"):
        import_gis(m, sample_dir / "district.gpkg", layer)
    import_cityjson(m, sample_dir / "landmarks.city.json", "landmarks")
    import_ifc(m, sample_dir / "bim.ifc")
    yield m
    drop_database(m.url)


@pytest.fixture(scope="module")
def pipes_model(server, sample_dir) -> Model:
    """A model with the sample's terrain, buildings and pipe networks: water, drainage and gas from the
    GeoPackage, and the water network again from its EPANET export (layer water_epanet)."""
    from cim.importers.dem import import_dem
    from cim.importers.gis import import_gis
    from cim.importers.pipes.epanet import import_epanet
    from cim.importers.pipes.gis import import_pipes

    m = _new_model()
    import_dem(m, sample_dir / "dem.tif")
    import_gis(m, sample_dir / "district.gpkg", "buildings")
    for network in ("water", "drainage", "gas"):
        import_pipes(m, sample_dir / "pipes.gpkg", network)
    import_epanet(m, sample_dir / "water.inp", "EPSG:4547", "water_epanet")
    yield m
    drop_database(m.url)


def import_sample(m: Model, sample_dir: Path) -> None:
    """The whole sample: terrain, GIS layers, CityJSON landmarks, the BIM building, three pipe networks, the utility
    tunnel and the sensors."""
    from cim.importers.cityjson import import_cityjson
    from cim.importers.dem import import_dem
    from cim.importers.gis import import_gis
    from cim.importers.ifc import import_ifc
    from cim.importers.pipes.gis import import_pipes
    from cim.iot.registry import import_sensors

    import_dem(m, sample_dir / "dem.tif")
    for layer in ("buildings", "roads", "river"):
        import_gis(m, sample_dir / "district.gpkg", layer)
    import_cityjson(m, sample_dir / "landmarks.city.json", "landmarks")
    import_ifc(m, sample_dir / "bim.ifc")
    for network in ("water", "drainage", "gas"):
        import_pipes(m, sample_dir / "pipes.gpkg", network)
    import_cityjson(m, sample_dir / "utility_tunnel.city.json", "tunnels")
    import_sensors(m, sample_dir / "sensors.geojson")


@pytest.fixture(scope="session")
def full_model(server, sample_dir) -> Model:
    """The whole sample district in one model, shared read-only by the tiler and API tests."""
    m = _new_model()
    import_sample(m, sample_dir)
    yield m
    drop_database(m.url)


@pytest.fixture(scope="session")
def sample_tiles_dir(full_model, tmp_path_factory) -> Path:
    """The whole sample's tilesets and ground (`cim tile`), for the API and viewer servers."""
    from cim.tiler.build import build_tiles

    out = tmp_path_factory.mktemp("sample-tiles")
    build_tiles(full_model, out, full=True)
    return out
