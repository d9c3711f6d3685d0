"""bench-api: `items?bbox=…&limit=100` under concurrent load, cim's API server beside tipg 1.6.1 serving the same
PostGIS table in the same run; requests/s and latency p50/p99.

The bench model (BENCH_BUILDINGS synthetic LOD1 footprints, default 100,000, on a synthetic terrain, imported with
`cim import dem` and `cim import gis --layer buildings`, as bench_import.py does) is kept between runs and reused
when it already holds the same number of buildings.

tipg is installed by the bench into its own virtualenv, .cim/bench/tipg-venv (tipg==1.6.1, with the same uvicorn
version, and uvloop/httptools only when the project's venv has them, so both servers run on the same HTTP stack),
never into the project's. It serves city_object as the collection `public.city_object`, configured through its
environment only: DATABASE_URL, TIPG_DB_TABLES=["public.city_object"], TIPG_TABLE_CONFIG__public_city_object__GEOMCOL
=geom (the table's other geometry column, bbox3d, sorts first and would be tipg's default), the primary key `code` as
feature id (tipg finds it itself), TIPG_CATALOG_TTL=0 (no catalog refresh in the middle of a run), everything else
tipg's default (a pool of 1 to 10 connections, all non-geometry columns as properties). It runs as
`uvicorn tipg.main:app --workers 1 --no-access-log`. city_object also holds the model's terrain object, so tipg's
requests carry `layer=buildings` (tipg's property filter), which makes them the same query as cim's
`/collections/buildings/items` but for how the bbox is read (see sanity).

Both servers are started side by side (one uvicorn worker each, free loopback ports, ready when `GET /` answers
200), then:
- requests: BENCH_BBOXES (default 300) squares of 500-800 m inside the buildings' extent, from a fixed seed, each
  holding at least 150 buildings (the synthetic footprints sit on a 40 m grid, 625 per km²), turned into CRS84
  bboxes with pyproj (EPSG:4547 -> EPSG:4326, always_xy, the square's transformed bounds): the same list for both.
- sanity: the first BENCH_SANITY (default 8) bboxes are fetched once from each server; both must answer 200 with
  100 features and numberReturned 100. numberMatched and the feature ids are compared and any difference is printed
  and counted (`sanity_matched_diff_max` = cim - tipg, `sanity_id_mismatches`), not hidden; a numberMatched
  difference above 2 % fails the bench (the servers would not be serving the same data). Beside them, the database's
  own counts for two readings of a bbox: the CRS84 rectangle itself, and the EPSG:4547 envelope of it, which is what
  tipg 1.6.1 queries (pyproj transform_bounds); `sanity_{cim,tipg}_{exact,envelope}` say for how many bboxes each
  server's numberMatched equals each.
- load, one server after the other (2 cores): wrk with bench/wrk_bbox.lua, BENCH_CONNECTIONS (20) connections on 2
  threads, each thread cycling through the bbox list; BENCH_WARMUP_S (5) seconds not counted, then BENCH_SECONDS
  (20) seconds measured. wrk measures each request from send to last byte (no coordinated-omission correction).
  `rps` = completed requests / wrk's measured duration; `p50_ms`, `p99_ms` from wrk's latency histogram. Every
  response outside 200-299, and every socket error or timeout (10 s), counts in `errors`. `server_cpu_ms_per_request`
  is the CPU time of the server's processes (not PostgreSQL's) over the measured phase per request, and
  `postgres_cpu_ms_per_request` that of its PostgreSQL backends: figures less at the mercy of whatever else runs on
  the machine than rps and latencies are. The cores used during each measured phase are split into the
  server, its PostgreSQL backends (those connected to the bench model), wrk and everything else
  (`other_cpu_cores`, from /proc/stat); a warning is printed when everything else took more than 0.2 cores.
Writes bench/results/bench-api.json as {"metrics": {...}}; exits non-zero when the floor (rps >= 1.5 x tipg_rps
and p99_ms <= tipg_p99_ms) is missed, when there are errors, or when `cim serve` is not available (the tipg figures
are printed anyway, and kept in .cim/bench/bench-api-tipg.json). wrk is installed with apt-get when missing (as root
on Debian/Ubuntu). Both servers are stopped at the end, also on errors and Ctrl-C; servers left behind by a killed
run are stopped by the next run (.cim/bench/bench-api.pids); two runs at once are refused (.cim/bench/bench-api.lock).
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from floors import finish  # bench/floors.py
from pyproj import Transformer
from synthetic import synthetic_model  # bench/synthetic.py

from cim.db.server import conninfo
from cim.model.store import Model

N = int(os.environ.get("BENCH_BUILDINGS", "100000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "20"))
THREADS = 2
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
WARMUP_S = int(os.environ.get("BENCH_WARMUP_S", "5"))
BBOXES = int(os.environ.get("BENCH_BBOXES", "300"))
SANITY = int(os.environ.get("BENCH_SANITY", "8"))
SEED = 20260611
LIMIT = 100
SIDE_M = (500.0, 800.0)
MIN_IN_BOX = 150
MODEL = "cim_bench_api"
LAYER = "buildings"
SRID = 4547
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cim" / "bench"
RESULTS = ROOT / "bench" / "results"
LUA = Path(__file__).resolve().parent / "wrk_bbox.lua"
PIDS = WORK / "bench-api.pids"
LOCK = WORK / "bench-api.lock"
PEER = "tipg==1.6.1"
PEER_VENV = WORK / "tipg-venv"
PEER_COLLECTION = "public.city_object"
LAYER_FILTER = f"layer={LAYER}"  # tipg's property filter: city_object also holds the terrain object
FLOOR_RPS_RATIO = 1.5
MATCHED_TOLERANCE = 0.02
READY_TIMEOUT_S = 90.0
OTHER_CPU_WARN = 0.2  # cores


def log(message: str) -> None:
    print(message, flush=True)


# --- what the bench needs installed -----------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk command, installed with apt-get (Debian package `wrk`) when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        log("installing wrk with apt-get …")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit("bench-api needs the HTTP load generator wrk: `apt-get install wrk` (Debian/Ubuntu), "
                     "`dnf install wrk` (Fedora) or `brew install wrk` (macOS)")


def peer_requirements() -> list[str]:
    """tipg, and the project venv's own uvicorn (and uvloop / httptools when it has them), at the same versions."""
    wanted = [PEER, f"uvicorn=={importlib.metadata.version('uvicorn')}"]
    for extra in ("uvloop", "httptools"):
        if importlib.util.find_spec(extra) is not None:
            wanted.append(f"{extra}=={importlib.metadata.version(extra)}")
    return wanted


