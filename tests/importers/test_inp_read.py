"""The EPANET .inp reader: units, tags, vertices, [STATUS], and one clear line for every kind of bad input."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from cim.importers.errors import InputError
from cim.importers.pipes.inp import read_inp

# A small network in SI units; the tests below edit it. Lines are referred to by their text, not number.
NET = """\
[TITLE]
Small test network
 second title line

[JUNCTIONS]
;ID   Elev   Demand  Pattern
 J1   10.5   2.0     ;a comment
 J2   12
 J3   8      1.5     PAT1

[RESERVOIRS]
;ID   Head
 R1   50

[TANKS]
;ID   Elev  Init  Min  Max  Diam  MinVol
 T1   40    3     1    6    12    0

[PIPES]
;ID  Node1 Node2 Length Diameter Roughness MinorLoss Status
 P1  R1    J1    100    300      130       0         Open
 P2  J1    J2    250.5  200      130
 P3  J2    J3    80     150      100       0.5       CV
 P4  J3    T1    120    200      130       Closed

[PUMPS]
 PU1  J1  J3  HEAD C1  SPEED 0.9

[VALVES]
 V1   J2  T1  100  PRV  30  0.2

[TAGS]
 NODE J1 hydrant
 LINK P2 main

[STATUS]
 P2  Closed
 PU1 1.2
 V1  25

[PATTERNS]
 PAT1 1 1.2 0.8

[CURVES]
 C1 100 50

[OPTIONS]
 Units              CMH
 Headloss           H-W
 Specific Gravity   1.0
 Quality            Trace R1

[COORDINATES]
 J1   1   2
 J2   3   4
 J3   5   6
 R1   0   0
 T1   7   8

[VERTICES]
 P2   1.5   2.5
 P2   2     3

