"""bench-ifc: `cim import ifc` of an IFC with ≥ 1,000 elements against a bare ifcopenshell.geom.iterator pass
over the same file, in the same run.

The file is the sample's BIM building grown to BENCH_STOREYS storeys (default 30). Both sides run in fresh
child processes, alternately, RUNS times each, and open the file themselves: `iterator_s` is open + a
default-settings multi-core iterator over every product (`iterator_same_work_s`: the import's own element
list and settings, without the rest of the import); `import_s` is the whole import_ifc call (open,
georeference, triangulate, IFC data, transform, write, commit) into a new model. Medians are reported.
Writes bench/results/bench-ifc.json as {"metrics": {...}}.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import ifcopenshell

from cim.db.server import drop_database, model_url
from cim.importers.ifc.elements import elements
from cim.model.store import init_model
from cim.sample.bim import write_bim

STOREYS = int(os.environ.get("BENCH_STOREYS", "30"))
RUNS = 3
MODEL = "cim_bench_ifc"
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cim" / "bench"
RESULTS = ROOT / "bench" / "results"

# A bare iterator pass; with "same" it iterates the import's own element list with the import's settings.
ITERATOR = """
import os, sys, time
import ifcopenshell, ifcopenshell.geom
t = time.perf_counter()
f = ifcopenshell.open(sys.argv[1])
if sys.argv[2:] == ["same"]:
    from cim.importers.ifc.elements import elements
    from cim.importers.ifc.geometry import iterator_settings
    it = ifcopenshell.geom.iterator(iterator_settings(), f, os.cpu_count(), include=elements(f))
else:
    it = ifcopenshell.geom.iterator(ifcopenshell.geom.settings(), f, os.cpu_count())
n = 0
if it.initialize():
    while True:
        shape = it.get()
        n += 1
        if not it.next():
            break
print(time.perf_counter() - t, n)
"""

IMPORT = """
import sys, time
from pathlib import Path
from cim.model.store import Model
from cim.importers.ifc import import_ifc
m = Model.open(sys.argv[2])
t = time.perf_counter()
done = import_ifc(m, Path(sys.argv[1]))
print(time.perf_counter() - t, done.result.written, done.summary["triangles"])
"""


def child(code: str, *args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return [float(v) for v in out.stdout.split()]


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    src = write_bim(WORK / f"bim_{STOREYS}_storeys.ifc", storeys=STOREYS)
    found = elements(ifcopenshell.open(str(src)))
    count = sum(not e.is_a("IfcSpace") for e in found)
    print(f"{src.name}: {count:,} elements and {len(found) - count} spaces, {src.stat().st_size / 1e6:.1f} MB")
    url = model_url(MODEL)
    iterator_runs, same_runs, import_runs = [], [], []
    for run in range(RUNS):
        seconds, shapes = child(ITERATOR, str(src))
        iterator_runs.append(seconds)
        same_runs.append(child(ITERATOR, str(src), "same")[0])
        drop_database(url)
        init_model(url, "EPSG:4547", "440402", "orthometric")
        seconds, objects, triangles = child(IMPORT, str(src), MODEL)
        import_runs.append(seconds)
        print(f"run {run + 1}/{RUNS}: iterator {iterator_runs[-1]:.2f} s ({shapes:.0f} shapes), same elements and "
              f"settings as the import {same_runs[-1]:.2f} s, "
              f"import {import_runs[-1]:.2f} s ({objects:.0f} objects, {triangles:,.0f} triangles)")
    drop_database(url)
    metrics = {
        "elements": count,
        "import_s": round(statistics.median(import_runs), 3),
        "iterator_s": round(statistics.median(iterator_runs), 3),
        "import_min_s": round(min(import_runs), 3),
        "iterator_min_s": round(min(iterator_runs), 3),
        "iterator_same_work_s": round(statistics.median(same_runs), 3),
        "spaces": len(found) - count,
        "objects": int(objects),
        "triangles": int(triangles),
        "cores": os.cpu_count(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    metrics["import_over_iterator"] = round(metrics["import_s"] / metrics["iterator_s"], 3)
    verdict = "meets" if metrics["import_s"] <= 1.5 * metrics["iterator_s"] else "MISSES"
    print(json.dumps(metrics, indent=2))
    print(f"import_s / iterator_s = {metrics['import_over_iterator']} ({verdict} the floor of 1.5)")
    (RESULTS / "bench-ifc.json").write_text(json.dumps({"metrics": metrics}, indent=2) + "\n")


if __name__ == "__main__":
    main()
