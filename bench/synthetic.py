"""The benches' synthetic city: N LOD1 footprints (cim.sample.district.synthetic_footprints) on a synthetic
terrain, imported with `cim import dem` and `cim import gis` into a model of its own, and reused by the next
run when it already holds N buildings."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from affine import Affine

from cim.db.server import database_exists, drop_database, model_url
from cim.model.store import Model, init_model
from cim.model.terrain import profile_bytes
from cim.sample.district import synthetic_footprints

LAYER = "buildings"
SRID = 4547


def cim(model: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "cim", *args, "--model", model], check=True, stdout=subprocess.DEVNULL)


def synthetic_model(name: str, n: int, work: Path, log: Callable[[str], None] = print) -> Model:
    """The model `name` with n buildings on a synthetic terrain, built in `work` when missing or different."""
    url = model_url(name)
    if database_exists(url):
        try:
            model = Model.open(name)
            with model.connect() as conn:
                have = conn.execute("SELECT count(*) FROM city_object WHERE layer = %s", (LAYER,)).fetchone()[0]
            if have == n:
                init_model(url, f"EPSG:{SRID}", "440402", "orthometric")  # brings its schema up to date
                log(f"model {name}: reusing its {n:,} buildings")
                return Model.open(name)
            log(f"model {name}: holds {have:,} buildings, not {n:,}: rebuilding")
        except Exception as exc:  # a half-made model from an interrupted run
            log(f"model {name}: unusable ({exc}): rebuilding")
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    footprints = synthetic_footprints(n)
    src = work / f"{name}_footprints_{n}.gpkg"
    footprints.to_file(src, layer=LAYER, engine="pyogrio")
    xmin, ymin, xmax, ymax = footprints.total_bounds
    cell = 20.0
    w, h = int((xmax - xmin) // cell) + 2, int((ymax - ymin) // cell) + 2
    gx, gy = np.meshgrid(xmin + cell * (np.arange(w) + 0.5), ymax - cell * (np.arange(h) + 0.5))
    ground = 5 + 20 * np.sin(gx / 1500.0) * np.cos(gy / 2100.0)
    dem = work / f"{name}_dem.tif"
    dem.write_bytes(profile_bytes(ground, Affine(cell, 0, xmin, 0, -cell, ymax), SRID))
    drop_database(url)
    init_model(url, f"EPSG:{SRID}", "440402", "orthometric")
    log(f"model {name}: importing terrain and {n:,} footprints …")
    cim(name, "import", "dem", str(dem))
    cim(name, "import", "gis", str(src), "--layer", LAYER)
    with Model.open(name).connect() as conn:
        conn.execute("ANALYZE city_object")
    log(f"model {name}: ready in {time.perf_counter() - started:.1f} s")
    return Model.open(name)
