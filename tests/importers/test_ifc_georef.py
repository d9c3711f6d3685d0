"""Where an IFC model lands (cim.importers.ifc.georef): each rule on a tiny file authored here.

Expected coordinates are worked out by hand in the comments; pyproj is used only to project a known
lon/lat (and get_factors for the meridian convergence and scale), never the code under test.
Map values: EPSG:4547 (CGCS2000 / 3-degree GK CM 114E), around E 453000 N 2463000 (Zhuhai).
"""

from __future__ import annotations

import math
from pathlib import Path

import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import numpy as np
import pytest
from pyproj import CRS, Proj, Transformer

from cim.importers.errors import InputError
from cim.importers.ifc.georef import Placement, locate
from tests.importers.ifc_builders import (
    OFFSET_SITE_ELEMENT_LOCAL,
    OFFSET_SITE_ELEMENT_MAP,
    MapConversion,
    SiteReference,
    write_ifc,
    write_offset_site,
)

GK = CRS.from_epsg(4547)
E0, N0 = 453_000.0, 2_463_000.0
# 22°15'47.16" N, 113°32'38.40" E = 22 + 15/60 + 47.16/3600 = 22.2631°, 113 + 32/60 + 38.4/3600 = 113.544°
ZHUHAI = SiteReference(latitude=(22, 15, 47, 160000), longitude=(113, 32, 38, 400000))
LAT, LON = 22.2631, 113.544
COS30, SIN30 = math.sqrt(3) / 2, 0.5


def place(path: Path, **kwargs: object) -> Placement:
    return locate(ifcopenshell.open(str(path)), path, **kwargs)  # type: ignore[arg-type]


def to_gk(placement: Placement, *points: tuple[float, float, float], crs: CRS = GK) -> np.ndarray:
    return placement.to_crs(np.array(points, dtype=float), crs)


def element_origin_m(path: Path) -> tuple[float, float, float]:
    """The element's origin in project world coordinates, metres (ifcopenshell's own placement maths)."""
    f = ifcopenshell.open(str(path))
    (element,) = f.by_type("IfcElement")
    matrix = ifcopenshell.util.placement.get_local_placement(element.ObjectPlacement)
    return tuple(matrix[:3, 3] * ifcopenshell.util.unit.calculate_unit_scale(f))  # type: ignore[return-value]


def projected(lon: float, lat: float) -> tuple[float, float]:
    return Transformer.from_crs("EPSG:4326", GK, always_xy=True).transform(lon, lat)


def grid_step(lon: float, lat: float, azimuth_deg: float, distance: float) -> tuple[float, float]:
    """(dE, dN) of a ground step `distance` m at true azimuth `azimuth_deg`, from PROJ's factors at lon/lat.

    γ (meridian_convergence) is the clockwise angle from true north to grid north, so grid azimuth = α − γ;
    the sign is pinned below against the hand formula γ ≈ (λ − λ0)·sin φ.
    """
    factors = Proj(GK).get_factors(lon, lat)
    gamma = factors.meridian_convergence
    assert gamma == pytest.approx((lon - 114.0) * math.sin(math.radians(lat)), abs=1e-4)
    beta = math.radians(azimuth_deg - gamma)
    k = factors.meridional_scale  # conformal: the same in every direction
    return distance * k * math.sin(beta), distance * k * math.cos(beta)


# ---- 1. IfcMapConversion, plain ------------------------------------------------------------------------


def test_plain_mm_project_without_map_unit(tmp_path: Path) -> None:
    # No MapUnit: E/N/H are in the project unit (mm). E = 453015000 mm = 453015 m, N = 2463000 m, H = 5 m.
    # Local (1, 2, 3) m → (453015 + 1, 2463000 + 2, 5 + 3).
    path = write_ifc(tmp_path / "plain.ifc", unit="mm",
                     map_conversion=MapConversion(453_015_000.0, 2_463_000_000.0, 5000.0, crs_name="EPSG:4547"))
    p = place(path)
    assert p.rule == "IfcMapConversion"
    assert p.crs is not None and p.crs.to_epsg() == 4547
    assert p.scale == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(p.origin, (453_015.0, 2_463_000.0, 5.0), atol=1e-9)
    np.testing.assert_allclose(to_gk(p, (1, 2, 3), (0, 0, 0)),
                               [(453_016.0, 2_463_002.0, 8.0), (453_015.0, 2_463_000.0, 5.0)], atol=1e-6)


