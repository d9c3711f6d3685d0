"""IFC2X3 / IFC4 / IFC4X3_ADD2 → city objects: every element and space with its IFC data and its TIN in
the storage CRS, and the project / site / building / storey hierarchy above them, in one transaction."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import ifcopenshell
import ifcopenshell.util.element
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import numpy as np
import pandas as pd
import psycopg
import shapely
from pyproj import CRS, Transformer

from cim.crs import horizontal
from cim.importers.common import ewkb_hex, progress_bar
from cim.importers.errors import InputError
from cim.importers.ifc.elements import EntityData, containers, elements, entity_data
from cim.importers.ifc.geometry import Meshes, box_ewkb, tin_ewkb, triangulate
from cim.importers.ifc.georef import WGS84, Placement, check_area, locate
from cim.importers.ifc.reader import open_ifc
from cim.model.store import Batch, Model, WriteResult, write_objects

LOD_BIM = 4  # component level: the most detailed shape the model holds of a building


@dataclass
class IfcImport:
    """What one IFC import wrote, its summary, and where the model was placed."""

    result: WriteResult
    summary: dict
    placement: Placement


def _extents(meshes: Meshes, world: np.ndarray, data: dict[str, EntityData]) -> dict[str, tuple]:
    """(min, max) corner of every object: its own mesh, grown by everything it contains."""
    starts = meshes.vertex_offsets[:-1]
    lows, highs = np.minimum.reduceat(world, starts), np.maximum.reduceat(world, starts)
    extents: dict[str, tuple] = {}
    for guid, lo, hi in zip(meshes.guids, lows, highs, strict=True):
        node, seen = guid, set()
        while node is not None and node not in seen:
            seen.add(node)
            old = extents.get(node)
            extents[node] = (lo, hi) if old is None else (np.minimum(old[0], lo), np.maximum(old[1], hi))
            node = data[node].parent if node in data else None
    return extents


def _centre_lonlat(world: np.ndarray, crs: CRS) -> tuple[float, float]:
    centre = (world.min(axis=0) + world.max(axis=0)) / 2
    return Transformer.from_crs(horizontal(crs), WGS84, always_xy=True).transform(centre[0], centre[1])


def _building_code(conn: psycopg.Connection, path: Path, wanted: str, explicit: bool) -> tuple[str | None, str]:
    """The unified code of the GIS building a BIM model stands for, by unified code or by source id."""
    rows = conn.execute(
        "SELECT code FROM city_object WHERE kind IN ('building', 'building_part') AND (code = %s OR source_id = %s) "
        "ORDER BY code = %s DESC", (wanted, wanted, wanted)).fetchall()
    if len(rows) == 1 or (rows and rows[0][0] == wanted):
        return rows[0][0], ""
    why = f"matches {len(rows)} buildings; give the unified code" if rows else "matches no building in the model"
    if explicit:
        raise InputError(path, f"--building-code {wanted}: {why}")
    return None, f"BuildingID {wanted} {why}: not linked"


def _building_id(f: ifcopenshell.file) -> str | None:
    for building in f.by_type("IfcBuilding"):
        value = ifcopenshell.util.element.get_pset(building, "Pset_BuildingCommon", "BuildingID")
        if value:
            return str(value)
    return None


def _kept_parent(guid: str | None, data: dict[str, EntityData], kept: set[str]) -> str | None:
    """The nearest container of an object that is itself imported (a skipped one is passed over)."""
    seen = set()
    while guid is not None and guid not in kept and guid not in seen:
        seen.add(guid)
        guid = data[guid].parent if guid in data else None
    return guid if guid in kept else None


def build_records(f: ifcopenshell.file, meshes: Meshes, world: np.ndarray, data: dict[str, EntityData],
                  placement: Placement, crs: CRS, project_unit: float) -> tuple[pd.DataFrame, Counter]:
    """One record per element with a mesh (its TIN), per container or mesh-less element holding meshes (their
    box), and per empty container (its placement origin); the rest are counted as skipped."""
    extents = _extents(meshes, world, data)
    mesh_of = {guid: i for i, guid in enumerate(meshes.guids)}
    srid = crs.to_epsg()
    rows, skipped = [], Counter()
    for guid, item in data.items():
        if guid in mesh_of:
            i = mesh_of[guid]
            v0, v1 = meshes.vertex_offsets[i], meshes.vertex_offsets[i + 1]
            t0, t1 = meshes.triangle_offsets[i], meshes.triangle_offsets[i + 1]
            geom, lod = tin_ewkb(world[v0:v1], meshes.triangles[t0:t1], srid), LOD_BIM
            lo, hi = extents[guid]
        elif guid in extents:
            lo, hi = extents[guid]
            geom, lod = box_ewkb(lo, hi, srid), None
        elif item.kind.startswith("bim_") and item.kind != "bim_element":  # an empty storey, site, …
            entity_placement = getattr(f.by_guid(guid), "ObjectPlacement", None)
            local = np.zeros((1, 3)) if entity_placement is None else \
                ifcopenshell.util.placement.get_local_placement(entity_placement)[:3, 3].reshape(1, 3) * project_unit
            lo = hi = placement.to_crs(local, crs)[0]
            geom, lod = ewkb_hex(shapely.points(lo.reshape(1, 3)), srid)[0], None
        else:
            skipped[f"{item.attributes['ifc_class']} without body geometry"] += 1
            continue
        rows.append({
            "source_key": guid, "source_id": guid, "kind": item.kind, "name": item.name,
            "attributes": item.attributes, "geom": geom, "base_z": float(lo[2]), "top_z": float(hi[2]),
            "lod": lod, "status": item.status, "valid_from": None, "valid_to": None, "parent_key": item.parent,
        })
    frame = pd.DataFrame(rows)
    kept = set(frame["source_key"])
    frame["parent_key"] = [_kept_parent(p, data, kept) for p in frame["parent_key"]]
    frame["lod"] = frame["lod"].astype("Int64")
    return frame, skipped


def import_ifc(model: Model, path: Path, layer: str = "bim", anchor: tuple[float, float, float] | None = None,
               rotation: float | None = None, crs: str | None = None, building_code: str | None = None,
               ignore_georef: bool = False, cores: int | None = None) -> IfcImport:
    """Import one IFC file into `layer`, replacing what the same file brought there before."""
    path = Path(path)
    f = open_ifc(path)
    placement = locate(f, path, anchor=anchor, rotation=rotation, crs=crs, ignore_georef=ignore_georef)
    landed = placement.landed()
    if placement.rule != "--crs":  # there the origin is the map CRS's own, not the model's
        check_area(path, model.crs, landed["lon"], landed["lat"], placement.rule)
    link: dict = {}
    wanted, explicit = (building_code, True) if building_code else (_building_id(f), False)
    if wanted:  # before the long work, so that a wrong --building-code fails at once
        with model.connect() as conn:
            code, note = _building_code(conn, path, wanted, explicit)
        link = {"building_code": code} if code else {"building_note": note}
    entities = elements(f)
    if not entities:
        raise InputError(path, "no IfcElement or IfcSpace to import")
    ifcopenshell.get_log()
    with progress_bar(f"triangulating {path.name}", len(entities)) as advance:
        meshes = triangulate(f, entities, advance, cores)
    failures = [line for line in ifcopenshell.get_log().splitlines() if "[error]" in line]
    if not meshes.guids:
        raise InputError(path, "no element has a body geometry ifcopenshell can triangulate")
    try:
        world = placement.to_crs(meshes.vertices, model.crs)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    check_area(path, model.crs, *_centre_lonlat(world, model.crs), placement.rule)

    data: dict[str, EntityData] = {}
    for entity in containers(f) + entities:
        if entity.GlobalId in data:
            raise InputError(path, f"GlobalId {entity.GlobalId} is used twice", f"#{entity.id()}")
        data[entity.GlobalId] = entity_data(entity)
    project_unit = float(ifcopenshell.util.unit.calculate_unit_scale(f))
    records, skipped = build_records(f, meshes, world, data, placement, model.crs, project_unit)
    summary = {
        "schema": f.schema_identifier, "placement": landed, "project_unit_m": project_unit,
        "kinds": dict(Counter(records["kind"]).most_common()), "skipped": dict(skipped),
        "triangles": int(len(meshes.triangles)), "geometry_errors": len(failures), **link,
    }
    if failures:
        summary["first_geometry_error"] = failures[0]
    if link.get("building_code"):
        for attrs, kind in zip(records["attributes"], records["kind"], strict=True):
            if kind == "bim_building":
                attrs["building_code"] = link["building_code"]
    records["attributes"] = [json.dumps(a, ensure_ascii=False, default=str) for a in records["attributes"]]
    with model.transaction() as conn:
        with progress_bar(f"writing {path.name}", len(records)) as advance:
            result = write_objects(conn, model.info, Batch("ifc", layer, path, landed["crs"], summary), records,
                                   advance)
    return IfcImport(result, summary, placement)
