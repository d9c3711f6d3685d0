"""Tiny IFC files for the georeferencing and importer tests, authored with ifcopenshell entity by entity.

Every file holds: a project in a chosen length unit, a 3D Model context (optional TrueNorth and
WorldCoordinateSystem), site → building → storey, and one element with a 1 m box as its Body.
Placements and the WCS are given in PROJECT units (what the file stores); map conversion values in
MAP units (the raw attribute values), exactly as an authoring tool would write them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import ifcopenshell
import ifcopenshell.guid

# unit key → (SI prefix, metres per unit, IFC2X3 ePSet_ProjectedCRS MapUnit label)
LENGTH_UNITS: dict[str, tuple[str | None, float, str]] = {
    "mm": ("MILLI", 0.001, "MILLIMETRE"),
    "cm": ("CENTI", 0.01, "CENTIMETRE"),
    "m": (None, 1.0, "METRE"),
}

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class MapConversion:
    """IfcProjectedCRS + IfcMapConversion (or, in IFC2X3, the ePSet_ProjectedCRS / ePSet_MapConversion psets)."""

    eastings: float
    northings: float = 0.0
    height: float = 0.0
    x_axis: tuple[float, float] | None = None  # (XAxisAbscissa, XAxisOrdinate); None = omitted
    scale: float | None = None  # None = Scale omitted
    crs_name: str = "EPSG:4547"
    map_unit: str | None = None  # "mm" | "cm" | "m"; None = MapUnit omitted


@dataclass(frozen=True)
class SiteReference:
    """IfcSite RefLatitude / RefLongitude (degrees, minutes, seconds, millionths) and RefElevation (project units)."""

    latitude: tuple[int, int, int, int]
    longitude: tuple[int, int, int, int]
    elevation: float | None = None


class _Writer:
    def __init__(self, schema: str, unit: str) -> None:
        self.f = ifcopenshell.file(schema=schema)
        self.schema = self.f.schema  # "IFC2X3" | "IFC4" | "IFC4X3"
        self.unit = unit
        self.history = self._owner_history() if self.schema == "IFC2X3" else None

    def _owner_history(self) -> ifcopenshell.entity_instance:
        # Mandatory on every IfcRoot in IFC2X3.
        f = self.f
        person = f.create_entity("IfcPerson", FamilyName="Test")
        org = f.create_entity("IfcOrganization", Name="cim tests")
        user = f.create_entity("IfcPersonAndOrganization", ThePerson=person, TheOrganization=org)
        app = f.create_entity("IfcApplication", ApplicationDeveloper=org, Version="0", ApplicationFullName="cim tests",
                              ApplicationIdentifier="cim")
        return f.create_entity("IfcOwnerHistory", OwningUser=user, OwningApplication=app, ChangeAction="ADDED",
                               CreationDate=0)

    def root(self, ifc_class: str, **attributes: object) -> ifcopenshell.entity_instance:
        return self.f.create_entity(ifc_class, GlobalId=ifcopenshell.guid.new(), OwnerHistory=self.history,
                                    **attributes)

    def length_unit(self, key: str) -> ifcopenshell.entity_instance:
        prefix = LENGTH_UNITS[key][0]
        return self.f.create_entity("IfcSIUnit", UnitType="LENGTHUNIT", Prefix=prefix, Name="METRE")

    def axis(self, location: Vec3 = (0.0, 0.0, 0.0), x_dir: Vec3 | None = None) -> ifcopenshell.entity_instance:
        f = self.f
        point = f.create_entity("IfcCartesianPoint", Coordinates=[float(v) for v in location])
        if x_dir is None:
            return f.create_entity("IfcAxis2Placement3D", Location=point)
        return f.create_entity("IfcAxis2Placement3D", Location=point,
                               Axis=f.create_entity("IfcDirection", DirectionRatios=[0.0, 0.0, 1.0]),
                               RefDirection=f.create_entity("IfcDirection", DirectionRatios=[float(v) for v in x_dir]))

    def placement(self, parent: ifcopenshell.entity_instance | None, location: Vec3 = (0.0, 0.0, 0.0),
                  angle_deg: float = 0.0) -> ifcopenshell.entity_instance:
        a = math.radians(angle_deg)
        x_dir = None if angle_deg == 0 else (math.cos(a), math.sin(a), 0.0)
        return self.f.create_entity("IfcLocalPlacement", PlacementRelTo=parent,
                                    RelativePlacement=self.axis(location, x_dir))

    def label(self, value: str) -> ifcopenshell.entity_instance:
        return self.f.create_entity("IfcLabel", value)

    def pset(self, owner: ifcopenshell.entity_instance, name: str, values: dict[str, ifcopenshell.entity_instance]
             ) -> None:
        props = [self.f.create_entity("IfcPropertySingleValue", Name=k, NominalValue=v) for k, v in values.items()]
        pset = self.root("IfcPropertySet", Name=name, HasProperties=props)
        self.root("IfcRelDefinesByProperties", RelatedObjects=[owner], RelatingPropertyDefinition=pset)


def write_ifc(path: Path, *, schema: str = "IFC4", unit: str = "mm", true_north: tuple[float, float] | None = None,
              wcs: Vec3 | None = None, wcs_angle_deg: float = 0.0, site_ref: SiteReference | None = None,
              site_at: Vec3 = (0.0, 0.0, 0.0), site_angle_deg: float = 0.0, element_at: Vec3 = (0.0, 0.0, 0.0),
              element_class: str = "IfcBuildingElementProxy", map_conversion: MapConversion | None = None,
              pset_owner: str = "IfcProject", pset_prefix: str = "ePSet_") -> Path:
    """Write a one-element IFC file and return its path.

    true_north: the Model context's TrueNorth (x, y) in project axes. wcs / wcs_angle_deg: its
    WorldCoordinateSystem location (project units) and x axis angle anticlockwise (identity when None).
    site_at / site_angle_deg: the IfcSite ObjectPlacement (absolute). element_at: the element's
    placement relative to the storey, which sits on the building, which sits on the site (both at 0).
    map_conversion: written as entities (IFC4, IFC4X3) or as psets on `pset_owner` (IFC2X3).
    """
    w = _Writer(schema, unit)
    f = w.f
    units = [w.length_unit(unit), f.create_entity("IfcSIUnit", UnitType="PLANEANGLEUNIT", Name="RADIAN")]
    north = None
    if true_north is not None:
        north = f.create_entity("IfcDirection", DirectionRatios=[float(v) for v in true_north])
    if wcs is None and wcs_angle_deg == 0:
        world = w.axis()
    else:
        a = math.radians(wcs_angle_deg)
        world = w.axis(wcs or (0.0, 0.0, 0.0), (math.cos(a), math.sin(a), 0.0))
    context = f.create_entity("IfcGeometricRepresentationContext", ContextType="Model", CoordinateSpaceDimension=3,
                              Precision=1e-5, WorldCoordinateSystem=world, TrueNorth=north)
    body = f.create_entity("IfcGeometricRepresentationSubContext", ContextIdentifier="Body", ContextType="Model",
                           ParentContext=context, TargetView="MODEL_VIEW")
    project = w.root("IfcProject", Name="georef test", RepresentationContexts=[context],
                     UnitsInContext=f.create_entity("IfcUnitAssignment", Units=units))

    site_placement = w.placement(None, site_at, site_angle_deg)
    site = w.root("IfcSite", Name="Site", ObjectPlacement=site_placement, CompositionType="ELEMENT")
    if site_ref is not None:
        site.RefLatitude, site.RefLongitude = site_ref.latitude, site_ref.longitude
        site.RefElevation = site_ref.elevation
    building_placement = w.placement(site_placement)
    building = w.root("IfcBuilding", Name="Building", ObjectPlacement=building_placement, CompositionType="ELEMENT")
    storey_placement = w.placement(building_placement)
    storey = w.root("IfcBuildingStorey", Name="Level 0", ObjectPlacement=storey_placement, CompositionType="ELEMENT")
    for parent, child in ((project, site), (site, building), (building, storey)):
        w.root("IfcRelAggregates", RelatingObject=parent, RelatedObjects=[child])

    size = 1.0 / LENGTH_UNITS[unit][1]  # a 1 m box in project units, corner at the element origin
    profile = f.create_entity("IfcRectangleProfileDef", ProfileType="AREA", XDim=size, YDim=size,
                              Position=f.create_entity("IfcAxis2Placement2D", Location=f.create_entity(
                                  "IfcCartesianPoint", Coordinates=[size / 2, size / 2])))
    solid = f.create_entity("IfcExtrudedAreaSolid", SweptArea=profile, Position=w.axis(),
                            ExtrudedDirection=f.create_entity("IfcDirection", DirectionRatios=[0.0, 0.0, 1.0]),
                            Depth=size)
    shape = f.create_entity("IfcShapeRepresentation", ContextOfItems=body, RepresentationIdentifier="Body",
                            RepresentationType="SweptSolid", Items=[solid])
    element = w.root(element_class, Name="Box", ObjectPlacement=w.placement(storey_placement, element_at),
                     Representation=f.create_entity("IfcProductDefinitionShape", Representations=[shape]))
    w.root("IfcRelContainedInSpatialStructure", RelatingStructure=storey, RelatedElements=[element])

    if map_conversion is not None:
        if w.schema == "IFC2X3":
            _map_conversion_psets(w, f.by_type(pset_owner)[0], map_conversion, pset_prefix)
        else:
            _map_conversion_entities(w, context, map_conversion)
    f.write(str(path))
    return path


def _map_conversion_entities(w: _Writer, context: ifcopenshell.entity_instance, mc: MapConversion) -> None:
    crs = w.f.create_entity("IfcProjectedCRS", Name=mc.crs_name,
                            MapUnit=None if mc.map_unit is None else w.length_unit(mc.map_unit))
    abscissa, ordinate = mc.x_axis if mc.x_axis is not None else (None, None)
    w.f.create_entity("IfcMapConversion", SourceCRS=context, TargetCRS=crs, Eastings=mc.eastings,
                      Northings=mc.northings, OrthogonalHeight=mc.height, XAxisAbscissa=abscissa,
                      XAxisOrdinate=ordinate, Scale=mc.scale)


def _map_conversion_psets(w: _Writer, owner: ifcopenshell.entity_instance, mc: MapConversion, prefix: str) -> None:
    f = w.f
    values = {"Eastings": f.create_entity("IfcLengthMeasure", mc.eastings),
              "Northings": f.create_entity("IfcLengthMeasure", mc.northings),
              "OrthogonalHeight": f.create_entity("IfcLengthMeasure", mc.height)}
    if mc.x_axis is not None:
        values["XAxisAbscissa"] = f.create_entity("IfcReal", mc.x_axis[0])
        values["XAxisOrdinate"] = f.create_entity("IfcReal", mc.x_axis[1])
    if mc.scale is not None:
        values["Scale"] = f.create_entity("IfcReal", mc.scale)
    w.pset(owner, f"{prefix}MapConversion", values)
    crs = {"Name": w.label(mc.crs_name)}
    if mc.map_unit is not None:
        crs["MapUnit"] = w.label(LENGTH_UNITS[mc.map_unit][2])
    w.pset(owner, f"{prefix}ProjectedCRS", crs)


# The offset-site case (IfcOpenShell's geolocation-mapconversion-offsetsite.ifc, rebuilt).
OFFSET_SITE_ELEMENT_LOCAL = (5.985_023_65, 14.709_510_79, 0.0)  # see write_offset_site
OFFSET_SITE_ELEMENT_MAP = (20.985_023_65, 14.709_510_79, 0.0)


def write_offset_site(path: Path, *, crs_name: str = "") -> Path:
    """mm project; IfcSite placed at (0, 10 m) with its x axis turned 15° anticlockwise; the element placed
    at (7 m, 3 m, 0) in the site's frame (building and storey at the site origin); IfcMapConversion
    E=15000 (no MapUnit: project mm → 15 m), N=0, H=0, no rotation, no Scale. CRS name as given
    (empty like the Bonsai file, so pass --crs / crs=…).

    Expected, by hand (cos 15° = 0.96592583, sin 15° = 0.25881905):
      element origin, project world coordinates (what ifcopenshell gives, metres)
        x = 0 + 7·cos15 − 3·sin15 = 6.76148078 − 0.77645714 = 5.98502365
        y = 10 + 7·sin15 + 3·cos15 = 10 + 1.81173332 + 2.89777748 = 14.70951079
      map coordinates: E = 15 + 5.98502365 = 20.98502365, N = 0 + 14.70951079, H = 0 + 0
    (OFFSET_SITE_ELEMENT_LOCAL and OFFSET_SITE_ELEMENT_MAP, to 0.01 mm). The box's other corners follow
    from its 1 m size along the element's (= the site's) axes.
    """
    return write_ifc(path, unit="mm", site_at=(0.0, 10000.0, 0.0), site_angle_deg=15.0,
                     element_at=(7000.0, 3000.0, 0.0),
                     map_conversion=MapConversion(eastings=15000.0, crs_name=crs_name))