def test_plain_bonsai_empty_crs_name_needs_crs(tmp_path: Path) -> None:
    # IfcOpenShell's geolocation-mapconversion.ifc: IfcProjectedCRS(''), E = 15000 mm = 15 m, N = H = 0.
    # Local (1, 2, 3) → (15 + 1, 0 + 2, 0 + 3); the Bonsai elements at (7, 3, 0) and (6, 1, 0) → (22, 3), (21, 1).
    path = write_ifc(tmp_path / "bonsai.ifc", unit="mm", map_conversion=MapConversion(15000.0, crs_name=""))
    with pytest.raises(InputError, match="pass --crs"):
        place(path)
    p = place(path, crs="EPSG:4547")
    assert p.rule == "IfcMapConversion" and "--crs" in p.note
    np.testing.assert_allclose(to_gk(p, (1, 2, 3), (7, 3, 0), (6, 1, 0)),
                               [(16, 2, 3), (22, 3, 0), (21, 1, 0)], atol=1e-9)


# ---- 2. rotation -----------------------------------------------------------------------------------------


def test_angle(tmp_path: Path) -> None:
    # XAxisAbscissa = cos(−30°) = 0.8660254, XAxisOrdinate = sin(−30°) = −0.5: θ = −30°.
    # E + R(θ)·(x, y): local (1, 2, 3) →
    #   e = 453015 + 0.8660254·1 − (−0.5)·2 = 453015 + 1.8660254
    #   n = 2463000 + (−0.5)·1 + 0.8660254·2 = 2463000 + 1.2320508,  h = 0 + 3
    # Bonsai element (7, 3, 0): e = 453015 + 6.0621778 + 1.5 = 453022.5621778, n = 2463000 − 3.5 + 2.5980762
    path = write_ifc(tmp_path / "angle.ifc", unit="mm",
                     map_conversion=MapConversion(453_015_000.0, 2_463_000_000.0, x_axis=(COS30, -SIN30)))
    p = place(path)
    np.testing.assert_allclose(to_gk(p, (1, 2, 3), (7, 3, 0)),
                               [(453_016.866_025_4, 2_463_001.232_050_8, 3.0),
                                (453_022.562_177_8, 2_462_999.098_076_2, 0.0)], atol=1e-6)


# ---- 3. the unit1 / unit2 / unit3 Scale cases ------------------------------------------------------------


@pytest.mark.parametrize("unit, conversion, element_at", [
    # unit1: project m, MapUnit mm, Scale 1000 (m → mm), E = 453010000 mm = 453010 m
    ("m", MapConversion(453_010_000.0, 2_463_000_000.0, scale=1000.0, map_unit="mm"), (1.0, 2.0, 3.0)),
    # unit2: m / m, Scale 1, E = 453010 m
    ("m", MapConversion(453_010.0, 2_463_000.0, scale=1.0, map_unit="m"), (1.0, 2.0, 3.0)),
    # unit3: project cm, MapUnit m, Scale 0.01 (cm → m), E = 453010 m; the element at (100, 200, 300) cm
    ("cm", MapConversion(453_010.0, 2_463_000.0, scale=0.01, map_unit="m"), (100.0, 200.0, 300.0)),
], ids=["unit1", "unit2", "unit3"])
def test_units_land_the_same_point(tmp_path: Path, unit: str, conversion: MapConversion,
                                   element_at: tuple[float, float, float]) -> None:
    # The same physical point, 1 m east, 2 m north, 3 m up of the origin, in all three:
    # (453010 + 1, 2463000 + 2, 0 + 3).
    path = write_ifc(tmp_path / f"{unit}.ifc", unit=unit, element_at=element_at,
                     map_conversion=conversion)
    local = element_origin_m(path)
    np.testing.assert_allclose(local, (1, 2, 3), atol=1e-9)
    p = place(path)
    assert p.scale == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(p.origin, (453_010.0, 2_463_000.0, 0.0), atol=1e-9)
    np.testing.assert_allclose(to_gk(p, local), [(453_011.0, 2_463_002.0, 3.0)], atol=1e-6)