[END]
"""


def write(tmp_path: Path, text: str, name: str = "net.inp") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text: str, fragment: str, exact: bool = False) -> int:
    """1-based number of the last line holding fragment (or, if exact, being it)."""
    return max(n for n, line in enumerate(text.split("\n"), 1) if (line == fragment if exact else fragment in line))


def refused(path: Path, line: int, reason: str) -> str:
    with pytest.raises(InputError) as caught:
        read_inp(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: record line {line}: "), message
    assert reason in message, message
    return message


# -- good input --------------------------------------------------------------------------------------------


def test_si_network(tmp_path):
    net = read_inp(write(tmp_path, NET))
    assert net.title == "Small test network\nsecond title line"
    assert net.flow_units == "CMH"
    assert net.options == {"UNITS": "CMH", "HEADLOSS": "H-W", "SPECIFIC GRAVITY": "1.0", "QUALITY": "Trace R1"}
    nodes, links = net.nodes, net.links
    assert nodes.index.name == "id" and links.index.name == "id"
    assert list(nodes.index) == ["J1", "J2", "J3", "R1", "T1"]
    assert list(nodes.node_type) == ["junction"] * 3 + ["reservoir", "tank"]
    assert list(nodes.elevation_m) == [10.5, 12, 8, 50, 40]
    assert nodes.demand.iloc[0] == 2.0 and math.isnan(nodes.demand["J2"]) and math.isnan(nodes.demand["R1"])
    t1 = nodes.loc["T1"]
    assert (t1.init_level_m, t1.min_level_m, t1.max_level_m, t1.tank_diameter_m) == (3, 1, 6, 12)
    assert nodes.loc[["J1", "R1"], "init_level_m"].isna().all()
    assert (nodes.x.tolist(), nodes.y.tolist()) == ([1, 3, 5, 0, 7], [2, 4, 6, 0, 8])

    assert list(links.link_type) == ["pipe"] * 4 + ["pump", "valve"]
    p1 = links.loc["P1"]
    assert (p1.from_node, p1.to_node, p1.length_m, p1.diameter_mm, p1.roughness, p1.minor_loss) == \
        ("R1", "J1", 100, 300, 130, 0)
    assert links.at["P3", "minor_loss"] == 0.5
    assert list(links.status) == ["open", "closed", "cv", "closed", "open", "open"]
    pu1 = links.loc["PU1"]
    assert pu1.pump_parameters == "HEAD C1 SPEED 0.9"
    assert math.isnan(pu1.length_m) and math.isnan(pu1.diameter_mm) and pu1.valve_type is None
    v1 = links.loc["V1"]
    assert (v1.valve_type, v1.diameter_mm, v1.minor_loss) == ("PRV", 100, 0.2)
    assert math.isnan(v1.length_m) and v1.pump_parameters is None
    assert math.isnan(links.at["P1", "setting"])
    assert net.line_of["NODE J1"] == line_of(NET, " J1   10.5")
    assert net.line_of["LINK V1"] == line_of(NET, " V1   J2")


def test_us_units_are_converted(tmp_path):
    text = NET.replace("Units              CMH", "Units              gpm")
    net = read_inp(write(tmp_path, text))
    assert net.flow_units == "GPM"
    assert net.nodes.at["J1", "elevation_m"] == pytest.approx(10.5 * 0.3048)
    assert net.nodes.at["R1", "elevation_m"] == pytest.approx(50 * 0.3048)  # reservoir head
    t1 = net.nodes.loc["T1"]
    assert [t1.init_level_m, t1.min_level_m, t1.max_level_m, t1.tank_diameter_m] == \
        pytest.approx([3 * 0.3048, 1 * 0.3048, 6 * 0.3048, 12 * 0.3048])
    assert net.nodes.at["J1", "demand"] == 2.0  # demand stays in the file's flow units
    assert net.links.at["P2", "length_m"] == pytest.approx(250.5 * 0.3048)
    assert net.links.at["P2", "diameter_mm"] == pytest.approx(200 * 25.4)
    assert net.links.at["V1", "diameter_mm"] == pytest.approx(100 * 25.4)
    assert net.links.at["P2", "roughness"] == 130
    assert net.nodes.at["J1", "x"] == 1  # coordinates are map units, never converted


def test_default_flow_units_are_gpm(tmp_path):
    net = read_inp(write(tmp_path, NET.replace(" Units              CMH\n", "")))
    assert net.flow_units == "GPM"
    assert net.links.at["P1", "diameter_mm"] == pytest.approx(300 * 25.4)


def test_tags_and_vertices_attach(tmp_path):
    text = NET.replace(" LINK P2 main", " LINK p4 connection:B-0042\n NODE t1 tank")
    net = read_inp(write(tmp_path, text))
    assert net.nodes.tag.tolist() == ["hydrant", None, None, None, "tank"]
    assert net.links.tag.tolist() == [None, None, None, "connection:B-0042", None, None]
    assert net.links.at["P2", "vertices"] == [(1.5, 2.5), (2.0, 3.0)]
    assert net.links.at["P1", "vertices"] == []
    assert all(isinstance(v, list) for v in net.links.vertices)


def test_status_overrides(tmp_path):
    net = read_inp(write(tmp_path, NET))
    links = net.links
    assert links.at["P2", "status"] == "closed"  # Open by default, closed by [STATUS]
    assert (links.at["PU1", "status"], links.at["PU1", "setting"]) == ("open", 1.2)  # SPEED 0.9 → 1.2
    assert (links.at["V1", "status"], links.at["V1", "setting"]) == ("open", 25)  # 30 → 25
    text = NET.replace(" P2  Closed\n PU1 1.2\n V1  25",
                       " P4  Open\n PU1 Closed\n v1 closed\n p4 CLOSED\n P4 open")  # later rows win
    links = read_inp(write(tmp_path, text)).links
    assert links.at["P4", "status"] == "open"
    assert (links.at["PU1", "status"], links.at["PU1", "setting"]) == ("closed", 0.9)
    assert (links.at["V1", "status"], links.at["V1", "setting"]) == ("closed", 30)
    text = NET.replace(" P2  Closed\n PU1 1.2\n V1  25", " PU1 0")
    assert read_inp(write(tmp_path, text)).links.at["PU1", "status"] == "closed"


def test_status_range_form(tmp_path):
    text = (NET.replace("P1  R1", "10  R1").replace("P2  J1", "11  J1").replace("P4  J3", "30  J3")
            .replace(" LINK P2 main", "").replace("P2   ", "11   ")
            .replace(" P2  Closed\n PU1 1.2\n V1  25", " 10 20 Closed"))
    links = read_inp(write(tmp_path, text)).links
    assert links.status.to_dict() == {"10": "closed", "11": "closed", "P3": "cv", "30": "closed", "PU1": "open",
                                      "V1": "open"}


def test_loose_but_valid_syntax(tmp_path):
    text = (NET.replace("[JUNCTIONS]", "[junctions]").replace("[PIPES]", "[Pipes]  ; pipes follow")
            .replace("\n", "\r\n").replace("[END]", "[END]\r\nanything after the end is ignored\r\n[NOPE]"))
    net = read_inp(write(tmp_path, text))
    assert len(net.nodes) == 5 and len(net.links) == 6
    assert net.title == "Small test network\nsecond title line"


def test_references_keep_the_definition_spelling(tmp_path):
    text = NET.replace(" P2  J1    J2", " P2  j1    J2").replace(" J2   3   4", " j2   3   4")
    net = read_inp(write(tmp_path, text))
    assert net.links.at["P2", "from_node"] == "J1"
    assert net.nodes.at["J2", "x"] == 3


def test_no_coordinates_at_all_is_fine(tmp_path):
    start, end = NET.index("[COORDINATES]"), NET.index("[END]")
    net = read_inp(write(tmp_path, NET[:start] + NET[end:]))
    assert net.nodes.x.isna().all() and net.nodes.y.isna().all()


def test_missing_end_is_fine(tmp_path):
    net = read_inp(write(tmp_path, NET.replace("[END]\n", "")))
    assert net.links.at["P2", "vertices"] == [(1.5, 2.5), (2.0, 3.0)]


def test_latin1_file_reads(tmp_path):
    path = tmp_path / "latin1.inp"
    path.write_bytes(NET.replace("Small test network", "Réseau d'essai").encode("latin-1"))
    assert read_inp(path).title.startswith("Réseau d'essai")


def test_utf8_ids(tmp_path):
    text = NET.replace("J1", "结点1")
    net = read_inp(write(tmp_path, text))
    assert net.links.at["P1", "to_node"] == "结点1"


# -- bad input: one line naming the file, the line and the reason ---------------------------------------------


def test_unknown_section(tmp_path):
    text = NET.replace("[TAGS]", "[TAG]")
    refused(write(tmp_path, text), line_of(text, "[TAG]"), "unknown section [TAG]")


def test_data_before_any_section(tmp_path):
    text = "; header comment\nJ0 12\n" + NET
    refused(write(tmp_path, text), 2, "data before any section")


@pytest.mark.parametrize(("old", "new", "reason"), [
    (" J2   12", " J2", "[JUNCTIONS] row has 1 field, needs at least 2: ID Elevation"),
    (" T1   40    3     1    6    12    0", " T1 40 3 1 6",
     "[TANKS] row has 5 fields, needs at least 6: ID Elevation InitLevel MinLevel MaxLevel Diameter"),
    (" P2  J1    J2    250.5  200      130", " P2  J1    J2    250.5  200",
     "[PIPES] row has 5 fields, needs at least 6: ID Node1 Node2 Length Diameter Roughness"),
    (" PU1  J1  J3  HEAD C1  SPEED 0.9", " PU1  J1  J3", "[PUMPS] row has 3 fields, needs at least 4"),
    (" V1   J2  T1  100  PRV  30  0.2", " V1   J2  T1  100  PRV",
     "[VALVES] row has 5 fields, needs at least 6: ID Node1 Node2 Diameter Type Setting"),
    (" J3   5   6", " J3   5", "[COORDINATES] row has 2 fields, needs at least 3: NodeID X Y"),
    (" P2   2     3", " P2   2", "[VERTICES] row has 2 fields, needs at least 3: LinkID X Y"),
    (" NODE J1 hydrant", " NODE J1", "[TAGS] row has 2 fields, needs at least 3: NODE|LINK ID Tag"),
    (" V1  25", " V1", "[STATUS] row has 1 field, needs at least 2: LinkID Status|Setting"),
])
def test_too_few_fields(tmp_path, old, new, reason):
    text = NET.replace(old, new)
    refused(write(tmp_path, text), line_of(text, new, exact=True), reason)


@pytest.mark.parametrize(("old", "new", "reason"), [
    (" J2   12", " J2   twelve", "[JUNCTIONS] Elevation is not a number: 'twelve'"),
    (" J1   10.5   2.0", " J1   10.5   2,0", "[JUNCTIONS] Demand is not a number: '2,0'"),
    (" R1   50", " R1   NaN", "[RESERVOIRS] Head is not a number: 'NaN'"),
    (" T1   40    3     1    6    12", " T1   40    3     1    6    1_2", "[TANKS] Diameter is not a number: '1_2'"),
    (" P2  J1    J2    250.5", " P2  J1    J2    inf", "[PIPES] Length is not a number: 'inf'"),
    ("130       0         Open", "130       x         Open", "[PIPES] MinorLoss is not a number: 'x'"),
    ("PRV  30  0.2", "PRV  high  0.2", "[VALVES] Setting is not a number: 'high'"),
    (" J3   5   6", " J3   5   6m", "[COORDINATES] Y is not a number: '6m'"),
    (" P2   1.5   2.5", " P2   1.5e   2.5", "[VERTICES] X is not a number: '1.5e'"),
    ("SPEED 0.9", "SPEED fast", "[PUMPS] Speed is not a number: 'fast'"),
])
def test_not_a_number(tmp_path, old, new, reason):
    text = NET.replace(old, new)
    refused(write(tmp_path, text), line_of(text, new), reason)


def test_duplicate_node_ignoring_case(tmp_path):
    text = NET.replace(" J3   8      1.5     PAT1", " J3   8      1.5     PAT1\n j1   9")
    message = refused(write(tmp_path, text), line_of(text, " j1   9"), "duplicate node id 'j1'")
    assert f"line {line_of(text, ' J1   10.5')}" in message.split(": ", 2)[2]


def test_duplicate_node_across_kinds(tmp_path):
    text = NET.replace(" R1   50", " J2   50")
    refused(write(tmp_path, text), line_of(text, " J2   50"), "duplicate node id 'J2' (already a junction")


def test_duplicate_link(tmp_path):
    text = NET.replace(" V1   J2  T1", " P3   J2  T1")
    refused(write(tmp_path, text), line_of(text, " P3   J2  T1"), "duplicate link id 'P3' (already a pipe")


def test_link_names_unknown_node(tmp_path):
    text = NET.replace(" P2  J1    J2", " P2  J1    J9")
    refused(write(tmp_path, text), line_of(text, " P2  J1    J9"), "pipe 'P2' names unknown node 'J9'")


def test_pump_names_unknown_node(tmp_path):
    text = NET.replace(" PU1  J1  J3", " PU1  X1  J3")
    refused(write(tmp_path, text), line_of(text, " PU1  X1"), "pump 'PU1' names unknown node 'X1'")


@pytest.mark.parametrize(("old", "new", "reason"), [
    (" J3   5   6", " J9   5   6", "[COORDINATES] names unknown node 'J9'"),
    (" P2   2     3", " P9   2     3", "[VERTICES] names unknown link 'P9'"),
    (" NODE J1 hydrant", " NODE P1 hydrant", "[TAGS] names unknown node 'P1'"),
    (" LINK P2 main", " LINK J2 main", "[TAGS] names unknown link 'J2'"),
    (" V1  25", " J1  25", "[STATUS] names unknown link 'J1'"),
])
def test_reference_to_unknown_object(tmp_path, old, new, reason):
    text = NET.replace(old, new)
    refused(write(tmp_path, text), line_of(text, new), reason)


def test_node_without_coordinates(tmp_path):
    text = NET.replace(" J2   3   4\n", "")
    refused(write(tmp_path, text), line_of(text, " J2   12"),
            "junction 'J2' has no [COORDINATES] row (1 of 5 nodes lack one)")


def test_no_nodes(tmp_path):
    text = "[TITLE]\nempty\n[JUNCTIONS]\n;ID Elev\n[PIPES]\n[END]\n"
    refused(write(tmp_path, text), 6, "no nodes")


def test_no_links(tmp_path):
    text = "[JUNCTIONS]\n J1 10\n[RESERVOIRS]\n R1 20\n\n; the end\n"
    refused(write(tmp_path, text), 4, "no links")  # no [END]: the last line read


def test_unknown_flow_units(tmp_path):
    text = NET.replace("Units              CMH", "Units              M3S")
    refused(write(tmp_path, text), line_of(text, "Units"), "unknown flow units 'M3S'; expected one of CFS GPM")


@pytest.mark.parametrize("junk", [b"\x00\x01\x02", "Small".encode("utf-16")])
def test_binary_file(tmp_path, junk):
    path = tmp_path / "net.inp"
    path.write_bytes(NET.encode()[:200] + junk + NET.encode()[200:])
    refused(path, NET.encode()[:200].count(b"\n") + 1, "not a text file")


def test_control_characters(tmp_path):
    path = tmp_path / "net.inp"
    path.write_bytes(b"[TITLE]\nx\n\x1b[31m\n" + NET.encode())
    refused(path, 3, "not a text file: control character 0x1b")


def test_truncated_mid_row(tmp_path):
    cut = NET.index(" P3  J2    J3    80") + len(" P3  J2    J3    8")
    text = NET[:cut]
    refused(write(tmp_path, text), line_of(text, " P3  J2"), "[PIPES] row has 4 fields, needs at least 6")


def test_truncated_between_rows_is_cut_off_data(tmp_path):
    # no [END] and the cut lands on a row boundary: what is there is read, and the lost coordinates show
    text = NET[: NET.index(" J3   5   6")]
    refused(write(tmp_path, text), line_of(text, " J3   8"), "junction 'J3' has no [COORDINATES] row")


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("100  PRV  30", "100  XYZ  30", "[VALVES] unknown valve Type 'XYZ'; expected one of PRV PSV PBV FCV TCV GPV"),
    ("130       0         Open", "130       0         Shut", "[PIPES] Status must be Open, Closed or CV: 'Shut'"),
    (" P2  J1    J2    250.5  200", " P2  J1    J2    250.5  0", "pipe 'P2': Length, Diameter and Roughness must"),
    (" P2  J1    J2", " P2  J1    j1", "pipe 'P2' starts and ends at node 'J1'"),
    ("HEAD C1  SPEED 0.9", "HEAD C1  SPEED", "pump 'PU1': parameter 'SPEED' has no value"),
    ("HEAD C1  SPEED 0.9", "FLOW C1", "pump 'PU1': unknown parameter 'FLOW'"),
    ("HEAD C1  SPEED 0.9", "SPEED 0.9  PATTERN X", "pump 'PU1' has neither a HEAD curve nor a POWER rating"),
    (" T1   40    3 ", " T1   40    9 ", "[TANKS] tank 'T1': InitLevel 9 is not between MinLevel 1 and MaxLevel 6"),
    (" NODE J1 hydrant", " PIPE J1 hydrant", "[TAGS] row must start with NODE or LINK, not 'PIPE'"),
    (" LINK P2 main", " LINK P2 main\n NODE J1 tee", "[TAGS] node 'J1' already tagged on line"),
    (" J3   5   6", " J3   5   6\n J3   5   6", "[COORDINATES] node 'J3' already has coordinates on line"),
    (" V1  25", " P3  Closed", "[STATUS] cannot set the status of check-valve pipe 'P3'"),
    (" V1  25", " P1  2.5", "[STATUS] pipe 'P1' can only be Open or Closed, not '2.5'"),
    (" V1  25", " V1  -3", "[STATUS] must be Open, Closed or a setting"),
])
def test_invalid_values(tmp_path, old, new, reason):
    text = NET.replace(old, new)
    refused(write(tmp_path, text), line_of(text, new.split("\n")[-1]), reason)


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_inp(tmp_path / "nope.inp")
    with pytest.raises(InputError, match="file is empty"):
        read_inp(write(tmp_path, ""))


# -- against wntr ------------------------------------------------------------------------------------------


def synthetic_network() -> str:
    """20 nodes in US units: a 4×4 grid of junctions fed by a reservoir through a pump, a tank, a PRV and a
    TCV, a check valve, a closed pipe, vertices, tags and [STATUS] rows."""
    rows = {key: [] for key in ("JUNCTIONS", "PIPES", "COORDINATES", "VERTICES", "TAGS")}
    for i in range(4):
        for j in range(4):
            rows["JUNCTIONS"].append(f"J{i}{j} {600 + 7.25 * i - 3.5 * j} {1.5 * (i + j) if (i + j) % 3 else 0}")
            rows["COORDINATES"].append(f"J{i}{j} {1000 + 350.5 * j} {2000 + 290.25 * i}")
    k = 0
    for i in range(4):
        for j in range(4):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < 4 and j + dj < 4:
                    k += 1
                    status = "Closed" if k == 5 else "CV" if k == 7 else "Open"
                    rows["PIPES"].append(f"P{k} J{i}{j} J{i + di}{j + dj} {300 + 11.5 * k} {(6, 8, 12)[k % 3]} "
                                         f"{100 + k} {0.1 * (k % 4)} {status}")
                    if k % 4 == 0:
                        rows["VERTICES"] += [f"P{k} {1100 + k} {2100 + k}", f"P{k} {1150.5 + k} {2150.5 + k}"]
    rows["TAGS"] = ["NODE J00 hydrant", "NODE J12 valve", "LINK P3 main"]
    return "\n".join([
        "[TITLE]", "synthetic", "[JUNCTIONS]", *rows["JUNCTIONS"], "JS 590 0", "JV 589.5 2",
        "[RESERVOIRS]", "R1 520", "[TANKS]", "T1 700 10 2 30 40 0",
        "[PIPES]", *rows["PIPES"], "PR R1 JS 50 16 120", "PT J33 T1 400 12 110 0 Open", "PV JV J03 20 10 130",
        "[PUMPS]", "PU1 JS J00 POWER 75 SPEED 1.1",
        "[VALVES]", "V1 J30 JV 10 PRV 45 0.5", "V2 J13 J23 8 TCV 3 0",
        "[TAGS]", *rows["TAGS"],
        "[STATUS]", "P2 Closed", "PU1 1.2", "V1 Open",
        "[OPTIONS]", "Units GPM", "Headloss H-W",
        "[COORDINATES]", *rows["COORDINATES"], "JS 500 1500", "JV 1900 3200", "R1 400 1400", "T1 2200 3000",
        "[VERTICES]", *rows["VERTICES"], "[END]", "",
    ])


def test_agrees_with_wntr(tmp_path):
    import wntr  # a dev dependency; imported here so the other tests run without it
    path = write(tmp_path, synthetic_network())
    net = read_inp(path)
    wn = wntr.network.WaterNetworkModel(str(path))
    nodes, links = net.nodes, net.links
    assert len(nodes) == 20 and len(links) == 30
    assert (nodes.node_type == "junction").sum() == wn.num_junctions
    assert ((links.link_type == "pipe").sum(), (links.link_type == "pump").sum(),
            (links.link_type == "valve").sum()) == (wn.num_pipes, wn.num_pumps, wn.num_valves)
    for node_id, n in nodes.iterrows():
        w = wn.get_node(node_id)
        assert n.elevation_m == pytest.approx(w.base_head if n.node_type == "reservoir" else w.elevation, abs=1e-9)
        assert (n.x, n.y) == pytest.approx(w.coordinates)
        assert n.tag == w.tag
        if n.node_type == "tank":
            assert [n.init_level_m, n.min_level_m, n.max_level_m, n.tank_diameter_m] == \
                pytest.approx([w.init_level, w.min_level, w.max_level, w.diameter])
        if n.node_type == "junction":
            assert n.demand * 6.30901964e-05 == pytest.approx(w.base_demand, abs=1e-12)  # GPM → m³/s
    for link_id, lk in links.iterrows():
        w = wn.get_link(link_id)
        assert (lk.from_node, lk.to_node) == (w.start_node_name, w.end_node_name)
        assert lk.vertices == [tuple(v) for v in w.vertices]
        assert lk.tag == w.tag
        status = w.initial_status.name.lower()
        if lk.link_type == "pipe":
            assert (lk.length_m, lk.diameter_mm / 1000) == pytest.approx((w.length, w.diameter), rel=1e-12)
            assert (lk.roughness, lk.minor_loss) == pytest.approx((w.roughness, w.minor_loss))
            assert lk.status == ("cv" if w.check_valve else status)
        elif lk.link_type == "valve":
            assert lk.diameter_mm / 1000 == pytest.approx(w.diameter, rel=1e-12)
            assert lk.valve_type == w.valve_type
            assert lk.status == ("open" if status == "active" else status)
        else:
            assert lk.status == status
            assert lk.setting == pytest.approx(w.initial_setting)
    assert links.at["P2", "status"] == "closed" and links.at["P5", "status"] == "closed"


def test_fast_enough(tmp_path):
    """About ky4's size (6,000 lines): far below the 0.5 s budget."""
    lines = ["[JUNCTIONS]"] + [f" J{i} {100 + i % 50} 1.5 1" for i in range(1000)]
    lines += ["[PIPES]"] + [f" P{i} J{i} J{i + 1} 120.5 8 150 0 Open" for i in range(999)]
    lines += ["[COORDINATES]"] + [f" J{i} {i * 10.5} {i * 3.25}" for i in range(1000)]
    lines += ["[VERTICES]"] + [f" P{i % 999} {i}.5 {i}.25" for i in range(3000)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    read_inp(path)
    start = time.perf_counter()
    net = read_inp(path)
    assert time.perf_counter() - start < 0.25
    assert len(net.nodes) == 1000 and net.links.vertices.map(len).sum() == 3000
