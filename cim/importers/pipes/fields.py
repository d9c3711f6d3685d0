"""Default field names (CJJ 61-2017 survey tables, then common English ones), type codes and the words that
name node types; docs/pipes.md lists them. A mapping file overrides the fields ([lines], [points]) and sets
[options]."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cim.importers.errors import InputError
from cim.importers.mapping import field_table, read_mapping_file

LINE_FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("GXBH", "管线编号", "pipe_id", "id", "name"),
    "from_node": ("QDDH", "起点点号", "from_node", "start_node_name", "start_node", "node1", "us_node"),
    "to_node": ("ZDDH", "终点点号", "to_node", "end_node_name", "end_node", "node2", "ds_node"),
    "type_code": ("GXDM", "管线代码", "GXLB", "type_code"),
    "depth_start": ("QDMS", "起点埋深", "depth_start", "start_depth", "depth"),  # one depth: both ends
    "depth_end": ("ZDMS", "终点埋深", "depth_end", "end_depth", "depth"),
    "elevation_start": ("QDGC", "起点高程", "elevation_start", "invert_start", "us_invert"),
    "elevation_end": ("ZDGC", "终点高程", "elevation_end", "invert_end", "ds_invert"),
    "diameter": ("GJ", "管径", "diameter", "dn"),
    "section": ("DMCC", "断面尺寸", "section", "size"),
    "material": ("CZ", "材质", "material"),
    "pressure": ("YL", "压力", "pressure", "pressure_class"),
    "voltage": ("DY", "电压", "voltage"),
    "year": ("MSND", "埋设年代", "JSND", "year", "install_year"),
    "owner": ("QSDW", "权属单位", "owner"),
    "burial": ("MSFS", "埋设方式", "burial"),
    "road": ("SZDL", "所在道路", "road"),
    "status": ("ZT", "status", "lifecycle"),
}
POINT_FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("WTDH", "物探点号", "point_id", "id", "name"),
    "appurtenance": ("FSW", "附属物", "appurtenance", "node_type", "type"),
    "feature": ("TZ", "特征", "feature"),
    "ground": ("DMGC", "地面高程", "ground", "ground_elevation", "elevation"),
    "well_depth": ("JS", "井深", "well_depth", "manhole_depth"),
    "valve_state": ("FMZT", "阀门状态", "valve_state", "normal_state"),
    "operable": ("KCZ", "可操作", "operable"),
    "building": ("JHJZ", "接户建筑", "building", "bldg_code", "building_id"),
    # a point feature that is a link between two nodes (EPANET pumps and valves exported as points)
    "from_node": ("from_node", "start_node_name", "start_node", "node1"),
    "to_node": ("to_node", "end_node_name", "end_node", "node2"),
}
OPTIONS = ("depth_reference", "diameter_unit", "snap_tolerance", "line_layers", "point_layers")

# CJJ 61-2017 pipeline codes (管线代码) → network and subtype.
TYPE_CODES: dict[str, tuple[str, str | None]] = {
    "JS": ("water", None), "ZS": ("water", "reclaimed"),
    "PS": ("drainage", None), "YS": ("drainage", "rain"), "WS": ("drainage", "sewage"),
    "HS": ("drainage", "combined"),
    "RQ": ("gas", None), "MQ": ("gas", "coal_gas"), "TR": ("gas", "natural_gas"), "YH": ("gas", "lpg"),
    "DL": ("power", None), "GD": ("power", "supply"), "LD": ("power", "street_lighting"),
    "XH": ("power", "traffic_signal"),
    "TX": ("telecom", None), "DX": ("telecom", "telecom"), "LT": ("telecom", "unicom"), "YD": ("telecom", "mobile"),
    "DS": ("telecom", "cable_tv"), "JK": ("telecom", "monitoring"),
    "RL": ("heat", None), "RS": ("heat", "hot_water"), "ZQ": ("heat", "steam"),
}

# Words of FSW / TZ / layer names → node type, first match wins (so 排气阀, an air valve that isolates
# nothing, is a junction before 阀 makes it a valve; 阀门井, a valve chamber, is a valve before 井 a manhole).
NODE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("junction", ("排气阀", "排泥阀", "air valve", "air_valve", "washout")),
    ("valve", ("阀", "valve")),
    ("hydrant", ("消火栓", "消防栓", "hydrant")),
    ("meter", ("水表", "流量计", "meter")),
    ("inlet", ("雨水篦", "雨篦", "进水口", "收水井", "inlet", "gully")),
    ("outlet", ("出水口", "排放口", "出口", "outlet", "outfall")),
    ("manhole", ("井", "人孔", "手孔", "manhole", "chamber")),
    ("tank", ("水池", "水塔", "水箱", "tank")),
    ("source", ("水厂", "水源", "调压站", "门站", "变电站", "热源", "source", "reservoir", "plant", "substation")),
    ("pump", ("泵", "pump")),
    ("connection", ("接户", "进户", "入户", "connection", "service")),
    ("tee", ("三通", "四通", "多通", "tee", "cross")),
    ("end", ("预留", "堵头", "盲板", "stub", "plug", "cap")),
)
_OPEN = {"开", "open", "opened", "1", "true", "yes", "常开"}
_CLOSED = {"关", "闭", "closed", "close", "0", "false", "no", "常闭"}
_YES = {"是", "yes", "true", "1", "y", "可", "operable"}
_NO = {"否", "no", "false", "0", "n", "不可", "seized"}


def node_type_of(words: pd.Series) -> pd.Series:
    """Node type for each word (NaN where none matches)."""
    text = words.astype("string").str.lower()
    out = pd.Series(np.nan, index=words.index, dtype=object)
    for node_type, keys in NODE_WORDS:
        hit = out.isna() & text.str.contains("|".join(re.escape(k) for k in keys), regex=True).fillna(False)
        out[hit] = node_type
    return out


def valve_state(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    return pd.Series(np.select([text.isin(_CLOSED).fillna(False)], ["closed"], "open"), index=values.index)


def operable(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    return ~text.isin(_NO).fillna(False)


def box_section(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Width and height (mm) from sections like "1200X1000", "1200×1000", "1200*1000"."""
    parts = values.astype("string").str.extract(r"(\d+(?:\.\d+)?)\s*[xX×*]\s*(\d+(?:\.\d+)?)")
    return pd.to_numeric(parts[0], errors="coerce"), pd.to_numeric(parts[1], errors="coerce")


@dataclass
class PipeMapping:
    lines: dict[str, str] = field(default_factory=dict)  # explicitly mapped line fields
    points: dict[str, str] = field(default_factory=dict)
    options: dict = field(default_factory=dict)


def load_pipe_mapping(path: Path | None) -> PipeMapping:
    if path is None:
        return PipeMapping()
    data = read_mapping_file(path)
    unknown = set(data) - {"lines", "points", "options"}
    if unknown:
        raise InputError(path, f"unknown table(s) {sorted(unknown)}; a pipe mapping has [lines], [points], [options]")
    options = data.get("options", {})
    if not isinstance(options, dict) or set(options) - set(OPTIONS):
        raise InputError(path, f"[options] may set {', '.join(OPTIONS)}")
    if options.get("depth_reference", "crown") not in ("crown", "invert", "centre"):
        raise InputError(path, "options.depth_reference must be crown, invert or centre")
    if options.get("diameter_unit", "mm") not in ("mm", "m"):
        raise InputError(path, "options.diameter_unit must be mm or m")
    return PipeMapping(field_table(data, "lines", path, tuple(LINE_FIELDS)),
                       field_table(data, "points", path, tuple(POINT_FIELDS)), options)
