"""Cross-check cim's EPANET .inp reader against wntr on real files: counts, units, geometry, status, tags.

Prints one table row per file and exits non-zero when anything differs (or a parse takes 0.5 s or more).

usage: python scripts/check_inp.py [FILE.inp ...]   (default: the three EPANET files of ../shared/realdata)
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import wntr
from wntr.epanet.util import FlowUnits

from cim.importers.pipes.inp import InpNetwork, read_inp

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "epanet"
DEFAULT_FILES = ["wntr__Net3.inp", "wntr__ky4.inp", "emt__L-TOWN.inp"]
# what the files are known to hold, independently of either reader
EXPECTED = {
    "wntr__Net3.inp": {"junction": 92, "reservoir": 2, "tank": 3, "pipe": 117, "pump": 2},
    "wntr__ky4.inp": {"junction": 959, "pipe": 1156, ("elevation_m", "J-1"): 611.3897 * 0.3048},
    "emt__L-TOWN.inp": {"junction": 782, "pipe": 905, "valve": 3},
}
TOL = 1e-9  # relative; both readers parse the same decimal text
MAX_SECONDS = 0.5


def close(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=TOL, abs_tol=1e-9)


def timed(path: Path) -> tuple[InpNetwork, float]:
    read_inp(path)  # warm caches
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        net = read_inp(path)
        best = min(best, time.perf_counter() - start)
    return net, best


def compare(path: Path, net: InpNetwork) -> tuple[dict[str, object], list[str]]:
    wn = wntr.network.WaterNetworkModel(str(path))
    nodes, links = net.nodes, net.links
    bad: list[str] = []
    row: dict[str, object] = {}

    def check(what: str, ok: bool) -> None:
        if not ok:
            bad.append(what)

    # counts
    ours = {**nodes.node_type.value_counts().to_dict(), **links.link_type.value_counts().to_dict()}
    theirs = {"junction": wn.num_junctions, "reservoir": wn.num_reservoirs, "tank": wn.num_tanks,
              "pipe": wn.num_pipes, "pump": wn.num_pumps, "valve": wn.num_valves}
    for kind, count in theirs.items():
        row[kind] = ours.get(kind, 0)
        check(f"{kind} count {ours.get(kind, 0)} != wntr {count}", ours.get(kind, 0) == count)
    for key, value in EXPECTED.get(path.name, {}).items():
        if isinstance(key, tuple):
            column, name = key
            check(f"{column} of {name} {nodes.at[name, column]} != {value}", close(nodes.at[name, column], value))
        else:
            check(f"{key} count {ours.get(key, 0)} != expected {value}", ours.get(key, 0) == value)

    # nodes
    factor = FlowUnits[net.flow_units].factor
    d_elev = d_xy = d_tank = d_demand = 0.0
    for node_id, n in nodes.iterrows():
        w = wn.get_node(node_id)
        ref = w.base_head if n.node_type == "reservoir" else w.elevation
        d_elev = max(d_elev, abs(n.elevation_m - ref))
        check(f"elevation of {node_id}", close(n.elevation_m, ref))
        if w.coordinates is not None and not math.isnan(n.x):
            d_xy = max(d_xy, abs(n.x - w.coordinates[0]), abs(n.y - w.coordinates[1]))
            check(f"coordinates of {node_id}", close(n.x, w.coordinates[0]) and close(n.y, w.coordinates[1]))
        if n.node_type == "tank":
            for column, attr in (("init_level_m", "init_level"), ("min_level_m", "min_level"),
                                 ("max_level_m", "max_level"), ("tank_diameter_m", "diameter")):
                d_tank = max(d_tank, abs(n[column] - getattr(w, attr)))
                check(f"{column} of {node_id}", close(n[column], getattr(w, attr)))
        if n.node_type == "junction":
            # [JUNCTIONS] Demand is the first of the junction's demands ([DEMANDS] may add more)
            first = w.demand_timeseries_list[0].base_value / factor if len(w.demand_timeseries_list) else 0.0
            d_demand = max(d_demand, abs(n.demand - first))
            check(f"demand of {node_id}", math.isclose(n.demand, first, rel_tol=1e-6, abs_tol=1e-9))
        check(f"tag of {node_id}", n.tag == w.tag)

    # links
    d_len = d_diam = 0.0
    n_vertices = 0
    for link_id, lk in links.iterrows():
        w = wn.get_link(link_id)
        check(f"ends of {link_id}", (lk.from_node, lk.to_node) == (w.start_node_name, w.end_node_name))
        check(f"tag of {link_id}", lk.tag == w.tag)
        check(f"vertices of {link_id}", [tuple(v) for v in w.vertices] == lk.vertices)
        n_vertices += len(lk.vertices)
        status = w.initial_status.name.lower()
        if lk.link_type == "pipe":
            d_len = max(d_len, abs(lk.length_m - w.length))
            d_diam = max(d_diam, abs(lk.diameter_mm - w.diameter * 1000))
            check(f"length of {link_id}", close(lk.length_m, w.length))
            check(f"diameter of {link_id}", close(lk.diameter_mm, w.diameter * 1000))
            check(f"roughness of {link_id}", close(lk.roughness, w.roughness))
            check(f"minor loss of {link_id}", close(lk.minor_loss, w.minor_loss))
            check(f"status of {link_id}", lk.status == ("cv" if w.check_valve else status))
        elif lk.link_type == "valve":
            d_diam = max(d_diam, abs(lk.diameter_mm - w.diameter * 1000))
            check(f"diameter of {link_id}", close(lk.diameter_mm, w.diameter * 1000))
            check(f"valve type of {link_id}", lk.valve_type == w.valve_type)
            check(f"minor loss of {link_id}", close(lk.minor_loss, w.minor_loss))
            check(f"status of {link_id}", lk.status == ("open" if status == "active" else status))
        else:
            check(f"status of {link_id}", lk.status == status)
    # [DEMANDS] (not read by cim) may give a junction more demands than the one in [JUNCTIONS]
    total = sum(d.base_value for _, j in wn.junctions() for d in j.demand_timeseries_list) / factor
    row["_demand"] = (float(np.nansum(nodes.demand)), total)
    row.update({"vertices": n_vertices, "max|dz| m": d_elev, "max|dL| m": d_len, "max|dD| mm": d_diam,
                "max|dxy|": d_xy, "max|dtank| m": d_tank, "max|dq|": d_demand})
    return row, bad


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or [REALDATA / name for name in DEFAULT_FILES]
    failed = False
    header = None
    for path in files:
        net, seconds = timed(path)
        row, bad = compare(path, net)
        ours, everything = row.pop("_demand")
        row = {"file": path.name, "units": net.flow_units, **row, "parse ms": seconds * 1000}
        if seconds >= MAX_SECONDS:
            bad.append(f"parse took {seconds:.3f} s")
        if header is None:
            header = list(row)
            print("  ".join(f"{h:>12}" for h in header))
        print("  ".join(f"{v:>12.3g}" if isinstance(v, float) else f"{v!s:>12}" for v in row.values()),
              "OK" if not bad else "MISMATCH")
        for what in bad[:20]:
            print(f"    {what}")
        if len(bad) > 20:
            print(f"    ... and {len(bad) - 20} more")
        failed |= bool(bad)
        print(f"    base demand: [JUNCTIONS] {ours:.6g} {net.flow_units}; with [DEMANDS] (wntr) {everything:.6g}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