def ensure_peer() -> Path:
    """tipg in its own virtualenv (created when missing or at other versions); the path of its python."""
    py = PEER_VENV / "bin" / "python"
    wanted = peer_requirements()
    names = [req.split("==")[0] for req in wanted]
    check = [str(py), "-c", "import sys, importlib.metadata as m, tipg.main, uvicorn; "
             "print(' '.join(f'{n}=={m.version(n)}' for n in sys.argv[1:]))", *names]
    if py.exists():
        got = subprocess.run(check, capture_output=True, text=True, cwd=WORK)
        if got.returncode == 0 and got.stdout.split() == wanted:
            return py
    log(f"installing {' '.join(wanted)} into {PEER_VENV.relative_to(ROOT)} …")
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted], check=True)
    subprocess.run(check, check=True, stdout=subprocess.DEVNULL, cwd=WORK)
    return py


def ensure_model() -> Model:
    """The bench model with N buildings on a synthetic terrain; reused when it already holds them."""
    return synthetic_model(MODEL, N, WORK, log)


# --- the requests -------------------------------------------------------------------------------------------------


def make_bboxes(model: Model) -> list[tuple[tuple[float, float, float, float], int]]:
    """BBOXES CRS84 bboxes (fixed seed) of 500-800 m squares inside the buildings' extent, each holding at least
    MIN_IN_BOX buildings, with the number of buildings their square holds."""
    to_crs84 = Transformer.from_crs(f"EPSG:{SRID}", "EPSG:4326", always_xy=True)
    rng = np.random.default_rng(SEED)
    boxes: list[tuple[tuple[float, float, float, float], int]] = []
    with model.connect() as conn:
        xmin, ymin, xmax, ymax = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) AS e FROM city_object WHERE layer = %s) s", (LAYER,)).fetchone()
        for _ in range(20 * BBOXES):
            if len(boxes) == BBOXES:
                break
            side = float(rng.uniform(*SIDE_M))
            if xmax - xmin < side or ymax - ymin < side:
                continue
            x0, y0 = float(rng.uniform(xmin, xmax - side)), float(rng.uniform(ymin, ymax - side))
            held = conn.execute(
                "SELECT count(*) FROM city_object WHERE layer = %s AND geom && ST_MakeEnvelope(%s, %s, %s, %s, %s)",
                (LAYER, x0, y0, x0 + side, y0 + side, SRID)).fetchone()[0]
            if held >= MIN_IN_BOX:
                lon0, lat0, lon1, lat1 = to_crs84.transform_bounds(x0, y0, x0 + side, y0 + side)
                boxes.append(((round(lon0, 7), round(lat0, 7), round(lon1, 7), round(lat1, 7)), held))
    if len(boxes) < BBOXES:
        raise SystemExit(f"only {len(boxes)} of {BBOXES} bboxes hold {MIN_IN_BOX}+ buildings: "
                         f"{N:,} buildings are too few for this bench")
    return boxes


