"""The sample district's networks: imported topology, heights and links to buildings; valve segments equal
to WNTR's on the same network; the EPANET export gives the same network; traces and isolation make sense."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cim.analysis.isolation import isolate, valve_segments
from cim.analysis.network import load_graph
from cim.analysis.trace import trace
from cim.sample.pipes import pipe_layers
from tests.helpers import fetch, scalar


@pytest.fixture(scope="module")
def layers():
    return pipe_layers()


def test_every_feature_arrives(pipes_model, layers):
    counts = dict(fetch(pipes_model, "SELECT kind, count(*) FROM city_object WHERE kind LIKE '%%\\_pipe' "
                                     "OR kind LIKE '%%\\_node' GROUP BY kind"))
    for network in ("water", "drainage", "gas"):
        lines, points = layers[f"{network}_lines"], layers[f"{network}_points"]
        assert scalar(pipes_model, "SELECT count(*) FROM city_object WHERE layer = %s AND kind = %s",
                      (network, f"{network}_pipe")) == len(lines)
        assert counts[f"{network}_node"] >= len(points)
    summary = scalar(pipes_model, "SELECT summary FROM import_batch WHERE importer = 'pipes' AND layer = 'water'")
    assert summary["dangling_ends"]["count"] == 0 and summary["duplicates"]["count"] == 0


def test_service_connections_name_their_buildings(pipes_model, layers):
    points = layers["water_points"]
    served = points["JHJZ"].dropna()
    resolved = fetch(pipes_model, "SELECT n.building_ref, b.source_id FROM pipe_node n JOIN city_object o USING "
                                  "(code) JOIN city_object b ON b.code = n.building_code WHERE o.layer = 'water' "
                                  "AND n.node_type = 'connection'")
    assert len(resolved) == len(served) > 1000
    assert all(ref == sid for ref, sid in resolved)


def test_pipes_lie_below_ground_and_drains_fall(pipes_model):
    above = scalar(pipes_model, "SELECT count(*) FROM pipe_segment WHERE depth_start < 0.5 OR depth_end < 0.5")
    assert above == 0
    bad = scalar(pipes_model, "SELECT count(*) FROM pipe_segment WHERE network = 'drainage' AND slope < 0.003 - 1e-6")
    assert bad == 0
    # the centreline really falls along every drain: its first vertex is above its last
    rising = scalar(pipes_model, "SELECT count(*) FROM pipe_segment s JOIN city_object o USING (code) WHERE "
                                 "s.network = 'drainage' AND ST_Z(ST_StartPoint(o.geom)) <= ST_Z(ST_EndPoint(o.geom))")
    assert rising == 0


def test_water_segments_equal_wntr(pipes_model, sample_dir):
    """Valve nodes of the GIS import, given to WNTR as a valve layer on the same network read from the
    EPANET export: the same partition of pipes."""
    import wntr

    graph = load_graph(pipes_model, "water")
    seg = valve_segments(graph)
    wn = wntr.network.WaterNetworkModel(str(sample_dir / "water.inp"))
    valve_ids = set(graph.node_source[graph.node_type == "valve"])
    rows = [(name, node) for name, link in wn.links() for node in (link.start_node_name, link.end_node_name)
            if node in valve_ids]
    layer = pd.DataFrame(rows, columns=["link", "node"])
    _, links, _ = wntr.metrics.topographic.valve_segments(wn.to_graph(), layer)
    both = pd.DataFrame({"cim": pd.Series(seg.pipe_seg, index=graph.pipe_source)})
    both["wntr"] = links.reindex(both.index)
    assert both["wntr"].notna().all()
    assert both.groupby("cim")["wntr"].nunique().eq(1).all() and both.groupby("wntr")["cim"].nunique().eq(1).all()
    assert seg.count > 100
    # the EPANET import of the same network segments the same way
    epanet = load_graph(pipes_model, "water_epanet")
    again = pd.Series(valve_segments(epanet).pipe_seg, index=epanet.pipe_source).reindex(both.index)
    pairs = pd.DataFrame({"gis": both["cim"], "inp": again})
    assert pairs.groupby("gis")["inp"].nunique().eq(1).all() and pairs.groupby("inp")["gis"].nunique().eq(1).all()


def test_isolating_a_service_reaches_its_building(pipes_model):
    graph = load_graph(pipes_model, "water")
    seg = valve_segments(graph)
    conn = np.flatnonzero((graph.node_type == "connection") & np.array([b is not None for b in graph.building]))[0]
    pipe = np.flatnonzero(graph.pipe_to == conn)[0] if (graph.pipe_to == conn).any() else \
        np.flatnonzero(graph.pipe_from == conn)[0]
    result = isolate(seg, graph.pipe_code[pipe], alternatives=True)
    assert graph.building[conn] in result.buildings
    assert result.valves_to_close and set(result.if_fails) == set(result.valves_to_close)
    # every valve to close borders the isolated pipes
    isolated = set(result.isolated_pipes)
    for valve in result.valves_to_close:
        v = graph.index[valve][1]
        touching = graph.pipe_code[(graph.pipe_from == v) | (graph.pipe_to == v)]
        assert isolated & set(touching)


def test_drainage_flows_to_outlets(pipes_model):
    graph = load_graph(pipes_model, "drainage")
    outlets = set(graph.node_code[graph.node_type == "outlet"])
    manholes = graph.node_code[graph.node_type == "manhole"]
    for code in manholes[:: max(1, len(manholes) // 25)]:
        assert outlets & set(trace(graph, code, "downstream").nodes), code
    gas = load_graph(pipes_model, "gas")
    source = gas.node_code[gas.node_type == "source"][0]
    reached = trace(gas, source, "downstream")
    assert len(reached.pipes) > 0.9 * gas.p


def test_a_branch_dry_behind_a_closed_valve_is_not_cut_off_by_a_burst(pipes_model):
    """The sample has a normally closed valve with a dead branch behind it: no burst elsewhere puts it out."""
    graph = load_graph(pipes_model, "water")
    seg = valve_segments(graph)
    fed = set()
    for source in graph.node_code[graph.sources()]:
        fed |= set(trace(graph, str(source), "connected").pipes)
    dry = set(graph.pipe_code) - fed
    assert dry, "the sample keeps a branch behind a normally closed valve"
    for target in graph.pipe_code[::400]:
        result = isolate(seg, str(target))
        assert not set(result.cut_off_pipes) & dry
        assert set(result.cut_off_pipes) <= fed
