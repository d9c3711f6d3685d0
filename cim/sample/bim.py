"""A georeferenced IFC4 building, authored with ifcopenshell.api, standing exactly on one district footprint.

Local (project) coordinates are millimetres with the origin on the footprint's first exterior vertex and x along
its first edge, so the footprint is the rectangle (0, 0)–(L, W). The IfcMapConversion takes them to EPSG:4547
the IFC4 way: E = Eastings + Scale · (x cos θ − y sin θ), N = Northings + Scale · (x sin θ + y cos θ), with
Scale = 0.001 and z = 0 at OrthogonalHeight, the lowest ground height under the footprint.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import ifcopenshell
import ifcopenshell.api.aggregate
import ifcopenshell.api.context
import ifcopenshell.api.feature
import ifcopenshell.api.geometry
import ifcopenshell.api.georeference
import ifcopenshell.api.material
import ifcopenshell.api.profile
import ifcopenshell.api.project
import ifcopenshell.api.pset
import ifcopenshell.api.root
import ifcopenshell.api.spatial
import ifcopenshell.api.system
import ifcopenshell.api.type
import ifcopenshell.api.unit
import ifcopenshell.guid
import ifcopenshell.util.geolocation
import numpy as np
import pandas as pd
import shapely
from ifcopenshell.util.shape_builder import ShapeBuilder
from pyproj import Transformer

from cim.sample import district

Entity = ifcopenshell.entity_instance
Vec = tuple[float, float, float]

USES = ("office", "residential")
FLOORS = (4, 8)
DEFAULT_STOREY_HEIGHT = 3.0  # m, when the GIS building has no height
SCALE = 0.001  # IfcMapConversion.Scale: project millimetres → map metres (the IFC4 reading)
TIMESTAMP = "2026-11-24T00:00:00+08:00"
WALL = 0.2  # exterior wall thickness (m)
PARTITION = 0.1  # interior wall thickness (m)
SLAB = 0.2  # floor and roof slab depth (m)
WINDOW = (1.2, 1.5, 0.9)  # width, height, sill above the floor (m)
DOOR = (0.9, 2.1)  # width, height (m)
FLIGHT_WIDTH = 1.1  # m
WINDOW_BAY = 3.0  # about one window per this much wall (m)
RISER_DN, BRANCH_DN = 100, 50  # nominal diameters (mm); PE100 SDR11 outside diameters below
RISER_OD, BRANCH_OD = 110.0, 63.0
SERVICE_DEPTH = 1.0  # incoming water main below ground (m)
_NAMESPACE = uuid.UUID("6f1c2a52-3f0e-5b8e-9a51-3c1d0e7a4b21")
_MM = 1000.0
# Mid-depth of the api's default window and door linings in their own y (m), to centre them in the wall.
_WINDOW_DEPTH_CENTRE, _DOOR_DEPTH_CENTRE = 0.0875, 0.0425


@dataclass(frozen=True)
class LocalFrame:
    """A rectangular footprint as the local rectangle (0, 0)–(length, width) m plus its map origin and x axis."""

    origin: tuple[float, float]  # map E, N (m) of the footprint's first exterior vertex
    axis: tuple[float, float]  # unit map direction of local x: first → second vertex of the CCW ring
    length: float  # m along local x
    width: float  # m along local y
    vertices: np.ndarray  # (4, 2) footprint vertices, anticlockwise from the origin

    @property
    def corners(self) -> np.ndarray:
        """Local corners (m) in the order of `vertices`."""
        return np.array([[0.0, 0.0], [self.length, 0.0], [self.length, self.width], [0.0, self.width]])

    @property
    def angle(self) -> float:
        """Local x axis anticlockwise from map east (rad)."""
        return math.atan2(self.axis[1], self.axis[0])

    def to_map(self, xy: np.ndarray) -> np.ndarray:
        """Local metres (n, 2) → map E, N (n, 2)."""
        xy = np.atleast_2d(np.asarray(xy, dtype=float))
        c, s = self.axis
        return np.column_stack([self.origin[0] + c * xy[:, 0] - s * xy[:, 1],
                                self.origin[1] + s * xy[:, 0] + c * xy[:, 1]])


def local_frame(footprint: shapely.Polygon, tolerance: float = 0.001) -> LocalFrame:
    """The local rectangle of a rectangular footprint; ValueError unless it reproduces every vertex within tolerance."""
    if footprint.geom_type != "Polygon" or len(footprint.interiors) or len(footprint.exterior.coords) != 5:
        raise ValueError("footprint is not a four-cornered polygon without holes")
    ring = np.asarray(footprint.exterior.coords)[:4, :2]
    if not footprint.exterior.is_ccw:
        # Walk a clockwise ring backwards from the same first vertex so the building is left of local x.
        ring = ring[[0, 3, 2, 1]]
    edge = ring[1] - ring[0]
    length = float(np.hypot(*edge))
    axis = (float(edge[0] / length), float(edge[1] / length))
    frame = LocalFrame((float(ring[0, 0]), float(ring[0, 1])), axis, length, float(np.hypot(*(ring[3] - ring[0]))),
                       ring)
    miss = float(np.abs(frame.to_map(frame.corners) - ring).max())
    if miss > tolerance:
        raise ValueError(f"footprint is not a rectangle: its local rectangle misses a vertex by {miss:.4f} m")
    return frame


def _is_rotated(frame: LocalFrame) -> bool:
    quarter = math.pi / 2
    return abs((frame.angle + quarter / 2) % quarter - quarter / 2) > 1e-4


def pick_building(buildings: gpd.GeoDataFrame) -> int:
    """Index label of the building the IFC replaces: a rectangle (4 corners, no holes) of use office or
    residential with 4–8 floors; rotated (not axis aligned) ones first, then the centroid closest to the
    district centre (ORIGIN + SIZE / 2), then the lowest label."""
    floors = pd.to_numeric(buildings["floors"], errors="coerce").astype(float)
    ok = buildings["use"].isin(USES) & floors.between(*FLOORS)
    centre = np.asarray(district.ORIGIN) + district.SIZE / 2
    best: tuple | None = None
    for label, geom in buildings.geometry[ok.to_numpy()].items():
        try:
            frame = local_frame(geom)
        except ValueError:
            continue
        c = geom.centroid
        key = (not _is_rotated(frame), math.hypot(c.x - centre[0], c.y - centre[1]), label)
        best = key if best is None or key < best else best
    if best is None:
        raise ValueError("no rectangular office or residential building with 4–8 floors")
    return best[2]


def _matrix(origin: Vec, x: Vec = (1.0, 0.0, 0.0), z: Vec = (0.0, 0.0, 1.0)) -> np.ndarray:
    """4x4 placement matrix (metres) from an origin and the x and z axes."""
    m = np.eye(4)
    m[:3, 0], m[:3, 2] = x, z
    m[:3, 1] = np.cross(z, x)
    m[:3, 3] = origin
    return m


@dataclass(frozen=True)
class _Plan:
    """The floor plan in local metres, the same on every storey."""

    length: float
    width: float
    storey_height: float
    a: float  # x of the partition between the main room and the core/wet room
    b: float  # y of the partition between the stair core and the wet room
    windows: tuple[tuple[float, ...], ...]  # per exterior wall: window centres along the footprint edge
    flight: tuple[float, float, float, int]  # x0, y0, going, risers
    riser: tuple[float, float]  # x, y of the water riser

    @classmethod
    def of(cls, length: float, width: float, storey_height: float) -> _Plan:
        if min(length, width) < 8.0 or storey_height < 2.8:
            raise ValueError(f"footprint {length:.1f} x {width:.1f} m, storey {storey_height:.2f} m: too small")
        windows, bays = [], []
        for edge in (length, width, length, width):
            n = max(1, round(edge / WINDOW_BAY))
            bays.append((n, edge / n))
            windows.append(tuple((j + 0.5) * edge / n for j in range(n)) if edge / n >= 2 * WINDOW[0] else ())
        (nx, bx), (ny, by) = bays[0], bays[1]
        # Partitions meet the facades on bay boundaries, so they never cut a window.
        a = bx * max(1, min(nx - 1, round(0.6 * nx)))
        b = by * max(1, min(ny - 1, math.ceil(ny / 2)))
        risers = math.ceil(storey_height / 0.18)
        y0 = WALL + 1.2  # a landing in front of the entrance door
        going = min(0.28, (b - PARTITION / 2 - 0.2 - y0) / risers)
        riser = (length - WALL - 0.25, width - WALL - 0.25)
        flight = (length - WALL - FLIGHT_WIDTH, y0, going, risers)
        return cls(length, width, storey_height, a, b, tuple(windows), flight, riser)


class _Writer:
    """Builds the IFC model; one instance per file."""

    def __init__(self, row: pd.Series, frame: LocalFrame, ground: float, storeys: int, storey_height: float,
                 seed: int) -> None:
        self.row, self.frame, self.ground, self.seed = row, frame, ground, seed
        self.n, self.h = storeys, storey_height
        self.plan = _Plan.of(frame.length, frame.width, storey_height)
        self.code = str(row["bldg_code"])
        self.f = ifcopenshell.api.project.create_file("IFC4")
        self.builder = ShapeBuilder(self.f)
        self.groups: dict[str, list] = {}

    # -- helpers ---------------------------------------------------------------------------------------
    def guid(self, key: str) -> str:
        return ifcopenshell.guid.compress(uuid.uuid5(_NAMESPACE, f"{self.seed}/{self.code}/{key}").hex)

    def entity(self, ifc_class: str, key: str, name: str | None = None, predefined_type: str | None = None,
               group: str | None = None) -> Entity:
        e = ifcopenshell.api.root.create_entity(self.f, ifc_class=ifc_class, name=name,
                                                predefined_type=predefined_type)
        e.GlobalId = self.guid(key)
        if group:
            self.groups.setdefault(group, []).append(e)
        return e

    def place(self, product: Entity, matrix: np.ndarray) -> None:
        ifcopenshell.api.geometry.edit_object_placement(self.f, product=product, matrix=matrix)

    def show(self, product: Entity, representation: Entity) -> None:
        ifcopenshell.api.geometry.assign_representation(self.f, product=product, representation=representation)

    def circle(self, diameter_mm: float, name: str) -> Entity:
        p = ifcopenshell.api.profile.add_parameterized_profile(self.f, ifc_class="IfcCircleProfileDef")
        ifcopenshell.api.profile.edit_profile(self.f, profile=p, attributes={"ProfileName": name,
                                                                             "Radius": diameter_mm / 2})
        return p

    def extrusion(self, points: list[tuple[float, float]], depth: float, origin: Vec = (0.0, 0.0, 0.0),
                  z: Vec = (0.0, 0.0, 1.0), x: Vec = (1.0, 0.0, 0.0)) -> Entity:
        """An extruded polygon (metres in, project millimetres out)."""
        curve = self.builder.polyline([(u * _MM, v * _MM) for u, v in points], closed=True)
        return self.builder.extrude(self.builder.profile(curve), depth * _MM, tuple(c * _MM for c in origin),
                                    position_z_axis=z, position_x_axis=x)

    def box(self, x0: float, y0: float, z0: float, dx: float, dy: float, dz: float) -> Entity:
        item = self.extrusion([(x0, y0), (x0 + dx, y0), (x0 + dx, y0 + dy), (x0, y0 + dy)], dz, (0.0, 0.0, z0))
        return self.builder.get_representation(self.body, [item])

    def cylinders(self, parts: list[tuple[Entity, tuple, tuple, float]]) -> Entity:
        """One representation of circular extrusions (profile, start (m), direction, length (m))."""
        items = []
        for profile, start, direction, length in parts:
            side = np.cross((0.0, 0.0, 1.0), direction)
            x = tuple(side / np.linalg.norm(side)) if np.linalg.norm(side) > 1e-9 else (1.0, 0.0, 0.0)
            items.append(self.builder.extrude(profile, length * _MM, tuple(c * _MM for c in start),
                                              position_z_axis=tuple(direction), position_x_axis=x))
        return self.builder.get_representation(self.body, items)

    def pset(self, products: list, name: str, properties: dict) -> None:
        """One property set shared by all products (one IfcRelDefinesByProperties)."""
        ps = ifcopenshell.api.pset.add_pset(self.f, product=products[0], name=name)
        ifcopenshell.api.pset.edit_pset(self.f, pset=ps, properties=properties)
        if len(products) > 1:
            ifcopenshell.api.pset.assign_pset(self.f, products=products[1:], pset=ps)

    def qto(self, product: Entity, name: str, quantities: dict) -> None:
        q = ifcopenshell.api.pset.add_qto(self.f, product=product, name=name)
        ifcopenshell.api.pset.edit_qto(self.f, qto=q, properties=quantities)

    # -- the model -------------------------------------------------------------------------------------
    def write(self, path: Path) -> Path:
        self.project()
        self.georeference()
        self.spatial()
        self.types()
        for i, storey in enumerate(self.storeys):
            self.storey(i, storey)
        self.roof()
        self.service_pipe()
        self.semantics()
        self.stable_guids()
        header = self.f.header.file_name
        header.name, header.time_stamp = path.name, TIMESTAMP
        header.author, header.organization = ("cim sample generator",), ("cim",)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f.write(str(path))
        return path

    def stable_guids(self) -> None:
        """Sort relationship members and give property sets and relationships GlobalIds from what they link."""
        schema = ifcopenshell.schema_by_name("IFC4")
        # The api builds relationship members and units in Python sets, whose order changes from run to run;
        # these attributes are SETs in the schema, so sorting them by entity id changes no meaning.
        for cls in ("IfcRelationship", "IfcUnitAssignment"):
            for e in self.f.by_type(cls):
                for k, value in enumerate(e):
                    if isinstance(value, tuple) and len(value) > 1 and isinstance(value[0], Entity):
                        e[k] = sorted(value, key=lambda v: v.id())
        for ps in self.f.by_type("IfcPropertySetDefinition"):
            owner = (ps.DefinesOccurrence or ps.DefinesType)[0]
            owner = owner.RelatedObjects[0] if owner.is_a("IfcRelDefinesByProperties") else owner
            ps.GlobalId = self.guid(f"{ps.Name}/{owner.GlobalId}")
        for rel in self.f.by_type("IfcRelationship"):
            names = [a.name() for a in schema.declaration_by_name(rel.is_a()).all_attributes()]
            ends = []
            for prefix in ("Relating", "Related"):
                end = getattr(rel, next(n for n in names if n.startswith(prefix)))
                end = end[0] if isinstance(end, tuple) else end
                ends.append(end.GlobalId if end.is_a("IfcRoot") else end.Name)
            rel.GlobalId = self.guid(f"{rel.is_a()}/{ends[0]}/{ends[1]}")

    def project(self) -> None:
        f = self.f
        self.ifc_project = self.entity("IfcProject", "project", "Xiangzhou district BIM sample")
        units = [ifcopenshell.api.unit.add_si_unit(f, unit_type="LENGTHUNIT", prefix="MILLI"),
                 ifcopenshell.api.unit.add_si_unit(f, unit_type="AREAUNIT"),
                 ifcopenshell.api.unit.add_si_unit(f, unit_type="VOLUMEUNIT"),
                 ifcopenshell.api.unit.add_si_unit(f, unit_type="PLANEANGLEUNIT")]
        ifcopenshell.api.unit.assign_unit(f, units=units)
        self.model = ifcopenshell.api.context.add_context(f, context_type="Model")
        self.body = ifcopenshell.api.context.add_context(f, context_type="Model", context_identifier="Body",
                                                         target_view="MODEL_VIEW", parent=self.model)

    def georeference(self) -> None:
        f, fr = self.f, self.frame
        ifcopenshell.api.georeference.add_georeferencing(f, ifc_class="IfcMapConversion", name=district.CRS)
        metre = ifcopenshell.api.unit.add_si_unit(f, unit_type="LENGTHUNIT")
        ifcopenshell.api.georeference.edit_georeferencing(
            f, projected_crs={"Description": "CGCS2000 / 3-degree Gauss-Kruger CM 114E", "GeodeticDatum": "CGCS2000",
                              "MapProjection": "Gauss-Kruger", "MapZone": "CM 114E", "MapUnit": metre},
            coordinate_operation={"Eastings": fr.origin[0], "Northings": fr.origin[1],
                                  "OrthogonalHeight": self.ground, "XAxisAbscissa": fr.axis[0],
                                  "XAxisOrdinate": fr.axis[1], "Scale": SCALE})
        # True north for readers that only know IfcSite's reference point: grid north at the origin, turned by
        # the meridian convergence, seen in the rotated local axes.
        to_geo = Transformer.from_crs(district.CRS, "EPSG:4490", always_xy=True)
        lon, lat = to_geo.transform(*fr.origin)
        to_map = Transformer.from_crs("EPSG:4490", district.CRS, always_xy=True)
        e, n = to_map.transform([lon, lon], [lat, lat + 1e-4])
        north = math.atan2(n[1] - n[0], e[1] - e[0]) - fr.angle
        ifcopenshell.api.georeference.edit_true_north(f, true_north=(math.cos(north), math.sin(north)))
        self.lonlat = (lon, lat)

    def spatial(self) -> None:
        f, row = self.f, self.row
        site = self.entity("IfcSite", "site", f"Lot of {self.code}")
        lon, lat = self.lonlat
        site.RefLatitude = ifcopenshell.util.geolocation.dd2dms(lat, use_us=True)
        site.RefLongitude = ifcopenshell.util.geolocation.dd2dms(lon, use_us=True)
        site.RefElevation = self.ground * _MM
        name = row["name"] if isinstance(row["name"], str) else self.code
        building = self.entity("IfcBuilding", "building", name)
        building.LongName = f"{row['use']} building {self.code}"
        building.ElevationOfRefHeight = building.ElevationOfTerrain = self.ground * _MM
        ifcopenshell.api.aggregate.assign_object(f, products=[site], relating_object=self.ifc_project)
        ifcopenshell.api.aggregate.assign_object(f, products=[building], relating_object=site)
        self.storeys = []
        for i in range(self.n):
            s = self.entity("IfcBuildingStorey", f"storey/{i}", f"{i + 1}F")
            s.Elevation = i * self.h * _MM
            self.storeys.append(s)
        ifcopenshell.api.aggregate.assign_object(f, products=self.storeys, relating_object=building)
        for product in (site, building):
            self.place(product, np.eye(4))
        for i, s in enumerate(self.storeys):
            self.place(s, _matrix((0.0, 0.0, i * self.h)))
        props = {"BuildingID": self.code, "NumberOfStoreys": self.n, "OccupancyType": row["use"],
                 "YearOfConstruction": str(row["year"])}
        self.pset([building], "Pset_BuildingCommon", props)

    def types(self) -> None:
        f = self.f
        self.window_type = self.entity("IfcWindowType", "type/window", "Window 1200x1500", "WINDOW")
        self.window_type.PartitioningType = "SINGLE_PANEL"
        self.show(self.window_type, ifcopenshell.api.geometry.add_window_representation(
            f, context=self.body, overall_width=WINDOW[0] * _MM, overall_height=WINDOW[1] * _MM))
        self.door_type = self.entity("IfcDoorType", "type/door", "Door 900x2100", "DOOR")
        self.door_type.OperationType = "SINGLE_SWING_LEFT"
        self.show(self.door_type, ifcopenshell.api.geometry.add_door_representation(
            f, context=self.body, overall_width=DOOR[0] * _MM, overall_height=DOOR[1] * _MM))
        self.pipe_types = {}
        for dn, od in ((RISER_DN, RISER_OD), (BRANCH_DN, BRANCH_OD)):
            t = self.entity("IfcPipeSegmentType", f"type/pipe/{dn}", f"PE100 SDR11 DN{dn}", "RIGIDSEGMENT")
            self.pset([t], "Pset_PipeSegmentTypeCommon",
                      {"NominalDiameter": float(dn), "OuterDiameter": od, "InnerDiameter": round(od * 9 / 11, 1),
                       "WorkingPressure": 1.6e6})
            self.pipe_types[dn] = t
        self.profiles = {"riser": self.circle(RISER_OD, "PE DN100"), "branch": self.circle(BRANCH_OD, "PE DN50"),
                         "fitting": self.circle(RISER_OD + 30, "Fitting DN100"),
                         "stub": self.circle(BRANCH_OD + 20, "Fitting DN50"), "rail": self.circle(40.0, "Rail 40")}

    def storey(self, i: int, storey: Entity) -> None:
        """Everything on storey i: walls, openings, slab, rooms, stair and water."""
        self.i, self.contained, self.placed, self.openings = i, [], [], []
        self.floor = i * self.h + SLAB  # finished floor level (m, local)
        self.wall_h = self.h - SLAB - (SLAB if i == self.n - 1 else 0.0)  # the top storey ends under the roof
        self.walls()
        slab = self.add("IfcSlab", "slab", f"Floor slab {i + 1}F", "FLOOR", "floors", _matrix((0.0, 0.0, i * self.h)))
        self.show(slab, ifcopenshell.api.geometry.add_slab_representation(
            self.f, context=self.body, depth=SLAB, polyline=[tuple(c) for c in self.corners]))
        self.qto(slab, "Qto_SlabBaseQuantities", self.slab_quantities())
        if i < self.n - 1:
            self.stair()
        self.water()
        ifcopenshell.api.spatial.assign_container(self.f, products=self.contained, relating_structure=storey)
        for e, m in self.placed:
            self.place(e, m)
        self.rooms(storey)
        self.fill_openings(storey, slab)

    def add(self, ifc_class: str, key: str, name: str, predefined: str | None, group: str | None,
            matrix: np.ndarray) -> Entity:
        """An element of the current storey, contained and placed (at world matrix) once all exist."""
        e = self.entity(ifc_class, f"storey/{self.i}/{key}", name, predefined, group)
        self.contained.append(e)
        self.placed.append((e, matrix))
        return e

    @property
    def corners(self) -> np.ndarray:
        return np.array([[0.0, 0.0], [self.plan.length, 0.0], [self.plan.length, self.plan.width],
                         [0.0, self.plan.width]])

    def slab_quantities(self) -> dict:
        L, W = self.plan.length, self.plan.width
        return {"Width": SLAB * _MM, "GrossArea": L * W, "Perimeter": 2 * (L + W) * _MM}

    def wall(self, key: str, name: str, group: str, matrix: np.ndarray, length: float, thickness: float) -> Entity:
        wall = self.add("IfcWall", key, name, "STANDARD", group, matrix)
        self.show(wall, ifcopenshell.api.geometry.add_wall_representation(
            self.f, context=self.body, length=length, height=self.wall_h, thickness=thickness))
        self.qto(wall, "Qto_WallBaseQuantities", {"Length": length * _MM, "Height": self.wall_h * _MM,
                                                  "Width": thickness * _MM})
        return wall

    def walls(self) -> None:
        """Exterior walls along the footprint edges (inner face inside it), partitions, and their openings."""
        p, corners = self.plan, self.corners
        for k in range(4):
            c0, c1 = corners[k], corners[(k + 1) % 4]
            d = (c1 - c0) / np.hypot(*(c1 - c0))
            start = 0.0 if k % 2 == 0 else WALL  # long walls run corner to corner, the others between them
            m = _matrix((*(c0 + start * d), self.floor), x=(d[0], d[1], 0.0))
            wall = self.wall(f"wall/{k}", f"Exterior wall {k + 1}", "exterior_walls", m,
                             np.hypot(*(c1 - c0)) - 2 * start, WALL)
            for j, s in enumerate(p.windows[k]):
                if self.i == 0 and k == 0 and j == len(p.windows[k]) - 1:  # the entrance, into the stair core
                    self.openings.append((wall, m, WALL, s - start - DOOR[0] / 2, 0.0, DOOR[0], DOOR[1],
                                          ("IfcDoor", "entrance", "Entrance door", "DOOR")))
                else:
                    self.openings.append((wall, m, WALL, s - start - WINDOW[0] / 2, WINDOW[2], WINDOW[0], WINDOW[1],
                                          ("IfcWindow", f"window/{k}/{j}", f"Window {k + 1}.{j + 1}", "WINDOW")))
        # Partition A splits the main room from the east rooms, B the stair core from the wet room.
        m = _matrix((p.a + PARTITION / 2, WALL, self.floor), x=(0.0, 1.0, 0.0))
        wall = self.wall("partition/a", "Partition A", "partitions", m, p.width - 2 * WALL, PARTITION)
        for name, y in (("core", (WALL + p.b) / 2), ("wet", (p.b + p.width - WALL) / 2)):
            self.openings.append((wall, m, PARTITION, y - WALL - DOOR[0] / 2, 0.0, DOOR[0], DOOR[1],
                                  ("IfcDoor", f"door/{name}", f"Door to the {name} room", "DOOR")))
        m = _matrix((p.a + PARTITION / 2, p.b - PARTITION / 2, self.floor))
        self.wall("partition/b", "Partition B", "partitions", m, p.length - WALL - p.a - PARTITION / 2, PARTITION)

    def rooms(self, storey: Entity) -> None:
        """Spaces: the floor plate split by the partitions, aggregated to the storey."""
        p, i = self.plan, self.i
        L, W = p.length, p.width
        rooms = (("Main room", WALL, WALL, p.a - PARTITION / 2, W - WALL),
                 ("Stair core", p.a + PARTITION / 2, WALL, L - WALL, p.b - PARTITION / 2),
                 ("Wet room", p.a + PARTITION / 2, p.b + PARTITION / 2, L - WALL, W - WALL))
        spaces = []
        for j, (name, ax, ay, bx, by) in enumerate(rooms):
            space = self.entity("IfcSpace", f"storey/{i}/space/{j}", f"{i + 1}F {name}", "INTERNAL")
            space.LongName = name
            self.show(space, self.box(ax, ay, 0.0, bx - ax, by - ay, self.wall_h))
            spaces.append(space)
        ifcopenshell.api.aggregate.assign_object(self.f, products=spaces, relating_object=storey)
        for space in spaces:
            self.place(space, _matrix((0.0, 0.0, self.floor)))

    def stair(self) -> None:
        """A straight flight from this floor to the next along the core's east wall, with a handrail."""
        i, h = self.i, self.h
        x0, y0, going, risers = self.plan.flight
        r, run = h / risers, going * risers  # the last tread is flush with the next floor, inside its stair well
        flight = self.add("IfcStairFlight", "stair", f"Stair flight {i + 1}F", "STRAIGHT", "stairs",
                          _matrix((x0, y0, self.floor)))
        flight.NumberOfRisers = flight.NumberOfTreads = risers
        flight.RiserHeight, flight.TreadLength = r * _MM, going * _MM
        steps = [(0.0, 0.0)]
        for k in range(risers):
            steps += [(k * going, (k + 1) * r), ((k + 1) * going, (k + 1) * r)]
        steps += [(run, h - 0.3), (0.3, 0.0)]
        self.show(flight, self.builder.get_representation(
            self.body, [self.extrusion(steps, FLIGHT_WIDTH, z=(1.0, 0.0, 0.0), x=(0.0, 1.0, 0.0))]))
        rail = self.add("IfcRailing", "handrail", f"Handrail {i + 1}F", "HANDRAIL", "rails",
                        _matrix((x0, y0, self.floor)))
        pitch = math.hypot(going, r)  # the rail runs 0.9 m above the nosings
        along = (0.0, going / pitch, r / pitch)
        self.show(rail, self.cylinders([(self.profiles["rail"], (0.05, 0.0, r + 0.9), along, (risers - 1) * pitch)]))

    def water(self) -> None:
        """Riser from the tee below (or the bend on the service pipe) to this storey's tee, and a DN50 branch
        along -x to a wash basin against the north wall."""
        i, h = self.i, self.h
        xr, yr = self.plan.riser
        tee_z = self.floor + 0.5
        below = tee_z - h + 0.1 if i else -SERVICE_DEPTH + 0.1
        riser = self.add("IfcPipeSegment", "riser", f"Riser DN{RISER_DN} {i + 1}F", "RIGIDSEGMENT", "risers",
                         _matrix((xr, yr, below)))
        self.show(riser, ifcopenshell.api.geometry.add_profile_representation(
            self.f, context=self.body, profile=self.profiles["riser"], depth=tee_z - 0.1 - below))
        self.qto(riser, "Qto_PipeSegmentBaseQuantities", {"Length": (tee_z - 0.1 - below) * _MM})
        tee = self.add("IfcPipeFitting", "tee", f"Tee DN{RISER_DN}/{BRANCH_DN} {i + 1}F", "JUNCTION", "fittings",
                       _matrix((xr, yr, tee_z)))
        self.show(tee, self.cylinders([(self.profiles["fitting"], (0.0, 0.0, -0.1), (0.0, 0.0, 1.0), 0.2),
                                       (self.profiles["stub"], (0.0, 0.0, 0.0), (-1.0, 0.0, 0.0), 0.15)]))
        length = 1.0
        branch = self.add("IfcPipeSegment", "branch", f"Branch DN{BRANCH_DN} {i + 1}F", "RIGIDSEGMENT", "branches",
                          _matrix((xr - 0.15, yr, tee_z), x=(0.0, 1.0, 0.0), z=(-1.0, 0.0, 0.0)))
        self.show(branch, ifcopenshell.api.geometry.add_profile_representation(
            self.f, context=self.body, profile=self.profiles["branch"], depth=length))
        self.qto(branch, "Qto_PipeSegmentBaseQuantities", {"Length": length * _MM})
        basin = self.add("IfcSanitaryTerminal", "basin", f"Wash basin {i + 1}F", "WASHHANDBASIN", "terminals",
                         _matrix((xr - 0.15 - length - 0.6, self.plan.width - WALL - 0.45, self.floor)))
        self.show(basin, self.box(0.0, 0.0, 0.0, 0.6, 0.45, 0.85))

    def fill_openings(self, storey: Entity, slab: Entity) -> None:
        """The stair well in the slab and the wall openings with their windows and doors, placed after their
        hosts so that their placements hang off them."""
        f, i = self.f, self.i
        if i > 0:
            x0, y0, going, risers = self.plan.flight
            well = self.entity("IfcOpeningElement", f"storey/{i}/stairwell", "Stair well", "OPENING")
            ifcopenshell.api.feature.add_feature(f, feature=well, element=slab)
            self.show(well, self.box(x0 - 0.05, y0 - 0.05, -0.1, FLIGHT_WIDTH + 0.05, going * risers + 0.1,
                                     SLAB + 0.2))
            self.place(well, _matrix((0.0, 0.0, i * self.h)))
        fillings = []
        for wall, m, thickness, u0, z0, width, height, (cls, key, name, predefined) in self.openings:
            opening = self.entity("IfcOpeningElement", f"storey/{i}/{key}/opening", f"Opening for {name}",
                                  "OPENING")
            ifcopenshell.api.feature.add_feature(f, feature=opening, element=wall)
            self.show(opening, ifcopenshell.api.geometry.add_wall_representation(
                f, context=self.body, length=width, height=height, thickness=thickness + 0.1, offset=-0.05))
            at = m @ _matrix((u0, 0.0, z0))
            self.place(opening, at)
            filling = self.entity(cls, f"storey/{i}/{key}", name, predefined,
                                  "windows" if cls == "IfcWindow" else "doors")
            filling.OverallWidth, filling.OverallHeight = width * _MM, height * _MM
            ifcopenshell.api.feature.add_filling(f, opening=opening, element=filling)
            centre = _WINDOW_DEPTH_CENTRE if cls == "IfcWindow" else _DOOR_DEPTH_CENTRE
            fillings.append((filling, at @ _matrix((0.0, thickness / 2 - centre, 0.0))))
        ifcopenshell.api.spatial.assign_container(f, products=[e for e, _ in fillings], relating_structure=storey)
        for e, m in fillings:
            self.place(e, m)

    def roof(self) -> None:
        """The roof slab, under the GIS height, contained in the top storey."""
        roof = self.entity("IfcSlab", "roof", "Roof slab", "ROOF", "roofs")
        ifcopenshell.api.spatial.assign_container(self.f, products=[roof], relating_structure=self.storeys[-1])
        self.show(roof, ifcopenshell.api.geometry.add_slab_representation(
            self.f, context=self.body, depth=SLAB, polyline=[tuple(c) for c in self.corners]))
        self.place(roof, _matrix((0.0, 0.0, self.n * self.h - SLAB)))
        self.qto(roof, "Qto_SlabBaseQuantities", self.slab_quantities())

    def service_pipe(self) -> None:
        """The incoming main: from 3 m outside the east facade, 1 m below ground, to a bend under the riser."""
        xr, yr = self.plan.riser
        z, outside = -SERVICE_DEPTH, self.plan.length + 3.0
        main = self.entity("IfcPipeSegment", "service", f"Service pipe DN{RISER_DN}", "RIGIDSEGMENT", "risers")
        bend = self.entity("IfcPipeFitting", "service/bend", f"Bend DN{RISER_DN}", "BEND", "fittings")
        ifcopenshell.api.spatial.assign_container(self.f, products=[main, bend], relating_structure=self.storeys[0])
        length = outside - xr - 0.1
        self.show(main, ifcopenshell.api.geometry.add_profile_representation(
            self.f, context=self.body, profile=self.profiles["riser"], depth=length))
        self.place(main, _matrix((outside, yr, z), x=(0.0, 1.0, 0.0), z=(-1.0, 0.0, 0.0)))
        self.qto(main, "Qto_PipeSegmentBaseQuantities", {"Length": length * _MM})
        self.show(bend, self.cylinders([(self.profiles["fitting"], (0.0, 0.0, 0.0), (1.0, 0.0, 0.0), 0.1),
                                        (self.profiles["fitting"], (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), 0.1)]))
        self.place(bend, _matrix((xr, yr, z)))

    def semantics(self) -> None:
        """Types, materials, property sets and the water system, each once for all its elements."""
        f, g = self.f, self.groups
        for group, relating_type in (("windows", self.window_type), ("doors", self.door_type),
                                     ("risers", self.pipe_types[RISER_DN]), ("branches", self.pipe_types[BRANCH_DN])):
            ifcopenshell.api.type.assign_type(f, related_objects=g[group], relating_type=relating_type,
                                              should_map_representations=False)
            if relating_type.RepresentationMaps:
                for e in g[group]:  # the api maps in set order: map here so entity ids do not vary
                    ifcopenshell.api.type.map_type_representations(f, related_object=e, relating_type=relating_type)
        concrete = g["exterior_walls"] + g["partitions"] + g["floors"] + g["roofs"] + g.get("stairs", [])
        for name, category, products in (
                ("Concrete", "concrete", concrete),
                ("Glass/Aluminium", "glass", g["windows"] + [self.window_type]),
                ("Timber", "wood", g["doors"] + [self.door_type]),
                ("Steel", "steel", g.get("rails", [])),
                ("PE100", "plastic", g["risers"] + g["branches"] + g["fittings"] + list(self.pipe_types.values())),
                ("Ceramic", "ceramic", g["terminals"])):
            if products:
                material = ifcopenshell.api.material.add_material(f, name=name, category=category)
                ifcopenshell.api.material.assign_material(f, products=products, material=material)
        self.pset(g["exterior_walls"], "Pset_WallCommon",
                  {"IsExternal": True, "LoadBearing": True, "FireRating": "REI 120"})
        self.pset(g["partitions"], "Pset_WallCommon",
                  {"IsExternal": False, "LoadBearing": False, "FireRating": "EI 60"})
        self.pset(g["floors"], "Pset_SlabCommon", {"IsExternal": False, "LoadBearing": True, "FireRating": "REI 90"})
        self.pset(g["roofs"], "Pset_SlabCommon", {"IsExternal": True, "LoadBearing": True, "FireRating": "REI 90"})
        self.pset([self.window_type], "Pset_WindowCommon", {"IsExternal": True, "ThermalTransmittance": 2.8})
        water = ifcopenshell.api.system.add_system(f, ifc_class="IfcDistributionSystem")
        water.GlobalId = self.guid("system/water")
        ifcopenshell.api.system.edit_system(f, system=water, attributes={
            "Name": "Water supply", "PredefinedType": "DOMESTICCOLDWATER"})
        ifcopenshell.api.system.assign_system(
            f, products=g["risers"] + g["branches"] + g["fittings"] + g["terminals"], system=water)


def write_bim(path: Path, seed: int = district.DEFAULT_SEED, storeys: int | None = None) -> Path:
    """Write the IFC4 building that stands in for `pick_building` of the district's buildings."""
    buildings = district.district_layers(seed)["buildings"]
    row = buildings.loc[pick_building(buildings)]
    frame = local_frame(row.geometry)
    floors = int(row["floors"])
    height = float(row["height"]) if pd.notna(row["height"]) else math.nan
    storey_height = height / floors if math.isfinite(height) else DEFAULT_STOREY_HEIGHT
    ground = float(district.ground_height(frame.vertices[:, 0], frame.vertices[:, 1], seed).min())
    if storeys is not None and storeys < 1:
        raise ValueError(f"storeys must be at least 1, not {storeys}")
    writer = _Writer(row, frame, ground, floors if storeys is None else storeys, storey_height, seed)
    return writer.write(Path(path))