def items_path(server: str, bbox: tuple[float, float, float, float]) -> str:
    q = f"bbox={bbox[0]:.7f},{bbox[1]:.7f},{bbox[2]:.7f},{bbox[3]:.7f}&limit={LIMIT}"
    if server == "tipg":
        return f"/collections/{PEER_COLLECTION}/items?{q}&{LAYER_FILTER}"
    return f"/collections/{LAYER}/items?{q}"


# --- the servers ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _remember(pid: int) -> None:
    """Note a process this bench started (a server, wrk), for the next run should this one be killed."""
    with open(PIDS, "a") as fh:
        fh.write(f"{pid} {_start_time(pid)}\n")


def _forget(pid: int) -> None:
    if PIDS.exists():
        PIDS.write_text("".join(ln + "\n" for ln in PIDS.read_text().splitlines() if ln.split()[0] != str(pid)))


def stop_stale_servers() -> None:
    """Stop the servers (and wrk) a previous, killed run of this bench left behind (their pid and start time
    match)."""
    if not PIDS.exists():
        return
    for line in PIDS.read_text().split("\n"):
        if not line.strip():
            continue
        pid, started = line.split()
        if _start_time(int(pid)) == started:
            log(f"stopping a process left behind by an earlier run (pid {pid})")
            _stop_group(int(pid))
    PIDS.unlink()


TICK = os.sysconf("SC_CLK_TCK")


def cpu_snapshot() -> tuple[int, dict[int, tuple[int, int, str]]]:
    """(busy jiffies of the whole machine, {pid: (process group, jiffies used, command line)}) from /proc."""
    with open("/proc/stat") as fh:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fh.readline().split()[1:9])
    procs = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            procs[int(entry.name)] = (int(fields[2]), int(fields[11]) + int(fields[12]), cmdline)
    return user + nice + system + irq + softirq + steal, procs


