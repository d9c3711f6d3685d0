"""Valve segments, burst isolation and traces on a small looped network checked by hand (tests/pipe_builders)."""

from __future__ import annotations

import pandas as pd
import pytest

from cim.analysis.isolation import critical, isolate, valve_segments
from cim.analysis.network import NetworkError, load_graph
from cim.analysis.trace import shortest_path, trace
from cim.importers.pipes.gis import import_pipes
from tests.helpers import run_cim
from tests.pipe_builders import LOOP_SEGMENTS, write_loop


def _src(graph, codes) -> set[str]:
    """Source ids (p1, S, …) of unified codes."""
    names = dict(zip(graph.node_code, graph.node_source, strict=True)) | dict(
        zip(graph.pipe_code, graph.pipe_source, strict=True))
    return {names[c] for c in codes}


def _valve(graph, name: str) -> str:
    return graph.node_code[list(graph.node_source).index(name)]


@pytest.fixture
def loop(model, tmp_path):
    import_pipes(model, write_loop(tmp_path / "loop.gpkg"), "water")
    return model, load_graph(model, "water")


def test_segments_are_the_three_by_hand(loop):
    _, graph = loop
    seg = valve_segments(graph)
    assert seg.count == 3 and len(seg.valve_code) == 3
    found = pd.Series(graph.pipe_source).groupby(seg.pipe_seg).agg(set).tolist()
    assert sorted(found, key=len) == sorted(LOOP_SEGMENTS, key=len)
    # every valve joins two segments; the source segment is the one with S
    assert all(seg.seg_valves[:, v].nnz == 2 for v in range(3))
    assert _src(graph, graph.pipe_code[seg.pipe_seg == seg.source_seg[0]]) == {"p1", "p2", "p5"}


def test_burst_on_a_service_closes_the_two_valves_of_its_segment(loop):
    _, graph = loop
    result = isolate(valve_segments(graph), "p4", alternatives=True)
    assert _src(graph, result.valves_to_close) == {"V1", "V3"}
    assert _src(graph, result.isolated_pipes) == {"p3", "p4", "p8", "p9"}
    assert _src(graph, result.isolated_nodes) == {"B", "C", "E"}
    assert result.cut_off_pipes == [] and result.buildings == ["B-1"]
    assert result.isolated_length_m == pytest.approx(90 + 50 + 10 + 100, abs=0.5)
    # plan B: if V3 does not close, the outage spreads over segment Z to V2
    plan_b = result.if_fails[_valve(graph, "V3")]
    assert _src(graph, plan_b["valves_to_close"]) == {"V1", "V2"} and plan_b["isolated_pipes"] == 6


def test_failed_and_seized_valves_widen_the_outage(loop, model, tmp_path):
    _, graph = loop
    failed = isolate(valve_segments(graph), "p4", [_valve(graph, "V3")])
    assert _src(graph, failed.valves_to_close) == {"V1", "V2"}
    assert _src(graph, failed.could_not_close) == {"V3"}
    # the same plan when the data says V3 is seized (KCZ 否)
    import_pipes(model, write_loop(tmp_path / "seized.gpkg", V3={"KCZ": "否"}), "water", layer="seized")
    seized = load_graph(model, "seized")
    result = isolate(valve_segments(seized), "p4")
    assert _src(seized, result.valves_to_close) == {"V1", "V2"}
    assert _src(seized, result.could_not_close) == {"V3"}


def test_isolating_the_source_segment_cuts_off_the_rest(loop):
    _, graph = loop
    result = isolate(valve_segments(graph), "p1")
    assert _src(graph, result.valves_to_close) == {"V1", "V2"}
    assert _src(graph, result.isolated_pipes) == {"p1", "p2", "p5"}
    assert _src(graph, result.cut_off_pipes) == {"p3", "p4", "p6", "p7", "p8", "p9"}
    assert result.buildings == ["B-1"]


def test_burst_at_a_valve_isolates_both_sides(loop):
    _, graph = loop
    result = isolate(valve_segments(graph), "V1")
    assert _src(graph, result.isolated_pipes) == {"p1", "p2", "p5", "p3", "p4", "p8", "p9"}
    assert _src(graph, result.valves_to_close) == {"V2", "V3"}


