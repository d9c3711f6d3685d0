"""IFC2X3 / IFC4 / IFC4X3_ADD2 → city objects: every element and space with its IFC data and its TIN in
the storage CRS, and the project / site / building / storey hierarchy above them, in one transaction."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import ifcopenshell
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import numpy as np
import pandas as pd
import psycopg
import shapely
from pyproj import CRS

from cim.importers.common import progress_bar
from cim.importers.errors import InputError
from cim.importers.ifc.elements import EntityData, containers, elements, entity_data
from cim.importers.ifc.geometry import Meshes, tin_ewkb, triangulate
from cim.importers.ifc.georef import Placement, locate
from cim.importers.ifc.reader import open_ifc
from cim.importers.polyhedral import polyhedral_ewkb
from cim.model.store import Batch, Model, WriteResult, write_objects

LOD_BIM = 4  # component level: the most detailed shape the model holds of a building


@dataclass
class IfcImport:
    result: WriteResult
    summary: dict
    placement: Placement


# The six faces of a box, outward, as indices into its corners numbered by (x, y, z) bits.
_BOX_FACES = ((0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (1, 3, 7, 5), (0, 4, 6, 2))


def box_ewkb(lo: np.ndarray, hi: np.ndarray, srid: int) -> str:
    """A closed axis-aligned box as a PolyhedralSurfaceZ (the extent of a storey, building or site)."""
    bits = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=bool)
    corners = np.where(bits, hi, lo)
    return polyhedral_ewkb([[corners[list(face)]] for face in _BOX_FACES], srid)


def _point_ewkb(xyz: np.ndarray, srid: int) -> str:
    return shapely.to_wkb(shapely.set_srid(shapely.points(xyz), srid), hex=True, output_dimension=3,
                          include_srid=True)


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


def check_area(path: Path, placement: Placement, crs: CRS, margin: float = 0.5) -> None:
    """Refuse a model that lands outside the storage CRS's area of use: its georeferencing is wrong, or it
    belongs in another model."""
    area = crs.area_of_use
    if area is None or area.west > area.east:
        return
    where = placement.landed()
    lon, lat = where["lon"], where["lat"]
    if not (area.west - margin <= lon <= area.east + margin and area.south - margin <= lat <= area.north + margin):
        raise InputError(path, f"the model lands at lon {lon:.5f} lat {lat:.5f} (placed by {placement.rule}), "
                               f"outside the area of use of {crs.name} ({area.west}..{area.east}°E, "
                               f"{area.south}..{area.north}°N)")


def _origin_of(entity: ifcopenshell.entity_instance, unit: float) -> np.ndarray:
    placement = getattr(entity, "ObjectPlacement", None)
    if placement is None:
        return np.zeros((1, 3))
    return ifcopenshell.util.placement.get_local_placement(placement)[:3, 3].reshape(1, 3) * unit


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
        psets = ifcopenshell.util.element.get_psets(building)
        value = (psets.get("Pset_BuildingCommon") or {}).get("BuildingID")
        if value:
            return str(value)
    return None


def build_records(f: ifcopenshell.file, path: Path, meshes: Meshes, world: np.ndarray,
                  data: dict[str, EntityData], srid: int) -> tuple[pd.DataFrame, Counter]:
    """One record per element with a mesh, per container or mesh-less element holding meshes (its box)."""
    extents = _extents(meshes, world, data)
    unit = float(ifcopenshell.util.unit.calculate_unit_scale(f))
    rows, skipped = [], Counter()
    has_mesh = {}
    for i, guid in enumerate(meshes.guids):
        has_mesh[guid] = i
    for guid, item in data.items():
        if guid in has_mesh:
            i = has_mesh[guid]
            v0, v1 = meshes.vertex_offsets[i], meshes.vertex_offsets[i + 1]
            t0, t1 = meshes.triangle_offsets[i], meshes.triangle_offsets[i + 1]
            geom, lod = tin_ewkb(world[v0:v1], meshes.triangles[t0:t1], srid), LOD_BIM
            lo, hi = extents[guid]
        elif guid in extents:
            lo, hi = extents[guid]
            geom, lod = box_ewkb(lo, hi, srid), None
        elif item.kind.startswith("bim_") and item.kind != "bim_element":
            entity = f.by_guid(guid)
            xyz = _origin_of(entity, unit)
            lo = hi = xyz[0]
            geom, lod = _point_ewkb(xyz, srid)[0], None
        else:
            skipped[f"{item.attributes['ifc_class']} without body geometry"] += 1
            continue
        rows.append({
            "source_key": guid, "source_id": guid, "kind": item.kind, "name": item.name,
            "attributes": item.attributes, "geom": geom, "base_z": float(lo[2]), "top_z": float(hi[2]),
            "lod": lod, "status": item.status, "valid_from": None, "valid_to": None, "parent_key": item.parent,
        })
    frame = pd.DataFrame(rows)
    frame["lod"] = frame["lod"].astype("Int64")
    return frame, skipped


def import_ifc(model: Model, path: Path, layer: str = "bim", anchor: tuple[float, float, float] | None = None,
               rotation: float | None = None, crs: str | None = None, building_code: str | None = None,
               ignore_georef: bool = False, cores: int | None = None) -> IfcImport:
    """Import one IFC file into `layer`, replacing what the same file brought there before."""
    path = Path(path)
    f = open_ifc(path)
    placement = locate(f, path, anchor=anchor, rotation=rotation, crs=crs, ignore_georef=ignore_georef)
    check_area(path, placement, model.crs)
    link: dict = {}
    wanted, explicit = (building_code, True) if building_code else (_building_id(f), False)
    if wanted:  # before the long work, so that a wrong --building-code fails at once
        with model.connect() as conn:
            code, note = _building_code(conn, path, wanted, explicit)
        link = {"building_code": code} if code else {"building_note": note}
    entities = elements(f)
    if not entities:
        raise InputError(path, "no IfcElement or IfcSpace to import")
    with progress_bar(f"triangulating {path.name}", len(entities)) as advance:
        meshes = triangulate(f, entities, advance, cores)
    if not meshes.guids:
        raise InputError(path, "no element has a body geometry ifcopenshell can triangulate")
    try:
        world = placement.to_crs(meshes.vertices, model.crs)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None

    data: dict[str, EntityData] = {}
    for entity in containers(f) + entities:
        if entity.GlobalId in data:
            raise InputError(path, f"GlobalId {entity.GlobalId} is used twice", f"#{entity.id()}")
        data[entity.GlobalId] = entity_data(entity)
    records, skipped = build_records(f, path, meshes, world, data, model.info.srid)

    landed = placement.landed()
    summary = {
        "schema": f.schema_identifier, "placement": landed,
        "project_unit_m": float(ifcopenshell.util.unit.calculate_unit_scale(f)),
        "kinds": dict(Counter(records["kind"]).most_common()), "skipped": dict(skipped),
        "triangles": int(len(meshes.triangles)), **link,
    }
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
