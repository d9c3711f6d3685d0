"""An IoT model: the sample's buildings and drainage network, and sensors bound to them from a CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from cim.db.server import drop_database
from cim.model.store import Model
from tests.conftest import _new_model

SENSORS_CSV = """id,name,kind,objects,ll,l,h,hh,deadband,roc,stale_s,interval_s
MC-1,cover 1,manhole_cover,drainage:N:WS-P000001,,,5,20,1,,,5
MC-2,cover 2,manhole_cover,drainage:N:WS-P000002,,,5,20,1,,,5
PP-1,pressure 1,pipe_pressure,drainage:P:WS000001;buildings:440402-B-000001,0.15,0.2,0.6,0.7,0.02,0.3,,10
EN-1,energy 1,building_energy,buildings:440402-B-000002,,,500,,,,30,10
"""


def write_sensors(path: Path, text: str = SENSORS_CSV) -> Path:
    path.write_text(text)
    return path


def new_iot_model(sample_dir: Path, work: Path) -> Model:
    """A fresh model with the sample's buildings, its drainage network and the four sensors of SENSORS_CSV."""
    from cim.importers.gis import import_gis
    from cim.importers.pipes.gis import import_pipes
    from cim.iot.registry import import_sensors

    m = _new_model()
    import_gis(m, sample_dir / "district.gpkg", "buildings")
    import_pipes(m, sample_dir / "pipes.gpkg", "drainage")
    import_sensors(m, write_sensors(work / "sensors.csv"))
    return m


@pytest.fixture(scope="module")
def iot_model(server, sample_dir, tmp_path_factory) -> Model:
    m = new_iot_model(sample_dir, tmp_path_factory.mktemp("iot"))
    yield m
    drop_database(m.url)
