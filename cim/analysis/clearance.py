"""Clearances between underground pipes of different networks and from pipes to buildings (GB 50289-2016).

A clearance table (TOML, see clearance_gb50289.toml) maps every pipe to a class and gives, per pair of classes,
the least clear distance between outer walls: [horizontal] beside each other, [vertical] where they cross, and
[building] from a building foundation. Pipes whose 2D centrelines cross are checked vertically at the crossing
(gap = |z_a - z_b| - (h_a + h_b) / 2); other pairs horizontally (gap = 2D distance - (w_a + w_b) / 2). Sizes are
the nominal diameter (or box width / height) taken as the outer size: wall thickness is not in the data.

A pipe that ends just beside the crossing of its continuation (the pipe on its other side of a survey point)
with another pipe belongs to that crossing: the horizontal check leaves out discs of the pair's reach around such
crossings. A crossing through a survey point, where several pipe pairs touch, is one violation. Service lines
are exempt for the building they serve (see check_buildings).
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from cim.importers.errors import InputError
from cim.model.kinds import NETWORKS
from cim.model.store import Model

DEFAULT_TABLE = Path(__file__).with_name("clearance_gb50289.toml")
SECTIONS = ("meta", "class", "horizontal", "vertical", "building", "unverified")
CONDITIONS = ("name", "network", "min_diameter_mm", "max_diameter_mm", "pressure", "burial", "subtype")
BUILDING_KINDS = ("building", "building_part")
TOLERANCE = 1e-6  # metres: a gap equal to the required value passes

# Gas pressure classes of GB 50028: (upper bound in MPa, canonical word, Chinese word)
PRESSURE_CLASSES = ((0.01, "low", "低压"), (0.2, "medium_b", "中压b"), (0.4, "medium_a", "中压a"),
                    (0.8, "high_b", "次高压b"), (1.6, "high_a", "次高压a"), (math.inf, "high", "高压"))
PRESSURE_WORDS = {zh: en for _, en, zh in PRESSURE_CLASSES} | {en: zh for _, en, zh in PRESSURE_CLASSES}
# Burial words (MSFS 埋设方式) → direct (直埋) or duct (in a protective pipe, duct bank or trench)
BURIAL_WORDS = {"direct": ("直埋", "direct", "buried", "直接"),
                "duct": ("保护管", "管块", "管沟", "排管", "电缆沟", "管道", "通道", "顶管", "套管", "duct",
                         "conduit", "trench", "casing", "protected")}


def _norm(word: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(word).strip().lower())


def pressure_words(value: object) -> set[str]:
    """The words a pressure field stands for: itself, its class in English and Chinese (from words or MPa)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return set()
    text = _norm(value)
    if not text:
        return set()
    words = {text}
    number = re.fullmatch(r"(\d+(?:\.\d+)?)_?(mpa|kpa|pa)?", text)
    if number:
        mpa = float(number.group(1)) / {"kpa": 1e3, "pa": 1e6}.get(number.group(2) or "mpa", 1.0)
        for bound, en, zh in PRESSURE_CLASSES:
            if (mpa < bound) if en == "low" else (mpa <= bound):
                words |= {en, zh}
                break
    elif text in PRESSURE_WORDS:
        words.add(PRESSURE_WORDS[text])
    return words