# ---- 4. buildingSMART IFC4.3 Gauss-Krüger sample: Scale = project units per map unit ----------------------

A_GK, O_GK = 0.270600445976, 0.962691746426  # |(a, o)| = 1 − 4e-13: these are cos θ, sin θ
E_GK, N_GK, H_GK = 3_458_715.92, 5_439_966.65, 113.7


def test_bsi_gauss_krueger_sample(tmp_path: Path) -> None:
    # mm project, MapUnit metre, Scale 1000. Local 1 m along x → 1 m along (a, o), not 1,000,000 m:
    #   (1, 0, 0) → (E + a, N + o, H) = (3458716.190600446, 5439967.612691746, 113.7)
    #   (0, 1, 2) → (E − o, N + a, H + 2) = (3458714.957308254, 5439966.920600446, 115.7)
    path = write_ifc(tmp_path / "gk.ifc", schema="IFC4X3_ADD2", unit="mm",
                     map_conversion=MapConversion(E_GK, N_GK, H_GK, x_axis=(A_GK, O_GK), scale=1000.0,
                                                  crs_name="EPSG:31467", map_unit="m"))
    assert ifcopenshell.open(str(path)).schema_identifier == "IFC4X3_ADD2"
    p = place(path)
    assert p.scale == pytest.approx(1.0, abs=1e-12)
    assert "Scale 1000" in p.note
    hand = np.array([(E_GK + A_GK, N_GK + O_GK, H_GK), (E_GK - O_GK, N_GK + A_GK, H_GK + 2.0)])
    np.testing.assert_allclose(hand, [(3_458_716.190_600_446, 5_439_967.612_691_746, 113.7),
                                      (3_458_714.957_308_254, 5_439_966.920_600_446, 115.7)], atol=1e-6)
    local = [(1, 0, 0), (0, 1, 2)]
    np.testing.assert_allclose(to_gk(p, *local, crs=CRS.from_epsg(31467)), hand, atol=1e-6)
    # Into an ETRS89 / UTM 32N model: pyproj's own 31467 → 25832 of the hand points; heights unchanged.
    x, y = Transformer.from_crs("EPSG:31467", "EPSG:25832", always_xy=True).transform(hand[:, 0], hand[:, 1])
    np.testing.assert_allclose(to_gk(p, *local, crs=CRS.from_epsg(25832)),
                               np.column_stack([x, y, hand[:, 2]]), atol=1e-3)


# ---- 5. Revit: mm project, MapUnit metre, Scale omitted ----------------------------------------------------


def test_revit_scale_omitted(tmp_path: Path) -> None:
    # Scale omitted = 1 with u = 0.001 m/mm: IFC4 reading gives 1/0.001 = 1000 (implausible), the unit-definition
    # reading gives 1 → 1 local m = 1 map m. Local (1, 2, 3) → (453015 + 1, 2463000 + 2, 5 + 3).
    path = write_ifc(tmp_path / "revit.ifc", unit="mm",
                     map_conversion=MapConversion(453_015.0, 2_463_000.0, 5.0, map_unit="m"))
    p = place(path)
    assert p.scale == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(to_gk(p, (1, 2, 3)), [(453_016.0, 2_463_002.0, 8.0)], atol=1e-6)


# ---- 6. grid scale factor ----------------------------------------------------------------------------------


