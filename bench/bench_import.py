"""bench-import: 100,000 synthetic footprints (with terrain) through `cim import gis`; buildings/s, peak RSS.

Each import runs in a fresh child process: `buildings_per_s` (median of 3 imports into new models) times
the import itself (read, transform,
terrain sampling, codes, COPY, commit), `cli_wall_s` the whole `cim import gis` command including Python
start-up; `peak_rss_mb` is the largest child's peak resident memory.
Writes bench/results/bench-import.json as {"metrics": {...}}.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from affine import Affine

from cim.db.server import drop_database, model_url
from cim.model.store import init_model
from cim.model.terrain import profile_bytes
from cim.sample.district import synthetic_footprints

N = int(os.environ.get("BENCH_BUILDINGS", "100000"))
RUNS = 3
MODEL = "cim_bench_import"
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cim" / "bench"
RESULTS = ROOT / "bench" / "results"


def cim(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cim", *args, "--model", MODEL], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def timed_import(src: Path) -> float:
    """Seconds of one import_gis call, in a fresh child process."""
    code = ("import sys, time; from pathlib import Path; from cim.model.store import Model; "
            "from cim.importers.gis import import_gis; m = Model.open(sys.argv[1]); t = time.perf_counter(); "
            "import_gis(m, Path(sys.argv[2]), 'buildings'); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code, MODEL, str(src)], check=True, capture_output=True,
                         text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    footprints = synthetic_footprints(N)
    src = WORK / f"footprints_{N}.gpkg"
    footprints.to_file(src, layer="buildings", engine="pyogrio")
    xmin, ymin, xmax, ymax = footprints.total_bounds
    cell = 20.0
    w, h = int((xmax - xmin) // cell) + 2, int((ymax - ymin) // cell) + 2
    xs = xmin + cell * (np.arange(w) + 0.5)
    ys = ymax - cell * (np.arange(h) + 0.5)
    gx, gy = np.meshgrid(xs, ys)
    ground = 5 + 20 * np.sin(gx / 1500.0) * np.cos(gy / 2100.0)
    dem = WORK / "bench_dem.tif"
    dem.write_bytes(profile_bytes(ground, Affine(cell, 0, xmin, 0, -cell, ymax), 4547))

    url = model_url(MODEL)
    fresh = []
    for run in range(RUNS):  # each run imports into a new, empty model with the same terrain
        drop_database(url)
        init_model(url, "EPSG:4547", "440402", "orthometric")
        cim("import", "dem", str(dem))
        fresh.append(timed_import(src))
        print(f"run {run + 1}/{RUNS}: {N:,} buildings in {fresh[-1]:.2f} s ({N / fresh[-1]:,.0f}/s)")
    again = timed_import(src)  # re-import of the same source: replaces every building
    wall = cim("import", "gis", str(src), "--layer", "buildings")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    drop_database(url)
    first = statistics.median(fresh)
    metrics = {
        "buildings": N,
        "buildings_per_s": round(N / first, 1),
        "reimport_buildings_per_s": round(N / again, 1),
        "import_s": round(first, 3),
        "import_s_min": round(min(fresh), 3),
        "import_s_max": round(max(fresh), 3),
        "reimport_s": round(again, 3),
        "cli_wall_s": round(wall, 3),
        "peak_rss_mb": round(peak_mb, 1),
    }
    (RESULTS / "bench-import.json").write_text(json.dumps({"metrics": metrics}, indent=2) + "\n")
    for key, value in metrics.items():
        print(f"{key:>26}: {value}")
    print(f"floor 20,000 buildings/s: {'met' if metrics['buildings_per_s'] >= 20000 else 'NOT met'}")


if __name__ == "__main__":
    main()