def burial_words(value: object) -> set[str]:
    """The words a burial field stands for: itself and direct or duct."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return set()
    text = _norm(value)
    if not text:
        return set()
    for canonical, keys in BURIAL_WORDS.items():
        if any(k in text for k in keys):
            return {text, canonical}
    return {text}


@dataclass(frozen=True)
class PipeClass:
    name: str
    network: str
    min_diameter_mm: float | None = None
    max_diameter_mm: float | None = None
    pressure: frozenset[str] | None = None
    burial: frozenset[str] | None = None
    subtype: frozenset[str] | None = None

    def matches(self, network: str, size_mm: float | None, pressure: set[str], burial: set[str],
                subtype: str | None) -> bool:
        if network != self.network:
            return False
        if self.min_diameter_mm is not None or self.max_diameter_mm is not None:
            if size_mm is None or not math.isfinite(size_mm):
                return False
            if self.min_diameter_mm is not None and size_mm < self.min_diameter_mm:
                return False
            if self.max_diameter_mm is not None and size_mm > self.max_diameter_mm:
                return False
        if self.pressure is not None and not self.pressure & pressure:
            return False
        if self.burial is not None and not self.burial & burial:
            return False
        return self.subtype is None or (subtype is not None and _norm(subtype) in self.subtype)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


@dataclass
class ClearanceTable:
    path: Path
    classes: list[PipeClass]
    horizontal: dict[tuple[str, str], float]  # keyed by the sorted class pair
    vertical: dict[tuple[str, str], float]
    building: dict[str, float]
    unverified: set[str] = field(default_factory=set)  # "horizontal|a|b" (sorted pair), "building|a"
    meta: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def classify(self, network: str, size_mm: float | None = None, pressure: object = None, burial: object = None,
                 subtype: str | None = None) -> str | None:
        """The first class a pipe matches (size: diameter, or width for a box), None when none does."""
        p, b = pressure_words(pressure), burial_words(burial)
        for c in self.classes:
            if c.matches(network, size_mm, p, b, subtype):
                return c.name
        return None

    def value(self, kind: str, a: str, b: str | None = None) -> float:
        if kind == "building":
            return self.building[a]
        return getattr(self, kind)[_pair(a, b)]

    def is_unverified(self, kind: str, a: str, b: str | None = None) -> bool:
        key = f"building|{a}" if kind == "building" else f"{kind}|{'|'.join(_pair(a, b))}"
        return key in self.unverified


def _condition(path: Path, i: int, rule: dict, key: str, kind: type) -> object:
    value = rule.get(key)
    if value is None:
        return None
    where = f"[[class]] {rule.get('name', i + 1)!r}: {key}"
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InputError(path, f"{where} must be a number of millimetres ≥ 0, not {value!r}")
        return float(value)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(path, f"{where} must be a list of words, not {value!r}")
    words = {_norm(v) for v in value}
    if key == "pressure":
        words |= {PRESSURE_WORDS[w] for w in words if w in PRESSURE_WORDS}
    return frozenset(words)


def _classes(path: Path, rules: object) -> list[PipeClass]:
    if not isinstance(rules, list) or not rules or not all(isinstance(r, dict) for r in rules):
        raise InputError(path, "needs [[class]] rules: name, network and optional conditions")
    classes, seen = [], set()
    for i, rule in enumerate(rules):
        unknown = set(rule) - set(CONDITIONS)
        name = rule.get("name")
        if not isinstance(name, str) or not name.strip() or "|" in name:
            raise InputError(path, f"[[class]] number {i + 1} needs a name (text without '|')")
        if unknown:
            raise InputError(path, f"[[class]] {name!r}: unknown condition(s) {', '.join(sorted(unknown))}; "
                                   f"known: {', '.join(CONDITIONS[1:])}")
        if name in seen:
            raise InputError(path, f"[[class]] {name!r} is given twice")
        seen.add(name)
        if rule.get("network") not in NETWORKS:
            raise InputError(path, f"[[class]] {name!r}: network must be one of {', '.join(NETWORKS)}, "
                                   f"not {rule.get('network')!r}")
        lo, hi = (_condition(path, i, rule, k, float) for k in ("min_diameter_mm", "max_diameter_mm"))
        if lo is not None and hi is not None and lo > hi:
            raise InputError(path, f"[[class]] {name!r}: min_diameter_mm is above max_diameter_mm")
        classes.append(PipeClass(name, rule["network"], lo, hi, *(_condition(path, i, rule, k, list)
                                                                   for k in ("pressure", "burial", "subtype"))))
    return classes


def _distance(path: Path, where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InputError(path, f"{where} must be a distance in metres ≥ 0, not {value!r}")
    return float(value)


def _pairs(path: Path, data: dict, section: str, names: list[str]) -> dict[tuple[str, str], float]:
    table = data.get(section)
    if not isinstance(table, dict):
        raise InputError(path, f"needs a [{section}] table of \"classA|classB\" = metres")
    out: dict[tuple[str, str], float] = {}
    for key, value in table.items():
        parts = key.split("|")
        if len(parts) != 2:
            raise InputError(path, f"[{section}] key {key!r} must be \"classA|classB\"")
        unknown = [p for p in parts if p not in names]
        if unknown:
            raise InputError(path, f"[{section}] key {key!r}: unknown class {unknown[0]!r}; classes: "
                                   f"{', '.join(names)}")
        pair = _pair(*parts)
        v = _distance(path, f"[{section}] {key!r}", value)
        if pair in out and out[pair] != v:
            raise InputError(path, f"[{section}] gives {pair[0]}|{pair[1]} twice with different values")
        out[pair] = v
    missing = [f"{a}|{b}" for a, b in itertools.combinations_with_replacement(names, 2) if _pair(a, b) not in out]
    if missing:
        raise InputError(path, f"[{section}] has no value for {len(missing)} class pair(s), e.g. {missing[0]!r}")
    return out


def _unverified(path: Path, data: dict, names: list[str], table: dict) -> set[str]:
    section = data.get("unverified", {})
    keys = section.get("keys", []) if isinstance(section, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise InputError(path, "[unverified] keys must be a list of \"section.key\" texts")
    out = set()
    for key in keys:
        sec, _, rest = key.partition(".")
        if sec == "building" and rest in names:
            out.add(f"building|{rest}")
            continue
        parts = rest.split("|")
        if sec in ("horizontal", "vertical") and len(parts) == 2 and all(p in names for p in parts):
            out.add(f"{sec}|{'|'.join(_pair(*parts))}")
            continue
        raise InputError(path, f"[unverified] key {key!r} names no value of the table")
    return out


def load_table(path: Path | None = None) -> ClearanceTable:
    """The clearance table: the shipped GB 50289 defaults, or a user's TOML of the same format instead."""
    path = Path(path) if path is not None else DEFAULT_TABLE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid TOML: {exc}") from None
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise InputError(path, f"unknown table(s) {', '.join(sorted(unknown))}; a clearance table has "
                               f"{', '.join(SECTIONS)}")
    classes = _classes(path, data.get("class"))
    names = [c.name for c in classes]
    horizontal, vertical = _pairs(path, data, "horizontal", names), _pairs(path, data, "vertical", names)
    building = data.get("building")
    if not isinstance(building, dict):
        raise InputError(path, "needs a [building] table: class = metres")
    wrong = [k for k in building if k not in names]
    if wrong:
        raise InputError(path, f"[building]: unknown class {wrong[0]!r}; classes: {', '.join(names)}")
    missing = [n for n in names if n not in building]
    if missing:
        raise InputError(path, f"[building] has no value for class {missing[0]!r}")
    building = {k: _distance(path, f"[building] {k!r}", v) for k, v in building.items()}
    meta = data.get("meta", {})
    return ClearanceTable(path, classes, horizontal, vertical, building,
                          _unverified(path, data, names, building), meta if isinstance(meta, dict) else {})


