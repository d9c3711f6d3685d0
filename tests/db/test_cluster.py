"""The local cluster: up is idempotent, status tells the truth, a stale pid file is recovered."""

from __future__ import annotations

import os

from cim.config import Settings
from cim.db.cluster import LocalCluster
from tests.helpers import ROOT, run_cim


def test_up_twice_status_down_and_stale_pid(tmp_path_factory):
    data_dir = ROOT / ".cim" / "test-cluster"
    cluster = LocalCluster(Settings(data_dir=data_dir, pg_port=55438))
    try:
        assert cluster.up() in ("initialised and started", "started")
        first_pid = cluster.status().pid
        assert cluster.up() == "already running"
        st = cluster.status()
        assert st.running and st.accepting and st.pid == first_pid
        assert cluster.down() == "stopped"
        st = cluster.status()
        assert st.initialized and not st.running and not st.accepting
        assert "stopped" in st.describe()
        # A crash leaves postmaster.pid behind, naming a process that no longer exists.
        pidfile = cluster.data_dir / "postmaster.pid"
        pidfile.write_text(f"{2**22 + 12345}\n{cluster.data_dir}\n")
        if os.geteuid() == 0:
            os.chown(pidfile, cluster.data_dir.stat().st_uid, cluster.data_dir.stat().st_gid)
        assert not cluster.status().running
        assert cluster.up() == "started"
        assert cluster.status().accepting
    finally:
        cluster.down()
    assert cluster.down() == "not running"


def test_cli_status_and_url(server):
    status = run_cim("db", "status")
    assert status.returncode == 0, status.stderr
    assert "accepting connections" in status.stdout
    url = run_cim("db", "url", "--model", "somewhere")
    assert url.stdout.strip().endswith("/somewhere")
