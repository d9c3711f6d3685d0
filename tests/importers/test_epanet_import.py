"""`cim import epanet`: nodes, links, pumps, tags and heights from a small .inp; broken files refused whole."""

from __future__ import annotations

import pytest

from cim.analysis.network import load_graph
from cim.importers.pipes.epanet import import_epanet
from tests.helpers import fetch, run_cim, scalar
from tests.importers.test_bad_input import assert_refused, snapshot
from tests.pipe_builders import X0, Y0

INP = f"""[TITLE]
small test network
[JUNCTIONS]
;ID  Elev  Demand
 J1  12.0  0
 J2  11.0  0.5
 V1  11.5  0
 H1  11.0  0
[RESERVOIRS]
 R1  40
[PIPES]
;ID  N1  N2  Length  Diameter  Roughness  MinorLoss  Status
 P1  J1  V1  60  300  130  0  Open
 P2  V1  J2  40  300  130  0  Open
 P3  J2  H1  10  100  130  0  Open
[PUMPS]
 PU1 R1  J1  HEAD 1
[CURVES]
 1  10  50
[TAGS]
 NODE V1 valve
 NODE J2 connection:440402-B-000007
 NODE H1 hydrant
[OPTIONS]
 Units LPS
[COORDINATES]
 R1  {X0 - 20}  {Y0}
 J1  {X0}  {Y0}
 V1  {X0 + 60}  {Y0}
 J2  {X0 + 100}  {Y0}
 H1  {X0 + 100}  {Y0 + 10}
[VERTICES]
 P3  {X0 + 105}  {Y0 + 5}
[END]
"""


@pytest.fixture
def small_inp(tmp_path):
    path = tmp_path / "small.inp"
    path.write_text(INP)
    return path


def test_small_network(model, small_inp):
    done = import_epanet(model, small_inp, "EPSG:4547")
    assert done.summary["pipes"] == 3 and done.summary["links"] == {"pump": 1}
    assert done.summary["nodes"] == {"connection": 1, "hydrant": 1, "junction": 1, "source": 1, "valve": 1}
    graph = load_graph(model, "water")
    assert graph.p == 4 and graph.n == 5
    # the connection tag names its building; P3 keeps its vertex; heights: ground = elevation, cover 1.0 m
    assert scalar(model, "SELECT building_ref FROM pipe_node WHERE node_type = 'connection'") == "440402-B-000007"
    npts, z0 = fetch(model, "SELECT ST_NPoints(o.geom), ST_Z(ST_StartPoint(o.geom)) FROM city_object o "
                            "WHERE o.source_id = 'P3'")[0]
    assert npts == 3 and z0 == pytest.approx(11.0 - 1.0 - 0.05)
    attrs = scalar(model, "SELECT attributes FROM city_object WHERE source_id = 'P1'")
    assert attrs["roughness"] == 130 and attrs["epanet_length_m"] == 60
    assert scalar(model, "SELECT link_type FROM pipe_segment s JOIN city_object o USING (code) "
                         "WHERE o.source_id = 'PU1'") == "pump"


def test_cli_and_reimport_keep_codes(model, small_inp):
    first = run_cim("import", "epanet", str(small_inp), "--crs", "EPSG:4547", model=model)
    assert first.returncode == 0, first.stderr
    assert "3 pipes" in first.stdout and "1 pump" in first.stdout
    codes = fetch(model, "SELECT code FROM city_object ORDER BY code")
    assert run_cim("import", "epanet", str(small_inp), "--crs", "EPSG:4547", model=model).returncode == 0
    assert fetch(model, "SELECT code FROM city_object ORDER BY code") == codes


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace(" P2  V1  J2  40  300", " P2  V1  J9  40  300"), ("line 14", "unknown node", "J9")),
    (lambda t: t.replace(" P3  J2  H1  10  100  130  0  Open", " P3  J2  H1  ten  100  130  0  Open"),
     ("line 15", "ten")),
    (lambda t: t.replace("[VERTICES]", "[VERTICE]"), ("VERTICE",)),
    (lambda t: t[:t.index(" P2  V1")] + " P2  V1\n", ("line 14", "[PIPES] row has 2 fields")),  # cut off
])
def test_broken_inp_is_refused_whole(model, small_inp, edit, words):
    import_epanet(model, small_inp, "EPSG:4547")
    before = snapshot(model)
    broken = small_inp.with_name("broken.inp")
    broken.write_text(edit(INP))
    assert_refused(run_cim("import", "epanet", str(broken), "--crs", "EPSG:4547", model=model), "broken.inp",
                   *words)
    assert snapshot(model) == before


def test_wrong_crs_and_no_coordinates(model, small_inp, tmp_path):
    assert_refused(run_cim("import", "epanet", str(small_inp), "--crs", "EPSG:99999", model=model), "unknown CRS")
    bare = tmp_path / "bare.inp"
    bare.write_text(INP[:INP.index("[COORDINATES]")])
    assert_refused(run_cim("import", "epanet", str(bare), "--crs", "EPSG:4547", model=model), "[COORDINATES]")
    assert scalar(model, "SELECT count(*) FROM city_object") == 0