def classify(network: str, size_mm: float | None = None, pressure: object = None, burial: object = None,
             subtype: str | None = None, table: ClearanceTable | None = None) -> str | None:
    """The clearance class of one pipe (size: diameter in mm, or width for a box); None when no rule fits."""
    return (table or load_table()).classify(network, size_mm, pressure, burial, subtype)


@dataclass
class Violation:
    kind: str  # horizontal | vertical | building
    code_a: str  # the pipe
    code_b: str  # the other pipe, or the building
    network_a: str
    network_b: str  # "building" for a building
    class_a: str
    class_b: str | None  # None for a building
    required_m: float
    actual_m: float  # clear distance between outer walls (negative: they overlap)
    x: float  # where: the crossing point, or the middle of the shortest line between them
    y: float
    unverified: bool  # the rule value is not confirmed against the standard text
    source_a: str | None = None
    source_b: str | None = None

    @property
    def shortfall_m(self) -> float:
        return self.required_m - self.actual_m


class Violations(list):
    """Violations, worst first, with what was checked."""

    def __init__(self, items=(), pipes: int = 0, pairs: int = 0, unclassified: dict | None = None) -> None:
        super().__init__(items)
        self.pipes = pipes  # pipes in the check
        self.pairs = pairs  # candidate pairs measured
        self.unclassified = unclassified or {}  # network -> pipes no class of the table fits


