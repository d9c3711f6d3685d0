"""The sample's BIM building imported into the sample district: on its footprint, linked, whole."""

from __future__ import annotations

from collections import Counter

import geopandas as gpd
import ifcopenshell
import ifcopenshell.util.element
import numpy as np
import pytest
import shapely

from cim.importers.ifc.elements import elements
from tests.helpers import fetch, scalar


@pytest.fixture(scope="module")
def ifc(sample_dir) -> ifcopenshell.file:
    return ifcopenshell.open(str(sample_dir / "bim.ifc"))


@pytest.fixture(scope="module")
def gis_building(sample_dir, ifc) -> gpd.GeoSeries:
    psets = ifcopenshell.util.element.get_psets(ifc.by_type("IfcBuilding")[0])
    building_id = psets["Pset_BuildingCommon"]["BuildingID"]
    buildings = gpd.read_file(sample_dir / "district.gpkg", layer="buildings")
    return buildings[buildings["bldg_code"] == building_id].iloc[0]


def points(model, where: str) -> np.ndarray:
    return np.array(fetch(model, "SELECT ST_X(p.geom), ST_Y(p.geom), ST_Z(p.geom) FROM city_object, "
                                 f"ST_DumpPoints(geom) AS p WHERE layer = 'bim' AND {where}"))


def test_bim_lands_on_its_footprint_within_a_centimetre(sample_model, gis_building):
    # The exterior walls stand on the footprint's edges: their outline is the footprint.
    walls = points(sample_model, "kind = 'wall' AND attributes->'psets'->'Pset_WallCommon'->>'IsExternal' = 'true'")
    outline = shapely.convex_hull(shapely.multipoints(walls[:, :2]))
    footprint = gis_building.geometry
    assert shapely.hausdorff_distance(outline, footprint) < 0.01
    assert abs(outline.area - footprint.area) < 0.01 * footprint.length


def test_bim_stands_on_the_ground_and_reaches_the_lod1_roof(sample_model, gis_building):
    base, top = fetch(sample_model, "SELECT base_z, top_z FROM city_object WHERE layer = 'buildings' "
                                    "AND source_id = %s", (gis_building["bldg_code"],))[0]
    bim_base, bim_top = fetch(sample_model, "SELECT min(base_z) FILTER (WHERE kind = 'slab'), max(top_z) "
                                            "FROM city_object WHERE layer = 'bim'")[0]
    assert bim_base == pytest.approx(base, abs=0.3)  # analytic ground vs the 5 m DEM under the footprint
    assert bim_top - bim_base == pytest.approx(top - base, abs=0.3)


def test_bim_building_is_linked_to_the_gis_building(sample_model, gis_building):
    gis_code = scalar(sample_model, "SELECT code FROM city_object WHERE layer = 'buildings' AND source_id = %s",
                      (gis_building["bldg_code"],))
    assert fetch(sample_model, "SELECT attributes->>'building_code' FROM city_object WHERE kind = 'bim_building'") \
        == [(gis_code,)]
    assert scalar(sample_model, "SELECT summary->>'building_code' FROM import_batch WHERE importer = 'ifc'") \
        == gis_code


def test_every_element_is_an_object_with_its_ifc_data(sample_model, ifc):
    got = dict(fetch(sample_model, "SELECT attributes->>'ifc_class', count(*) FROM city_object WHERE layer = 'bim' "
                                   "AND kind NOT LIKE 'bim_%%' GROUP BY 1"))
    expected = Counter(e.is_a() for e in ifc.by_type("IfcElement") + ifc.by_type("IfcSpace")
                       if not e.is_a("IfcOpeningElement"))
    assert got == dict(expected)
    kinds = dict(fetch(sample_model, "SELECT attributes->>'ifc_class', kind FROM city_object WHERE layer = 'bim'"))
    assert {kinds[c] for c in ("IfcWall", "IfcSlab", "IfcWindow", "IfcSpace", "IfcPipeSegment", "IfcPipeFitting",
                               "IfcSanitaryTerminal")} \
        == {"wall", "slab", "window", "space", "pipe_segment", "pipe_fitting", "flow_terminal"}
    wall = fetch(sample_model, "SELECT attributes FROM city_object WHERE kind = 'wall' LIMIT 1")[0][0]
    assert wall["ifc_class"] == "IfcWall" and wall["materials"] == ["Concrete"]
    assert "Pset_WallCommon" in wall["psets"] and wall["qtos"]
    assert wall["storey"] and wall["global_id"]
    sources = {e.GlobalId for e in elements(ifc)}
    assert sources == {r[0] for r in fetch(sample_model, "SELECT source_id FROM city_object WHERE layer = 'bim' "
                                                         "AND kind NOT LIKE 'bim_%%'")}


def test_hierarchy_is_queryable(sample_model, ifc):
    storeys = fetch(sample_model, "SELECT s.name, count(e.code) FROM city_object s JOIN city_object e "
                                  "ON e.parent_code = s.code WHERE s.kind = 'bim_storey' GROUP BY s.name")
    assert len(storeys) == len(ifc.by_type("IfcBuildingStorey"))
    # from any element up to the project in four steps or fewer
    chains = fetch(sample_model, """
        WITH RECURSIVE up(code, kind, depth) AS (
            SELECT code, kind, 0 FROM city_object WHERE layer = 'bim' AND kind = 'window'
            UNION ALL
            SELECT o.parent_code, p.kind, up.depth + 1 FROM up JOIN city_object o ON o.code = up.code
            JOIN city_object p ON p.code = o.parent_code)
        SELECT max(depth), array_agg(DISTINCT kind) FROM up""")
    depth, kinds = chains[0]
    assert depth <= 5 and {"bim_storey", "bim_building", "bim_site", "bim_project"} <= set(kinds)


def test_incoming_water_service_runs_below_ground(sample_model):
    # the service pipe enters the building about 1 m below ground, under the ground-floor slab
    slab_base = scalar(sample_model, "SELECT min(base_z) FROM city_object WHERE layer = 'bim' AND kind = 'slab'")
    assert scalar(sample_model, "SELECT min(base_z) FROM city_object WHERE kind = 'pipe_segment'") < slab_base - 0.5
