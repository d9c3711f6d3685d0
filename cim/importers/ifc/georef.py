"""Where an IFC model lands: the georeferencing rules, tried in order, and the transform each gives.

1. IfcMapConversion (IFC4, IFC4X3) or, in IFC2X3, the ePSet_MapConversion / ePSet_ProjectedCRS property sets.
2. IfcSite RefLatitude / RefLongitude / RefElevation, turned by the context's TrueNorth.
3. ``--anchor LON,LAT,H`` (with ``--rotation``).
4. ``--crs`` alone: the model's coordinates already are map coordinates in that CRS.

Local coordinates are what ifcopenshell gives: world coordinates of the project, in metres. The
Scale rule is in ``horizontal_scale``; docs/importing.md explains it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import ifcopenshell
import ifcopenshell.util.element
import ifcopenshell.util.geolocation
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import numpy as np
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError

from cim.crs import height_factor, horizontal, xyz_transformer
from cim.importers.common import parse_crs
from cim.importers.errors import InputError

WGS84 = CRS.from_epsg(4326)
# A map conversion changes lengths only by the grid scale factor of the projection (and the elevation
# factor): well within 1 % anywhere a building stands. A reading of Scale outside this band is wrong.
PLAUSIBLE_SCALE = (0.99, 1.01)


@dataclass(frozen=True)
class Placement:
    """How local model coordinates (metres) reach the map: which rule, and its parameters."""

    rule: str  # "IfcMapConversion" | "ePSet_MapConversion" | "IfcSite reference" | "--anchor" | "--crs"
    note: str  # how the rule was read (Scale reading, CRS source, …)
    crs: CRS | None  # map CRS of the map rules; None for the geodetic rules (site reference, anchor)
    origin: tuple[float, float, float]  # map rules: E, N, H in metres; geodetic rules: lon, lat, H
    angle: float  # map rules: local x axis anticlockwise from map east (rad); geodetic: local +Y azimuth (rad)
    scale: float = 1.0  # horizontal local metres → map metres
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # engineering point the origin refers to (site origin)
    frame: np.ndarray | None = field(default=None, compare=False)  # world → engineering coordinates (4×4)

    @property
    def geodetic(self) -> bool:
        return self.crs is None

    def to_crs(self, xyz: np.ndarray, target: CRS) -> np.ndarray:
        """Local coordinates (n, 3) in metres → target CRS (x east, y north), heights in metres."""
        local = np.asarray(xyz, dtype=float)
        if self.frame is not None:
            local = local @ self.frame[:3, :3].T + self.frame[:3, 3]
        local = local - np.asarray(self.offset)
        if self.geodetic:
            return self._geodetic_to(local, target)
        c, s = math.cos(self.angle), math.sin(self.angle)
        e = self.origin[0] + self.scale * (c * local[:, 0] - s * local[:, 1])
        n = self.origin[1] + self.scale * (s * local[:, 0] + c * local[:, 1])
        h = self.origin[2] + local[:, 2]
        flat = horizontal(self.crs)
        unit = _metres_per_unit(flat)
        coords = np.column_stack([e / unit, n / unit, h / height_factor(self.crs)])
        fn = xyz_transformer(self.crs, target)
        out = coords if fn is None else fn(coords)
        if not np.isfinite(out).all():
            raise ValueError(f"the model falls outside the area of use of {flat.name}")
        return out

    def _geodetic_to(self, local: np.ndarray, target: CRS) -> np.ndarray:
        # Project the reference point, then turn and scale local metres by the projection's meridian
        # convergence and point scale factor there (finite differences, so no sign convention to trust).
        lon, lat, h = self.origin
        flat = horizontal(target)
        to_map = Transformer.from_crs(WGS84, flat, always_xy=True)
        dlat = 1e-4
        x, y = to_map.transform([lon, lon], [lat, lat + dlat])
        if not np.isfinite(x).all() or not np.isfinite(y).all():
            raise ValueError(f"lon {lon:.6f} lat {lat:.6f} is outside the area of use of {flat.name}")
        ground = Geod(ellps="WGS84").inv(lon, lat, lon, lat + dlat)[2]
        unit = _metres_per_unit(flat)
        grid = math.hypot(x[1] - x[0], y[1] - y[0]) * unit
        north_azimuth = math.atan2(x[1] - x[0], y[1] - y[0])  # true north, clockwise from grid north
        turn = self.angle + north_azimuth  # clockwise turn of local axes onto the grid
        k = grid / ground
        c, s = math.cos(turn), math.sin(turn)
        e = x[0] * unit + k * (c * local[:, 0] + s * local[:, 1])
        n = y[0] * unit + k * (-s * local[:, 0] + c * local[:, 1])
        return np.column_stack([e / unit, n / unit, (h + local[:, 2]) / height_factor(target)])

    def landed(self) -> dict:
        """Where the rule's reference point lands (the engineering origin, or the site origin for an IfcSite
        reference): lon, lat, height, source CRS, rotation, rule."""
        if self.geodetic:
            lon, lat, h = self.origin
            rotation = math.degrees(self.angle) + 0.0
            crs_name = "WGS 84 (lon/lat)"
        else:
            flat = horizontal(self.crs)
            unit = _metres_per_unit(flat)
            lon, lat = Transformer.from_crs(flat, WGS84, always_xy=True).transform(
                self.origin[0] / unit, self.origin[1] / unit)
            h = self.origin[2]
            rotation = -math.degrees(self.angle) + 0.0  # same sense as the geodetic rules: clockwise
            crs_name = f"{flat.name} (EPSG:{flat.to_epsg()})" if flat.to_epsg() else flat.name
        return {"lon": lon, "lat": lat, "height": h, "crs": crs_name, "rotation_deg": rotation,
                "rule": self.rule, "note": self.note}

    def describe(self) -> str:
        d = self.landed()
        north = "true" if self.geodetic else "grid"
        text = (f"landed at lon {d['lon']:.7f} lat {d['lat']:.7f} height {d['height']:.3f} m; source CRS "
                f"{d['crs']}; rotation {d['rotation_deg']:.4f}° (project +Y from {north} north, clockwise); "
                f"placed by {d['rule']}")
        return text + (f" ({d['note']})" if d["note"] else "")


def _metres_per_unit(crs: CRS) -> float:
    return crs.axis_info[0].unit_conversion_factor


def parse_map_crs(name: str | None) -> CRS | None:
    """The CRS an IfcProjectedCRS names ('EPSG:4547', 'urn:ogc:def:crs:EPSG::4547', a WKT or a PROJ name)."""
    if not name or not name.strip():
        return None
    text = name.strip()
    match = re.search(r"EPSG\D{0,8}(\d{4,6})\b", text, flags=re.IGNORECASE)
    try:
        if match and not re.match(r"(PROJ|GEOG|COMPD|GEOD|BOUND)\w*\[", text, flags=re.IGNORECASE):
            return CRS.from_epsg(int(match.group(1)))
        return CRS.from_user_input(text)  # WKT, whose first EPSG is its ellipsoid or base CRS, or a name
    except CRSError:
        return None


def horizontal_scale(scale: float | None, project_unit: float, map_unit: float) -> tuple[float, str]:
    """Local metres → map metres for an IfcMapConversion Scale, and which reading of Scale gave it."""
    # The schemas disagree on what Scale means when the project and map units differ. Each reading is tried in
    # turn; the first that keeps lengths within 1 % (all a real projection can do) wins. IFC4, and IFC4.3 after
    # PR #962: Scale converts project units into map units (mm → m: 0.001). IFC4.3 before it: units follow
    # from their definitions and Scale is the grid scale factor only. The buildingSMART 4.3 sample: Scale
    # given as project units per map unit (mm → m: 1000).
    s = 1.0 if scale is None else float(scale)
    u = project_unit / map_unit  # what a unit-converting Scale must be
    readings = [
        (s / u, "Scale converts project units to map units (IFC4)"),
        (s, "units follow the unit definitions; Scale is the grid scale factor (IFC4.3 wording)"),
        (1.0 / (s * u) if s else math.inf, "Scale read as project units per map unit (buildingSMART 4.3 sample)"),
    ]
    for factor, why in readings:
        if PLAUSIBLE_SCALE[0] <= factor <= PLAUSIBLE_SCALE[1]:
            agreed = abs(u - 1.0) < 1e-12 and abs(s - 1.0) < 1e-12
            given = "Scale omitted" if scale is None else f"Scale {s:g}"
            return factor, "" if agreed else f"{given}: {why}"
    raise ValueError(
        f"IfcMapConversion Scale {s:g} fits neither the project unit ({project_unit:g} m) and map unit "
        f"({map_unit:g} m) nor a grid scale factor"
    )


def _model_context(f: ifcopenshell.file) -> ifcopenshell.entity_instance | None:
    contexts = [c for c in f.by_type("IfcGeometricRepresentationContext")
                if not c.is_a("IfcGeometricRepresentationSubContext")]
    model = [c for c in contexts if c.ContextType == "Model" and c.CoordinateSpaceDimension == 3]
    return (model or contexts or [None])[0]


def _unit_of(unit: ifcopenshell.entity_instance | None) -> float | None:
    return None if unit is None else float(ifcopenshell.util.unit.get_unit_scale(unit))


def _check_lonlat(path: Path, lon: float, lat: float, what: str) -> None:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(path, f"{what}: longitude {lon} / latitude {lat} out of range")


def _number(path: Path, name: str, value: object) -> float | None:
    """A number from an IFC attribute or (IFC2X3) a property value, which may be text."""
    if value is None or value == "":
        return None
    try:
        return float(str(value).replace(",", ".")) if isinstance(value, str) else float(value)
    except ValueError:
        raise InputError(path, f"map conversion {name} {value!r} is not a number") from None


def _resolve_crs(path: Path, name: str | None, override: str | None) -> tuple[CRS, str]:
    if override:
        crs = parse_crs(path, override)
        if not horizontal(crs).is_projected:
            raise InputError(path, f"--crs {override}: map coordinates need a projected CRS")
        return crs, f"CRS from --crs {override}"
    crs = parse_map_crs(name)
    if crs is None:
        why = f"IfcProjectedCRS {name!r} is not a CRS pyproj knows" if name else "the IfcProjectedCRS has no name"
        raise InputError(path, f"{why}; pass --crs EPSG:…")
    if not horizontal(crs).is_projected:
        raise InputError(path, f"IfcProjectedCRS {name!r} is not a projected CRS")
    return crs, ""


def _map_rule(path: Path, rule: str, project_unit: float, crs_name: str | None, map_unit: float | None,
              values: dict, override: str | None) -> Placement:
    crs, crs_note = _resolve_crs(path, crs_name, override)
    # Without a MapUnit the map values are in the project's length unit (IFC4.3 documentation, issue #5).
    mu = map_unit or project_unit
    number = {k: _number(path, k, values.get(k)) for k in (
        "Scale", "XAxisAbscissa", "XAxisOrdinate", "Eastings", "Northings", "OrthogonalHeight")}
    try:
        scale, scale_note = horizontal_scale(number["Scale"], project_unit, mu)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    abscissa, ordinate = number["XAxisAbscissa"], number["XAxisOrdinate"]
    angle = 0.0
    if abscissa is not None and ordinate is not None:
        if abscissa == 0 and ordinate == 0:
            raise InputError(path, f"{rule}: XAxisAbscissa and XAxisOrdinate are both 0: the x axis has no direction")
        angle = math.atan2(ordinate, abscissa)
    origin = tuple((number[k] or 0.0) * mu for k in ("Eastings", "Northings", "OrthogonalHeight"))
    note = "; ".join(n for n in (scale_note, crs_note) if n)
    return Placement(rule, note, crs, origin, angle, scale)


def _map_conversion(f: ifcopenshell.file, path: Path, project_unit: float, override: str | None,
                    rotation: float | None) -> Placement | None:
    if f.schema == "IFC2X3":
        return _pset_map_conversion(f, path, project_unit, override)
    conversions = [c for c in f.by_type("IfcCoordinateOperation")
                   if c.is_a("IfcMapConversion") or c.is_a("IfcRigidOperation")]
    if not conversions:
        return None
    context = _model_context(f)
    conversion = next((c for c in conversions if c.SourceCRS == context), conversions[0])
    target = conversion.TargetCRS
    if target is None:
        raise InputError(path, f"{conversion.is_a()} #{conversion.id()} has no TargetCRS")
    if target.is_a("IfcGeographicCRS"):
        return _geographic_origin(f, path, conversion, project_unit, rotation)
    if conversion.is_a("IfcRigidOperation"):  # IFC4X3: a shift only
        values = {"Eastings": _measure(conversion.FirstCoordinate), "Northings": _measure(conversion.SecondCoordinate),
                  "OrthogonalHeight": conversion.Height}
    else:
        values = conversion.get_info(recursive=False)
    placement = _map_rule(path, conversion.is_a(), project_unit, target.Name,
                          _unit_of(getattr(target, "MapUnit", None)), values, override)
    if conversion.is_a("IfcMapConversionScaled") and (conversion.FactorX, conversion.FactorY) != (1.0, 1.0):
        raise InputError(path, "IfcMapConversionScaled with FactorX/FactorY other than 1 is not supported")
    return placement


def _geographic_origin(f: ifcopenshell.file, path: Path, conversion: ifcopenshell.entity_instance,
                       project_unit: float, rotation: float | None) -> Placement:
    """IFC4X3 IfcRigidOperation to an IfcGeographicCRS: the project origin at a longitude and latitude."""
    if not conversion.is_a("IfcRigidOperation"):
        raise InputError(path, f"{conversion.is_a()} #{conversion.id()} targets a geographic CRS; a map conversion "
                               "needs an IfcProjectedCRS")
    target = conversion.TargetCRS
    # angles in the CRS's AngleUnit, else the project's plane angle unit (radians per unit either way)
    radians = _unit_of(target.AngleUnit) or float(ifcopenshell.util.unit.calculate_unit_scale(f, "PLANEANGLEUNIT"))
    lon, lat = (math.degrees(_measure(v) * radians) for v in (conversion.FirstCoordinate, conversion.SecondCoordinate))
    _check_lonlat(path, lon, lat, f"IfcRigidOperation #{conversion.id()}")
    height_unit = _unit_of(getattr(target, "HeightUnit", None)) or project_unit
    azimuth, note = _azimuth(f, rotation)
    return Placement("IfcRigidOperation", f"{target.Name}; {note}", None,
                     (lon, lat, float(conversion.Height or 0.0) * height_unit), azimuth)


def _measure(value: object) -> float:
    return float(getattr(value, "wrappedValue", value))


# IFC2X3's MapUnit is free text: the spellings exporters write.
_UNIT_WORDS = {("METRE", "METER", "M", "METRES", "METERS"): 1.0, ("MILLIMETRE", "MILLIMETER", "MM"): 0.001,
               ("CENTIMETRE", "CENTIMETER", "CM"): 0.01, ("FOOT", "FEET", "FT"): 0.3048,
               ("USSURVEYFOOT", "USFOOT", "USFT", "SURVEYFOOT"): 1200 / 3937}


def _pset_unit(path: Path, word: object) -> float | None:
    if word is None or not str(word).strip():
        return None
    key = re.sub(r"[\s_.-]", "", str(word)).upper()
    for words, metres in _UNIT_WORDS.items():
        if key in words:
            return metres
    raise InputError(path, f"ePSet_ProjectedCRS.MapUnit {word!r} is not a length unit (say METRE or MILLIMETRE)")


def _pset_map_conversion(f: ifcopenshell.file, path: Path, project_unit: float, override: str | None
                         ) -> Placement | None:
    """IFC2X3 georeferencing by the buildingSMART property sets on IfcProject or IfcSite."""
    for owner in f.by_type("IfcProject") + f.by_type("IfcSite"):
        psets = {k.lower(): v for k, v in ifcopenshell.util.element.get_psets(owner).items()}
        values = psets.get("epset_mapconversion")
        if values:
            crs_values = psets.get("epset_projectedcrs", {})
            unit = _pset_unit(path, crs_values.get("MapUnit"))
            return _map_rule(path, "ePSet_MapConversion", project_unit, crs_values.get("Name"), unit, values,
                             override)
    return None


def _true_north_azimuth(f: ifcopenshell.file) -> float | None:
    """Azimuth of the local +Y axis, clockwise from true north (rad), from the context's TrueNorth."""
    context = _model_context(f)
    north = getattr(context, "TrueNorth", None)
    if north is None:
        return None
    tx, ty = north.DirectionRatios[:2]
    return -math.atan2(tx, ty)


