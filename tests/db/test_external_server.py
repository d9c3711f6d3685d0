"""CIM_DATABASE_URL points every command at an existing server instead of the local cluster."""

from __future__ import annotations

import os
import uuid

from cim.db.cluster import LocalCluster
from cim.db.server import drop_database, model_url
from tests.helpers import run_cim


def test_commands_follow_cim_database_url(server, sample_dir, monkeypatch):
    port = LocalCluster().port
    name = f"cim_test_ext_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CIM_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/{name}")
    monkeypatch.setenv("CIM_PG_PORT", "1")  # the local cluster's port must not be used
    try:
        status = run_cim("db", "status")
        assert status.returncode == 0 and "external server" in status.stdout, status.stderr
        assert run_cim("db", "up").stdout.startswith("CIM_DATABASE_URL is set")
        init = run_cim("db", "init", "--crs", "EPSG:4547")
        assert init.returncode == 0 and name in init.stdout, init.stderr
        done = run_cim("import", "gis", str(sample_dir / "district.gpkg"), "--layer", "roads")
        assert done.returncode == 0, done.stderr
        info = run_cim("info")
        assert "roads" in info.stdout and name in info.stdout
    finally:
        os.environ.pop("CIM_DATABASE_URL", None)
        drop_database(model_url(name))


def test_unreachable_external_server_is_one_line(monkeypatch):
    monkeypatch.setenv("CIM_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    status = run_cim("db", "status")
    assert status.returncode == 1 and "not reachable" in status.stderr
    info = run_cim("info")
    assert info.returncode != 0 and len(info.stderr.strip().splitlines()) == 1
    assert "cannot reach the database server" in info.stderr