def test_grid_scale_horizontal_only(tmp_path: Path) -> None:
    # m / m, Scale 0.9996: (100, 200, 30) → (453000 + 99.96, 2463000 + 199.92, 10 + 30): heights not scaled.
    path = write_ifc(tmp_path / "grid.ifc", unit="m",
                     map_conversion=MapConversion(453_000.0, 2_463_000.0, 10.0, scale=0.9996, map_unit="m"))
    p = place(path)
    assert p.scale == pytest.approx(0.9996, abs=1e-12)
    np.testing.assert_allclose(to_gk(p, (100, 200, 30)), [(453_099.96, 2_463_199.92, 40.0)], atol=1e-6)


# ---- 7. inconsistent Scale ---------------------------------------------------------------------------------


def test_inconsistent_scale_is_refused(tmp_path: Path) -> None:
    # mm project, metre map, Scale 0.5: readings 0.5/0.001 = 500, 0.5, 1/(0.5·0.001) = 2000: none within 1 %.
    path = write_ifc(tmp_path / "bad.ifc", unit="mm",
                     map_conversion=MapConversion(453_000.0, 2_463_000.0, scale=0.5, map_unit="m"))
    with pytest.raises(InputError) as err:
        place(path)
    assert "Scale" in str(err.value)
    assert str(path) in str(err.value)


# ---- 8. IfcSite RefLatitude / RefLongitude / RefElevation with TrueNorth -----------------------------------


def test_site_reference_with_true_north(tmp_path: Path) -> None:
    # TrueNorth = (sin 20°, cos 20°): true north lies 20° clockwise of +Y, so +Y has azimuth α = −20°.
    # γ ≈ (113.544 − 114)·sin 22.2631° = −0.456·0.378866 = −0.172763°; grid azimuth β = α − γ = −19.827237°;
    # k ≈ 1 + (Δλ cos φ)²/2 = 1 + 2.73e-5 (2.7 mm per 100 m, so it matters at 1 mm).
    # RefElevation 12500 mm = 12.5 m; height = 12.5 + z.
    s20, c20 = math.sin(math.radians(20)), math.cos(math.radians(20))
    site = SiteReference(ZHUHAI.latitude, ZHUHAI.longitude, elevation=12_500.0)
    path = write_ifc(tmp_path / "site.ifc", unit="mm", site_ref=site, true_north=(s20, c20))
    p = place(path)
    assert p.rule == "IfcSite reference" and p.geodetic
    np.testing.assert_allclose(p.origin, (LON, LAT, 12.5), atol=1e-9)
    e0, n0 = projected(LON, LAT)
    de_y, dn_y = grid_step(LON, LAT, -20.0, 100.0)
    de_x, dn_x = grid_step(LON, LAT, 70.0, 100.0)  # +X is 90° clockwise of +Y
    got = to_gk(p, (0, 0, 0), (0, 100, 7), (100, 0, 0))
    np.testing.assert_allclose(got, [(e0, n0, 12.5), (e0 + de_y, n0 + dn_y, 19.5), (e0 + de_x, n0 + dn_x, 12.5)],
                               atol=1e-3)
    # without the convergence the +Y point would be 100·sin(0.1728°) = 0.30 m off: the check has teeth
    assert math.hypot(got[1, 0] - e0 - 100 * math.sin(math.radians(-20)),
                      got[1, 1] - n0 - 100 * math.cos(math.radians(-20))) > 0.25


def test_site_reference_refers_to_the_site_origin(tmp_path: Path) -> None:
    # Site placed at (10 m, 20 m, 0), no TrueNorth (+Y = true north): the site origin lands on the projected
    # lon/lat; the project origin 10 m west and 20 m south of it (on the ground; ×k and turned by γ on the grid).
    path = write_ifc(tmp_path / "site_offset.ifc", unit="mm", site_ref=ZHUHAI, site_at=(10_000.0, 20_000.0, 0.0))
    p = place(path)
    e0, n0 = projected(LON, LAT)
    de_y, dn_y = grid_step(LON, LAT, 0.0, -20.0)
    de_x, dn_x = grid_step(LON, LAT, 90.0, -10.0)
    np.testing.assert_allclose(to_gk(p, (10, 20, 0), (0, 0, 0)),
                               [(e0, n0, 0.0), (e0 + de_x + de_y, n0 + dn_x + dn_y, 0.0)], atol=1e-3)


