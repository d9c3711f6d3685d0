"""CRS correctness: surveyed lon/lat points land on their CGCS2000 Gauss-Krüger coordinates.

The expected coordinates come from Krüger's series (Karney 2011, to third order in n, error < 0.1 mm in
a 3-degree zone), written out here independently of PROJ.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

from cim.importers.gis import import_gis
from tests.helpers import fetch

A, F = 6378137.0, 1 / 298.257222101  # CGCS2000 ellipsoid
LON0, FALSE_EASTING, K0 = 114.0, 500000.0, 1.0  # EPSG:4547


def gauss_kruger(lon: float, lat: float) -> tuple[float, float]:
    n = F / (2 - F)
    big_a = A / (1 + n) * (1 + n**2 / 4 + n**4 / 64)
    alpha = (n / 2 - 2 * n**2 / 3 + 5 * n**3 / 16, 13 * n**2 / 48 - 3 * n**3 / 5, 61 * n**3 / 240)
    e = 2 * np.sqrt(n) / (1 + n)
    phi, lam = np.radians(lat), np.radians(lon - LON0)
    t = np.sinh(np.arctanh(np.sin(phi)) - e * np.arctanh(e * np.sin(phi)))
    xi_p = np.arctan2(t, np.cos(lam))
    eta_p = np.arctanh(np.sin(lam) / np.sqrt(1 + t**2))
    xi = xi_p + sum(a * np.sin(2 * j * xi_p) * np.cosh(2 * j * eta_p) for j, a in enumerate(alpha, 1))
    eta = eta_p + sum(a * np.cos(2 * j * xi_p) * np.sinh(2 * j * eta_p) for j, a in enumerate(alpha, 1))
    return FALSE_EASTING + K0 * big_a * eta, K0 * big_a * xi


# Points in and around Xiangzhou, Zhuhai (lon, lat in degrees), one on the central meridian.
SURVEYED = {"P1": (113.5440, 22.2631), "P2": (113.5767, 22.2705), "P3": (114.0, 22.5978)}


def _write_points(path, crs: str) -> None:
    frame = gpd.GeoDataFrame({"id": list(SURVEYED)},
                             geometry=[shapely.Point(lon, lat) for lon, lat in SURVEYED.values()], crs=crs)
    frame.to_file(path, engine="pyogrio")


@pytest.mark.parametrize("name, crs", [("points.geojson", "OGC:CRS84"), ("points.gpkg", "EPSG:4326"),
                                       ("points.fgb", "EPSG:4490"), ("points.shp", "EPSG:4490")])
def test_surveyed_points_in_gauss_kruger(model, tmp_path, name, crs):
    """EPSG:4326 and EPSG:4490 (CGCS2000 geographic) declare lat/lon axis order; stored eastings and
    northings must still be right, whatever the file format."""
    path = tmp_path / name
    _write_points(path, crs)
    import_gis(model, path, "survey", kind="generic")
    rows = dict((pid, (x, y)) for pid, x, y in fetch(model,
        "SELECT source_id, ST_X(geom), ST_Y(geom) FROM city_object WHERE layer = 'survey'"))
    for pid, (lon, lat) in SURVEYED.items():
        e, n = gauss_kruger(lon, lat)
        assert rows[pid][0] == pytest.approx(e, abs=0.001), pid
        assert rows[pid][1] == pytest.approx(n, abs=0.001), pid
    # and PostGIS takes them back to the same lon/lat
    back = fetch(model,
        "SELECT source_id, ST_X(ST_Transform(geom, 4326)), ST_Y(ST_Transform(geom, 4326)) FROM city_object "
        "WHERE layer = 'survey'")
    for pid, lon, lat in back:
        assert (lon, lat) == pytest.approx(SURVEYED[pid], abs=1e-9)


def test_central_meridian_point_has_false_easting(model, tmp_path):
    path = tmp_path / "cm.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "CM"}, "geometry": {"type": "Point", "coordinates": [114, 22.5]}}]}))
    import_gis(model, path, "survey", kind="generic")
    x, y = fetch(model, "SELECT ST_X(geom), ST_Y(geom) FROM city_object")[0]
    assert x == pytest.approx(500000.0, abs=1e-6)
    assert y == pytest.approx(gauss_kruger(114.0, 22.5)[1], abs=0.001)


def test_source_heights_survive_the_horizontal_transform(model, tmp_path):
    """A 3D line given in lon/lat keeps its own Z where the model has no terrain (heights stay orthometric)."""
    path = tmp_path / "pipe.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "L1"},
         "geometry": {"type": "LineString", "coordinates": [[113.544, 22.263, 2.57], [113.545, 22.264, 0.943]]}}]}))
    import_gis(model, path, "lines", kind="generic")
    zmin, zmax, x = fetch(model, "SELECT ST_ZMin(geom), ST_ZMax(geom), ST_X(ST_StartPoint(geom)) FROM city_object")[0]
    assert (zmin, zmax) == pytest.approx((0.943, 2.57))
    assert x == pytest.approx(gauss_kruger(113.544, 22.263)[0], abs=0.001)
