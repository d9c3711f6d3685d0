"""bench-pipes: valve segments of a whole ≥ 15,000-pipe water network, cim against WNTR 1.5's
`valve_segments` on the same network and valves in the same run, then single burst-isolation queries.

The network is a seeded street grid (BENCH_GRID × BENCH_GRID crossings, 10 % of the streets missing, each
street two pipes) written as EPANET .inp and imported with `cim import epanet`; WNTR reads the same file and
places strategic N-BENCH_N valves on pipe ends (its generate_valve_layer; BWSN Network 2, 14,822 pipes, has
6,271 such valves); cim gets the same valve layer.
`segments_s` is the best of RUNS calls of cim's valve_segments on the loaded graph (`load_s`: loading the
graph from PostGIS); `wntr_segments_s` one call of WNTR's. The two partitions of pipes must agree.
`isolation_p95_ms`: QUERIES isolations of random pipes (valves to close, isolated and cut-off parts,
customers); `isolation_plan_b_p95_ms` adds the plan for each of those valves failing (QUERIES / 10 calls).
Writes bench/results/bench-pipes.json as {"metrics": {...}}.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import wntr

from cim.analysis.isolation import isolate, valve_segments
from cim.analysis.network import load_graph
from cim.db.server import drop_database, model_url
from cim.exporters.epanet import write_inp
from cim.importers.pipes.epanet import import_epanet
from cim.model.store import Model, init_model

GRID = int(os.environ.get("BENCH_GRID", "67"))
KEEP_OPEN = int(os.environ.get("BENCH_N", "2"))  # WNTR's strategic N-n rule: n pipes per node without a valve
RUNS, QUERIES = 3, 1000
MODEL = "cim_bench_pipes"
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cim" / "bench"
RESULTS = ROOT / "bench" / "results"
ORIGIN = (453000.0, 2463000.0)


def grid_network(path: Path, n: int, seed: int = 7) -> Path:
    """n × n street-grid crossings 80 m apart fed by one reservoir; 10 % of the streets have no main; every
    street main is two pipes joined mid-block (a hydrant tee), like a real network's many 2-pipe nodes."""
    r = np.random.default_rng(seed)
    ij = np.indices((n, n)).reshape(2, -1).T
    xy = ORIGIN + ij * 80.0 + r.uniform(-5, 5, (n * n, 2))
    k = np.arange(n * n).reshape(n, n)
    edges = np.concatenate([np.column_stack([k[:, :-1].ravel(), k[:, 1:].ravel()]),
                            np.column_stack([k[:-1, :].ravel(), k[1:, :].ravel()])])
    edges = edges[r.random(len(edges)) > 0.10]
    mid = n * n + np.arange(len(edges))
    xy = np.vstack([xy, (xy[edges[:, 0]] + xy[edges[:, 1]]) / 2])
    ids = np.char.add("J", np.arange(len(xy)).astype(str))
    pipes = np.concatenate([np.column_stack([edges[:, 0], mid]), np.column_stack([mid, edges[:, 1]])])
    nodes = pd.DataFrame({"id": ids, "type": "junction", "elevation": 5 + r.uniform(0, 3, len(xy)),
                          "demand": 0.05, "x": xy[:, 0], "y": xy[:, 1], "tag": None})
    nodes.loc[len(nodes)] = ["R1", "reservoir", 50.0, 0.0, xy[0, 0] - 100, xy[0, 1], None]
    links = pd.DataFrame({"id": np.char.add("P", np.arange(len(pipes)).astype(str)), "type": "pipe",
                          "from": ids[pipes[:, 0]], "to": ids[pipes[:, 1]],
                          "length": np.linalg.norm(xy[pipes[:, 0]] - xy[pipes[:, 1]], axis=1),
                          "diameter": r.choice([100, 150, 200, 300], len(pipes)), "roughness": 130,
                          "vertices": None, "tag": None})
    links.loc[len(links)] = ["P-R1", "pipe", "R1", ids[0], 100.0, 600, 130, None, None]
    return write_inp(path, nodes, links, "bench grid")


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    inp = grid_network(WORK / "grid.inp", GRID)
    url = model_url(MODEL)
    drop_database(url)
    init_model(url, "EPSG:4547", "440402", "orthometric")
    model = Model.open(MODEL)
    try:
        started = time.perf_counter()
        import_epanet(model, inp, "EPSG:4547", "water")
        import_s = time.perf_counter() - started
        started = time.perf_counter()
        graph = load_graph(model, "water")
        load_s = time.perf_counter() - started

        wn = wntr.network.WaterNetworkModel(str(inp))
        layer = wntr.network.generate_valve_layer(wn, "strategic", KEEP_OPEN, seed=11)
        pairs = list(zip(layer["link"], layer["node"], strict=True))
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            seg = valve_segments(graph, pairs)
            times.append(time.perf_counter() - started)
        segments_s = min(times)
        print(f"cim valve_segments: {seg.count} segments of {graph.p} pipes, {len(seg.valve_code)} valves, "
              f"{segments_s * 1000:.1f} ms (best of {RUNS})", flush=True)
        started = time.perf_counter()
        _, wntr_links, _ = wntr.metrics.topographic.valve_segments(wn.to_graph(), layer)
        wntr_s = time.perf_counter() - started
        ours = pd.Series(seg.pipe_seg, index=graph.pipe_source)
        both = pd.DataFrame({"cim": ours, "wntr": wntr_links.reindex(ours.index)})
        agree = bool(both.groupby("cim")["wntr"].nunique().eq(1).all()
                     and both.groupby("wntr")["cim"].nunique().eq(1).all())
        print(f"WNTR valve_segments: {wntr_links.nunique()} segments, {wntr_s:.2f} s; partitions agree: {agree}",
              flush=True)

        r = np.random.default_rng(3)
        targets = graph.pipe_code[r.integers(0, graph.p, QUERIES)]
        lat, lat_b = [], []
        for code in targets:
            started = time.perf_counter()
            isolate(seg, code)
            lat.append((time.perf_counter() - started) * 1000)
        for code in targets[:QUERIES // 10]:
            started = time.perf_counter()
            isolate(seg, code, alternatives=True)
            lat_b.append((time.perf_counter() - started) * 1000)
        lat = np.array(lat)
        metrics = {
            "pipes": int(graph.p), "valves": int(len(seg.valve_code)), "segments": int(seg.count),
            "segments_s": round(segments_s, 4), "wntr_segments_s": round(wntr_s, 3),
            "speedup": round(wntr_s / segments_s, 1), "partitions_agree": int(agree),
            "isolation_p50_ms": round(float(np.percentile(lat, 50)), 2),
            "isolation_p95_ms": round(float(np.percentile(lat, 95)), 2),
            "isolation_plan_b_p95_ms": round(float(np.percentile(lat_b, 95)), 1),
            "import_s": round(import_s, 2), "load_s": round(load_s, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        drop_database(url)
    for key, value in metrics.items():
        print(f"{key:>18}: {value}")
    (RESULTS / "bench-pipes.json").write_text(json.dumps({"metrics": metrics}, indent=2))
    floors = {"wntr_segments_s >= 100 x segments_s": wntr_s >= 100 * segments_s,
              "isolation_p95_ms < 20": metrics["isolation_p95_ms"] < 20, "partitions agree": agree,
              "pipes >= 15000": graph.p >= 15000}
    for name, ok in floors.items():
        print(f"floor {name}: {'met' if ok else 'NOT MET'}")
    if not all(floors.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
