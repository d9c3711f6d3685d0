"""A strict, fast reader of EPANET .inp files: nodes, links, tags, vertices and options.

One pass over the lines with str.split; the DataFrames are built once at the end. Every problem with the
file is an InputError naming the line. Lengths, elevations and tank levels come out in metres and
diameters in millimetres; demand, roughness and valve settings stay in the file's own units.

Sections are read as EPANET reads them, with a few deliberate strictness differences: references are
resolved after the whole file is read (so their order does not matter), a row of a data section that
is too short is an error even at the very end of the file, duplicate [COORDINATES] or [TAGS] rows for
one object are errors, and a pipe cannot take a numeric [STATUS].
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cim.importers.common import check_source
from cim.importers.errors import InputError

US_FLOW_UNITS = ("CFS", "GPM", "MGD", "IMGD", "AFD")
SI_FLOW_UNITS = ("LPS", "LPM", "MLD", "CMH", "CMD")
FOOT_M = 0.3048
INCH_MM = 25.4
VALVE_TYPES = ("PRV", "PSV", "PBV", "FCV", "TCV", "GPV")

READ_SECTIONS = frozenset({"TITLE", "JUNCTIONS", "RESERVOIRS", "TANKS", "PIPES", "PUMPS", "VALVES", "TAGS",
                           "STATUS", "OPTIONS", "COORDINATES", "VERTICES"})
# Known sections whose content this reader does not need. ROUGHNESS (obsolete, ignored by EPANET 2) and
# LEAKAGE (EPANET 2.3) are EPANET sections too, so a file holding them is not refused.
SKIP_SECTIONS = frozenset({"DEMANDS", "PATTERNS", "CURVES", "CONTROLS", "RULES", "ENERGY", "EMITTERS", "QUALITY",
                           "SOURCES", "REACTIONS", "MIXING", "TIMES", "REPORT", "LABELS", "BACKDROP", "ROUGHNESS",
                           "LEAKAGE"})

# section → (fewest fields, the columns as EPANET documents them)
LAYOUT = {
    "JUNCTIONS": (2, "ID Elevation [Demand] [Pattern]"),
    "RESERVOIRS": (2, "ID Head [Pattern]"),
    "TANKS": (6, "ID Elevation InitLevel MinLevel MaxLevel Diameter [MinVol] [VolCurve] [Overflow]"),
    "PIPES": (6, "ID Node1 Node2 Length Diameter Roughness [MinorLoss] [Status]"),
    "PUMPS": (4, "ID Node1 Node2 and keyword/value parameters (HEAD curve, POWER kW, SPEED, PATTERN)"),
    "VALVES": (6, "ID Node1 Node2 Diameter Type Setting [MinorLoss]"),
    "TAGS": (3, "NODE|LINK ID Tag"),
    "STATUS": (2, "LinkID Status|Setting"),
    "OPTIONS": (2, "Option Value"),
    "COORDINATES": (3, "NodeID X Y"),
    "VERTICES": (3, "LinkID X Y"),
}
TANK_COLUMNS = ("Elevation", "InitLevel", "MinLevel", "MaxLevel", "Diameter")
PIPE_STATUS = {"OPEN": "open", "CLOSED": "closed", "CV": "cv"}
PUMP_KEYWORDS = ("HEAD", "POWER", "SPEED", "PATTERN")
# [OPTIONS] names of two words; every other option name is one word and the rest of the row its value.
TWO_WORD_OPTIONS = frozenset({("SPECIFIC", "GRAVITY"), ("DEMAND", "MULTIPLIER"), ("DEMAND", "MODEL"),
                              ("DEMAND", "PATTERN"), ("EMITTER", "EXPONENT"), ("EMITTER", "BACKFLOW"),
                              ("MINIMUM", "PRESSURE"), ("REQUIRED", "PRESSURE"), ("PRESSURE", "EXPONENT"),
                              ("HEAD", "ERROR"), ("FLOW", "CHANGE")})
CONTROL_CHAR = re.compile(r"[\x00-\x08\x0e-\x19\x1b-\x1f\x7f]")

NODE_COLUMNS = ["node_type", "elevation_m", "demand", "x", "y", "tag", "init_level_m", "min_level_m",
                "max_level_m", "tank_diameter_m"]
LINK_COLUMNS = ["link_type", "from_node", "to_node", "length_m", "diameter_mm", "roughness", "minor_loss",
                "status", "valve_type", "setting", "pump_parameters", "vertices", "tag"]

NAN = math.nan


@dataclass
class InpNetwork:
    """An EPANET network as tables.

    nodes (index "id"): node_type junction|reservoir|tank; elevation_m (junction elevation, tank bottom,
    reservoir head); demand (junction base demand from [JUNCTIONS] in the file's flow units, NaN if none;
    [DEMANDS] is not read); x, y from [COORDINATES] (NaN when the file has none); tag (str or None);
    init_level_m, min_level_m, max_level_m, tank_diameter_m (tanks only, else NaN).

    links (index "id"): link_type pipe|pump|valve; from_node, to_node (node ids as the nodes spell them);
    length_m (pipes); diameter_mm (pipes, valves); roughness (pipes, file units: C, or millifeet / mm for
    D-W); minor_loss (pipes, valves); status open|closed|cv (pipe Status column, pumps and valves open,
    then [STATUS]); valve_type; setting (valves: the setting in file units, NaN for GPV whose setting is a
    curve; pumps: relative speed, 1 unless SPEED or [STATUS] say otherwise; pipes NaN); pump_parameters
    (pumps: the parameter text as written); vertices (list of (x, y)); tag (str or None).
    """

    title: str
    flow_units: str
    nodes: pd.DataFrame
    links: pd.DataFrame
    options: dict[str, str]
    line_of: dict[str, int]


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = 0  # current line number
        self.section: str | None = None
        self.title: list[str] = []
        self.options: dict[str, str] = {}
        self.option_line: dict[str, int] = {}
        self.end_line: int | None = None
        # nodes
        self.node_ids: list[str] = []
        self.node_key: dict[str, int] = {}  # upper-cased id → row
        self.node_type: list[str] = []
        self.node_line: list[int] = []
        self.elev: list[float] = []
        self.demand: list[float] = []
        self.tank: list[tuple[float, float, float, float]] = []
        # links
        self.link_ids: list[str] = []
        self.link_key: dict[str, int] = {}
        self.link_type: list[str] = []
        self.link_line: list[int] = []
        self.ends: list[tuple[str, str]] = []
        self.length: list[float] = []
        self.diameter: list[float] = []
        self.roughness: list[float] = []
        self.minor_loss: list[float] = []
        self.status: list[str] = []
        self.valve_type: list[str | None] = []
        self.setting: list[float] = []
        self.pump_parameters: list[str | None] = []
        # references, resolved at the end: (line, fields)
        self.coords: list[tuple[int, str, float, float]] = []
        self.vertices: list[tuple[int, str, float, float]] = []
        self.tags: list[tuple[int, str, str, str]] = []
        self.status_rows: list[tuple[int, list[str]]] = []

    # -- errors and fields -------------------------------------------------------------------------------

    def fail(self, reason: str, line: int | None = None) -> InputError:
        return InputError(self.path, reason, record=f"line {self.n if line is None else line}")

    def number(self, token: str, column: str) -> float:
        try:
            value = float(token)
        except ValueError:
            value = NAN
        if not math.isfinite(value) or "_" in token:
            raise self.fail(f"[{self.section}] {column} is not a number: {token!r}")
        return value

    # -- the pass over the lines -------------------------------------------------------------------------

    def read(self, text: str) -> None:
        handlers = {
            "JUNCTIONS": self.junction, "RESERVOIRS": self.reservoir, "TANKS": self.tank_row,
            "PIPES": self.pipe, "PUMPS": self.pump, "VALVES": self.valve, "TAGS": self.tag,
            "STATUS": self.status_row, "OPTIONS": self.option, "COORDINATES": self.coordinate,
            "VERTICES": self.vertex,
        }
        handler = None
        for n, line in enumerate(text.split("\n"), 1):
            body = line[: line.index(";")] if ";" in line else line
            fields = body.split()
            if not fields:
                continue
            self.n = n
            if fields[0][0] == "[":
                name = fields[0].upper()
                section = name[1:-1] if name.endswith("]") else None
                if section == "END":
                    self.end_line = n
                    return
                if section not in READ_SECTIONS and section not in SKIP_SECTIONS:
                    raise self.fail(f"unknown section {fields[0]}")
                self.section = section
                handler = handlers.get(section)
                continue
            if self.section is None:
                raise self.fail(f"data before any section: {body.strip()[:40]!r}")
            if handler is not None:
                fewest, columns = LAYOUT[self.section]
                if len(fields) < fewest:
                    raise self.fail(f"[{self.section}] row has {len(fields)} field{'s' * (len(fields) != 1)}, "
                                    f"needs at least {fewest}: {columns}")
                handler(fields)
            elif self.section == "TITLE":
                self.title.append(line.strip())

    # -- nodes -------------------------------------------------------------------------------------------

    def add_node(self, node_id: str, node_type: str, elevation: float, demand: float,
                 tank: tuple[float, float, float, float]) -> None:
        key = node_id.upper()
        if key in self.node_key:
            first = self.node_key[key]
            raise self.fail(f"duplicate node id {node_id!r} (already a {self.node_type[first]} on line "
                            f"{self.node_line[first]}; EPANET ids ignore case)")
        self.node_key[key] = len(self.node_ids)
        self.node_ids.append(node_id)
        self.node_type.append(node_type)
        self.node_line.append(self.n)
        self.elev.append(elevation)
        self.demand.append(demand)
        self.tank.append(tank)

    def junction(self, f: list[str]) -> None:
        demand = self.number(f[2], "Demand") if len(f) > 2 else NAN
        self.add_node(f[0], "junction", self.number(f[1], "Elevation"), demand, (NAN, NAN, NAN, NAN))

    def reservoir(self, f: list[str]) -> None:
        self.add_node(f[0], "reservoir", self.number(f[1], "Head"), NAN, (NAN, NAN, NAN, NAN))

    def tank_row(self, f: list[str]) -> None:
        elevation, init, low, high, diameter = (self.number(t, c) for t, c in zip(f[1:6], TANK_COLUMNS, strict=True))
        if len(f) > 6 and f[6] != "*":
            self.number(f[6], "MinVol")
        if min(init, low, high, diameter) < 0:
            raise self.fail(f"[TANKS] tank {f[0]!r}: levels and diameter must not be negative")
        if not low <= init <= high:
            raise self.fail(f"[TANKS] tank {f[0]!r}: InitLevel {f[2]} is not between MinLevel {f[3]} "
                            f"and MaxLevel {f[4]}")
        self.add_node(f[0], "tank", elevation, NAN, (init, low, high, diameter))

    # -- links -------------------------------------------------------------------------------------------

    def add_link(self, f: list[str], link_type: str, length: float, diameter: float, roughness: float,
                 minor_loss: float, status: str, valve_type: str | None, setting: float,
                 pump_parameters: str | None) -> None:
        link_id = f[0]
        key = link_id.upper()
        if key in self.link_key:
            first = self.link_key[key]
            raise self.fail(f"duplicate link id {link_id!r} (already a {self.link_type[first]} on line "
                            f"{self.link_line[first]}; EPANET ids ignore case)")
        if f[1].upper() == f[2].upper():
            raise self.fail(f"[{self.section}] {link_type} {link_id!r} starts and ends at node {f[1]!r}")
        self.link_key[key] = len(self.link_ids)
        self.link_ids.append(link_id)
        self.link_type.append(link_type)
        self.link_line.append(self.n)
        self.ends.append((f[1], f[2]))
        self.length.append(length)
        self.diameter.append(diameter)
        self.roughness.append(roughness)
        self.minor_loss.append(minor_loss)
        self.status.append(status)
        self.valve_type.append(valve_type)
        self.setting.append(setting)
        self.pump_parameters.append(pump_parameters)

    def pipe(self, f: list[str]) -> None:
        length = self.number(f[3], "Length")
        diameter = self.number(f[4], "Diameter")
        roughness = self.number(f[5], "Roughness")
        minor_loss, status = 0.0, "open"
        if len(f) == 7 and f[6].upper() in PIPE_STATUS:  # EPANET: a 7th field alone may be the status
            status = PIPE_STATUS[f[6].upper()]
        elif len(f) >= 7:
            minor_loss = self.number(f[6], "MinorLoss")
            if len(f) >= 8:
                if f[7].upper() not in PIPE_STATUS:
                    raise self.fail(f"[PIPES] Status must be Open, Closed or CV: {f[7]!r}")
                status = PIPE_STATUS[f[7].upper()]
        if length <= 0 or diameter <= 0 or roughness <= 0 or minor_loss < 0:
            raise self.fail(f"[PIPES] pipe {f[0]!r}: Length, Diameter and Roughness must be positive and "
                            "MinorLoss not negative")
        self.add_link(f, "pipe", length, diameter, roughness, minor_loss, status, None, NAN, None)

    def pump(self, f: list[str]) -> None:
        params = f[3:]
        speed = 1.0
        if _is_number(params[0]):  # EPANET 1.x: pump curve coefficients
            for token in params:
                self.number(token, "curve coefficient")
        else:
            if len(params) % 2:
                raise self.fail(f"[PUMPS] pump {f[0]!r}: parameter {params[-1]!r} has no value; "
                                f"parameters are keyword/value pairs ({', '.join(PUMP_KEYWORDS)})")
            keywords = set()
            for keyword, value in zip(params[::2], params[1::2], strict=True):
                word = keyword.upper()
                if word not in PUMP_KEYWORDS:
                    raise self.fail(f"[PUMPS] pump {f[0]!r}: unknown parameter {keyword!r}; "
                                    f"expected one of {', '.join(PUMP_KEYWORDS)}")
                keywords.add(word)
                if word in ("POWER", "SPEED"):
                    number = self.number(value, word.title())
                    if number < 0 or (word == "POWER" and number == 0):
                        raise self.fail(f"[PUMPS] pump {f[0]!r}: {word} must be "
                                        f"{'positive' if word == 'POWER' else 'not negative'}: {value!r}")
                    if word == "SPEED":
                        speed = number
            if not keywords & {"HEAD", "POWER"}:
                raise self.fail(f"[PUMPS] pump {f[0]!r} has neither a HEAD curve nor a POWER rating")
        self.add_link(f, "pump", NAN, NAN, NAN, NAN, "open", None, speed, " ".join(params))

    def valve(self, f: list[str]) -> None:
        diameter = self.number(f[3], "Diameter")
        valve_type = f[4].upper()
        if valve_type not in VALVE_TYPES:
            raise self.fail(f"[VALVES] unknown valve Type {f[4]!r}; expected one of {' '.join(VALVE_TYPES)}")
        setting = NAN if valve_type == "GPV" else self.number(f[5], "Setting")
        minor_loss = self.number(f[6], "MinorLoss") if len(f) > 6 else 0.0
        if diameter <= 0 or minor_loss < 0:
            raise self.fail(f"[VALVES] valve {f[0]!r}: Diameter must be positive and MinorLoss not negative")
        self.add_link(f, "valve", NAN, diameter, NAN, minor_loss, "open", valve_type, setting, None)

    # -- references and options --------------------------------------------------------------------------

    def tag(self, f: list[str]) -> None:
        kind = f[0].upper()
        if kind not in ("NODE", "LINK"):
            raise self.fail(f"[TAGS] row must start with NODE or LINK, not {f[0]!r}")
        self.tags.append((self.n, kind, f[1], " ".join(f[2:])))

    def status_row(self, f: list[str]) -> None:
        self.status_rows.append((self.n, f))

    def coordinate(self, f: list[str]) -> None:
        self.coords.append((self.n, f[0], self.number(f[1], "X"), self.number(f[2], "Y")))

    def vertex(self, f: list[str]) -> None:
        self.vertices.append((self.n, f[0], self.number(f[1], "X"), self.number(f[2], "Y")))

    def option(self, f: list[str]) -> None:
        words = 2 if len(f) >= 3 and (f[0].upper(), f[1].upper()) in TWO_WORD_OPTIONS else 1
        key = " ".join(f[:words]).upper()
        self.options[key] = " ".join(f[words:])
        self.option_line[key] = self.n

    # -- after the pass ----------------------------------------------------------------------------------

    def network(self) -> InpNetwork:
        end = self.end_line or self.n or 1  # [END], else the last line that holds anything
        if not self.node_ids:
            raise self.fail("no nodes: [JUNCTIONS], [RESERVOIRS] and [TANKS] hold no rows", end)
        if not self.link_ids:
            raise self.fail("no links: [PIPES], [PUMPS] and [VALVES] hold no rows", end)
        flow_units = self.options.get("UNITS", "GPM").upper()
        if flow_units not in US_FLOW_UNITS and flow_units not in SI_FLOW_UNITS:
            raise self.fail(f"unknown flow units {self.options['UNITS']!r}; expected one of "
                            f"{' '.join(US_FLOW_UNITS + SI_FLOW_UNITS)}", self.option_line["UNITS"])
        us = flow_units in US_FLOW_UNITS
        to_m, to_mm = (FOOT_M, INCH_MM) if us else (1.0, 1.0)

        # links → nodes
        from_node, to_node = [], []
        for i, (a, b) in enumerate(self.ends):
            names = []
            for name in (a, b):
                row = self.node_key.get(name.upper())
                if row is None:
                    raise self.fail(f"{self.link_type[i]} {self.link_ids[i]!r} names unknown node {name!r}",
                                    self.link_line[i])
                names.append(self.node_ids[row])
            from_node.append(names[0])
            to_node.append(names[1])

        # coordinates
        x = np.full(len(self.node_ids), NAN)
        y = np.full(len(self.node_ids), NAN)
        coord_line: dict[int, int] = {}
        for n, name, cx, cy in self.coords:
            row = self.node_key.get(name.upper())
            if row is None:
                raise self.fail(f"[COORDINATES] names unknown node {name!r}", n)
            if row in coord_line:
                raise self.fail(f"[COORDINATES] node {name!r} already has coordinates on line {coord_line[row]}", n)
            coord_line[row] = n
            x[row], y[row] = cx, cy
        if coord_line and len(coord_line) < len(self.node_ids):
            row = next(i for i in range(len(self.node_ids)) if i not in coord_line)
            missing = len(self.node_ids) - len(coord_line)
            raise self.fail(f"{self.node_type[row]} {self.node_ids[row]!r} has no [COORDINATES] row "
                            f"({missing} of {len(self.node_ids)} nodes lack one)", self.node_line[row])

        # vertices
        vertices: list[list[tuple[float, float]]] = [[] for _ in self.link_ids]
        for n, name, vx, vy in self.vertices:
            row = self.link_key.get(name.upper())
            if row is None:
                raise self.fail(f"[VERTICES] names unknown link {name!r}", n)
            vertices[row].append((vx, vy))

        # tags
        node_tag: list[str | None] = [None] * len(self.node_ids)
        link_tag: list[str | None] = [None] * len(self.link_ids)
        tag_line: dict[tuple[str, int], int] = {}
        for n, kind, name, text in self.tags:
            keys, ids, tags = (self.node_key, self.node_ids, node_tag) if kind == "NODE" else \
                (self.link_key, self.link_ids, link_tag)
            row = keys.get(name.upper())
            if row is None:
                raise self.fail(f"[TAGS] names unknown {kind.lower()} {name!r}", n)
            if (kind, row) in tag_line:
                raise self.fail(f"[TAGS] {kind.lower()} {ids[row]!r} already tagged on line {tag_line[kind, row]}", n)
            tag_line[kind, row] = n
            tags[row] = text

        self.apply_status()

        node_index = pd.Index(self.node_ids, name="id")
        link_index = pd.Index(self.link_ids, name="id")
        nodes = pd.DataFrame({
            "node_type": self.node_type,
            "elevation_m": np.array(self.elev) * to_m,
            "demand": np.array(self.demand, dtype=float),
            "x": x,
            "y": y,
            "tag": _objects(node_tag, node_index),
        }, index=node_index)
        tank = np.array(self.tank, dtype=float).reshape(-1, 4) * to_m
        for j, column in enumerate(NODE_COLUMNS[-4:]):
            nodes[column] = tank[:, j]
        length = np.array(self.length, dtype=float) * to_m
        diameter = np.array(self.diameter, dtype=float) * to_mm
        links = pd.DataFrame({
            "link_type": self.link_type,
            "from_node": from_node,
            "to_node": to_node,
            "length_m": length,
            "diameter_mm": diameter,
            "roughness": np.array(self.roughness, dtype=float),
            "minor_loss": np.array(self.minor_loss, dtype=float),
            "status": self.status,
            "valve_type": _objects(self.valve_type, link_index),
            "setting": np.array(self.setting, dtype=float),
            "pump_parameters": _objects(self.pump_parameters, link_index),
            "vertices": _objects(vertices, link_index),
            "tag": _objects(link_tag, link_index),
        }, index=link_index)
        line_of = {f"NODE {i}": n for i, n in zip(self.node_ids, self.node_line, strict=True)}
        line_of.update({f"LINK {i}": n for i, n in zip(self.link_ids, self.link_line, strict=True)})
        return InpNetwork(title="\n".join(self.title), flow_units=flow_units, nodes=nodes[NODE_COLUMNS],
                          links=links[LINK_COLUMNS], options=self.options, line_of=line_of)

    def apply_status(self) -> None:
        """[STATUS] rows in file order, as EPANET applies them (a later row wins)."""
        for n, f in self.status_rows:
            value = f[-1]
            word = value.upper()
            if word not in ("OPEN", "CLOSED", "ACTIVE"):
                try:
                    setting = float(value)
                except ValueError:
                    setting = NAN
                if not math.isfinite(setting) or setting < 0 or "_" in value:
                    raise self.fail(f"[STATUS] must be Open, Closed or a setting that is a number not below 0: "
                                    f"{value!r}", n)
            if len(f) == 2:
                row = self.link_key.get(f[0].upper())
                if row is None:
                    raise self.fail(f"[STATUS] names unknown link {f[0]!r}", n)
                rows = [row]
            else:  # EPANET's range form: every link whose numeric id lies between the first two fields
                low, high = _integer(f[0]), _integer(f[1])
                if low is None or high is None:
                    raise self.fail(f"[STATUS] row has {len(f)} fields: a range of links needs two numeric ids "
                                    "and a status; a single link, LinkID Status|Setting", n)
                rows = [i for i, link_id in enumerate(self.link_ids)
                        if (k := _integer(link_id)) is not None and low <= k <= high]
            for row in rows:
                self.set_status(row, word, value, n)

    def set_status(self, row: int, word: str, value: str, n: int) -> None:
        kind, link_id = self.link_type[row], self.link_ids[row]
        if kind == "pipe":
            if self.status[row] == "cv":
                raise self.fail(f"[STATUS] cannot set the status of check-valve pipe {link_id!r}", n)
            if word not in ("OPEN", "CLOSED"):
                raise self.fail(f"[STATUS] pipe {link_id!r} can only be Open or Closed, not {value!r}", n)
            self.status[row] = word.lower()
        elif kind == "pump":
            if word == "ACTIVE":
                raise self.fail(f"[STATUS] pump {link_id!r} can be Open, Closed or a speed, not {value!r}", n)
            if word in ("OPEN", "CLOSED"):
                self.status[row] = word.lower()
            else:
                self.setting[row] = float(value)
                self.status[row] = "closed" if self.setting[row] == 0 else "open"
        elif word in ("OPEN", "CLOSED"):
            self.status[row] = word.lower()
        elif word == "ACTIVE":
            self.status[row] = "open"
        elif self.valve_type[row] == "GPV":
            raise self.fail(f"[STATUS] GPV valve {link_id!r} can only be Open or Closed, not {value!r}", n)
        else:
            self.setting[row] = float(value)
            self.status[row] = "open"


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _integer(token: str) -> int | None:
    return int(token) if token.isascii() and token.isdigit() else None


def _objects(values: list, index: pd.Index) -> pd.Series:
    """An object column holding the values as they are (lists stay lists, None stays None: pandas would
    otherwise infer a string column and turn None into NaN)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return pd.Series(out, index=index, dtype=object)


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise InputError(path, "not a text file: NUL byte (binary data or UTF-16)", record=f"line {line}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = text.rstrip("\x1a")  # DOS end-of-file mark
    bad = CONTROL_CHAR.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise InputError(path, f"not a text file: control character {ord(bad.group()):#04x}", record=f"line {line}")
    return text


def read_inp(path: Path) -> InpNetwork:
    """Read an EPANET .inp file; any problem with it is one InputError naming the line."""
    path = check_source(Path(path))
    text = _decode(path, path.read_bytes())
    reader = _Reader(path)
    reader.read(text)
    return reader.network()
