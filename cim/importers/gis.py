"""GIS vector layers (Shapefile, GeoPackage, GeoJSON, FlatGeobuf, …) → city objects.

Building footprints become LOD1 blocks: base from the terrain, height from a height field, else
floors × storey height, else a default. Other layers are draped on the terrain.
"""

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
from cim.importers.common import (
    check_source,
    ewkb_hex,
    json_lines,
    numbers,
    parse_crs,
    progress_bar,
    set_z,
    transform_xy,
)
from cim.importers.errors import InputError
from cim.importers.mapping import STATUS_WORDS, Mapping, resolve
from cim.model.kinds import KIND_ABBR, kind_for_layer
from cim.model.store import Batch, Model, WriteResult, write_objects
from cim.model.terrain import Ground

EXTRUDED = ("building", "building_part")  # kinds whose footprints become LOD1 blocks


@dataclass
class GisImport:
    result: WriteResult
    summary: dict


def choose_layer(path: Path, wanted: str | None, target_layer: str) -> str:
    try:
        layers = [name for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises several GDAL error types for unreadable files
        raise InputError(path, f"cannot read: {exc}") from None
    if not layers:
        raise InputError(path, "has no layers")
    if wanted:
        if wanted not in layers:
            raise InputError(path, f"has no layer {wanted!r}; layers: {', '.join(layers)}")
        return wanted
    if len(layers) == 1:
        return layers[0]
    if target_layer in layers:
        return target_layer
    raise InputError(path, f"has layers {', '.join(layers)}; choose one with --source-layer")


def read_layer(path: Path, layer: str) -> gpd.GeoDataFrame:
    try:
        frame = pyogrio.read_dataframe(path, layer=layer, fid_as_index=True)
    except Exception as exc:
        raise InputError(path, f"cannot read layer {layer!r}: {exc}") from None
    if not isinstance(frame, gpd.GeoDataFrame):
        raise InputError(path, f"layer {layer!r} has no geometry column")
    return frame


def _record_label(frame: gpd.GeoDataFrame, pos: int, mapping: Mapping) -> str:
    label = str(frame.index[pos])
    if "id" in mapping.fields:
        label += f" ({mapping.fields['id']}={frame.iloc[pos][mapping.fields['id']]})"
    return label


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a repaired footprint (make_valid may return collections with lines and points)."""
    parts, polygons = [geom], []
    while parts:
        part = parts.pop()
        if isinstance(part, shapely.Polygon):
            polygons.append(part)
        elif hasattr(part, "geoms"):
            parts.extend(part.geoms)
    polygons = [p for p in polygons if p.area > 0]
    return shapely.MultiPolygon(polygons) if polygons else shapely.Polygon()


def _check_geometry(frame: gpd.GeoDataFrame, path: Path, kind: str, mapping: Mapping, strict: bool,
                    ) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """Valid geometries for the records kept (a mixed building layer loses its non-polygons unless
    strict), the keep mask, labels of skipped records and how many were repaired."""
    skipped: list[str] = []
    geoms = frame.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise InputError(path, "has no geometry", _record_label(frame, pos, mapping))
    types = shapely.get_type_id(geoms)
    keep = np.ones(len(geoms), bool)
    if kind in EXTRUDED:
        keep = np.isin(types, (3, 6))
        if not keep.all() and (strict or not keep.any()):
            pos = int(np.flatnonzero(~keep)[0])
            gtype = shapely.geometry.base.GEOMETRY_TYPES[types[pos]]
            raise InputError(path, f"geometry is {gtype}; a {kind} layer needs Polygon or MultiPolygon",
                             _record_label(frame, pos, mapping))
        if not keep.all():
            skipped = [_record_label(frame, int(p), mapping) for p in np.flatnonzero(~keep)]
            geoms = geoms[keep]
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        fixed = shapely.make_valid(geoms[invalid])
        if kind in EXTRUDED:
            fixed = np.array([_polygonal_part(g) for g in fixed], dtype=object)
            empty = shapely.is_empty(fixed)
            if empty.any():
                pos = int(np.flatnonzero(keep)[np.flatnonzero(invalid)[np.flatnonzero(empty)[0]]])
                raise InputError(path, "footprint is invalid and has no area after repair",
                                 _record_label(frame, pos, mapping))
        geoms = geoms.copy()
        geoms[invalid] = fixed
    return geoms, keep, skipped, int(invalid.sum())


def _source_keys(frame: gpd.GeoDataFrame, mapping: Mapping, path: Path) -> tuple[pd.Series, pd.Series, str]:
    """Stable per-record keys: the id field when it is complete and unique, else the feature id. An id
    field named in a mapping file must be complete and unique."""
    fids = pd.Series(frame.index.astype(str), index=frame.index)
    if "id" in mapping.fields:
        field_name = mapping.fields["id"]
        ids = frame[field_name]
        missing, dup = ids.isna(), ids.duplicated(keep=False) & ids.notna()
        if not missing.any() and not dup.any():
            as_text = ids.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
            return as_text, as_text, f"id field {field_name}"
        if field_name in mapping.explicit:
            pos = int(np.flatnonzero((missing | dup).to_numpy())[0])
            reason = "has no id" if missing.iloc[pos] else f"repeats id {ids.iloc[pos]!r}"
            raise InputError(path, f"{reason} (field {field_name}); ids must be complete and unique",
                             frame.index[pos])
        return (path.name + "#" + fids, fids,
                f"feature id ({field_name} has {int(missing.sum())} empty and {int(dup.sum())} repeated ids)")
    return path.name + "#" + fids, fids, "feature id (no id field)"


def _numeric(frame: pd.DataFrame, mapping: Mapping, target: str) -> pd.Series:
    if target not in mapping.fields:
        return pd.Series(np.nan, index=frame.index)
    return numbers(frame[mapping.fields[target]])


def _ground_per_vertex(ground: Ground, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    z = ground.sample(coords[:, 0], coords[:, 1]) if ground else np.full(len(coords), np.nan)
    return z, owner


def build_records(frame: gpd.GeoDataFrame, path: Path, kind: str, model: Model, ground: Ground,
                  mapping: Mapping, source_crs: CRS, storey_height: float, default_height: float,
                  strict: bool = False) -> tuple[pd.DataFrame, dict]:
    """Turn a layer into model records (and a summary of the rules applied)."""
    geoms, keep, skipped, repaired = _check_geometry(frame, path, kind, mapping, strict)
    frame = frame[keep]
    try:
        geoms = transform_xy(geoms, source_crs, model.crs)
    except ValueError as exc:
        raise InputError(path, f"cannot transform from {source_crs.to_string()}: {exc}") from None
    source_has_z = shapely.has_z(geoms)
    n = len(frame)
    src_min_z = None
    if source_has_z.any():
        src_xyz, src_owner = shapely.get_coordinates(geoms, include_z=True, return_index=True)
        src_min_z = pd.Series(src_xyz[:, 2]).groupby(src_owner).min().reindex(range(n)).to_numpy()
    vz, owner = _ground_per_vertex(ground, geoms)
    # the batch summary keeps the first 100 skipped records, the count says how many there were
    summary: dict = {"records": n, "repaired_geometries": repaired, "skipped_count": len(skipped),
                     "skipped": skipped[:100]}
    if kind in EXTRUDED:
        base = pd.Series(vz).groupby(owner).min().reindex(range(n)).to_numpy()
        base_rule = np.where(np.isnan(base), "no terrain (0 m)", "terrain")
        if src_min_z is not None:
            use_src = np.isnan(base) & source_has_z
            base = np.where(use_src, src_min_z, base)
            base_rule = np.where(use_src, "source Z", base_rule)
        base = np.nan_to_num(base, nan=0.0)
        height = _numeric(frame, mapping, "height").to_numpy()
        floors = _numeric(frame, mapping, "floors").to_numpy()
        has_h = np.isfinite(height) & (height > 0)
        has_f = np.isfinite(floors) & (floors > 0)
        height_rule = np.select([has_h, has_f], ["height field", "floors x storey height"], "default height")
        final_h = np.select([has_h, has_f], [height, floors * storey_height], default_height)
        counts = shapely.get_num_coordinates(geoms)
        geoms = set_z(geoms, np.repeat(base, counts))
        top = base + final_h
        summary["height_rules"] = {k: int(v) for k, v in zip(*np.unique(height_rule, return_counts=True), strict=False)}
        summary["base_rules"] = {k: int(v) for k, v in zip(*np.unique(base_rule, return_counts=True), strict=False)}
        summary["storey_height"] = storey_height
        summary["default_height"] = default_height
        canonical = pd.DataFrame({"height": np.round(final_h, 3), "height_rule": height_rule,
                                  "floors": np.where(has_f, floors, np.nan)}, index=frame.index)
        lod = 1
    else:
        if src_min_z is not None:
            src_z = shapely.get_coordinates(geoms, include_z=True)[:, 2]
            vz = np.where(np.isnan(vz), src_z, vz)
        undraped = np.isnan(vz)
        vz = np.nan_to_num(vz, nan=0.0)
        geoms = set_z(geoms, vz)
        zs = pd.Series(vz).groupby(owner)
        base = zs.min().reindex(range(n)).to_numpy()
        top = zs.max().reindex(range(n)).to_numpy()
        summary["vertices_without_terrain"] = int(undraped.sum())
        canonical = pd.DataFrame(index=frame.index)
        lod = 0
    for target in ("use", "year"):
        if target in mapping.fields:
            canonical[target] = frame[mapping.fields[target]]
    year = _numeric(frame, mapping, "year").to_numpy() if "year" in mapping.fields else np.full(n, np.nan)
    year = np.where((year >= 1000) & (year <= 2200), year, np.nan)
    # 'YYYY-01-01' text, parsed by PostgreSQL: far cheaper than 100k Python datetimes
    years = np.unique(year[np.isfinite(year)]).astype(int)
    valid_from = pd.Series(year).map({float(y): f"{y:04d}-01-01" for y in years})
    if "status" in mapping.fields:
        status = frame[mapping.fields["status"]].astype(str).str.lower().map(STATUS_WORDS).fillna("existing")
    else:
        status = pd.Series("existing", index=frame.index)
    keys, source_ids, key_rule = _source_keys(frame, mapping, path)
    summary["key_rule"] = key_rule
    extra = frame.drop(columns=[frame.geometry.name]).drop(columns=list(canonical.columns), errors="ignore")
    attrs = pd.concat([canonical, extra], axis=1)
    if "name" in mapping.fields:
        names = frame[mapping.fields["name"]].astype(object)
    else:
        names = pd.Series(None, index=frame.index, dtype=object)
    records = pd.DataFrame({
        "source_key": keys.to_numpy(),
        "source_id": source_ids.to_numpy(),
        "kind": kind,
        "name": names.where(names.notna(), None).map(lambda v: None if v is None else str(v)).to_numpy(),
        "attributes": json_lines(attrs),
        "geom": ewkb_hex(geoms, model.info.srid),
        "base_z": base,
        "top_z": top,
        "lod": lod,
        "status": status.to_numpy(),
        "valid_from": valid_from.to_numpy(),
        "valid_to": pd.NaT,
    })
    return records, summary


def _positive(path: Path, mapping_file: Path | None, name: str, given: float | None, options: dict,
              default: float) -> float:
    """A height setting from the command line, else the mapping file, else the settings: a number > 0."""
    value, origin = given, f"--{name.replace('_', '-')}"
    if value is None and name in options:
        value, origin = options[name], f"{mapping_file}: options.{name}"
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise InputError(path, f"{origin} must be a positive number of metres, not {value!r}")
    return float(value)


def import_gis(model: Model, path: Path, layer: str, kind: str | None = None, crs: str | None = None,
               mapping_file: Path | None = None, source_layer: str | None = None,
               storey_height: float | None = None, default_height: float | None = None,
               strict: bool = False) -> GisImport:
    """Import one vector layer into `layer` of the model, replacing what this file brought before."""
    check_source(path)
    src_layer = choose_layer(path, source_layer, layer)
    frame = read_layer(path, src_layer)
    if frame.crs is None and crs is None:
        raise InputError(path, f"layer {src_layer!r} has no CRS; pass --crs EPSG:…")
    source_crs = parse_crs(path, crs) if crs else CRS.from_user_input(frame.crs)
    mapping = resolve([c for c in frame.columns if c != frame.geometry.name], path, mapping_file)
    kind = kind or mapping.options.get("kind") or kind_for_layer(layer)
    if kind not in KIND_ABBR:
        raise InputError(mapping_file or path, f"unknown kind {kind!r}; known: {', '.join(KIND_ABBR)}")
    cfg = settings()
    storey = _positive(path, mapping_file, "storey_height", storey_height, mapping.options, cfg.storey_height)
    default_h = _positive(path, mapping_file, "default_height", default_height, mapping.options,
                          cfg.default_building_height)
    if len(frame) == 0:
        raise InputError(path, f"layer {src_layer!r} has no features")
    with model.transaction() as conn:
        ground = Ground.load(conn)
        records, summary = build_records(frame, path, kind, model, ground, mapping, source_crs, storey, default_h,
                                         strict)
        summary.update(source_layer=src_layer, kind=kind, mapping=mapping.fields)
        with progress_bar(f"{path.name} → {layer}", len(records)) as advance:
            result = write_objects(conn, model.info, Batch("gis", layer, path, source_crs.to_string(), summary),
                                   records, advance)
    with model.connect(autocommit=True) as conn:
        conn.execute("ANALYZE city_object")
    return GisImport(result, summary)
