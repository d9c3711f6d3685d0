"""`cim import ifc` end to end with small authored files: placement, hierarchy, re-import, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import ifcopenshell
import ifcopenshell.guid
import numpy as np
import pytest

from cim.importers.ifc import import_ifc
from tests.helpers import fetch, run_cim, scalar
from tests.importers.ifc_builders import (
    OFFSET_SITE_ELEMENT_MAP,
    MapConversion,
    SiteReference,
    write_ifc,
    write_offset_site,
)

# A plain georeferenced box in the sample's CRS: mm project, map conversion to EPSG:4547 with metre map unit.
GK = MapConversion(eastings=453100.0, northings=2463100.0, height=5.0, scale=0.001, crs_name="EPSG:4547",
                   map_unit="m")


def vertices(model, source_id: str) -> np.ndarray:
    rows = fetch(model, "SELECT DISTINCT ST_X(p.geom), ST_Y(p.geom), ST_Z(p.geom) FROM city_object, "
                        "ST_DumpPoints(geom) AS p WHERE source_id = %s", (source_id,))
    return np.array(sorted(rows))


def state(model) -> tuple:
    return (scalar(model, "SELECT count(*) FROM city_object"), scalar(model, "SELECT count(*) FROM import_batch"),
            scalar(model, "SELECT count(*) FROM code_registry"))


def test_offset_site_lands_where_worked_out_by_hand(make_model, tmp_path):
    # The Bonsai "mapconversion-offsetsite" case: site at (0, 10 m) turned 15°, element at (7, 3) m in the
    # site, E = 15000 mm; the element's 1 m box has its corner at OFFSET_SITE_ELEMENT_MAP (see the builder).
    model = make_model("EPSG:3857")
    path = write_offset_site(tmp_path / "offset_site.ifc")
    done = import_ifc(model, path, crs="EPSG:3857")
    assert done.placement.rule == "IfcMapConversion"
    guid = fetch(model, "SELECT source_id FROM city_object WHERE kind = 'proxy'")[0][0]
    c, s = math.cos(math.radians(15)), math.sin(math.radians(15))
    o = np.array(OFFSET_SITE_ELEMENT_MAP)
    ex, ey, ez = np.array([c, s, 0.0]), np.array([-s, c, 0.0]), np.array([0.0, 0.0, 1.0])
    corners = np.array(sorted(tuple(o + i * ex + j * ey + k * ez) for i in (0, 1) for j in (0, 1) for k in (0, 1)))
    np.testing.assert_allclose(vertices(model, guid), corners, atol=1e-4)


def test_hierarchy_codes_and_reimport(model, tmp_path):
    path = write_ifc(tmp_path / "box.ifc", unit="mm", map_conversion=GK, element_class="IfcWall")
    first = import_ifc(model, path)
    rows = fetch(model, "SELECT o.kind, p.kind, o.attributes->>'storey', o.lod FROM city_object o "
                        "LEFT JOIN city_object p ON p.code = o.parent_code ORDER BY o.kind")
    assert rows == [("bim_building", "bim_site", None, None), ("bim_project", None, None, None),
                    ("bim_site", "bim_project", None, None), ("bim_storey", "bim_building", None, None),
                    ("wall", "bim_storey", "Level 0", 4)]
    # the wall is a TIN of its 1 m box; the containers are boxes around it
    assert fetch(model, "SELECT GeometryType(geom), ST_NumGeometries(geom), base_z, top_z FROM city_object "
                        "WHERE kind = 'wall'") == [("TIN", 12, 5.0, 6.0)]
    assert scalar(model, "SELECT count(*) FROM city_object WHERE kind LIKE 'bim_%%' AND "
                         "GeometryType(geom) = 'POLYHEDRALSURFACE' AND base_z = 5.0 AND top_z = 6.0") == 4
    codes = dict(fetch(model, "SELECT source_id, code FROM city_object"))
    again = import_ifc(model, path)
    assert (again.result.written, again.result.replaced, again.result.new_codes) == (5, 5, 0)
    assert dict(fetch(model, "SELECT source_id, code FROM city_object")) == codes
    assert first.summary["placement"]["rule"] == "IfcMapConversion"
    assert scalar(model, "SELECT summary->'placement'->>'crs' FROM import_batch ORDER BY id DESC LIMIT 1") \
        .startswith("CGCS2000 / 3-degree Gauss-Kruger CM 114E")


def test_empty_storey_enumerated_status_and_map_coordinates(model, tmp_path):
    path = write_ifc(tmp_path / "box.ifc", unit="mm", map_conversion=GK, element_class="IfcWall")
    f = ifcopenshell.open(str(path))
    owner = f.by_type("IfcOwnerHistory")[0] if f.by_type("IfcOwnerHistory") else None
    building, wall = f.by_type("IfcBuilding")[0], f.by_type("IfcWall")[0]
    origin = f.create_entity("IfcAxis2Placement3D", f.create_entity("IfcCartesianPoint", (0.0, 0.0, 3000.0)))
    storey = f.create_entity("IfcBuildingStorey", ifcopenshell.guid.new(), owner, "Level 1",
                             ObjectPlacement=f.create_entity("IfcLocalPlacement", building.ObjectPlacement, origin))
    f.create_entity("IfcRelAggregates", ifcopenshell.guid.new(), owner, RelatingObject=building,
                    RelatedObjects=[storey])
    status = f.create_entity("IfcPropertyEnumeratedValue", "Status", None, [f.create_entity("IfcLabel", "NEW")])
    pset = f.create_entity("IfcPropertySet", ifcopenshell.guid.new(), owner, "Pset_WallCommon", None, [status])
    f.create_entity("IfcRelDefinesByProperties", ifcopenshell.guid.new(), owner, None, None, [wall], pset)
    f.write(str(path))
    import_ifc(model, path)
    # the empty storey is its placement origin, in map coordinates: (0, 0, 3 m) → E, N, H + 3
    assert fetch(model, "SELECT ST_AsText(o.geom), o.base_z, p.kind FROM city_object o JOIN city_object p "
                        "ON p.code = o.parent_code WHERE o.name = 'Level 1'") \
        == [("POINT Z (453100 2463100 8)", 8.0, "bim_building")]
    assert fetch(model, "SELECT status FROM city_object WHERE kind = 'wall'") == [("planned",)]


def test_crs_alone_takes_model_coordinates_as_map_coordinates(model, tmp_path):
    # metre project whose coordinates already are EPSG:4547 map coordinates (no georeferencing in the file)
    path = write_ifc(tmp_path / "map.ifc", unit="m", element_at=(453200.0, 2463300.0, 4.0))
    done = run_cim("import", "ifc", str(path), "--crs", "EPSG:4547", model=model)
    assert done.returncode == 0, done.stderr
    assert "placed by --crs" in done.stdout
    assert fetch(model, "SELECT min(ST_X(p.geom)), min(ST_Y(p.geom)), min(ST_Z(p.geom)) FROM city_object, "
                        "ST_DumpPoints(geom) p WHERE kind = 'proxy'") == [(453200.0, 2463300.0, 4.0)]


def test_cli_prints_where_it_landed(model, tmp_path):
    path = write_ifc(tmp_path / "site.ifc", unit="m",
                     site_ref=SiteReference((22, 15, 47, 160000), (113, 32, 38, 400000), 12.5))
    done = run_cim("import", "ifc", str(path), model=model)
    assert done.returncode == 0, done.stderr
    assert "landed at lon 113.5440000 lat 22.2631000 height 12.500 m" in done.stdout
    assert "placed by IfcSite reference" in done.stdout


def _rc2(tmp_path: Path) -> Path:
    good = write_ifc(tmp_path / "good.ifc", map_conversion=GK)
    bad = tmp_path / "rc2.ifc"
    bad.write_text(good.read_text().replace("FILE_SCHEMA(('IFC4'))", "FILE_SCHEMA(('IFC4X3_RC2'))"))
    return bad


def _truncated(tmp_path: Path) -> Path:
    text = write_ifc(tmp_path / "good.ifc", map_conversion=GK).read_text()
    bad = tmp_path / "cut.ifc"
    bad.write_text(text[: len(text) // 2])
    return bad


def _not_ifc(tmp_path: Path) -> Path:
    bad = tmp_path / "notes.ifc"
    bad.write_text("These are meeting notes, not a building.\n")
    return bad


def _syntax(tmp_path: Path) -> Path:
    text = write_ifc(tmp_path / "good.ifc", map_conversion=GK).read_text()
    bad = tmp_path / "syntax.ifc"
    bad.write_text(text.replace("IFCWALL(", "IFCWALLX(").replace("IFCBUILDINGELEMENTPROXY(", "IFCPROXYX("))
    return bad


def _plain(tmp_path: Path) -> Path:
    return write_ifc(tmp_path / "plain.ifc")


def _far_away(tmp_path: Path) -> Path:  # Karlsruhe, in a model of Zhuhai
    return write_ifc(tmp_path / "karlsruhe.ifc", site_ref=SiteReference((49, 6, 1, 0), (8, 26, 11, 0), 110.0))


def _bad_scale(tmp_path: Path) -> Path:
    mc = MapConversion(eastings=453100.0, northings=2463100.0, scale=0.5, crs_name="EPSG:4547", map_unit="m")
    return write_ifc(tmp_path / "scale.ifc", unit="mm", map_conversion=mc)


@pytest.mark.parametrize(("make", "args", "reason"), [
    (_rc2, [], "unsupported IFC schema IFC4X3_RC2"),
    (_truncated, [], "truncated file"),
    (_not_ifc, [], "not an IFC file"),
    (_syntax, [], "syntax error"),
    (_plain, [], "model is not georeferenced; pass --anchor"),
    (_far_away, [], "outside the area of use"),
    (_bad_scale, [], "Scale 0.5"),
    (lambda p: write_ifc(p / "ok.ifc", map_conversion=GK), ["--building-code", "NO-SUCH"], "matches no building"),
    (lambda p: write_ifc(p / "ok.ifc"), ["--anchor", "113.5,91,0"], "--anchor"),
], ids=["schema", "truncated", "not-ifc", "syntax", "no-georef", "far-away", "scale", "building-code", "anchor"])
def test_bad_input_is_one_line_and_changes_nothing(model, tmp_path, make, args, reason):
    import_ifc(model, write_ifc(tmp_path / "before.ifc", map_conversion=GK))
    before = state(model)
    path = make(tmp_path)
    done = run_cim("import", "ifc", str(path), *args, model=model)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert state(model) == before