def _site_reference(f: ifcopenshell.file, path: Path, project_unit: float, rotation: float | None
                    ) -> Placement | None:
    for site in f.by_type("IfcSite"):
        if site.RefLatitude is None or site.RefLongitude is None:
            continue
        if not any(site.RefLatitude) and not any(site.RefLongitude):
            continue  # (0, 0): the placeholder authoring tools write, not a place in the Gulf of Guinea
        try:
            lat = ifcopenshell.util.geolocation.dms2dd(*site.RefLatitude)
            lon = ifcopenshell.util.geolocation.dms2dd(*site.RefLongitude)
        except (AssertionError, TypeError):
            raise InputError(path, f"IfcSite #{site.id()}: RefLatitude/RefLongitude mix signs") from None
        _check_lonlat(path, lon, lat, f"IfcSite #{site.id()} RefLongitude/RefLatitude")
        height = float(site.RefElevation or 0.0) * project_unit
        offset = (0.0, 0.0, 0.0)
        if site.ObjectPlacement is not None:
            matrix = ifcopenshell.util.placement.get_local_placement(site.ObjectPlacement)
            offset = tuple(float(v) * project_unit for v in matrix[:3, 3])
        azimuth, note = _azimuth(f, rotation)
        return Placement("IfcSite reference", note, None, (lon, lat, height), azimuth, 1.0, offset)
    return None