# Pipes taking part: real pipes (not EPANET pump/valve links) that are not demolished or out of service.
PIPE_FILTER = ("{s}.link_type = 'pipe' AND {o}.status <> 'demolished' "
               "AND ({o}.valid_to IS NULL OR {o}.valid_to > now())"
               " AND (%(layers)s::text[] IS NULL OR {o}.layer = ANY(%(layers)s::text[]))")


def _pipes(conn, layers: list[str] | None, table: ClearanceTable) -> pd.DataFrame:
    """Every pipe of the layers with its class and its outer width / height in metres."""
    rows = conn.execute(
        "SELECT s.code, o.source_id, s.network, s.shape, s.diameter_mm, "
        "coalesce(s.width_mm, s.diameter_mm), coalesce(s.height_mm, s.diameter_mm), s.pressure_class, s.subtype, "
        "coalesce(o.attributes ->> (b.summary -> 'line_fields' ->> 'burial'), o.attributes ->> 'MSFS', "
        "o.attributes ->> 'msfs', o.attributes ->> '埋设方式', o.attributes ->> 'burial') "
        "FROM pipe_segment s JOIN city_object o USING (code) JOIN import_batch b ON b.id = o.batch_id "
        "WHERE " + PIPE_FILTER.format(s="s", o="o"), {"layers": layers},
    ).fetchall()
    frame = pd.DataFrame(rows, columns=["code", "source_id", "network", "shape", "diameter", "width", "height",
                                        "pressure", "subtype", "burial"])
    size = np.where(frame["shape"] == "box", frame["width"], frame["diameter"].fillna(frame["width"]))
    keys = list(zip(frame["network"], [None if v is None or pd.isna(v) else float(v) for v in size],
                    frame["pressure"], frame["burial"], frame["subtype"], strict=True))
    classes = {k: table.classify(*k) for k in set(keys)}
    frame["cls"] = [classes[k] for k in keys]
    frame["w"] = pd.to_numeric(frame["width"], errors="coerce").fillna(0.0) / 1000.0
    frame["h"] = pd.to_numeric(frame["height"], errors="coerce").fillna(0.0) / 1000.0
    return frame.set_index("code")


def _unclassified(pipes: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in pipes.loc[pipes["cls"].isna(), "network"].value_counts().items()}


# Crossing points of a pipe's continuations (pipes sharing one of its nodes) with the other pipe of a pair, for
# pairs (a, b) that do not cross: a pair that is near only because one of them ends beside the crossing of its
# continuation belongs to that crossing, which the vertical check covers.
ZONE_SQL = """
SELECT k.a, k.b, ST_AsBinary(ST_Collect(q.p)), ST_AsBinary(ST_Force2D(a.geom)), ST_AsBinary(ST_Force2D(b.geom))
FROM unnest(%(a)s::text[], %(b)s::text[]) AS k(a, b)
JOIN city_object a ON a.code = k.a JOIN pipe_segment s ON s.code = k.a
JOIN city_object b ON b.code = k.b JOIN pipe_segment t ON t.code = k.b
CROSS JOIN LATERAL (
  SELECT ST_Intersection(ST_Force2D(n.geom), ST_Force2D(b.geom)) AS p
  FROM pipe_segment ns JOIN city_object n ON n.code = ns.code
  WHERE ns.code <> s.code AND ns.link_type = 'pipe'
    AND (ns.from_node IN (s.from_node, s.to_node) OR ns.to_node IN (s.from_node, s.to_node))
    AND ST_Intersects(n.geom, b.geom)
  UNION ALL
  SELECT ST_Intersection(ST_Force2D(n.geom), ST_Force2D(a.geom))
  FROM pipe_segment ns JOIN city_object n ON n.code = ns.code
  WHERE ns.code <> t.code AND ns.link_type = 'pipe'
    AND (ns.from_node IN (t.from_node, t.to_node) OR ns.to_node IN (t.from_node, t.to_node))
    AND ST_Intersects(n.geom, a.geom)
) q
GROUP BY k.a, k.b, a.code, b.code
"""


