"""bench-scale: a 1,000,000-building synthetic city tiled on a Dask distributed cluster of 1, 2 and 4 workers on
this machine; the scaling, the time per million buildings, and an extrapolation with the measured per-worker rate.

The bench model (BENCH_BUILDINGS synthetic footprints, default 1,000,000, on a synthetic terrain, imported with
`cim import gis`: bench/synthetic.py) is kept between runs and reused when it already holds that many buildings.
Each run starts a distributed.LocalCluster of W single-threaded worker processes and imports the tiler in them
(not timed, as on a standing cluster), then calls
cim.tiler.build.build_tiles(model, DIR, ["buildings"], full=True, scheduler=<its address>), the code path of
`cim tile --scheduler`, into a fresh folder; `seconds_W_worker(s)` is that call. `plan_s` is the part before the
first task (the plan query, the tree and the tile digests, on the client: it does not shrink with workers).
The three outputs must be identical (every file's SHA-256). Per-worker rate: buildings / (seconds_1_worker -
plan_s); the extrapolation assumes workers on cores of their own and a database that keeps up (see
docs/scaling.md). Writes bench/results/bench-scale.json as {"metrics": {...}}; floor: the best of the three under
300 s.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import time
from pathlib import Path

from floors import finish  # bench/floors.py
from synthetic import synthetic_model  # bench/synthetic.py

from cim.model.store import Model
from cim.tiler.build import build_tiles

N = int(os.environ.get("BENCH_BUILDINGS", "1000000"))
WORKERS = (1, 2, 4)
MODEL = "cim_bench_scale"
LAYER = "buildings"
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cim" / "bench"
RESULTS = ROOT / "bench" / "results"
FLOOR_S = 300.0
CITY = 10_000_000  # buildings, for the extrapolation
CLUSTER_WORKERS = (16, 64)


def log(message: str) -> None:
    print(message, flush=True)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tile_on_cluster(model: Model, workers: int, out: Path) -> tuple[float, float, int]:
    """(seconds, planning seconds, tiles) of one full tiling on a fresh LocalCluster of `workers` processes."""
    from distributed import Client, LocalCluster

    shutil.rmtree(out, ignore_errors=True)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as cluster:
        with Client(cluster, set_as_default=False) as client:  # a standing cluster has the tiler imported
            client.run(importlib.import_module, "cim.tiler.work")
        started = time.perf_counter()
        planned: list[float] = []
        shown = [0.0]

        def progress(name: str, done: int, total: int) -> None:
            now = time.perf_counter() - started
            if not planned:
                planned.append(now)
                log(f"  {workers} worker(s): planned {total:,} tiles in {now:.1f} s")
            elif done == total or now - shown[0] >= 10:
                shown[0] = now
                log(f"  {workers} worker(s): {done:,}/{total:,} tiles, {now:.1f} s, "
                    f"{(done / total) * N / now:,.0f} buildings/s")

        report = build_tiles(model, out, [LAYER], full=True, progress=progress, scheduler=cluster.scheduler_address)
        took = time.perf_counter() - started
    layer = report.layers[0]
    if layer.objects != N or layer.written != layer.tiles:
        raise SystemExit(f"{workers} worker(s): {layer.objects:,} objects, {layer.written} of {layer.tiles} tiles "
                         f"written; wanted {N:,} and all")
    log(f"{workers} worker(s): {N:,} buildings in {took:.1f} s ({N / took:,.0f}/s), {layer.tiles:,} tiles")
    return took, planned[0], layer.tiles


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    model = synthetic_model(MODEL, N, WORK, log)
    seconds, plans, reference, tiles, size = {}, [], None, 0, 0
    for workers in WORKERS:
        out = WORK / f"tiles-scale-{workers}"
        seconds[workers], plan, tiles = tile_on_cluster(model, workers, out)
        plans.append(plan)
        got = digests(out)
        if reference is None:
            reference, size = got, sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        elif got != reference:
            differ = sorted(k for k in set(got) | set(reference) if got.get(k) != reference.get(k))
            raise SystemExit(f"{workers} workers wrote other files than 1 worker: {len(differ)} differ, "
                             f"e.g. {differ[:3]}")
        else:
            log(f"  {workers} workers: all {len(got):,} files identical to the 1-worker run")
        if workers != WORKERS[0]:
            shutil.rmtree(out)
    shutil.rmtree(WORK / f"tiles-scale-{WORKERS[0]}")
    best = min(seconds.values())
    plan_s = min(plans)
    rate = N / (seconds[1] - plan_s)  # one worker's tiles, the client's planning left out
    metrics = {
        "buildings": N, "tiles": tiles, "output_mb": round(size / 2**20, 1), "cores": os.cpu_count(),
        "seconds_1_worker": round(seconds[1], 2), "seconds_2_workers": round(seconds[2], 2),
        "seconds_4_workers": round(seconds[4], 2),
        "speedup_2_workers": round(seconds[1] / seconds[2], 2), "speedup_4_workers": round(seconds[1] / seconds[4], 2),
        "seconds_per_million_best": round(best / N * 1e6, 2), "plan_s": round(plan_s, 2),
        "buildings_per_s_per_worker": round(rate, 1),
    }
    # A city of CITY buildings on a cluster: the planning grows with the city, the tiles shrink with the workers.
    for w in CLUSTER_WORKERS:
        metrics[f"extrapolated_s_{CITY // 1_000_000}m_buildings_{w}_workers"] = round(
            plan_s * CITY / N + CITY / (rate * w), 1)
    log("")
    for key, value in metrics.items():
        log(f"{key:>40}: {value}")
    finish(RESULTS / "bench-scale.json", metrics, {f"best of 1, 2, 4 workers < {FLOOR_S:g} s": best < FLOOR_S}, log)


if __name__ == "__main__":
    main()
