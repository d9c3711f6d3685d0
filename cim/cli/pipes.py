"""`cim pipes …`: traces, isolation, valve segments, clearances, excavation impact and profiles."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from cim.cli.main import ModelOpt, _open, fail, guarded, out

pipes_app = typer.Typer(no_args_is_help=True, help="Analyses of the underground pipe networks.")
LayerOpt = typer.Option("water", "--layer", "-l", help="Model layer holding the network (default water).")
JsonOpt = typer.Option(False, "--json", help="Print the whole result as JSON.")


def _graph(model, layer: str):
    from cim.analysis.network import NetworkError, load_graph

    m = _open(model)
    try:
        return m, guarded(lambda: load_graph(m, layer))
    except NetworkError as exc:
        fail(str(exc))


def _run(fn):
    from cim.analysis.network import NetworkError

    try:
        return guarded(fn)
    except NetworkError as exc:
        fail(str(exc))


def _print(result, as_json: bool, lists: tuple[str, ...] = ()) -> None:
    data = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
    if as_json:
        out.print_json(json.dumps(data, ensure_ascii=False, default=str))
        return
    summary = result.summary() if hasattr(result, "summary") else data
    out.print("  ".join(f"{k}: {v}" for k, v in summary.items()))
    for key in lists:
        values = data.get(key) or []
        if values:
            shown = ", ".join(map(str, values[:20])) + (f" … (+{len(values) - 20})" if len(values) > 20 else "")
            out.print(f"  {key.replace('_', ' ')}: {shown}")


def _start(m, layer: str, start: str | None, at: str | None) -> str:
    from cim.analysis.network import nearest_pipe

    if (start is None) == (at is None):
        fail("give either a pipe or node code, or --at X,Y (storage CRS)")
    if start is not None:
        return start
    try:
        x, y = (float(v) for v in at.split(","))
    except ValueError:
        fail(f"--at must be X,Y in metres of the storage CRS, not {at!r}")
    return _run(lambda: nearest_pipe(m, layer, x, y))


@pipes_app.command("trace")
def trace_cmd(
    start: str | None = typer.Argument(None, help="Pipe or node: unified code or source id."),
    kind: str = typer.Option("connected", "--kind", "-k", help="connected, upstream or downstream."),
    at: str | None = typer.Option(None, help="Start at the pipe nearest to X,Y instead."),
    layer: str = LayerOpt, as_json: bool = JsonOpt, model: str | None = ModelOpt,
) -> None:
    """Connected, upstream or downstream trace (closed valves stop it)."""
    from cim.analysis.trace import trace

    m, graph = _graph(model, layer)
    code = _start(m, layer, start, at)
    _print(_run(lambda: trace(graph, code, kind)), as_json, ("buildings",))


@pipes_app.command("path")
def path_cmd(start: str = typer.Argument(...), end: str = typer.Argument(...), layer: str = LayerOpt,
             as_json: bool = JsonOpt, model: str | None = ModelOpt) -> None:
    """Shortest path along open pipes between two pipes or nodes."""
    from cim.analysis.trace import shortest_path

    _, graph = _graph(model, layer)
    _print(_run(lambda: shortest_path(graph, start, end)), as_json, ("pipes",))


def _segments(graph, valve_layer: Path | None):
    import pandas as pd

    from cim.analysis.isolation import valve_segments

    pairs = []
    if valve_layer is not None:
        try:
            frame = pd.read_csv(valve_layer, dtype=str)
        except (OSError, ValueError) as exc:
            fail(f"{valve_layer}: cannot read: {exc}")
        if not {"link", "node"} <= set(frame.columns):
            fail(f"{valve_layer}: a valve layer is a CSV with columns link,node (WNTR's valve layer)")
        pairs = list(zip(frame["link"], frame["node"], strict=True))
    return _run(lambda: valve_segments(graph, pairs))


ValveLayerOpt = typer.Option(None, help="CSV of extra valves on pipe ends: columns link,node (codes or ids).")


@pipes_app.command("isolate")
def isolate_cmd(
    start: str | None = typer.Argument(None, help="Burst pipe or node: unified code or source id."),
    at: str | None = typer.Option(None, help="The burst is on the pipe nearest to X,Y."),
    failed: list[str] = typer.Option(None, "--failed", help="Valve that fails to close (repeatable)."),
    plan_b: bool = typer.Option(True, help="Also work out the plan for each valve failing to close."),
    valve_layer: Path | None = ValveLayerOpt,
    layer: str = LayerOpt, as_json: bool = JsonOpt, model: str | None = ModelOpt,
) -> None:
    """Burst isolation (关阀分析): valves to close, pipes and customers out of service, plan B per valve."""
    from cim.analysis.isolation import isolate

    m, graph = _graph(model, layer)
    code = _start(m, layer, start, at)
    result = _run(lambda: isolate(_segments(graph, valve_layer), code, failed or (), plan_b))
    _print(result, as_json, ("valves_to_close", "already_closed", "could_not_close", "buildings"))
    if not as_json:
        for valve, alt in result.if_fails.items():
            out.print(f"  if {valve} fails: close {len(alt['valves_to_close'])} valves, {alt['isolated_pipes']} "
                      f"pipes and {alt['customers']} customers out")


@pipes_app.command("segments")
def segments_cmd(top: int = typer.Option(10, help="How many critical segments and valves to list."),
                 valve_layer: Path | None = ValveLayerOpt, layer: str = LayerOpt, as_json: bool = JsonOpt,
                 model: str | None = ModelOpt) -> None:
    """Valve segments of the whole network and the most critical segments and valves."""
    from cim.analysis.isolation import critical

    _, graph = _graph(model, layer)
    seg = _segments(graph, valve_layer)
    result = {"segments": seg.count, "valves": len(seg.valve_code), **critical(seg, top)}
    if as_json:
        _print(result, True)
        return
    out.print(f"segments: {seg.count}  valves: {len(seg.valve_code)}")
    for s in result["segments"]:
        out.print(f"  segment {s['segment']}: {s['pipes']} pipes, {s['length_m']} m, {s['customers']} customers, "
                  f"{s['valves']} valves")
    for v in result["valves"]:
        out.print(f"  valve {v['valve']}: if it fails, {v['failure_length_m']} m and {v['failure_customers']} "
                  f"customers in {v['segments']} segments go out")