def _outside_crossings(conn, frame: pd.DataFrame) -> pd.DataFrame:
    """Horizontal pairs measured again without the crossing zones of their continuations: discs of the pair's
    reach (required + half widths) around those crossings. Distance inf when nothing is left outside them."""
    rows = conn.execute(ZONE_SQL, {"a": frame["a"].tolist(), "b": frame["b"].tolist()}).fetchall()
    if not rows:
        return frame
    zones = pd.DataFrame(rows, columns=["a", "b", "zone", "ga", "gb"])
    z = frame.reset_index().merge(zones, on=["a", "b"])
    discs = shapely.buffer(shapely.from_wkb(z["zone"].map(bytes).to_numpy()),
                           z["required"].to_numpy() + z["half"].to_numpy() + TOLERANCE)
    rest_a = shapely.difference(shapely.from_wkb(z["ga"].map(bytes).to_numpy()), discs)
    rest_b = shapely.difference(shapely.from_wkb(z["gb"].map(bytes).to_numpy()), discs)
    dist = shapely.distance(rest_a, rest_b)
    left = np.isfinite(dist)
    xy = np.full((len(z), 2), np.nan)
    if left.any():
        xy[left] = shapely.get_coordinates(shapely.line_interpolate_point(
            shapely.shortest_line(rest_a[left], rest_b[left]), 0.5, normalized=True))
    frame = frame.copy()
    idx = z["index"].to_numpy()
    frame.loc[idx, "gap"] = np.where(left, dist - z["half"].to_numpy(), np.inf)
    frame.loc[idx, "x"], frame.loc[idx, "y"] = xy[:, 0], xy[:, 1]
    return frame