def test_site_reference_with_wcs_and_site_offset(tmp_path: Path) -> None:
    # The site origin s = (10, 0, 0) m is a world point; with a WCS translation t = (100, 50, 0) m it must still
    # land on the projected RefLatitude/RefLongitude (a regression: it once landed at −t, 112 m away).
    path = write_ifc(tmp_path / "site_wcs.ifc", unit="mm", site_ref=ZHUHAI, site_at=(10_000.0, 0.0, 0.0),
                     wcs=(100_000.0, 50_000.0, 0.0))
    p = place(path)
    e0, n0 = projected(LON, LAT)
    np.testing.assert_allclose(to_gk(p, (10, 0, 0)), [(e0, n0, 0.0)], atol=1e-3)


# ---- 9. --anchor and --rotation ----------------------------------------------------------------------------


def test_anchor_with_rotation(tmp_path: Path) -> None:
    # Anchor (113.544, 22.2631, 5 m), rotation 30°: +Y at azimuth 30°, grid azimuth 30 − γ = 30.172763°.
    path = write_ifc(tmp_path / "bare.ifc", unit="m")
    p = place(path, anchor=(LON, LAT, 5.0), rotation=30.0)
    assert p.rule == "--anchor"
    e0, n0 = projected(LON, LAT)
    de, dn = grid_step(LON, LAT, 30.0, 100.0)
    np.testing.assert_allclose(to_gk(p, (0, 0, 0), (0, 100, 1)), [(e0, n0, 5.0), (e0 + de, n0 + dn, 6.0)], atol=1e-3)


def test_anchor_rotation_defaults_to_true_north(tmp_path: Path) -> None:
    # TrueNorth = (−sin 30°, cos 30°): true north 30° anticlockwise of +Y, so +Y has azimuth +30°, as above;
    # an explicit --rotation wins over TrueNorth.
    path = write_ifc(tmp_path / "north.ifc", unit="m", true_north=(-SIN30, COS30))
    e0, n0 = projected(LON, LAT)
    de, dn = grid_step(LON, LAT, 30.0, 100.0)
    p = place(path, anchor=(LON, LAT, 5.0))
    assert p.angle == pytest.approx(math.radians(30.0), abs=1e-12)
    np.testing.assert_allclose(to_gk(p, (0, 100, 0)), [(e0 + de, n0 + dn, 5.0)], atol=1e-3)
    p = place(path, anchor=(LON, LAT, 5.0), rotation=0.0)
    de, dn = grid_step(LON, LAT, 0.0, 100.0)
    np.testing.assert_allclose(to_gk(p, (0, 100, 0)), [(e0 + de, n0 + dn, 5.0)], atol=1e-3)


def test_anchor_ignored_when_the_file_is_georeferenced(tmp_path: Path) -> None:
    path = write_ifc(tmp_path / "mapped.ifc", unit="m",
                     map_conversion=MapConversion(453_000.0, 2_463_000.0, map_unit="m"))
    p = place(path, anchor=(LON, LAT, 5.0), rotation=30.0)
    assert p.rule == "IfcMapConversion"
    np.testing.assert_allclose(to_gk(p, (1, 2, 3)), [(453_001.0, 2_463_002.0, 3.0)], atol=1e-6)
    p = place(path, anchor=(LON, LAT, 5.0), rotation=30.0, ignore_georef=True)
    assert p.rule == "--anchor"
    np.testing.assert_allclose(to_gk(p, (0, 0, 0)), [(*projected(LON, LAT), 5.0)], atol=1e-3)