def cpu_split(before: tuple, after: tuple, server_pgid: int, wrk_s: float, seconds: float) -> dict[str, float]:
    """Cores used during a measured phase by the server's processes, its PostgreSQL backends (those of the bench
    model's database), wrk, and everything else on the machine."""
    (busy0, procs0), (busy1, procs1) = before, after

    def used(pid: int) -> int:
        return procs1[pid][1] - (procs0[pid][1] if pid in procs0 else 0)

    server = sum(used(pid) for pid, (pgid, _, _) in procs1.items() if pgid == server_pgid) / TICK
    backends = sum(used(pid) for pid, (_, _, cmd) in procs1.items()
                   if cmd.startswith("postgres: ") and f" {MODEL} " in cmd) / TICK
    machine = (busy1 - busy0) / TICK
    return {"server_cpu_cores": round(server / seconds, 2), "postgres_cpu_cores": round(backends / seconds, 2),
            "wrk_cpu_cores": round(wrk_s / seconds, 2),
            "other_cpu_cores": round(max(0.0, machine - server - backends - wrk_s) / seconds, 2),
            "server_cpu_s": server, "postgres_cpu_s": backends}


def _stop_group(pid: int) -> None:
    """SIGTERM to the process group of a server this bench started (its own session), SIGKILL after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:  # not our child (a stale server): watch /proc instead
                if _start_time(pid) is None:
                    return
            time.sleep(0.1)


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int) -> None:
        self.name, self.cmd, self.env, self.port = name, cmd, env, port
        self.base = f"http://127.0.0.1:{port}"
        self.logfile = WORK / f"bench-api-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log(f"{self.name}: starting on port {self.port}: {' '.join(self.cmd)}")
        with open(self.logfile, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=WORK, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        _remember(self.proc.pid)

    def wait_ready(self) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < READY_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/", timeout=5) as resp:
                    if resp.status == 200:
                        took = time.perf_counter() - started
                        log(f"{self.name}: ready in {took:.1f} s")
                        return took
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: `GET /` did not answer 200 within {READY_TIMEOUT_S:.0f} s:\n"
                           f"{self.log_tail()}")

    def get_json(self, path: str) -> tuple[int, dict | None, int]:
        """(status, parsed body or None, body bytes) of one GET."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=60) as resp:
                body = resp.read()
                return resp.status, json.loads(body), len(body)
        except urllib.error.HTTPError as exc:
            body = exc.read()
            return exc.code, None, len(body)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join("    " + line for line in self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "    (no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _stop_group(self.proc.pid)
            log(f"{self.name}: stopped")


def tipg_server(py: Path, model: Model) -> Server:
    port = free_port()
    env = dict(os.environ)
    for key in list(env):  # only this bench's settings reach tipg
        if key.startswith("TIPG_") or key.startswith("POSTGRES_") or key == "DATABASE_URL":
            del env[key]
    env.update({
        "DATABASE_URL": conninfo(model.url),
        "TIPG_DB_SCHEMAS": '["public"]',
        "TIPG_DB_TABLES": f'["{PEER_COLLECTION}"]',
        "TIPG_TABLE_CONFIG__public_city_object__GEOMCOL": "geom",
        "TIPG_CATALOG_TTL": "0",
    })
    cmd = [str(py), "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--no-access-log"]
    return Server("tipg", cmd, env, port)


def cim_server() -> Server | str:
    """The `cim serve` server, or why it is not available."""
    got = subprocess.run([sys.executable, "-m", "cim", "serve", "--help"], capture_output=True, text=True, cwd=ROOT)
    if got.returncode != 0:
        said = [ln.strip(" │╭╮╰╯─") for ln in (got.stderr or got.stdout).splitlines()]
        return f"`cim serve` is not available: {([ln for ln in said if ln and 'Error' not in ln] or ['?'])[-1]}"
    port = free_port()
    cmd = [sys.executable, "-m", "cim", "serve", "--host", "127.0.0.1", "--port", str(port), "--model", MODEL]
    if "--workers" in got.stdout:
        cmd += ["--workers", "1"]
    return Server("cim", cmd, dict(os.environ), port)


# --- sanity and load -------------------------------------------------------------------------------------------


# What a bbox matches in the database under the two readings a server can give it: the CRS84 rectangle itself
# (densified to ~10 m, then transformed), and the EPSG:4547 envelope of that (what tipg 1.6.1 queries).
DB_COUNTS = f"""
WITH r AS (SELECT ST_Transform(ST_Segmentize(ST_MakeEnvelope(%s, %s, %s, %s, 4326), 0.0001), {SRID}) AS g)
SELECT (SELECT count(*) FROM city_object, r WHERE layer = %s AND ST_Intersects(geom, r.g)),
       (SELECT count(*) FROM city_object, r WHERE layer = %s AND ST_Intersects(geom, ST_Envelope(r.g)))
"""


def sanity(servers: dict[str, Server], boxes: list, model: Model) -> dict:
    """The first SANITY bboxes from every server: 100 features each; numberMatched and ids compared, and set beside
    the database's own counts."""
    matched_diffs, id_mismatches, sizes = [], 0, {name: [] for name in servers}
    problems = []
    with model.connect() as conn:
        db_counts = [conn.execute(DB_COUNTS, (*bbox, LAYER, LAYER)).fetchone() for bbox, _ in boxes[:SANITY]]
    agree = {f"sanity_{name}_{reading}": 0 for name in servers for reading in ("exact", "envelope")}
    for (bbox, _), (exact, envelope) in zip(boxes[:SANITY], db_counts, strict=True):
        answers = {}
        for name, server in servers.items():
            status, body, size = server.get_json(items_path(name, bbox))
            sizes[name].append(size)
            if status != 200 or body is None:
                problems.append(f"{name}: HTTP {status} for {items_path(name, bbox)}")
                continue
            features = body.get("features") or []
            if len(features) != LIMIT or body.get("numberReturned") != LIMIT:
                problems.append(f"{name}: {len(features)} features, numberReturned {body.get('numberReturned')} "
                                f"(wanted {LIMIT}) for {items_path(name, bbox)}")
            answers[name] = (body.get("numberMatched"), {str(f.get("id")) for f in features})
            agree[f"sanity_{name}_exact"] += answers[name][0] == exact
            agree[f"sanity_{name}_envelope"] += answers[name][0] == envelope
        line = "  ".join(f"{name} matched {m}" for name, (m, _) in answers.items())
        log(f"  sanity bbox {','.join(f'{v:.5f}' for v in bbox)}: {line}  (database: {exact} in the CRS84 "
            f"rectangle, {envelope} in its EPSG:{SRID} envelope)")
        if len(answers) == 2:
            (m_cim, ids_cim), (m_tipg, ids_tipg) = answers["cim"], answers["tipg"]
            if m_cim is None or m_tipg is None:
                problems.append(f"numberMatched missing: cim {m_cim}, tipg {m_tipg}")
                continue
            diff = m_cim - m_tipg
            matched_diffs.append(diff)
            if diff:
                log(f"    numberMatched differs: cim {m_cim} - tipg {m_tipg} = {diff:+d}")
            if abs(diff) > MATCHED_TOLERANCE * max(m_cim, m_tipg):
                problems.append(f"numberMatched cim {m_cim} vs tipg {m_tipg}: not the same data")
            if ids_cim != ids_tipg and ids_cim and ids_tipg:
                id_mismatches += 1
                log(f"    feature ids differ: {len(ids_cim & ids_tipg)} of {LIMIT} in common")
    if problems:
        raise SystemExit("sanity check failed:\n" + "\n".join(f"  {p}" for p in problems))
    out = {"sanity_bboxes": min(SANITY, len(boxes)), **agree}
    for name, values in sizes.items():
        out[f"{name}_response_kb"] = round(statistics.mean(values) / 1024, 1)
    if matched_diffs:
        out["sanity_matched_diff_max"] = max(matched_diffs, key=abs)
        out["sanity_id_mismatches"] = id_mismatches
    return out


def run_wrk(wrk: str, server: Server, paths_file: Path, seconds: int) -> dict:
    cmd = [wrk, "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "10s",
           "-s", str(LUA), server.base, "--", str(paths_file), str(THREADS)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    _remember(proc.pid)
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            _stop_group(proc.pid)
        _forget(proc.pid)
    line = next((ln for ln in out.splitlines() if ln.startswith("bench-api-wrk ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {' '.join(cmd)}\n{out}\n{err}")
    if server.proc.poll() is not None:
        raise RuntimeError(f"{server.name} died under load:\n{server.log_tail()}")
    return json.loads(line.split(" ", 1)[1])


def load(wrk: str, server: Server, boxes: list) -> dict:
    paths_file = WORK / f"bench-api-paths-{server.name}.txt"
    paths_file.write_text("".join(items_path(server.name, bbox) + "\n" for bbox, _ in boxes))
    log(f"{server.name}: warm-up, {WARMUP_S} s at {CONNECTIONS} connections (not counted) …")
    warm = run_wrk(wrk, server, paths_file, WARMUP_S)
    log(f"{server.name}: measuring, {SECONDS} s at {CONNECTIONS} connections …")
    before, children = cpu_snapshot(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = run_wrk(wrk, server, paths_file, SECONDS)
    after, children_after = cpu_snapshot(), resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_s = (children_after.ru_utime + children_after.ru_stime) - (children.ru_utime + children.ru_stime)
    cpu = cpu_split(before, after, server.proc.pid, wrk_s, r["duration_us"] / 1e6)
    errors = r["non2xx"] + r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    seconds = r["duration_us"] / 1e6
    figures = {"rps": round(r["requests"] / seconds, 1), "p50_ms": round(r["p50_us"] / 1000, 1),
               "p90_ms": round(r["p90_us"] / 1000, 1), "p99_ms": round(r["p99_us"] / 1000, 1),
               "mean_ms": round(r["mean_us"] / 1000, 1), "max_ms": round(r["max_us"] / 1000, 1),
               "requests": r["requests"], "errors": errors, "non2xx": r["non2xx"],
               "mb_per_s": round(r["bytes"] / seconds / 2**20, 2),
               "server_cpu_ms_per_request": round(1000 * cpu.pop("server_cpu_s") / max(r["requests"], 1), 2),
               "postgres_cpu_ms_per_request": round(1000 * cpu.pop("postgres_cpu_s") / max(r["requests"], 1), 2),
               **cpu,
               "warmup_errors": warm["non2xx"] + warm["connect_errors"] + warm["read_errors"]
               + warm["write_errors"] + warm["timeouts"]}
    log(f"{server.name}: {figures['rps']:,.1f} requests/s, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"{figures['requests']:,} requests, {errors} errors (warm-up: {warm['requests']:,} requests, "
        f"{figures['warmup_errors']} errors)")
    log(f"{server.name}: cores used: server {cpu['server_cpu_cores']}, its PostgreSQL backends "
        f"{cpu['postgres_cpu_cores']}, wrk {cpu['wrk_cpu_cores']}, everything else {cpu['other_cpu_cores']}")
    if cpu["other_cpu_cores"] > OTHER_CPU_WARN:
        log(f"{server.name}: WARNING: other processes took {cpu['other_cpu_cores']} of the {os.cpu_count()} cores "
            "during the measurement; its figures are lower than on a quiet machine")
    return figures


# --- the run -------------------------------------------------------------------------------------------------------


def _terminate(signum, frame):  # so that `finally` stops the servers on SIGTERM too
    raise SystemExit(f"bench-api: signal {signum}")


def report(metrics: dict) -> None:
    log("")
    log(f"{'':>26}  {'cim':>10}  {'tipg 1.6.1':>10}")
    rows = (("requests/s", "rps"), ("p50 ms", "p50_ms"), ("p90 ms", "p90_ms"), ("p99 ms", "p99_ms"),
            ("mean ms", "mean_ms"), ("max ms", "max_ms"), ("requests", "requests"), ("errors", "errors"),
            ("response kB", "response_kb"), ("MB/s", "mb_per_s"),
            ("server CPU ms/request", "server_cpu_ms_per_request"),
            ("PostgreSQL CPU ms/request", "postgres_cpu_ms_per_request"), ("server cores", "server_cpu_cores"),
            ("PostgreSQL cores", "postgres_cpu_cores"), ("wrk cores", "wrk_cpu_cores"),
            ("other cores", "other_cpu_cores"))
    for name, key in rows:
        log(f"{name:>26}  {metrics.get(key, '-'):>10}  {metrics.get('tipg_' + key, '-'):>10}")
    for key, value in metrics.items():
        log(f"{key:>26}: {value}")


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminate)
    lock = open(LOCK, "w")  # held (and the lock with it) until main() returns
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit("another bench-api run is in progress (it holds .cim/bench/bench-api.lock)") from None
    stop_stale_servers()
    wrk = ensure_wrk()
    py = ensure_peer()
    model = ensure_model()
    boxes = make_bboxes(model)
    held = [n for _, n in boxes]
    log(f"{len(boxes)} bboxes of {SIDE_M[0]:.0f}-{SIDE_M[1]:.0f} m, {min(held)}-{max(held)} buildings each "
        f"(median {statistics.median(held):.0f})")
    tipg = tipg_server(py, model)
    ours = cim_server()
    servers = {"tipg": tipg} if isinstance(ours, str) else {"cim": ours, "tipg": tipg}
    error = ours if isinstance(ours, str) else None
    if error:
        log(f"{error} Measuring tipg alone.")
    figures: dict[str, dict] = {}
    load_before = os.getloadavg()[0]
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            server.wait_ready()
        with urllib.request.urlopen(f"{tipg.base}/collections/{PEER_COLLECTION}", timeout=30) as resp:
            collection = json.loads(resp.read())
        log(f"tipg: collection {collection['id']}")
        checked = sanity(servers, boxes, model)
        for name in ("tipg", "cim"):  # one after the other: 2 cores
            if name in servers:
                figures[name] = load(wrk, servers[name], boxes)
    finally:
        for server in servers.values():
            server.stop()
        PIDS.unlink(missing_ok=True)
    metrics: dict = {}
    if "cim" in figures:
        metrics.update(figures["cim"])
        metrics["response_kb"] = checked["cim_response_kb"]
    metrics.update({f"tipg_{k}": v for k, v in figures["tipg"].items()})
    metrics["tipg_response_kb"] = checked["tipg_response_kb"]
    metrics.update({"buildings": N, "connections": CONNECTIONS, "threads": THREADS, "seconds": SECONDS,
                    "warmup_seconds": WARMUP_S, "bboxes": len(boxes), "bbox_buildings_median": statistics.median(held),
                    "limit": LIMIT, "loadavg_1m_before": round(load_before, 2), "cpus": os.cpu_count()})
    metrics.update({k: v for k, v in checked.items() if k.startswith("sanity_")})
    if "cim" in figures:
        metrics["rps_ratio"] = round(metrics["rps"] / metrics["tipg_rps"], 2)
    report(metrics)
    if error:
        (WORK / "bench-api-tipg.json").write_text(json.dumps({"metrics": metrics}, indent=2) + "\n")
        raise SystemExit(f"{error}\n(tipg figures above, also in {WORK.relative_to(ROOT)}/bench-api-tipg.json; "
                         "bench/results/bench-api.json not written)")
    finish(RESULTS / "bench-api.json", metrics, {
        f"rps >= {FLOOR_RPS_RATIO:g} x tipg_rps ({FLOOR_RPS_RATIO * metrics['tipg_rps']:,.1f})":
            metrics["rps"] >= FLOOR_RPS_RATIO * metrics["tipg_rps"],
        f"p99_ms <= tipg_p99_ms ({metrics['tipg_p99_ms']})": metrics["p99_ms"] <= metrics["tipg_p99_ms"],
        "no errors": metrics["errors"] == 0 and metrics["tipg_errors"] == 0}, log)

if __name__ == "__main__":
    main()