def check_clearances(model: Model, layers: list[str] | None = None,
                     table: ClearanceTable | None = None) -> Violations:
    """Pairs of pipes of different networks closer than the table allows, worst first. With layers, only
    pipes of those layers take part (both pipes of a pair)."""
    table = table or load_table()
    with model.connect() as conn:
        pipes = _pipes(conn, layers, table)
        if pipes.empty:
            return Violations()
        widest = float(pipes["w"].max())
        reach = max(max(table.horizontal.values(), default=0.0), 0.0) + widest + TOLERANCE
        rows = conn.execute(
            "SELECT a.code, b.code, ST_Distance(a.geom, b.geom), ST_X(m.c), ST_Y(m.c), "
            "ST_X(x.geom), ST_Y(x.geom), "
            "ST_Z(ST_LineInterpolatePoint(a.geom, ST_LineLocatePoint(a.geom, x.geom))), "
            "ST_Z(ST_LineInterpolatePoint(b.geom, ST_LineLocatePoint(b.geom, x.geom))) "
            "FROM city_object a JOIN pipe_segment s ON s.code = a.code "
            "JOIN city_object b ON b.code > a.code AND b.kind LIKE '%%\\_pipe' "
            "AND ST_DWithin(a.geom, b.geom, %(reach)s) "
            "JOIN pipe_segment t ON t.code = b.code AND t.network <> s.network AND t.link_type = 'pipe' "
            "CROSS JOIN LATERAL (SELECT ST_LineInterpolatePoint(ST_ShortestLine(ST_Force2D(a.geom), "
            "ST_Force2D(b.geom)), 0.5) AS c) m "
            "LEFT JOIN LATERAL ST_DumpPoints(CASE WHEN ST_Intersects(a.geom, b.geom) THEN "
            "ST_Intersection(ST_Force2D(a.geom), ST_Force2D(b.geom)) END) x ON true "
            "WHERE a.kind LIKE '%%\\_pipe' AND " + PIPE_FILTER.format(s="s", o="a") + " AND "
            + PIPE_FILTER.format(s="t", o="b"),
            {"layers": layers, "reach": reach},
        ).fetchall()
        pairs = pd.DataFrame(rows, columns=["a", "b", "dist", "mx", "my", "cx", "cy", "za", "zb"])
        pairs = pairs[pairs["a"].isin(pipes.index) & pairs["b"].isin(pipes.index)]
        found = Violations(pipes=len(pipes), pairs=int(pairs[["a", "b"]].drop_duplicates().shape[0]),
                           unclassified=_unclassified(pipes))
        a, b = pipes.loc[pairs["a"]], pipes.loc[pairs["b"]]
        pairs = pairs.assign(ca=a["cls"].to_numpy(), cb=b["cls"].to_numpy(),
                             half=(a["w"].to_numpy() + b["w"].to_numpy()) / 2,
                             vhalf=(a["h"].to_numpy() + b["h"].to_numpy()) / 2)
        pairs = pairs[pairs["ca"].notna() & pairs["cb"].notna()]
        if pairs.empty:
            return found
        crossing = pairs["cx"].notna().to_numpy()
        kind = np.where(crossing, "vertical", "horizontal")
        keys = [(k, *_pair(p, q)) for k, p, q in zip(kind, pairs["ca"], pairs["cb"], strict=True)]
        vgap = np.abs(pairs["za"].to_numpy(float) - pairs["zb"].to_numpy(float)) - pairs["vhalf"].to_numpy()
        frame = pairs.assign(
            kind=kind, required=[getattr(table, k)[(p, q)] for k, p, q in keys],
            unverified=[f"{k}|{p}|{q}" in table.unverified for k, p, q in keys],
            gap=np.where(crossing, vgap, pairs["dist"].to_numpy(float) - pairs["half"].to_numpy()),
            x=np.where(crossing, pairs["cx"], pairs["mx"]).astype(float),
            y=np.where(crossing, pairs["cy"], pairs["my"]).astype(float))
        # one finding per pair: the tightest crossing point
        frame = frame.sort_values("gap", kind="stable").drop_duplicates(["a", "b"])
        frame = frame[frame["gap"] < frame["required"] - TOLERANCE]
        beside = frame["kind"] == "horizontal"
        if beside.any():
            frame = pd.concat([frame[~beside], _outside_crossings(conn, frame[beside])])
            frame = frame[frame["gap"] < frame["required"] - TOLERANCE]
    frame = frame.assign(short=frame["required"] - frame["gap"]).sort_values(["short", "a", "b"],
                                                                             ascending=[False, True, True])
    # a crossing through a node of either network is one problem, not one per pair of pipes meeting there
    spot = frame.assign(na=pipes.loc[frame["a"], "network"].to_numpy(), nb=pipes.loc[frame["b"], "network"].to_numpy(),
                        rx=np.round(frame["x"].to_numpy(float), 2), ry=np.round(frame["y"].to_numpy(float), 2))
    frame = frame[~(spot.duplicated(["kind", "na", "nb", "rx", "ry"]) & (spot["kind"] == "vertical")).to_numpy()]
    found.extend(Violation(
        r.kind, r.a, r.b, pipes.at[r.a, "network"], pipes.at[r.b, "network"], r.ca, r.cb, float(r.required),
        float(r.gap), float(r.x), float(r.y), bool(r.unverified), pipes.at[r.a, "source_id"],
        pipes.at[r.b, "source_id"]) for r in frame.itertuples())
    return found


