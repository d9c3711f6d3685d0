"""Tests for the georeferenced IFC sample building (no database needed)."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.element
import ifcopenshell.util.geolocation
import ifcopenshell.util.unit
import numpy as np
import pytest
import shapely
from pyproj import Transformer

from cim.sample import bim
from cim.sample import district as d

ELEMENT_CLASSES = ("IfcWall", "IfcSlab", "IfcWindow", "IfcDoor", "IfcStairFlight", "IfcPipeSegment",
                   "IfcPipeFitting", "IfcSanitaryTerminal")


@pytest.fixture(scope="module")
def buildings() -> gpd.GeoDataFrame:
    return d.district_layers()["buildings"]


@pytest.fixture(scope="module")
def gis(buildings: gpd.GeoDataFrame):
    return buildings.loc[bim.pick_building(buildings)]


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bim.write_bim(tmp_path_factory.mktemp("bim") / "bim.ifc")


@pytest.fixture(scope="module")
def ifc(path: Path) -> ifcopenshell.file:
    return ifcopenshell.open(str(path))


def _elements(f: ifcopenshell.file) -> list:
    return [e for e in f.by_type("IfcElement") if not e.is_a("IfcOpeningElement")]


def _ccw_vertices(polygon: shapely.Polygon) -> np.ndarray:
    return np.asarray(shapely.orient_polygons(polygon).exterior.coords)[:-1]


def _world_vertices(f: ifcopenshell.file, products: list) -> dict[int, np.ndarray]:
    """Tessellated vertices of each product in project coordinates (millimetres)."""
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    scale = ifcopenshell.util.unit.calculate_unit_scale(f)
    return {p.id(): np.array(ifcopenshell.geom.create_shape(settings, p).geometry.verts).reshape(-1, 3) / scale
            for p in products}


def _to_map(f: ifcopenshell.file, xyz_mm: np.ndarray) -> np.ndarray:
    """The IFC4 IfcMapConversion, written out: E, N = (Eastings, Northings) + Scale · R(x axis) · (x, y)."""
    mc = f.by_type("IfcMapConversion")[0]
    a, b = mc.XAxisAbscissa, mc.XAxisOrdinate
    n = math.hypot(a, b)
    c, s = a / n, b / n
    x, y = xyz_mm[:, 0], xyz_mm[:, 1]
    return np.column_stack([mc.Eastings + mc.Scale * (c * x - s * y), mc.Northings + mc.Scale * (s * x + c * y)])


def _edge_angle(polygon: shapely.Polygon) -> float:
    """Angle of the first exterior edge from map east, folded into [0, 90) degrees."""
    v = _ccw_vertices(polygon)
    return math.degrees(math.atan2(v[1, 1] - v[0, 1], v[1, 0] - v[0, 0])) % 90


def _is_rectangle(polygon: shapely.Polygon) -> bool:
    if len(polygon.interiors) or len(polygon.exterior.coords) != 5:
        return False
    edges = np.diff(np.asarray(polygon.exterior.coords), axis=0)
    edges /= np.hypot(edges[:, 0], edges[:, 1])[:, None]
    return bool(np.abs(np.sum(edges * np.roll(edges, 1, axis=0), axis=1)).max() < 1e-6)


def test_pick_building(buildings: gpd.GeoDataFrame, gis) -> None:
    assert gis["use"] in {"office", "residential"} and 4 <= gis["floors"] <= 8
    assert _is_rectangle(gis.geometry)
    assert 0.01 < _edge_angle(gis.geometry) < 89.99, "expected a rotated footprint"
    centre = shapely.Point(np.add(d.ORIGIN, d.SIZE / 2))
    fits = buildings["use"].isin(["office", "residential"]) & buildings["floors"].astype(float).between(4, 8)
    rivals = [g.centroid.distance(centre) for g in buildings.geometry[fits.to_numpy()]
              if _is_rectangle(g) and 0.01 < _edge_angle(g) < 89.99]
    assert gis.geometry.centroid.distance(centre) == min(rivals)


def test_local_frame_handles_clockwise_rings(gis) -> None:
    ccw = _ccw_vertices(gis.geometry)
    for ring in (ccw, ccw[[0, 3, 2, 1]]):  # the same first vertex, both orientations
        frame = bim.local_frame(shapely.Polygon(ring))
        assert np.allclose(frame.origin, ccw[0]) and frame.length > 0 and frame.width > 0
        assert np.abs(frame.to_map(frame.corners) - ccw).max() < 1e-6
    with pytest.raises(ValueError):
        bim.local_frame(shapely.Polygon([(0, 0), (10, 0), (11, 5), (0, 5)]))


def test_schema_units_and_hierarchy(ifc: ifcopenshell.file, gis) -> None:
    assert ifc.schema == "IFC4"
    assert ifcopenshell.util.unit.calculate_unit_scale(ifc) == pytest.approx(0.001)
    length = ifcopenshell.util.unit.get_project_unit(ifc, "LENGTHUNIT")
    assert (length.Prefix, length.Name) == ("MILLI", "METRE")
    assert ifcopenshell.util.unit.get_project_unit(ifc, "PLANEANGLEUNIT").Name == "RADIAN"
    (project,) = ifc.by_type("IfcProject")
    (site,) = [o for r in project.IsDecomposedBy for o in r.RelatedObjects]
    assert site.is_a("IfcSite")
    (building,) = [o for r in site.IsDecomposedBy for o in r.RelatedObjects]
    assert building.is_a("IfcBuilding")
    storeys = [o for r in building.IsDecomposedBy for o in r.RelatedObjects]
    assert len(storeys) == int(gis["floors"]) and all(s.is_a("IfcBuildingStorey") for s in storeys)
    h = gis["height"] / gis["floors"] * 1000
    assert sorted(s.Elevation for s in storeys) == pytest.approx([i * h for i in range(len(storeys))])
    for e in _elements(ifc):
        assert ifcopenshell.util.element.get_container(e) in storeys, e
    spaces = ifc.by_type("IfcSpace")
    assert len(spaces) >= 2 * len(storeys)
    assert all(ifcopenshell.util.element.get_aggregate(s) in storeys for s in spaces)
    for cls in ELEMENT_CLASSES:
        assert ifc.by_type(cls), cls
    slabs = {ifcopenshell.util.element.get_predefined_type(s) for s in ifc.by_type("IfcSlab")}
    assert {"FLOOR", "ROOF"} <= slabs
    assert all(w.FillsVoids for w in ifc.by_type("IfcWindow"))
    assert all(o.VoidsElements for o in ifc.by_type("IfcOpeningElement"))
    (system,) = ifc.by_type("IfcDistributionSystem")
    assert (system.Name, system.PredefinedType) == ("Water supply", "DOMESTICCOLDWATER")
    served = {o for r in system.IsGroupedBy for o in r.RelatedObjects}
    assert set(ifc.by_type("IfcPipeSegment")) <= served


def test_semantics(ifc: ifcopenshell.file, gis) -> None:
    (building,) = ifc.by_type("IfcBuilding")
    common = ifcopenshell.util.element.get_pset(building, "Pset_BuildingCommon")
    assert common["BuildingID"] == gis["bldg_code"]
    assert common["NumberOfStoreys"] == int(gis["floors"])
    assert building.Name == (gis["name"] if isinstance(gis["name"], str) else gis["bldg_code"])
    materials = {}
    for e in _elements(ifc):
        materials.setdefault(e.is_a(), set()).update(m.Name for m in ifcopenshell.util.element.get_materials(e))
    assert materials["IfcWall"] == materials["IfcSlab"] == {"Concrete"}
    assert materials["IfcWindow"] == {"Glass/Aluminium"}
    assert materials["IfcPipeSegment"] == {"PE100"}
    walls = ifc.by_type("IfcWall")
    psets = [ifcopenshell.util.element.get_psets(w) for w in walls]
    assert {p["Pset_WallCommon"]["IsExternal"] for p in psets} == {True, False}
    assert all({"Length", "Height", "Width"} <= p["Qto_WallBaseQuantities"].keys() for p in psets)
    diameters = {ifcopenshell.util.element.get_pset(p, "Pset_PipeSegmentTypeCommon", "NominalDiameter")
                 for p in ifc.by_type("IfcPipeSegment")}
    assert diameters == {100.0, 50.0}
    assert ifcopenshell.util.element.get_pset(ifc.by_type("IfcSlab")[0], "Pset_SlabCommon")["LoadBearing"]


def test_incoming_service_pipe(ifc: ifcopenshell.file, gis) -> None:
    pipes = ifc.by_type("IfcPipeSegment")
    verts = _world_vertices(ifc, pipes)
    footprint = gis.geometry
    below = [p for p in pipes if verts[p.id()][:, 2].max() < 0]
    assert len(below) == 1, "one horizontal service pipe under the ground"
    (main,) = below
    assert verts[main.id()][:, 2].mean() == pytest.approx(-1000, abs=100)
    en = _to_map(ifc, verts[main.id()])
    inside = shapely.contains_xy(footprint, en[:, 0], en[:, 1])
    assert inside.any() and not inside.all(), "it enters the building from outside"


def test_map_conversion(ifc: ifcopenshell.file, gis) -> None:
    mc = ifc.by_type("IfcMapConversion")[0]
    crs = mc.TargetCRS
    assert crs.Name == "EPSG:4547" and crs.GeodeticDatum == "CGCS2000"
    assert (crs.MapUnit.Name, crs.MapUnit.Prefix) == ("METRE", None)
    context = mc.SourceCRS
    assert context.ContextType == "Model" and context.CoordinateSpaceDimension == 3
    v = _ccw_vertices(gis.geometry)
    assert (mc.Eastings, mc.Northings) == pytest.approx(tuple(v[0]), abs=1e-6)
    edge = (v[1] - v[0]) / np.hypot(*(v[1] - v[0]))
    assert (mc.XAxisAbscissa, mc.XAxisOrdinate) == pytest.approx(tuple(edge), abs=1e-9)
    assert mc.Scale == 0.001
    assert mc.OrthogonalHeight == pytest.approx(d.ground_height(v[:, 0], v[:, 1]).min(), abs=1e-6)
    (site,) = ifc.by_type("IfcSite")
    lon, lat = Transformer.from_crs("EPSG:4547", "EPSG:4490", always_xy=True).transform(*v[0])
    assert ifcopenshell.util.geolocation.dms2dd(*site.RefLatitude) == pytest.approx(lat, abs=1e-7)
    assert ifcopenshell.util.geolocation.dms2dd(*site.RefLongitude) == pytest.approx(lon, abs=1e-7)
    assert site.RefElevation == pytest.approx(mc.OrthogonalHeight * 1000)


def test_footprint_round_trip(ifc: ifcopenshell.file, gis) -> None:
    ground = next(s for s in ifc.by_type("IfcSlab") if s.ContainedInStructure[0].RelatingStructure.Elevation == 0
                  and ifcopenshell.util.element.get_predefined_type(s) == "FLOOR")
    walls = [w for w in ifc.by_type("IfcWall") if ifcopenshell.util.element.get_pset(w, "Pset_WallCommon",
                                                                                       "IsExternal")]
    verts = _world_vertices(ifc, [ground, *walls])
    xy = verts[ground.id()][:, :2]
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    assert (x0, y0) == pytest.approx((0.0, 0.0), abs=1e-6)
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    assert np.abs(xy[:, None, :] - corners[None]).max(-1).min(-1).max() < 1e-6, "the slab is the local rectangle"
    mapped = _to_map(ifc, corners)
    gis_vertices = _ccw_vertices(gis.geometry)
    miss = np.hypot(*(mapped[:, None, :] - gis_vertices[None, :, :]).transpose(2, 0, 1)).min(0)
    assert miss.max() < 0.001, f"footprint vertices missed by up to {miss.max() * 1000:.3f} mm"
    assert np.allclose(mapped, gis_vertices, atol=0.001), "same vertex order"
    near = gis.geometry.buffer(0.001)
    for w in walls:
        en = _to_map(ifc, verts[w.id()])
        assert shapely.contains_xy(near, en[:, 0], en[:, 1]).all(), w.Name


def test_determinism(path: Path, tmp_path: Path) -> None:
    again = bim.write_bim(tmp_path / "bim.ifc")
    a, b = ifcopenshell.open(str(path)), ifcopenshell.open(str(again))
    assert [e.GlobalId for e in a.by_type("IfcRoot")] == [e.GlobalId for e in b.by_type("IfcRoot")]
    assert len({e.GlobalId for e in a.by_type("IfcRoot")}) == len(a.by_type("IfcRoot"))
    assert again.read_bytes() == path.read_bytes()


def test_many_storeys(tmp_path: Path, ifc: ifcopenshell.file) -> None:
    f = ifcopenshell.open(str(bim.write_bim(tmp_path / "tall.ifc", storeys=30)))
    assert len(f.by_type("IfcBuildingStorey")) == 30
    assert len(_elements(f)) >= 1000
    (building,) = f.by_type("IfcBuilding")
    assert ifcopenshell.util.element.get_pset(building, "Pset_BuildingCommon", "NumberOfStoreys") == 30
    keys = ("Eastings", "Northings", "OrthogonalHeight", "XAxisAbscissa", "XAxisOrdinate", "Scale")
    tall, base = f.by_type("IfcMapConversion")[0], ifc.by_type("IfcMapConversion")[0]
    assert [getattr(tall, k) for k in keys] == [getattr(base, k) for k in keys]


def test_generate_writes_bim(tmp_path: Path, path: Path) -> None:
    out = d.generate(tmp_path)
    assert out["bim"] == tmp_path / "bim.ifc"
    assert out["bim"].read_bytes() == path.read_bytes()
