"""What of an IFC model becomes city objects: elements and spaces with their IFC data, and the spatial
hierarchy (project / site / building / storey) that contains them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import ifcopenshell
import ifcopenshell.util.element
import ifcopenshell.util.unit

from cim.importers.mapping import STATUS_WORDS
from cim.model.kinds import IFC_KINDS, IFC_SPATIAL_KINDS

# Not objects of their own: openings and additions are cut from or merged into their host; virtual
# elements are never built.
SKIPPED_CLASSES = ("IfcFeatureElement", "IfcVirtualElement")
_GENERIC_FLOW = {"IfcFlowSegment": "segment", "IfcFlowFitting": "fitting"}
_FLOW_MEDIA = (("IfcPipe", "pipe"), ("IfcDuct", "duct"), ("IfcCable", "cable"))


def elements(f: ifcopenshell.file) -> list[ifcopenshell.entity_instance]:
    """The IfcElements (without openings and virtual elements) and IfcSpaces of a model."""
    found = [e for e in f.by_type("IfcElement") if not any(e.is_a(c) for c in SKIPPED_CLASSES)]
    return found + list(f.by_type("IfcSpace"))


def containers(f: ifcopenshell.file) -> list[ifcopenshell.entity_instance]:
    """The project and its spatial elements (sites, buildings, storeys, facilities, zones), spaces aside."""
    spatial = "IfcSpatialStructureElement" if f.schema == "IFC2X3" else "IfcSpatialElement"
    return list(f.by_type("IfcProject")) + [e for e in f.by_type(spatial) if not e.is_a("IfcSpace")]


def kind_of(entity: ifcopenshell.entity_instance) -> str:
    """The model kind of an IFC entity (IFC2X3 flow segments and fittings refined by their type)."""
    cls = entity.is_a()
    if cls in IFC_SPATIAL_KINDS:
        return IFC_SPATIAL_KINDS[cls]
    if cls in _GENERIC_FLOW:
        element_type = ifcopenshell.util.element.get_type(entity)
        type_class = element_type.is_a() if element_type is not None else ""
        for prefix, medium in _FLOW_MEDIA:
            if type_class.startswith(prefix):
                return f"{medium}_{_GENERIC_FLOW[cls]}"
    for ifc_class, kind in IFC_KINDS:
        if entity.is_a(ifc_class):
            return kind
    if entity.is_a("IfcSpatialStructureElement"):
        return "bim_building"  # IFC4X3 facilities and facility parts
    if entity.is_a("IfcSpatialElement"):
        return "bim_zone"  # IfcSpatialZone, IfcExternalSpatialElement
    return "bim_element"


def parent_of(entity: ifcopenshell.entity_instance) -> ifcopenshell.entity_instance | None:
    """The object that contains an entity: its aggregate, else its spatial container, else its nest."""
    return (ifcopenshell.util.element.get_aggregate(entity)
            or ifcopenshell.util.element.get_container(entity)
            or ifcopenshell.util.element.get_nest(entity))


def plain(value: object) -> object:
    """IFC property values as JSON: entity references by name, tuples as lists, NaN as null."""
    if isinstance(value, ifcopenshell.entity_instance):
        return getattr(value, "Name", None) or f"{value.is_a()}#{value.id()}"
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _materials(entity: ifcopenshell.entity_instance) -> list[str]:
    names = []
    for material in ifcopenshell.util.element.get_materials(entity):
        name = getattr(material, "Name", None)
        if name and name not in names:
            names.append(name)
    return names


@dataclass
class EntityData:
    """Everything of one IFC entity the model keeps apart from its geometry."""

    guid: str
    kind: str
    name: str | None
    parent: str | None  # GlobalId of the containing object
    attributes: dict
    status: str


def entity_data(entity: ifcopenshell.entity_instance) -> EntityData:
    """Class, names, type, storey, materials, property and quantity sets of one entity."""
    parent = parent_of(entity)
    element_type = ifcopenshell.util.element.get_type(entity)
    psets, qtos = {}, {}
    for name, values in ifcopenshell.util.element.get_psets(entity).items():
        quantities = entity.file.by_id(values["id"]).is_a("IfcElementQuantity")
        (qtos if quantities else psets)[name] = plain(values)
    attrs = {
        "ifc_class": entity.is_a(),
        "global_id": entity.GlobalId,
        "predefined_type": ifcopenshell.util.element.get_predefined_type(entity),
        "object_type": getattr(entity, "ObjectType", None),
        "description": entity.Description,
        "tag": getattr(entity, "Tag", None),
        "type_name": element_type.Name if element_type is not None else None,
        "long_name": getattr(entity, "LongName", None),
        "storey": _storey_name(entity),
        "materials": _materials(entity),
        "psets": psets,
        "qtos": qtos,
    }
    if entity.is_a("IfcBuildingStorey") and entity.Elevation is not None:  # metres above the project's zero
        attrs["elevation_m"] = entity.Elevation * ifcopenshell.util.unit.calculate_unit_scale(entity.file)
    status = next((STATUS_WORDS[v] for v in (_word(p.get("Status")) for p in psets.values() if isinstance(p, dict))
                   if v in STATUS_WORDS), "existing")
    return EntityData(entity.GlobalId, kind_of(entity), entity.Name,
                      parent.GlobalId if parent is not None and hasattr(parent, "GlobalId") else None,
                      {k: v for k, v in attrs.items() if v not in (None, [], {}, "")}, status)


def _word(value: object) -> str | None:
    """An enumerated property's value (IFC4 gives a list), lower case."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value.lower() if isinstance(value, str) else None


def _storey_name(entity: ifcopenshell.entity_instance) -> str | None:
    node = entity
    for _ in range(16):  # walk up aggregates (a flight in a stair in a storey)
        node = parent_of(node)
        if node is None:
            return None
        if node.is_a("IfcBuildingStorey"):
            return node.Name or node.LongName or f"#{node.id()}"
    return None
