"""GIS pipe layers (lines + points, CJJ 61-2017 fields by default) → a pipe network in the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from cim.config import settings
from cim.importers.common import check_source, numbers, parse_crs, progress_bar, transform_xy
from cim.importers.errors import InputError
from cim.importers.gis import read_layer
from cim.importers.mapping import STATUS_WORDS, match_fields
from cim.importers.pipes.assemble import assemble
from cim.importers.pipes.fields import (
    LINE_FIELDS,
    POINT_FIELDS,
    TYPE_CODES,
    PipeMapping,
    box_section,
    load_pipe_mapping,
    node_type_of,
    operable,
    valve_state,
)
from cim.importers.pipes.topology import Topology, build_topology
from cim.importers.pipes.write import write_network
from cim.model.kinds import NETWORKS
from cim.model.store import Batch, Model, WriteResult
from cim.model.terrain import Ground

LINE_TYPES = ("LineString", "MultiLineString")
POINT_TYPES = ("Point", "MultiPoint")
NETWORK_WORDS = {"water": ("water", "给水", "js"), "drainage": ("drain", "sewer", "storm", "rain", "排水", "ps"),
                 "gas": ("gas", "燃气", "rq"), "power": ("power", "electric", "电力", "dl"),
                 "telecom": ("telecom", "通信", "tx"), "heat": ("heat", "热力", "rl")}


@dataclass
class PipeImport:
    result: WriteResult
    summary: dict


def check_network(network: str, where: Path | str) -> str:
    if network not in NETWORKS:
        raise InputError(where, f"unknown network type {network!r}; known: {', '.join(NETWORKS)}")
    return network


def _layers(path: Path) -> list[tuple[str, str]]:
    try:
        return [(str(n), str(t)) for n, t in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises several GDAL error types for unreadable files
        raise InputError(path, f"cannot read: {exc}") from None


def _pick(path: Path, layers: list[tuple[str, str]], types: tuple[str, ...], network: str, wanted: list[str] | None,
          what: str) -> list[str]:
    """The layers of one geometry family for this network: the named ones, else the only one, else those
    whose name says the network."""
    names = [n for n, t in layers if any(t.startswith(g) for g in types)]
    if wanted is not None:
        missing = [w for w in wanted if w not in [n for n, _ in layers]]
        if missing:
            raise InputError(path, f"has no layer {missing[0]!r}; layers: {', '.join(n for n, _ in layers)}")
        return [w for w in wanted if w in names]
    if len(names) <= 1:
        return names
    words = NETWORK_WORDS[network]
    chosen = [n for n in names if any(w in n.lower() for w in words)]
    if not chosen:
        raise InputError(path, f"has {what} layers {', '.join(names)}; none is named for {network}: "
                               f"choose with --source-layer")
    return chosen


def _read(path: Path, layer: str, crs: CRS | None, model: Model) -> gpd.GeoDataFrame:
    frame = read_layer(path, layer)
    src = crs or (CRS.from_user_input(frame.crs) if frame.crs is not None else None)
    if src is None:
        raise InputError(path, f"layer {layer!r} has no CRS; pass --crs EPSG:…")
    geoms = frame.geometry.to_numpy()
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if empty.any():
        raise InputError(path, f"layer {layer!r} has no geometry", frame.index[int(np.flatnonzero(empty)[0])])
    try:
        geoms = transform_xy(geoms, src, model.crs)
    except ValueError as exc:
        raise InputError(path, f"cannot transform from {src.to_string()}: {exc}") from None
    frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index), crs=model.crs)
    frame["_file"], frame["_layer"], frame["_fid"] = path.name, layer, frame.index.astype(str)
    return frame.reset_index(drop=True)


def _single_lines(frame: gpd.GeoDataFrame) -> np.ndarray:
    geoms = shapely.line_merge(frame.geometry.to_numpy())
    multi = shapely.get_type_id(geoms) != 1
    if multi.any():
        pos = int(np.flatnonzero(multi)[0])
        row = frame.iloc[pos]
        raise InputError(row["_file"], f"layer {row['_layer']}: a pipe must be one connected line, this is "
                                       f"{shapely.get_num_geometries(geoms[pos])} parts", row["_fid"])
    return geoms


def _ids(frame: pd.DataFrame, fields: dict[str, str], prefix: str) -> np.ndarray:
    """Source ids: the id field where complete and unique, else file#layer#fid."""
    fallback = (frame["_layer"] + "#" + frame["_fid"]).to_numpy(dtype=object)
    if "id" not in fields:
        return fallback
    ids = frame[fields["id"]].map(lambda v: None if pd.isna(v) else
                                  str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    if ids.isna().any() or ids.duplicated().any():
        bad = ids.isna() | ids.duplicated(keep=False)
        row = frame[bad].iloc[0]
        raise InputError(row["_file"], f"layer {row['_layer']}: {prefix} id field {fields['id']} is "
                                       f"{'empty' if pd.isna(ids[bad].iloc[0]) else 'repeated'}; ids must be "
                                       f"complete and unique", row["_fid"])
    return ids.to_numpy(dtype=object)


def _col(frame: pd.DataFrame, fields: dict[str, str], target: str) -> pd.Series:
    return frame[fields[target]] if target in fields else pd.Series(np.nan, index=frame.index)


def _text(values: pd.Series) -> pd.Series:
    out = values.astype(object)
    return out.where(out.notna(), None).map(lambda v: None if v is None else str(v).strip() or None)


def _subtypes(lines: pd.DataFrame, fields: dict[str, str], network: str) -> pd.Series:
    if "type_code" not in fields:
        return pd.Series(None, index=lines.index, dtype=object)
    codes = lines[fields["type_code"]].astype("string").str.strip().str.upper()
    known = codes.map(lambda c: TYPE_CODES.get(c) if isinstance(c, str) else None)
    bad = codes.notna() & known.isna()
    wrong = known.map(lambda t: t is not None and t[0] != network)
    for mask, why in ((bad, "unknown type code {code!r} (CJJ 61 codes: " + ", ".join(TYPE_CODES) + ")"),
                      (wrong, "type code {code!r} is a {net} pipe, not {network}")):
        if mask.any():
            row = lines[mask].iloc[0]
            code = codes[mask].iloc[0]
            net = TYPE_CODES.get(code, ("?",))[0]
            raise InputError(row["_file"], f"layer {row['_layer']}: " + why.format(code=code, net=net,
                                                                                      network=network), row["_fid"])
    return known.map(lambda t: None if t is None else t[1])


def _point_types(points: pd.DataFrame, fields: dict[str, str]) -> pd.Series:
    kind = pd.Series(np.nan, index=points.index, dtype=object)
    for target in ("appurtenance", "feature"):
        if target in fields:
            kind = kind.fillna(node_type_of(points[fields[target]]))
    return kind.fillna(node_type_of(points["_layer"])).fillna("junction")


def _sizes(lines: pd.DataFrame, fields: dict[str, str], mapping: PipeMapping) -> pd.DataFrame:
    diameter = numbers(_col(lines, fields, "diameter"))
    unit = mapping.options.get("diameter_unit")
    if unit is None and diameter.notna().any() and (diameter.dropna() < 5).all():
        unit = "m"  # e.g. WNTR's GIS export: all diameters below 5 can only be metres
    if unit == "m":
        diameter = diameter * 1000.0
    width, height = box_section(_col(lines, fields, "section"))
    box = width.notna() & height.notna() & diameter.isna()
    return pd.DataFrame({
        "shape": np.where(box, "box", "circular"),
        "diameter_mm": diameter.where(~box),
        "width_mm": width.where(box, diameter),
        "height_mm": height.where(box, diameter),
    }, index=lines.index)


def _link_points(points: pd.DataFrame, pfields: dict[str, str]) -> np.ndarray:
    """Point features that stand for a link between two named nodes (a pump exported as a point)."""
    if "from_node" not in pfields or "to_node" not in pfields:
        return np.zeros(len(points), bool)
    return (points[pfields["from_node"]].notna() & points[pfields["to_node"]].notna()).to_numpy()


def _topology(lines: pd.DataFrame, geoms: np.ndarray, line_ids: np.ndarray, lfields: dict[str, str],
              points: pd.DataFrame, point_ids: np.ndarray, point_types: np.ndarray, tol: float) -> Topology:
    pxy = shapely.get_coordinates(points.geometry.to_numpy()) if len(points) else np.zeros((0, 2))
    named = "from_node" in lfields and "to_node" in lfields and \
        lines[lfields["from_node"]].notna().all() and lines[lfields["to_node"]].notna().all()
    ends = (_text(lines[lfields["from_node"]]).to_numpy(), _text(lines[lfields["to_node"]]).to_numpy()) \
        if named else (None, None)
    return build_topology(geoms, line_ids, pxy, point_ids, point_types, tol, *ends)


def import_pipes(model: Model, path: Path, network: str, layer: str | None = None, points: list[Path] | None = None,
                 crs: str | None = None, mapping_file: Path | None = None, source_layers: list[str] | None = None,
                 snap: float | None = None) -> PipeImport:
    """Import a pipe network's lines (and point files) into `layer` (default: the network name)."""
    check_network(network, mapping_file or path)
    check_source(path)
    layer = layer or network
    mapping = load_pipe_mapping(mapping_file)
    src_crs = parse_crs(path, crs) if crs else None
    tol = float(snap if snap is not None else mapping.options.get("snap_tolerance", settings().pipe_snap_tolerance))
    if not np.isfinite(tol) or tol <= 0:
        raise InputError(path, f"the snapping tolerance must be a positive number of metres, not {tol!r}")
    layers = _layers(path)
    wanted = source_layers or None
    line_layers = _pick(path, layers, LINE_TYPES, network, wanted or mapping.options.get("line_layers"), "line")
    if not line_layers:
        raise InputError(path, "has no line layer (pipes are lines)")
    point_sources = [(path, n) for n in _pick(path, layers, POINT_TYPES, network,
                                              wanted or mapping.options.get("point_layers"), "point")]
    for extra in points or []:
        check_source(extra)
        point_sources += [(extra, n) for n, t in _layers(extra) if t.startswith(POINT_TYPES)]
    lines = pd.concat([_read(path, n, src_crs, model) for n in line_layers], ignore_index=True)
    pts = [_read(p, n, src_crs, model) for p, n in point_sources]
    pts = pd.concat(pts, ignore_index=True) if pts else gpd.GeoDataFrame(
        {"_file": [], "_layer": [], "_fid": []}, geometry=gpd.GeoSeries([], crs=model.crs))
    if len(lines) == 0:
        raise InputError(path, f"layer {line_layers[0]!r} has no features")
    lfields = match_fields([c for c in lines.columns if not c.startswith("_")], LINE_FIELDS, mapping.lines, path,
                           mapping_file)
    pfields = match_fields([c for c in pts.columns if not c.startswith("_")], POINT_FIELDS, mapping.points,
                           points[0] if points else path, mapping_file)
    geoms = _single_lines(lines)
    subtype = _subtypes(lines, lfields, network)
    line_ids = _ids(lines, lfields, "pipe")
    is_link = _link_points(pts, pfields)
    links, pts = pts[is_link].reset_index(drop=True), pts[~is_link].reset_index(drop=True)
    pts = pts[shapely.get_type_id(pts.geometry.to_numpy()) == 0].reset_index(drop=True) if len(pts) else pts
    point_ids = _ids(pts, pfields, "point") if len(pts) else np.array([], dtype=object)
    point_types = _point_types(pts, pfields).to_numpy(dtype=object) if len(pts) else np.array([], dtype=object)
    topo = _topology(lines, geoms, line_ids, lfields, pts, point_ids, point_types, tol)
    with model.transaction() as conn:
        ground = Ground.load(conn)
        nodes, segments, summary = _build(model, network, lines, line_ids, lfields, pts, pfields, links, topo,
                                          subtype, mapping, ground)
        summary.update(network=network, line_layers=line_layers,
                       point_layers=[f"{p.name}:{n}" for p, n in point_sources],
                       line_fields=lfields, point_fields=pfields)
        batch = Batch("pipes", layer, path, model.crs.to_string(), summary)
        with progress_bar(f"{path.name} → {layer}", len(nodes) + len(segments)) as advance:
            result = write_network(conn, model.info, batch, network, nodes, segments, advance)
    with model.connect(autocommit=True) as conn:
        conn.execute("ANALYZE city_object")
    return PipeImport(result, summary)


def _build(model: Model, network: str, lines: pd.DataFrame, line_ids: np.ndarray, lfields: dict[str, str],
           pts: pd.DataFrame, pfields: dict[str, str], links: pd.DataFrame, topo: Topology, subtype: pd.Series,
           mapping: PipeMapping, ground: Ground) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Node and segment tables for write_network, with heights, and the import report."""
    src = lines.iloc[topo.line_source].reset_index(drop=True)
    sizes = _sizes(lines, lfields, mapping).iloc[topo.line_source].reset_index(drop=True)
    node_pt = topo.node_point
    has_pt = node_pt >= 0
    ptrow = pts.iloc[node_pt[has_pt]] if len(pts) else pts

    def per_node(target: str, conv=numbers) -> np.ndarray:
        out = np.full(len(node_pt), np.nan, dtype=object if conv is _text else float)
        if target in pfields and len(pts):
            out[has_pt] = conv(ptrow[pfields[target]]).to_numpy()
        return out

    node_attrs = pd.DataFrame(index=range(len(node_pt)))
    if len(pts):
        extra = ptrow.drop(columns=[c for c in ptrow.columns if c.startswith("_")] + [ptrow.geometry.name])
        extra.index = np.flatnonzero(has_pt)
        node_attrs = extra.reindex(range(len(node_pt)))
    state = np.full(len(node_pt), None, dtype=object)
    oper = np.full(len(node_pt), None, dtype=object)
    if len(pts):
        if "valve_state" in pfields:
            state[has_pt] = valve_state(ptrow[pfields["valve_state"]]).to_numpy()
        if "operable" in pfields:
            oper[has_pt] = operable(ptrow[pfields["operable"]]).to_numpy()
    node_table = pd.DataFrame({
        "key": topo.node_key, "type": topo.node_type, "ground": per_node("ground"),
        "well_depth": per_node("well_depth"), "normal_state": state, "operable": oper,
        "building_ref": per_node("building", _text),
        "source_id": np.where(has_pt, topo.node_key, None),
    })
    seg = pd.DataFrame({
        "key": _segment_keys(line_ids, topo), "source_id": None, "link_type": "pipe",
        "from": topo.seg_from, "to": topo.seg_to, **{c: sizes[c].to_numpy() for c in sizes},
        "material": _text(_col(src, lfields, "material")).to_numpy(),
        "pressure_class": _text(_col(src, lfields, "pressure")).to_numpy(),
        "subtype": subtype.iloc[topo.line_source].to_numpy(),
        "year": numbers(_col(src, lfields, "year")).to_numpy(),
        "owner": _text(_col(src, lfields, "owner")).to_numpy(),
        "name": _text(_col(src, lfields, "road")).to_numpy(),
        "status": _text(_col(src, lfields, "status")).str.lower().map(STATUS_WORDS).fillna("existing").to_numpy(),
        "depth_start": numbers(_col(src, lfields, "depth_start")).to_numpy(),
        "depth_end": numbers(_col(src, lfields, "depth_end")).to_numpy(),
        "elevation_start": numbers(_col(src, lfields, "elevation_start")).to_numpy(),
        "elevation_end": numbers(_col(src, lfields, "elevation_end")).to_numpy(),
    })
    seg["source_id"] = seg["key"]
    seg_attrs = src.drop(columns=[c for c in src.columns if c.startswith("_")] + [src.geometry.name])
    link_rows = _links(links, pfields, topo)
    return assemble(model, network, node_table, node_attrs, topo.node_xy, seg, seg_attrs, topo.lines, link_rows,
                    mapping.options.get("depth_reference"), ground, topo.report,
                    where=lambda i: (src["_file"].iloc[i], src["_fid"].iloc[i]))


def _segment_keys(line_ids: np.ndarray, topo: Topology) -> np.ndarray:
    """Segment keys: the pipe id, with "/2", "/3" … on the later parts of a line split at points."""
    ids = line_ids[topo.line_source]
    part = pd.Series(topo.line_source).groupby(topo.line_source).cumcount().to_numpy()
    return np.where(part == 0, ids, np.char.add(np.char.add(ids.astype(str), "/"), (part + 1).astype(str)))


def _links(links: pd.DataFrame, pfields: dict[str, str], topo: Topology) -> pd.DataFrame:
    """Pumps and valves given as points with from/to node ids → link segments between those nodes."""
    if not len(links):
        return pd.DataFrame(columns=["key", "from", "to", "link_type"])
    index = {k: i for i, k in enumerate(topo.node_key)}
    frm, to = _text(links[pfields["from_node"]]), _text(links[pfields["to_node"]])
    unknown = ~frm.isin(index.keys()) | ~to.isin(index.keys())
    if unknown.any():
        row = links[unknown].iloc[0]
        raise InputError(row["_file"], f"layer {row['_layer']}: link names a node that no pipe reaches "
                                       f"({frm[unknown].iloc[0]} → {to[unknown].iloc[0]})", row["_fid"])
    kind = node_type_of(links["_layer"]).where(lambda s: s.isin(["pump", "valve"]), "link")
    return pd.DataFrame({"key": _ids(links, pfields, "link"), "from": frm.map(index).to_numpy(),
                         "to": to.map(index).to_numpy(), "link_type": kind.to_numpy()})