# Service lines: the pipe ending at a service connection, then back through nodes that join just two pipes
# (meters, valves, bends) to the branch; each with the building the connection serves.
SERVED_SQL = """
WITH RECURSIVE ends AS (
  SELECT from_node AS node, code FROM pipe_segment UNION ALL SELECT to_node, code FROM pipe_segment
), degree AS (
  SELECT node, count(*) AS n FROM ends GROUP BY node
), served(code, building_code, building_ref, via, hops) AS (
  SELECT s.code, n.building_code, n.building_ref,
         CASE WHEN s.from_node = n.code THEN s.to_node ELSE s.from_node END, 0
  FROM pipe_node n JOIN pipe_segment s ON n.code IN (s.from_node, s.to_node)
  WHERE n.node_type = 'connection' AND (n.building_code IS NOT NULL OR n.building_ref IS NOT NULL)
  UNION
  SELECT e.code, v.building_code, v.building_ref,
         CASE WHEN s.from_node = v.via THEN s.to_node ELSE s.from_node END, v.hops + 1
  FROM served v JOIN degree d ON d.node = v.via AND d.n = 2
  JOIN ends e ON e.node = v.via AND e.code <> v.code JOIN pipe_segment s ON s.code = e.code
  WHERE v.hops < 20
)
"""


def check_buildings(model: Model, layers: list[str] | None = None,
                    table: ClearanceTable | None = None) -> Violations:
    """Pipes closer to a building (2D, outer wall to footprint) than their class's [building] value, worst
    first. A service line is exempt for the building it serves: the pipe ending at the building's service
    connection and the pipes before it back to the branch (through nodes joining just two pipes: meters,
    valves, bends)."""
    table = table or load_table()
    with model.connect() as conn:
        pipes = _pipes(conn, layers, table)
        if pipes.empty:
            return Violations()
        reach = max(table.building.values(), default=0.0) + float(pipes["w"].max()) / 2 + TOLERANCE
        rows = conn.execute(
            SERVED_SQL + "SELECT o.code, g.code, g.source_id, ST_Distance(o.geom, g.geom), "
            "ST_X(m.c), ST_Y(m.c) FROM city_object o JOIN pipe_segment s USING (code) "
            "JOIN city_object g ON g.kind = ANY(%(kinds)s) AND ST_DWithin(o.geom, g.geom, %(reach)s) "
            "AND g.status <> 'demolished' AND (g.valid_to IS NULL OR g.valid_to > now()) "
            "CROSS JOIN LATERAL (SELECT ST_ClosestPoint(ST_Force2D(o.geom), ST_Force2D(g.geom)) AS c) m "
            "WHERE o.kind LIKE '%%\\_pipe' AND " + PIPE_FILTER.format(s="s", o="o") + " AND NOT EXISTS ("
            "SELECT 1 FROM served v WHERE v.code = o.code "
            "AND (v.building_code IN (g.code, g.parent_code) OR v.building_ref IN (g.code, g.source_id)))",
            {"layers": layers, "reach": reach, "kinds": list(BUILDING_KINDS)},
        ).fetchall()
    near = pd.DataFrame(rows, columns=["a", "b", "source_b", "dist", "x", "y"])
    near = near[near["a"].isin(pipes.index)]
    found = Violations(pipes=len(pipes), pairs=len(near), unclassified=_unclassified(pipes))
    if near.empty:
        return found
    p = pipes.loc[near["a"]]
    near = near.assign(cls=p["cls"].to_numpy(), gap=near["dist"].to_numpy(float) - p["w"].to_numpy() / 2)
    near = near[near["cls"].notna()]
    near["required"] = near["cls"].map(table.building).astype(float)
    near = near[near["gap"] < near["required"] - TOLERANCE]
    near = near.assign(short=near["required"] - near["gap"]).sort_values(["short", "a", "b"],
                                                                        ascending=[False, True, True])
    found.extend(Violation(
        "building", r.a, r.b, pipes.at[r.a, "network"], "building", r.cls, None, float(r.required), float(r.gap),
        float(r.x), float(r.y), f"building|{r.cls}" in table.unverified, pipes.at[r.a, "source_id"], r.source_b)
        for r in near.itertuples())
    return found