def test_anchor_ignored_when_the_site_is_referenced(tmp_path: Path) -> None:
    path = write_ifc(tmp_path / "site.ifc", unit="m", site_ref=ZHUHAI)
    assert place(path, anchor=(114.0, 22.5, 0.0)).rule == "IfcSite reference"
    assert place(path, anchor=(114.0, 22.5, 0.0), ignore_georef=True).rule == "--anchor"


# ---- 10. --crs alone, and nothing at all -------------------------------------------------------------------


def test_crs_alone_means_map_coordinates(tmp_path: Path) -> None:
    path = write_ifc(tmp_path / "bare.ifc", unit="mm")
    p = place(path, crs="EPSG:4547")
    assert p.rule == "--crs"
    np.testing.assert_allclose(to_gk(p, (453_001.0, 2_463_002.0, 3.0)), [(453_001.0, 2_463_002.0, 3.0)], atol=1e-9)


def test_not_georeferenced(tmp_path: Path) -> None:
    path = write_ifc(tmp_path / "bare.ifc", unit="mm")
    with pytest.raises(InputError, match="not georeferenced; pass --anchor"):
        place(path)


# ---- 11. IFC2X3 ePSet_MapConversion -----------------------------------------------------------------------


@pytest.mark.parametrize("owner, prefix", [("IfcProject", "ePSet_"), ("IfcSite", "ePset_")])
def test_ifc2x3_psets_equal_the_ifc4_entity(tmp_path: Path, owner: str, prefix: str) -> None:
    # mm project, MapUnit METRE, Scale omitted, θ = −30°, E = 453015 m, N = 2463000 m, H = 5 m:
    # (1, 2, 3) → (453015 + 1.8660254, 2463000 + 1.2320508, 5 + 3), as in test_angle.
    conversion = MapConversion(453_015.0, 2_463_000.0, 5.0, x_axis=(COS30, -SIN30), map_unit="m")
    p2 = place(write_ifc(tmp_path / "v2.ifc", schema="IFC2X3", unit="mm", map_conversion=conversion,
                         pset_owner=owner, pset_prefix=prefix))
    p4 = place(write_ifc(tmp_path / "v4.ifc", schema="IFC4", unit="mm", map_conversion=conversion))
    assert p2.rule == "ePSet_MapConversion"
    hand = [(453_016.866_025_4, 2_463_001.232_050_8, 8.0)]
    np.testing.assert_allclose(to_gk(p2, (1, 2, 3)), hand, atol=1e-6)
    np.testing.assert_allclose(to_gk(p2, (1, 2, 3)), to_gk(p4, (1, 2, 3)), atol=1e-9)


# ---- 12. WorldCoordinateSystem, and the offset-site builder -------------------------------------------------


def test_world_coordinate_system_is_removed_first(tmp_path: Path) -> None:
    # WCS at t = (100, 50, 2) m with its x axis along project +Y (90°), so its y axis is project −X.
    # engineering = WCS⁻¹ · local (the convention of ifcopenshell.util.geolocation.auto_xyz2enh):
    #   (100, 51, 2) = t + 1·WCS x → (1, 0, 0) → (453001, 2463000, 0)
    #   (99, 50, 2)  = t + 1·WCS y → (0, 1, 0) → (453000, 2463001, 0)
    #   (100, 50, 5) = t + 3·WCS z → (0, 0, 3) → (453000, 2463000, 3)
    path = write_ifc(tmp_path / "wcs.ifc", unit="mm", wcs=(100_000.0, 50_000.0, 2000.0), wcs_angle_deg=90.0,
                     map_conversion=MapConversion(453_000.0, 2_463_000.0, map_unit="m"))
    p = place(path)
    np.testing.assert_allclose(to_gk(p, (100, 51, 2), (99, 50, 2), (100, 50, 5)),
                               [(453_001.0, 2_463_000.0, 0.0), (453_000.0, 2_463_001.0, 0.0),
                                (453_000.0, 2_463_000.0, 3.0)], atol=1e-6)


