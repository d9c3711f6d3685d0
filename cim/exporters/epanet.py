"""EPANET 2.2 .inp writer for a node / link table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

_NODE_TYPES = ("junction", "reservoir", "tank")
_LINK_TYPES = ("pipe", "pump", "valve")


def _num(v: float) -> str:
    """Compact decimal text (no exponent) for an .inp field."""
    return f"{float(v):.6f}".rstrip("0").rstrip(".") or "0"


def _col(df: pd.DataFrame, name: str, default: object) -> pd.Series:
    """A column, or `default` everywhere when the table does not have it; missing values take the default too."""
    if name not in df.columns:
        return pd.Series([default] * len(df), index=df.index, dtype=object)
    s = df[name].astype(object)
    return s.where(s.notna(), default)


def write_inp(path: Path, nodes: pd.DataFrame, links: pd.DataFrame, title: str, units: str = "LPS",
              headloss: str = "H-W") -> Path:
    """Write an EPANET input file.

    nodes: id, type (junction / reservoir / tank), elevation (m), demand (base demand in `units`), x, y, tag;
    optional: head (reservoir total head, default elevation), pattern, init_level, min_level, max_level,
    tank_diameter (tanks; defaults 2, 0, 4 m and 10 m).
    links: id, type (pipe / pump / valve), from, to, length (m), diameter (mm), roughness, vertices (list of
    (x, y) between the end nodes, or None), tag; optional: status (pipes: Open / Closed / CV), power (pumps, kW,
    default 10), valve_type (default TCV) and setting (valves, default 0).
    Ids and tags must be single words (no spaces), ids at most 31 characters.
    """
    path = Path(path)
    kind = nodes["type"].str.lower()
    ltype = links["type"].str.lower()
    if not kind.isin(_NODE_TYPES).all():
        raise ValueError(f"node types must be in {_NODE_TYPES}: {sorted(set(kind) - set(_NODE_TYPES))}")
    if not ltype.isin(_LINK_TYPES).all():
        raise ValueError(f"link types must be in {_LINK_TYPES}: {sorted(set(ltype) - set(_LINK_TYPES))}")
    for what, ids in (("node", nodes["id"]), ("link", links["id"])):
        ids = ids.astype(str)
        if ids.duplicated().any() or (ids.str.len() > 31).any() or ids.str.contains(r"\s").any():
            raise ValueError(f"{what} ids must be unique single words of at most 31 characters")

    nid, lid = nodes["id"].astype(str), links["id"].astype(str)
    elev = nodes["elevation"].astype(float)
    out = [f"[TITLE]\n{title}\n", "[JUNCTIONS]\n;ID\tElev\tDemand\tPattern"]
    pattern = _col(nodes, "pattern", "")
    j = kind == "junction"
    demand = _col(nodes, "demand", 0.0).astype(float)
    out += [f" {i}\t{_num(e)}\t{_num(d)}\t{p}\t;" for i, e, d, p in
            zip(nid[j], elev[j], demand[j], pattern[j], strict=True)]
    out.append("\n[RESERVOIRS]\n;ID\tHead\tPattern")
    r = kind == "reservoir"
    head = _col(nodes, "head", np.nan).astype(float).where(lambda s: s.notna(), elev)
    out += [f" {i}\t{_num(h)}\t{p}\t;" for i, h, p in zip(nid[r], head[r], pattern[r], strict=True)]
    out.append("\n[TANKS]\n;ID\tElevation\tInitLevel\tMinLevel\tMaxLevel\tDiameter\tMinVol")
    t = kind == "tank"
    tank = [_col(nodes, c, d).astype(float)[t] for c, d in
            (("init_level", 2.0), ("min_level", 0.0), ("max_level", 4.0), ("tank_diameter", 10.0))]
    out += [f" {i}\t{_num(e)}\t{_num(a)}\t{_num(b)}\t{_num(c)}\t{_num(d)}\t0\t;"
            for i, e, a, b, c, d in zip(nid[t], elev[t], *tank, strict=True)]

    ends = (links["from"].astype(str), links["to"].astype(str))
    length = _col(links, "length", 1.0).astype(float)
    diameter = _col(links, "diameter", 100.0).astype(float)
    rough = _col(links, "roughness", 130.0).astype(float)
    out.append("\n[PIPES]\n;ID\tNode1\tNode2\tLength\tDiameter\tRoughness\tMinorLoss\tStatus")
    p = ltype == "pipe"
    status = _col(links, "status", "Open")
    out += [f" {i}\t{a}\t{b}\t{_num(le)}\t{_num(d)}\t{_num(c)}\t0\t{s}\t;" for i, a, b, le, d, c, s in
            zip(lid[p], ends[0][p], ends[1][p], length[p], diameter[p], rough[p], status[p], strict=True)]
    out.append("\n[PUMPS]\n;ID\tNode1\tNode2\tParameters")
    u = ltype == "pump"
    power = _col(links, "power", 10.0).astype(float)
    out += [f" {i}\t{a}\t{b}\tPOWER {_num(w)}\t;" for i, a, b, w in
            zip(lid[u], ends[0][u], ends[1][u], power[u], strict=True)]
    out.append("\n[VALVES]\n;ID\tNode1\tNode2\tDiameter\tType\tSetting\tMinorLoss")
    v = ltype == "valve"
    vtype, setting = _col(links, "valve_type", "TCV"), _col(links, "setting", 0.0).astype(float)
    out += [f" {i}\t{a}\t{b}\t{_num(d)}\t{vt}\t{_num(s)}\t0\t;" for i, a, b, d, vt, s in
            zip(lid[v], ends[0][v], ends[1][v], diameter[v], vtype[v], setting[v], strict=True)]

    out.append("\n[TAGS]")
    for word, ids, tags in (("NODE", nid, _col(nodes, "tag", None)), ("LINK", lid, _col(links, "tag", None))):
        has = tags.notna() & (tags.astype(str) != "")
        out += [f" {word}\t{i}\t{g}" for i, g in zip(ids[has], tags[has], strict=True)]
    out.append(f"\n[OPTIONS]\n Units\t{units}\n Headloss\t{headloss}\n Demand Multiplier\t1.0\n")
    out.append("[TIMES]\n Duration\t0\n\n[REPORT]\n Status\tNo\n Summary\tNo\n")
    out.append("[COORDINATES]\n;Node\tX-Coord\tY-Coord")
    out += [f" {i}\t{x:.3f}\t{y:.3f}" for i, x, y in
            zip(nid, nodes["x"].astype(float), nodes["y"].astype(float), strict=True)]
    out.append("\n[VERTICES]\n;Link\tX-Coord\tY-Coord")
    verts = _col(links, "vertices", None)
    out += [f" {i}\t{float(x):.3f}\t{float(y):.3f}" for i, vs in zip(lid, verts, strict=True) if vs is not None
            for x, y in vs]
    out.append("\n[END]\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out), encoding="utf-8")
    return path
