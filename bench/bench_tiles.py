"""bench-tiles: 100,000 LOD1 buildings from PostGIS to 3D Tiles, cim's tiler beside py3dtiles 12.1.1's PostGIS
`export` on the same buildings in the same run; buildings/s, output size, peak memory.

The bench model (BENCH_BUILDINGS synthetic footprints, default 100,000, on a synthetic terrain, imported with
`cim import gis`) is kept between runs and reused when it already holds the same number of buildings.
py3dtiles is installed by the bench into its own virtualenv, .cim/bench/py3dtiles-venv (`py3dtiles[postgres]`,
i.e. with psycopg2-binary), never into the project's. Its `export -D` reads one table whose geometry column
must already be POLYHEDRALSURFACE Z or MULTIPOLYGON Z in EPSG:4978 (it only translates by the extent's centre
and rotates to y-up), so the bench writes the same buildings as extruded LOD1 solids in ECEF into
bench.py3dtiles_buildings (postgis_sfcgal's ST_Extrude, then ST_Transform; base heights are taken as ellipsoidal,
which does not matter to the comparison). That preparation is timed on its own (`py3dtiles_prep_s`) and is
not counted in py3dtiles' time.

Every measured run is a child process of its own, forked by a small wrapper (see WRAPPER): peak memory is its
ru_maxrss from wait4 (its own and its reaped descendants' largest resident set) or, when larger, the sum over
its live process tree sampled every 0.1 s (worker processes count together).
- cim: RUNS in-child calls of cim.tiler.build.build_tiles(model, out, ["buildings"], full=True) into an empty
  directory; `buildings_per_s` from the median build_tiles time (`tile_s`). Then one `python -m cim tile
  --layer buildings --out DIR --model MODEL --full` timed end to end (`cli_wall_s`, Python start-up included);
  `output_mb` and `tiles` (.glb files) are that directory's. `peak_rss_mb` is the largest of all cim children.
- py3dtiles: one `py3dtiles export -D URL -t bench.py3dtiles_buildings -c geom -i id -s DIR` (b3dm, 3D Tiles
  1.0); `py3dtiles_buildings_per_s` from `py3dtiles_s`, the time from its first output line ("Loading data
  from database...", i.e. imports done and connected) to its exit, so, like cim's build_tiles time, without
  Python start-up; `py3dtiles_cli_wall_s` is the whole command. Output size and peak memory of that child.
Writes bench/results/bench-tiles.json as {"metrics": {...}}; exits non-zero when a floor is missed or cim's
tiler is not available (the py3dtiles figures are printed anyway).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from floors import finish  # bench/floors.py
from synthetic import synthetic_model  # bench/synthetic.py

from cim.db.server import conninfo
from cim.model.store import Model

N = int(os.environ.get("BENCH_BUILDINGS", "100000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MODEL = "cim_bench_tiles"
LAYER = "buildings"
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cim" / "bench"
RESULTS = ROOT / "bench" / "results"
PEER = "py3dtiles==12.1.1"
PEER_VENV = WORK / "py3dtiles-venv"
PEER_TABLE = "bench.py3dtiles_buildings"
OUT_CIM, OUT_PEER = WORK / "tiles-cim", WORK / "tiles-py3dtiles"
PAGE = os.sysconf("SC_PAGE_SIZE")
FLOOR_SPEEDUP, FLOOR_RATE, FLOOR_RSS_MB = 10.0, 5000.0, 2048.0

# The buildings as extruded LOD1 solids in ECEF: city_object.geom is the footprint at base height.
PREP_SQL = f"""
CREATE EXTENSION IF NOT EXISTS postgis_sfcgal;
CREATE SCHEMA IF NOT EXISTS bench;
DROP TABLE IF EXISTS {PEER_TABLE};
CREATE TABLE {PEER_TABLE} AS
  SELECT code AS id, ST_Transform(ST_Extrude(geom, 0, 0, top_z - base_z), 4978) AS geom
  FROM city_object WHERE layer = '{LAYER}';
