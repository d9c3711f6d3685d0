"""CityJSON 1.0/1.1/2.0 city objects (LoD1/LoD2 buildings and the rest) → city objects with
PolyhedralSurfaceZ geometry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cim.crs import xyz_transformer
from cim.importers.common import check_source, parse_crs, progress_bar
from cim.importers.errors import InputError
from cim.importers.polyhedral import polyhedral_ewkb
from cim.model.kinds import CITYJSON_KINDS
from cim.model.store import Batch, Model, WriteResult, write_objects

SURFACE_DEPTH = {"MultiSurface": 0, "CompositeSurface": 0, "Solid": 1, "MultiSolid": 2, "CompositeSolid": 2}


def reference_crs(doc: dict) -> str | None:
    ref = (doc.get("metadata") or {}).get("referenceSystem") or (doc.get("metadata") or {}).get("crs")
    if isinstance(ref, dict):  # CityJSON 1.0 {"epsg": 7415}
        ref = ref.get("epsg")
    if ref is None:
        return None
    match = re.search(r"EPSG(?:/\d+/|::?|:)(\d+)$", str(ref)) or re.fullmatch(r"(\d+)", str(ref))
    return f"EPSG:{match.group(1)}" if match else str(ref)


def surfaces_of(geometry: dict) -> list[list[list[int]]]:
    """The polygons (lists of rings of vertex indices) of one CityJSON geometry."""
    surfaces = geometry["boundaries"]
    for _ in range(SURFACE_DEPTH[geometry["type"]]):
        surfaces = [s for group in surfaces for s in group]
    return surfaces


def pick_geometry(geometries: list[dict], lod: str | None) -> dict | None:
    usable = [g for g in geometries if g.get("type") in SURFACE_DEPTH]
    if lod is not None:
        usable = [g for g in usable if str(g.get("lod")) == lod]
    if not usable:
        return None
    return max(usable, key=lambda g: float(g.get("lod", 0)))


def object_record(obj: dict, verts: np.ndarray, lod: str | None, srid: int) -> dict | str:
    """The model record of one CityObject, or why it was skipped."""
    geometries = obj.get("geometry") or []
    if not isinstance(geometries, list) or not all(isinstance(g, dict) for g in geometries):
        raise ValueError("geometry must be a list of geometry objects")
    geometry = pick_geometry(geometries, lod)
    if geometry is None:
        if any(g.get("type") == "GeometryInstance" for g in geometries):
            return "geometry templates (GeometryInstance) not supported yet"
        return "no surface geometry"
    surfaces = []
    for rings in surfaces_of(geometry):
        idx = [np.asarray(r) for r in rings]
        if any(r.ndim != 1 or r.dtype.kind not in "iu" or len(r) < 3 or r.min() < 0 or r.max() >= len(verts)
               for r in idx):
            raise ValueError("a surface has fewer than 3 vertices or an index that is not a vertex")
        surfaces.append([verts[r] for r in idx])
    if not surfaces:
        return "no surface geometry"
    z = np.concatenate([s[0][:, 2] for s in surfaces])
    attrs = obj.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise ValueError("attributes must be an object")
    attrs = dict(attrs, cityjson_type=obj.get("type"), lod=str(geometry.get("lod")))
    for rel in ("parents", "children"):
        if obj.get(rel):
            attrs[rel] = obj[rel]
    year = attrs.get("yearOfConstruction")
    name = attrs.get("name")
    return {
        "kind": CITYJSON_KINDS.get(obj.get("type"), "generic"),
        "name": None if name is None else str(name),
        "attributes": json.dumps(attrs, ensure_ascii=False, default=str, allow_nan=False),
        "geom": polyhedral_ewkb(surfaces, srid),
        "base_z": float(z.min()), "top_z": float(z.max()),
        "lod": int(float(geometry.get("lod", 0))), "status": "existing",
        "valid_from": f"{int(year)}-01-01" if isinstance(year, (int, float)) and 1000 <= year <= 2200 else None,
        "valid_to": None,
    }


def load(path: Path) -> dict:
    check_source(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "CityJSON":
        raise InputError(path, "not a CityJSON file (no \"type\": \"CityJSON\")")
    version = str(doc.get("version", ""))
    if version not in ("1.0", "1.1", "2.0"):
        raise InputError(path, f"unsupported CityJSON version {version!r} (supported: 1.0, 1.1, 2.0)")
    if not isinstance(doc.get("CityObjects"), dict) or not isinstance(doc.get("vertices"), list):
        raise InputError(path, "CityJSON without CityObjects or vertices")
    if not isinstance(doc.get("metadata", {}), dict):
        raise InputError(path, "metadata must be an object")
    return doc


def import_cityjson(model: Model, path: Path, layer: str = "citymodel", crs: str | None = None,
                    lod: str | None = None) -> tuple[WriteResult, dict]:
    """Import every city object with surface geometry; the highest LoD unless --lod picks one."""
    doc = load(path)
    declared = reference_crs(doc)
    if declared is None and crs is None:
        raise InputError(path, "no metadata.referenceSystem; pass --crs EPSG:…")
    source_crs = parse_crs(path, crs or declared)
    try:
        verts = np.asarray(doc["vertices"], dtype=float)
    except ValueError:
        raise InputError(path, "vertices are not all [x, y, z] numbers") from None
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise InputError(path, "vertices are not all [x, y, z] numbers")
    tf = doc.get("transform")
    if tf is not None:
        try:
            scale, translate = (np.asarray(tf[k], dtype=float) for k in ("scale", "translate"))
        except (TypeError, KeyError, ValueError):
            raise InputError(path, "transform needs scale and translate, each [x, y, z]") from None
        if scale.shape != (3,) or translate.shape != (3,):
            raise InputError(path, "transform needs scale and translate, each [x, y, z]")
        verts = verts * scale + translate
    fn = xyz_transformer(source_crs, model.crs)
    if fn is not None:
        verts = fn(verts)
        if not np.isfinite(verts).all():
            raise InputError(path, f"vertices fall outside the area of use of {source_crs.name}")
    rows = []
    skipped: dict[str, int] = {}
    for obj_id, obj in doc["CityObjects"].items():
        try:
            if not isinstance(obj, dict):
                raise ValueError("a city object must be a JSON object")
            record = object_record(obj, verts, lod, model.info.srid)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            raise InputError(path, f"malformed city object: {exc}", obj_id) from None
        if isinstance(record, str):
            skipped[record] = skipped.get(record, 0) + 1
            continue
        rows.append(dict(record, source_key=obj_id, source_id=obj_id))
    if not rows:
        raise InputError(path, "no city object with surface geometry" + (f" at LoD {lod}" if lod else ""))
    records = pd.DataFrame(rows)
    records["valid_from"] = pd.to_datetime(records["valid_from"], utc=True)
    kinds = records["kind"].value_counts().to_dict()
    summary = {"objects": len(records), "kinds": kinds, "skipped": skipped, "version": doc["version"],
               "lod": lod or "highest"}
    with model.transaction() as conn, progress_bar(f"{path.name} → {layer}", len(records)) as advance:
        result = write_objects(conn, model.info, Batch("cityjson", layer, path, source_crs.to_string(), summary),
                               records, advance)
    return result, summary
