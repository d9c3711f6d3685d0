"""Model creation: storage CRS recorded and fixed, tables and 3D indexes, second model on one server."""

from __future__ import annotations

import pytest

from cim.db.server import model_url
from cim.model.store import ModelError, init_model
from tests.helpers import fetch, run_cim, scalar


def test_init_records_crs_and_creates_schema(model):
    assert model.info.srid == 4547
    assert "Gauss-Kruger CM 114E" in model.info.crs_name
    assert scalar(model, "SELECT Find_SRID('public', 'city_object', 'geom')") == 4547
    tables = {r for (r,) in fetch(model,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"model_info", "import_batch", "code_registry", "city_object", "terrain_raster",
            "alembic_version"} <= tables
    indexes = dict(fetch(model,
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'city_object'"))
    assert "USING gist (geom)" in indexes["city_object_geom_gist"]
    assert "gist_geometry_ops_nd" in indexes["city_object_bbox3d_gist"]


def test_init_is_idempotent_and_crs_never_changes(model):
    info, created = init_model(model.url, "EPSG:4547", "440402", "orthometric")
    assert not created and info == model.info
    with pytest.raises(ModelError, match="never changes"):
        init_model(model.url, "EPSG:32650", "440402", "orthometric")
    assert scalar(model, "SELECT srid FROM model_info") == 4547
    result = run_cim("db", "init", "--crs", "EPSG:32650", model=model)
    assert result.returncode != 0
    assert "never changes" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("crs, reason", [("EPSG:4326", "projected"), ("EPSG:2230", "metres"),
                                         ("EPSG:999999", "unknown CRS")])
def test_unsuitable_storage_crs_refused(server, crs, reason):
    with pytest.raises(ModelError, match=reason):
        init_model(model_url("cim_test_never_created"), crs, "440402", "orthometric")


def test_second_model_on_same_server(make_model):
    first = make_model("EPSG:4547")
    second = make_model("EPSG:28992")
    assert first.url.database != second.url.database
    assert (first.info.srid, second.info.srid) == (4547, 28992)
    assert scalar(second, "SELECT Find_SRID('public', 'city_object', 'geom')") == 28992