def _azimuth(f: ifcopenshell.file, rotation: float | None) -> tuple[float, str]:
    if rotation is not None:
        return math.radians(rotation), "rotation from --rotation"
    azimuth = _true_north_azimuth(f)
    if azimuth is None:
        return 0.0, "no TrueNorth: project north taken as true north"
    return azimuth, "rotation from TrueNorth"


def _engineering_frame(f: ifcopenshell.file, project_unit: float) -> np.ndarray | None:
    """World → engineering coordinates (metres): the inverse of the Model context's WorldCoordinateSystem."""
    wcs = getattr(_model_context(f), "WorldCoordinateSystem", None)
    if wcs is None or not wcs.is_a("IfcAxis2Placement3D"):
        return None
    matrix = np.array(ifcopenshell.util.placement.get_axis2placement(wcs), dtype=float)
    matrix[:3, 3] *= project_unit
    return None if np.allclose(matrix, np.eye(4)) else np.linalg.inv(matrix)


def locate(f: ifcopenshell.file, path: Path, *, anchor: tuple[float, float, float] | None = None,
           rotation: float | None = None, crs: str | None = None, ignore_georef: bool = False) -> Placement:
    """The placement of an IFC model by the first rule that applies (see the module docstring)."""
    project_unit = float(ifcopenshell.util.unit.calculate_unit_scale(f))
    frame = _engineering_frame(f, project_unit)
    if not ignore_georef:
        placement = (_map_conversion(f, path, project_unit, crs, rotation)
                     or _site_reference(f, path, project_unit, rotation))
        if placement is not None:
            if frame is not None and placement.geodetic:  # the site origin is a world point: move it too
                offset = frame[:3, :3] @ np.asarray(placement.offset) + frame[:3, 3]
                placement = replace(placement, offset=tuple(float(v) for v in offset))
            return replace(placement, frame=frame)
    if anchor is not None:
        lon, lat, h = anchor
        _check_lonlat(path, lon, lat, "--anchor")
        azimuth, note = _azimuth(f, rotation)
        return Placement("--anchor", note, None, (lon, lat, h), azimuth, frame=frame)
    if crs is not None:
        flat, _ = _resolve_crs(path, None, crs)
        return Placement("--crs", "model coordinates are map coordinates", flat, (0.0, 0.0, 0.0), 0.0, frame=frame)
    raise InputError(path, "model is not georeferenced; pass --anchor LON,LAT,H (and --rotation DEG), or --crs "
                           "EPSG:… when its coordinates already are map coordinates")


def check_area(path: Path, crs: CRS, lon: float, lat: float, rule: str, margin: float = 0.5) -> None:
    """Refuse a model that lands outside the storage CRS's area of use: wrong georeferencing or wrong model."""
    area = crs.area_of_use
    if area is None or area.west > area.east:
        return
    if not (area.west - margin <= lon <= area.east + margin and area.south - margin <= lat <= area.north + margin):
        raise InputError(path, f"the model lands at lon {lon:.5f} lat {lat:.5f} (placed by {rule}), outside the "
                               f"area of use of {crs.name} ({area.west}..{area.east}°E, {area.south}..{area.north}°N)")