def test_offset_site_builder(tmp_path: Path) -> None:
    """The numbers in write_offset_site's docstring: ifcopenshell puts the site placement into the local
    coordinates, and locate adds nothing of its own (offset 0 for a map conversion)."""
    path = write_offset_site(tmp_path / "offset_site.ifc")
    np.testing.assert_allclose(element_origin_m(path), OFFSET_SITE_ELEMENT_LOCAL, atol=1e-7)
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    f = ifcopenshell.open(str(path))
    shape = ifcopenshell.geom.create_shape(settings, f.by_type("IfcElement")[0])
    verts = np.asarray(shape.geometry.verts, dtype=float).reshape(-1, 3)
    assert np.abs(verts - OFFSET_SITE_ELEMENT_LOCAL).max(axis=1).min() < 1e-6  # the box corner at the origin
    p = place(path, crs="EPSG:4547")
    assert p.offset == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(to_gk(p, OFFSET_SITE_ELEMENT_LOCAL), [OFFSET_SITE_ELEMENT_MAP], atol=1e-7)


# ---- 13. landed() / describe() ------------------------------------------------------------------------------


def test_landed_map_rule(tmp_path: Path) -> None:
    # θ = −30° (x axis turned clockwise) is reported as +30° clockwise.
    path = write_ifc(tmp_path / "angle.ifc", unit="mm",
                     map_conversion=MapConversion(E0, N0, 7.0, x_axis=(COS30, -SIN30), map_unit="m"))
    p = place(path)
    lon, lat = Transformer.from_crs(GK, "EPSG:4326", always_xy=True).transform(E0, N0)
    d = p.landed()
    assert d["lon"] == pytest.approx(lon, abs=1e-9) and d["lat"] == pytest.approx(lat, abs=1e-9)
    assert d["height"] == pytest.approx(7.0)
    assert d["rotation_deg"] == pytest.approx(30.0, abs=1e-9)
    assert d["rule"] == "IfcMapConversion" and "EPSG:4547" in d["crs"]
    text = p.describe()
    for part in (f"lon {lon:.7f}", f"lat {lat:.7f}", "EPSG:4547", "IfcMapConversion", "height 7.000"):
        assert part in text, (part, text)


def test_landed_site_reference(tmp_path: Path) -> None:
    # TrueNorth (sin 20°, cos 20°) → +Y azimuth −20° (reported clockwise: −20).
    s20, c20 = math.sin(math.radians(20)), math.cos(math.radians(20))
    site = SiteReference(ZHUHAI.latitude, ZHUHAI.longitude, elevation=12_500.0)
    p = place(write_ifc(tmp_path / "site.ifc", unit="mm", site_ref=site, true_north=(s20, c20)))
    d = p.landed()
    assert (d["lon"], d["lat"], d["height"]) == pytest.approx((LON, LAT, 12.5), abs=1e-9)
    assert d["rotation_deg"] == pytest.approx(-20.0, abs=1e-9)
    assert d["rule"] == "IfcSite reference" and "WGS 84" in d["crs"]
    text = p.describe()
    for part in (f"lon {LON:.7f}", f"lat {LAT:.7f}", "WGS 84", "IfcSite reference", "TrueNorth"):
        assert part in text, (part, text)


# ---- placeholders and IFC4X3 rigid operations ----------------------------------------------------------------


def test_site_reference_at_zero_zero_is_a_placeholder(tmp_path: Path) -> None:
    # Authoring tools write RefLatitude = RefLongitude = (0, 0, 0, 0) when nobody set them.
    path = write_ifc(tmp_path / "zero.ifc", site_ref=SiteReference((0, 0, 0, 0), (0, 0, 0, 0), 0.0))
    with pytest.raises(InputError, match="not georeferenced; pass --anchor"):
        place(path)
    assert place(path, anchor=(LON, LAT, 2.0)).rule == "--anchor"


