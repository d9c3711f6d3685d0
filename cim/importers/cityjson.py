"""CityJSON 1.0/1.1/2.0 city objects (LoD1/LoD2 buildings and the rest) → city objects with
PolyhedralSurfaceZ geometry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import CRS, Transformer

from cim.importers.common import check_source, horizontal, parse_crs, progress_bar
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
    if tf:
        verts = verts * np.asarray(tf["scale"], float) + np.asarray(tf["translate"], float)
    src_h, dst_h = horizontal(source_crs), horizontal(model.crs)
    if not src_h.equals(dst_h):
        tr = Transformer.from_crs(src_h, dst_h, always_xy=True)
        verts[:, 0], verts[:, 1] = tr.transform(verts[:, 0], verts[:, 1])
        if not np.isfinite(verts).all():
            raise InputError(path, f"vertices fall outside the area of use of {CRS(src_h).name}")
    rows = []
    skipped = {"no surface geometry": 0}
    n_verts = len(verts)
    for obj_id, obj in doc["CityObjects"].items():
        geometry = pick_geometry(obj.get("geometry") or [], lod)
        if geometry is None:
            skipped["no surface geometry"] += 1
            continue
        try:
            polys = surfaces_of(geometry)
            surfaces = []
            for rings in polys:
                idx = [np.asarray(r, dtype=np.int64) for r in rings]
                if any(len(r) < 3 or r.min() < 0 or r.max() >= n_verts for r in idx):
                    raise InputError(path, "a surface has fewer than 3 vertices or an index out of range",
                                     obj_id)
                surfaces.append([verts[r] for r in idx])
        except (TypeError, ValueError, KeyError):
            raise InputError(path, f"malformed {geometry.get('type')} boundaries", obj_id) from None
        if not surfaces:
            skipped["no surface geometry"] += 1
            continue
        z = np.concatenate([s[0][:, 2] for s in surfaces])
        attrs = dict(obj.get("attributes") or {})
        attrs["cityjson_type"] = obj.get("type")
        attrs["lod"] = str(geometry.get("lod"))
        for rel in ("parents", "children"):
            if obj.get(rel):
                attrs[rel] = obj[rel]
        year = attrs.get("yearOfConstruction")
        rows.append({
            "source_key": obj_id, "source_id": obj_id,
            "kind": CITYJSON_KINDS.get(obj.get("type"), "generic"),
            "name": attrs.get("name"), "attributes": json.dumps(attrs, ensure_ascii=False, default=str),
            "geom": polyhedral_ewkb(surfaces, model.info.srid),
            "base_z": float(z.min()), "top_z": float(z.max()),
            "lod": int(float(geometry.get("lod", 0))), "status": "existing",
            "valid_from": f"{int(year)}-01-01" if isinstance(year, (int, float)) and 1000 <= year <= 2200 else None,
            "valid_to": None,
        })
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
