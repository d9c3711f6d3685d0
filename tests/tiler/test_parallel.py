"""The tiles' work on a local process pool and on a Dask cluster (several worker processes, one of them killed
mid-run) gives the same files, byte for byte, as the serial run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cim.cli.main import app
from cim.tiler import parallel
from cim.tiler.build import build_tiles, chunks
from cim.tiler.work import TileWork

SMALL_CHUNK = 20  # objects per task: the sample's layers become dozens of tasks


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same(got: Path, want: Path) -> None:
    a, b = files(got), files(want)
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []


@pytest.fixture(scope="module")
def serial(full_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serial")
    build_tiles(full_model, out, full=True, workers=1)
    return out


@pytest.fixture(scope="module")
def dask_cluster():
    from distributed import Client
    from distributed import LocalCluster as DaskLocalCluster

    cluster = DaskLocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                               memory_limit="2GiB")
    client = Client(cluster, set_as_default=False)
    yield cluster, client
    client.close()
    cluster.close()


def test_chunks_follow_the_walk_and_the_object_count():
    tiles = [TileWork(str(i), tuple(f"c{i}-{j}" for j in range(n))) for i, n in enumerate([3, 4, 1, 9, 2, 2])]
    got = chunks(tiles, 5)
    assert [[t.id for t in c] for c in got] == [["0", "1"], ["2", "3"], ["4", "5"]]
    assert [t for c in got for t in c] == tiles
    assert chunks([], 5) == []


def test_process_pool_writes_the_serial_bytes(full_model, serial, tmp_path):
    out = tmp_path / "pool"
    report = build_tiles(full_model, out, full=True, workers=2, chunk_objects=SMALL_CHUNK)
    assert report.executor == "2 local processes"
    assert_same(out, serial)


def test_dask_cluster_writes_the_serial_bytes(full_model, serial, dask_cluster, tmp_path):
    cluster, _ = dask_cluster
    out = tmp_path / "dask"
    done = CliRunner().invoke(app, ["tile", "--out", str(out), "--model", full_model.url.database, "--full",
                                    "--scheduler", cluster.scheduler_address, "--chunk", str(SMALL_CHUNK)])
    assert done.exit_code == 0, done.output
    assert f"Dask scheduler {cluster.scheduler_address}" in done.output
    assert_same(out, serial)
    # an unchanged model: nothing to send to the cluster
    again = build_tiles(full_model, out, scheduler=cluster.scheduler_address, chunk_objects=SMALL_CHUNK)
    assert again.tiles_written == 0
    assert_same(out, serial)


def test_worker_killed_mid_run(full_model, serial, dask_cluster, tmp_path):
    cluster, client = dask_cluster
    out = tmp_path / "killed"
    pids = client.run(os.getpid)
    killed: list[int] = []
    busy: list[str] = []

    def progress(name: str, done: int, total: int) -> None:
        if name != "buildings" or killed or done < total // 4:
            return
        # a worker in the middle of a task, so that the scheduler has to run its task again elsewhere
        busy.extend(w for w, keys in client.processing().items() if keys and w in pids)
        killed.append(pids[busy[0] if busy else next(iter(pids))])
        os.kill(killed[0], signal.SIGKILL)

    report = build_tiles(full_model, out, ["buildings"], full=True, progress=progress,
                         scheduler=cluster.scheduler_address, chunk_objects=5)
    assert killed and busy, "the run ended before a busy worker could be killed"
    layer = next(r for r in report.layers if r.name == "buildings")
    assert layer.written == layer.tiles and layer.objects / 5 > 24  # dozens of tasks
    folder = out / "buildings"
    tileset = json.loads((folder / "tileset.json").read_text())
    uris, todo = [], [tileset["root"]]
    while todo:
        node = todo.pop()
        todo.extend(node.get("children", []))
        if "content" in node:
            uris.append(node["content"]["uri"])
    assert len(uris) == len(set(uris))
    assert {str(p.relative_to(folder)) for p in folder.rglob("*.glb")} == set(uris)
    assert [p.name for p in folder.rglob("*") if p.suffix == ".tmp"] == []
    assert_same(folder, serial / "buildings")
    assert killed[0] not in client.run(os.getpid).values()


def test_bad_scheduler_is_one_line(full_model, tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", 1.0)
    runner = CliRunner()
    for address in ("nonsense", "tcp://127.0.0.1:1"):
        bad = runner.invoke(app, ["tile", "--out", str(tmp_path / "t"), "--model", full_model.url.database,
                                  "--scheduler", address])
        assert bad.exit_code != 0
        assert "cannot reach the Dask scheduler" in bad.output and "Traceback" not in bad.output