def test_rigid_operation_to_a_geographic_crs(tmp_path: Path) -> None:
    # IFC4X3: IfcRigidOperation(FirstCoordinate = lon, SecondCoordinate = lat, Height) to IfcGeographicCRS puts
    # the project origin there (in the CRS's AngleUnit, degrees here; the project's is radians); 10 m along +Y
    # (no TrueNorth) is 10 m true north of it, height 2 + 3 m.
    path = write_ifc(tmp_path / "rigid.ifc", schema="IFC4X3_ADD2", unit="m")
    f = ifcopenshell.open(str(path))
    metre = f.create_entity("IfcSIUnit", UnitType="LENGTHUNIT", Name="METRE")
    radian = f.create_entity("IfcSIUnit", UnitType="PLANEANGLEUNIT", Name="RADIAN")
    degree = f.create_entity("IfcConversionBasedUnit", UnitType="PLANEANGLEUNIT", Name="degree",
                             Dimensions=f.create_entity("IfcDimensionalExponents", 0, 0, 0, 0, 0, 0, 0),
                             ConversionFactor=f.create_entity("IfcMeasureWithUnit", f.create_entity(
                                 "IfcPlaneAngleMeasure", math.pi / 180), radian))
    crs = f.create_entity("IfcGeographicCRS", Name="EPSG:4490", HeightUnit=metre, AngleUnit=degree)
    context = next(c for c in f.by_type("IfcGeometricRepresentationContext") if c.ContextType == "Model")
    f.create_entity("IfcRigidOperation", SourceCRS=context, TargetCRS=crs,
                    FirstCoordinate=f.create_entity("IfcPlaneAngleMeasure", LON),
                    SecondCoordinate=f.create_entity("IfcPlaneAngleMeasure", LAT), Height=2.0)
    f.write(str(path))
    p = place(path)
    assert p.rule == "IfcRigidOperation"
    e0, n0 = projected(LON, LAT)
    de, dn = grid_step(LON, LAT, 0.0, 10.0)
    np.testing.assert_allclose(to_gk(p, (0, 0, 0), (0, 10, 3)), [(e0, n0, 2.0), (e0 + de, n0 + dn, 5.0)], atol=1e-3)



def test_bad_map_conversion_values_are_one_line_errors(tmp_path: Path) -> None:
    path = write_ifc(tmp_path / "axis.ifc", map_conversion=MapConversion(eastings=453000.0, northings=2463000.0,
                                                                          x_axis=(0.0, 0.0), map_unit="m",
                                                                          scale=0.001))
    with pytest.raises(InputError, match="x axis has no direction"):
        place(path)
    f = ifcopenshell.open(str(path))
    f.by_type("IfcMapConversion")[0].TargetCRS = None
    f.write(str(path))
    with pytest.raises(InputError, match="has no TargetCRS"):
        place(path)


def test_ifc2x3_text_numbers(tmp_path: Path) -> None:
    # IFC2X3 property values may be text, with a decimal comma: "453000,5" is 453000.5 m; "abc" is an error.
    path = write_ifc(tmp_path / "text.ifc", schema="IFC2X3", unit="m",
                     map_conversion=MapConversion(eastings=453000.5, northings=2463000.0, map_unit="m"))
    f = ifcopenshell.open(str(path))
    value = next(v for v in f.by_type("IfcPropertySingleValue") if v.Name == "Eastings")
    value.NominalValue = f.create_entity("IfcLabel", "453000,5")
    f.write(str(path))
    np.testing.assert_allclose(to_gk(place(path), (0, 0, 0)), [(453000.5, 2463000.0, 0.0)], atol=1e-6)
    value.NominalValue = f.create_entity("IfcLabel", "abc")
    f.write(str(path))
    with pytest.raises(InputError, match="Eastings 'abc' is not a number"):
        place(path)


def test_crs_override_must_be_projected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="need a projected CRS"):
        place(write_ifc(tmp_path / "plain.ifc"), crs="EPSG:4326")