ANALYZE {PEER_TABLE};
"""


def log(message: str) -> None:
    print(message, flush=True)


# A child's ru_maxrss starts at its parent's resident size when it was forked (the kernel keeps the pre-exec
# high-water mark), which here would be this process's 200+ MB of imports. So every measured command runs
# under this small wrapper, which forks it, waits for it and writes its peak RSS (KiB) and wall time.
WRAPPER = """import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{usage.ru_maxrss} {time.perf_counter() - started}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _tree_rss(root: int) -> int:
    """Bytes resident in root's live descendants, root (the wrapper) left out (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def measured(cmd: list[str], label: str, echo: bool = True) -> tuple[float, float, list[tuple[float, str]]]:
    """Run cmd as a child of its own: (wall seconds, peak RSS in MB, output lines with the seconds at which
    each came); raises on failure."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    stats = WORK / "measured.txt"
    stats.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", WRAPPER, str(stats), *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    for line in proc.stdout:
        lines.append((time.perf_counter() - started, line.rstrip("\n")))
        if echo:
            log(f"  {label} {lines[-1][0]:7.1f}s | {lines[-1][1]}")
    proc.wait()
    done.set()
    sampler.join()
    if proc.returncode:
        tail = "\n".join(f"    {line}" for _, line in lines[-15:])
        raise RuntimeError(f"{label} exited with {proc.returncode}:\n{tail}")
    maxrss_kib, wall = stats.read_text().split()
    return float(wall), max(int(maxrss_kib) * 1024, peak[0]) / 2**20, lines


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def ensure_model() -> Model:
    """The bench model with N buildings on a synthetic terrain; reused when it already holds them."""
    return synthetic_model(MODEL, N, WORK, log)


def ensure_peer() -> Path:
    """py3dtiles in its own virtualenv (created when missing); the path of its `py3dtiles` command."""
    exe, py = PEER_VENV / "bin" / "py3dtiles", PEER_VENV / "bin" / "python"
    check = [str(py), "-c", "import importlib.metadata as m, psycopg2; print(m.version('py3dtiles'))"]
    if exe.exists():
        got = subprocess.run(check, capture_output=True, text=True)
        if got.returncode == 0 and got.stdout.strip() == PEER.split("==")[1]:
            return exe
    log(f"installing {PEER} into {PEER_VENV.relative_to(ROOT)} …")
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    PEER.replace("==", "[postgres]==")], check=True)
    subprocess.run(check, check=True, stdout=subprocess.DEVNULL)
    return exe


def prepare_peer_table(model: Model) -> float:
    """bench.py3dtiles_buildings: the model's buildings as POLYHEDRALSURFACE Z in EPSG:4978; seconds taken."""
    started = time.perf_counter()
    with model.connect() as conn:
        conn.execute(PREP_SQL)
        rows, kinds, srid = conn.execute(
            f"SELECT count(*), array_agg(DISTINCT GeometryType(geom)), min(ST_SRID(geom)) FROM {PEER_TABLE}"
        ).fetchone()
    took = time.perf_counter() - started
    if rows != N or kinds != ["POLYHEDRALSURFACE"] or srid != 4978:
        raise SystemExit(f"{PEER_TABLE}: {rows} rows of {kinds} in EPSG:{srid}, wanted {N} POLYHEDRALSURFACE Z")
    log(f"{PEER_TABLE}: {rows:,} extruded LOD1 solids in EPSG:4978 in {took:.1f} s (not counted)")
    return took


def run_peer(model: Model, exe: Path) -> dict:
    shutil.rmtree(OUT_PEER, ignore_errors=True)
    cmd = [str(exe), "export", "-D", conninfo(model.url), "-t", PEER_TABLE, "-c", "geom", "-i", "id",
           "-s", str(OUT_PEER)]
    log("py3dtiles: " + " ".join(cmd))
    wall, peak, lines = measured(cmd, "py3dtiles")
    if not (OUT_PEER / "tileset.json").exists():
        raise RuntimeError(f"py3dtiles wrote no {OUT_PEER / 'tileset.json'}")
    # Its work starts at its first line (connected, "Loading data from database..."): like cim's build_tiles
    # time, py3dtiles_s leaves out Python start-up and imports (about 1 s here), which favours it.
    work = wall - next(t for t, line in lines if line.startswith("Loading data"))
    return {"py3dtiles_buildings_per_s": round(N / work, 1), "py3dtiles_s": round(work, 2),
            "py3dtiles_cli_wall_s": round(wall, 2),
            "py3dtiles_output_mb": round(dir_mb(OUT_PEER), 1),
            "py3dtiles_tiles": sum(1 for _ in OUT_PEER.rglob("*.b3dm")),
            "py3dtiles_peak_rss_mb": round(peak, 1)}


