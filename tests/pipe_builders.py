"""Small pipe networks, written as CJJ 61-2017 GeoPackages, whose analysis results are checked by hand."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import shapely

CRS = "EPSG:4547"
X0, Y0 = 453500.0, 2463500.0  # inside the sample district


def write_network(path: Path, points: dict[str, tuple], lines: dict[str, tuple], code: str = "JS",
                  point_fields: dict[str, dict] | None = None, line_fields: dict[str, dict] | None = None) -> Path:
    """points: id → (x, y, FSW) in metres from (X0, Y0); lines: id → (from id, to id, GJ, QDMS, ZDMS).
    Each line runs straight between its points."""
    pf, lf = point_fields or {}, line_fields or {}
    pts = gpd.GeoDataFrame(
        [{"WTDH": k, "FSW": v[2], "DMGC": 10.0, **pf.get(k, {})} for k, v in points.items()],
        geometry=[shapely.Point(X0 + v[0], Y0 + v[1]) for v in points.values()], crs=CRS)
    rows, geoms = [], []
    for k, (a, b, gj, d0, d1) in lines.items():
        rows.append({"GXBH": k, "QDDH": a, "ZDDH": b, "GXDM": code, "GJ": gj, "QDMS": d0, "ZDMS": d1,
                     "CZ": "PE", **lf.get(k, {})})
        geoms.append(shapely.LineString([(X0 + points[a][0], Y0 + points[a][1]),
                                         (X0 + points[b][0], Y0 + points[b][1])]))
    path.unlink(missing_ok=True)
    gpd.GeoDataFrame(rows, geometry=geoms, crs=CRS).to_file(path, layer="lines", driver="GPKG")
    pts.to_file(path, layer="points", driver="GPKG")
    return path


# A looped water network: source S feeds tee A; valve V1 leads east to tee B (service C to building B-1,
# loop B–E–V3–D), valve V2 leads south to D. Valves V1, V2, V3 cut it into three segments:
#   X = {p1, p2, p5} with S and A;  Y = {p3, p4, p8, p9} with B, C, E;  Z = {p6, p7} with D.
LOOP_POINTS = {
    "S": (0, 0, "水厂"), "A": (100, 0, "三通"), "V1": (110, 0, "阀门"), "B": (200, 0, "三通"),
    "C": (200, 50, "接户"), "V2": (100, -10, "阀门"), "D": (100, -100, "弯头"), "V3": (190, -100, "阀门"),
    "E": (200, -100, "三通"),
}
LOOP_LINES = {
    "p1": ("S", "A", 300, 1.2, 1.2), "p2": ("A", "V1", 200, 1.2, 1.2), "p3": ("V1", "B", 200, 1.2, 1.2),
    "p4": ("B", "C", 50, 1.0, 1.0), "p5": ("A", "V2", 200, 1.2, 1.2), "p6": ("V2", "D", 200, 1.2, 1.2),
    "p7": ("D", "V3", 200, 1.2, 1.2), "p8": ("V3", "E", 200, 1.2, 1.2), "p9": ("E", "B", 200, 1.2, 1.2),
}
LOOP_SEGMENTS = [{"p1", "p2", "p5"}, {"p3", "p4", "p8", "p9"}, {"p6", "p7"}]


def write_loop(path: Path, **point_fields: dict) -> Path:
    fields = {"C": {"JHJZ": "B-1"}, **point_fields}
    return write_network(path, LOOP_POINTS, LOOP_LINES, point_fields=fields)


def write_flat_dem(path: Path, z: float = 10.0) -> Path:
    """A 1 km square of flat ground at height z around (X0, Y0), 10 m cells."""
    import numpy as np
    import rasterio
    from affine import Affine

    with rasterio.open(path, "w", driver="GTiff", width=100, height=100, count=1, dtype="float32", crs=CRS,
                       transform=Affine(10, 0, X0 - 500, 0, -10, Y0 + 500)) as dst:
        dst.write(np.full((1, 100, 100), z, dtype="float32"))
    return path