def test_pipe_end_valves_match_wntr(loop):
    """A WNTR-style valve layer (pipe, node) cuts the network where WNTR's valve_segments does."""
    import networkx as nx
    import wntr

    _, graph = loop
    layer = [("p1", "A"), ("p9", "B")]
    seg = valve_segments(graph, layer)
    g = nx.MultiDiGraph()
    for code, a, b in zip(graph.pipe_source, graph.pipe_from, graph.pipe_to, strict=True):
        g.add_edge(graph.node_source[a], graph.node_source[b], key=code)
    wl = pd.DataFrame({"link": [p for p, _ in layer], "node": [n for _, n in layer]})
    for name in ("V1", "V2", "V3"):  # a valve node cuts every pipe that meets it
        for code, a, b in zip(graph.pipe_source, graph.pipe_from, graph.pipe_to, strict=True):
            if name in (graph.node_source[a], graph.node_source[b]):
                wl.loc[len(wl)] = [code, name]
    _, links, _ = wntr.metrics.topographic.valve_segments(g, wl)
    ours = pd.Series(seg.pipe_seg, index=graph.pipe_source)
    pairs = pd.DataFrame({"ours": ours, "wntr": links.reindex(ours.index)})
    assert pairs.groupby("ours")["wntr"].nunique().eq(1).all()
    assert pairs.groupby("wntr")["ours"].nunique().eq(1).all()
    assert seg.count == 5  # X splits at p1|A (p1 alone with S), Y at p9|B (p9 with E, p8)


def test_traces_follow_flow_from_the_source(loop):
    _, graph = loop
    down = trace(graph, "B", "downstream")
    assert _src(graph, down.pipes) == {"p4", "p9"} and down.buildings == ["B-1"]
    up = trace(graph, "B", "upstream")
    assert _src(graph, up.pipes) == {"p1", "p2", "p3"} and _src(graph, up.nodes) == {"S", "A", "V1", "B"}
    assert len(trace(graph, "S", "connected").pipes) == 9
    path = shortest_path(graph, "S", "D")
    assert _src(graph, path.pipes) == {"p1", "p5", "p6"}
    assert path.length_m == pytest.approx(200, abs=0.5)


def test_a_closed_valve_stops_traces(model, tmp_path):
    import_pipes(model, write_loop(tmp_path / "closed.gpkg", V2={"FMZT": "关"}), "water")
    graph = load_graph(model, "water")
    reached = trace(graph, "D", "connected")
    assert "V2" not in _src(graph, reached.nodes) and len(reached.pipes) == 9
    path = shortest_path(graph, "S", "D")  # no longer through V2: round by B, E and V3
    assert _src(graph, path.pipes) == {"p1", "p2", "p3", "p9", "p8", "p7"}


def test_critical_valves_and_segments(loop):
    _, graph = loop
    ranking = critical(valve_segments(graph), top=3)
    assert ranking["segments"][0]["customers"] == 1 and ranking["segments"][0]["pipes"] == 4
    # V1 or V3 failing merges segment Y (with the customer) with its neighbour
    assert _src(graph, [ranking["valves"][0]["valve"]]) <= {"V1", "V3"}
    assert ranking["valves"][0]["failure_customers"] == 1


def test_unknown_objects_and_layers_are_one_line(loop):
    model, graph = loop
    with pytest.raises(NetworkError, match="no pipe or node"):
        trace(graph, "nope")
    result = run_cim("pipes", "isolate", "nope", model=model)
    assert result.returncode != 0 and "no pipe or node" in result.stderr and "Traceback" not in result.stderr
    result = run_cim("pipes", "segments", "--layer", "gas", model=model)
    assert result.returncode != 0 and "holds no pipe network" in result.stderr
    ok = run_cim("pipes", "isolate", "p4", model=model)
    assert ok.returncode == 0 and "valves_to_close: 2" in ok.stdout, ok.stderr