def run_cim() -> dict:
    code = ("import json, sys, time; from pathlib import Path; from cim.model.store import Model; "
            "from cim.tiler.build import build_tiles; m = Model.open(sys.argv[1]); t = time.perf_counter(); "
            "r = build_tiles(m, Path(sys.argv[2]), [sys.argv[3]], full=True); s = time.perf_counter() - t; "
            "print(json.dumps({'s': s, 'tiles_written': r.tiles_written, 'objects': r.objects}))")
    times, peaks = [], []
    for run in range(RUNS):
        shutil.rmtree(OUT_CIM, ignore_errors=True)
        _, peak, lines = measured([sys.executable, "-c", code, MODEL, str(OUT_CIM), LAYER], "cim build_tiles",
                                  echo=False)
        report = json.loads(lines[-1][1])
        if report["objects"] != N:
            raise RuntimeError(f"build_tiles reported {report['objects']} objects, the model has {N:,} buildings")
        times.append(report["s"])
        peaks.append(peak)
        log(f"cim build_tiles {run + 1}/{RUNS}: {N:,} buildings in {times[-1]:.2f} s ({N / times[-1]:,.0f}/s), "
            f"{report['tiles_written']} tiles written, peak {peak:,.0f} MB")
    shutil.rmtree(OUT_CIM, ignore_errors=True)
    cmd = [sys.executable, "-m", "cim", "tile", "--layer", LAYER, "--out", str(OUT_CIM), "--model", MODEL, "--full"]
    log("cim: " + " ".join(cmd))
    wall, peak, _ = measured(cmd, "cim tile")
    peaks.append(peak)
    tile_s = statistics.median(times)
    return {"buildings_per_s": round(N / tile_s, 1), "tile_s": round(tile_s, 3),
            "tile_s_min": round(min(times), 3), "tile_s_max": round(max(times), 3), "cli_wall_s": round(wall, 3),
            "output_mb": round(dir_mb(OUT_CIM), 1), "tiles": sum(1 for _ in OUT_CIM.rglob("*.glb")),
            "peak_rss_mb": round(max(peaks), 1)}


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    exe = ensure_peer()
    model = ensure_model()
    prep_s = prepare_peer_table(model)
    ours, error = {}, None
    try:
        ours = run_cim()
    except Exception as exc:  # the tiler missing or failing must not hide the peer's figures
        error = f"cim tiler not available: {exc}"
        log(error)
    peer = run_peer(model, exe)
    metrics = {"buildings": N, **ours, **peer, "py3dtiles_prep_s": round(prep_s, 2)}
    if ours:
        metrics["speedup"] = round(ours["buildings_per_s"] / peer["py3dtiles_buildings_per_s"], 1)
    log("")
    log(f"{'':>26}  {'cim':>12}  {'py3dtiles':>12}")
    rows = [("buildings/s", "buildings_per_s", "py3dtiles_buildings_per_s"),
            ("tiling s", "tile_s", "py3dtiles_s"), ("whole command s", "cli_wall_s", "py3dtiles_cli_wall_s"),
            ("output MB", "output_mb", "py3dtiles_output_mb"), ("tile files", "tiles", "py3dtiles_tiles"),
            ("peak RSS MB", "peak_rss_mb", "py3dtiles_peak_rss_mb")]
    for name, a, b in rows:
        log(f"{name:>26}  {metrics.get(a, '-'):>12}  {metrics.get(b, '-'):>12}")
    for key, value in metrics.items():
        log(f"{key:>26}: {value}")
    if error:
        (WORK / "bench-tiles-py3dtiles.json").write_text(json.dumps({"metrics": metrics}, indent=2) + "\n")
        raise SystemExit(f"{error}\n(py3dtiles figures above, also in {WORK / 'bench-tiles-py3dtiles.json'}; "
                         "bench/results/bench-tiles.json not written)")
    finish(RESULTS / "bench-tiles.json", metrics, {
        f"speedup >= {FLOOR_SPEEDUP:g} x py3dtiles": metrics["speedup"] >= FLOOR_SPEEDUP,
        f"buildings_per_s >= {FLOOR_RATE:,.0f}": metrics["buildings_per_s"] >= FLOOR_RATE,
        f"peak_rss_mb < {FLOOR_RSS_MB:,.0f}": metrics["peak_rss_mb"] < FLOOR_RSS_MB}, log)

if __name__ == "__main__":
    main()
