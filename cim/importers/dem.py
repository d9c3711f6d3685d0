"""DEM rasters → terrain of the model (kept as GeoTIFF in the storage CRS, sampled by other importers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.errors import RasterioError
from rasterio.warp import Resampling, calculate_default_transform, reproject

from cim.crs import height_factor
from cim.importers.common import check_source, ewkb_hex, parse_crs
from cim.importers.errors import InputError
from cim.model.store import Batch, Model, WriteResult, write_objects
from cim.model.terrain import profile_bytes

Z_UNITS = {"m": 1.0, "ft": 0.3048, "us-ft": 1200 / 3937}


def _check_area_of_use(path: Path, src: CRS, bounds, dst: CRS) -> None:
    """Refuse a raster that does not lie within the area where the storage CRS is usable."""
    area = dst.area_of_use
    if area is None:
        return
    lon_min, lat_min, lon_max, lat_max = Transformer.from_crs(src, "EPSG:4326", always_xy=True).transform_bounds(
        *bounds)
    margin = 1.0  # degrees: a DEM may run a little past a zone's edge
    inside = (lon_min >= area.west - margin and lon_max <= area.east + margin
              and lat_min >= area.south - margin and lat_max <= area.north + margin)
    if not inside:
        raise InputError(path, f"raster covers lon {lon_min:.2f}..{lon_max:.2f}, lat {lat_min:.2f}..{lat_max:.2f}, "
                         f"outside the area of use of the model's {dst.name}")


def read_dem(path: Path, crs: str | None, dst_srid: int, z_unit: str = "auto"):
    """The DEM's first band in the storage CRS, heights in metres (NaN = nodata), its transform and CRS."""
    check_source(path)
    try:
        with rasterio.open(path) as src:
            src_crs = src.crs
            if src_crs is None and crs is None:
                raise InputError(path, "raster has no CRS; pass --crs EPSG:…")
            if crs:
                src_crs = rasterio.crs.CRS.from_user_input(parse_crs(path, crs).to_wkt())
            band = src.read(1, masked=True).astype("float64").filled(np.nan)
            transform, width, height, bounds = src.transform, src.width, src.height, src.bounds
    except RasterioError as exc:
        raise InputError(path, f"cannot read raster: {exc}") from None
    if np.isnan(band).all():
        raise InputError(path, "raster has no valid cells")
    src_pyproj = CRS.from_wkt(src_crs.to_wkt())
    band *= height_factor(src_pyproj) if z_unit == "auto" else Z_UNITS[z_unit]
    dst_crs = rasterio.crs.CRS.from_epsg(dst_srid)
    _check_area_of_use(path, src_pyproj, bounds, CRS.from_epsg(dst_srid))
    if src_crs != dst_crs:
        dst_transform, dst_w, dst_h = calculate_default_transform(src_crs, dst_crs, width, height, *bounds)
        out = np.full((dst_h, dst_w), np.nan)
        reproject(band, out, src_transform=transform, src_crs=src_crs, dst_transform=dst_transform,
                  dst_crs=dst_crs, resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan)
        band, transform = out, dst_transform
    return band, transform, src_crs


def import_dem(model: Model, path: Path, layer: str = "terrain", crs: str | None = None,
               z_unit: str = "auto") -> WriteResult:
    """Register a DEM as a terrain object of the model; re-importing the same file replaces it."""
    band, transform, src_crs = read_dem(path, crs, model.info.srid, z_unit)
    h, w = band.shape
    x0, y0 = transform.c, transform.f
    x1, y1 = x0 + transform.a * w + transform.b * h, y0 + transform.d * w + transform.e * h
    zmin, zmax = float(np.nanmin(band)), float(np.nanmax(band))
    outline = shapely.force_3d(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), zmin)
    cell = abs(transform.a)
    summary = {"width": w, "height": h, "cell_size": cell, "z_min": zmin, "z_max": zmax,
               "nodata_cells": int(np.isnan(band).sum()), "z_unit": z_unit,
               "reprojected": src_crs != rasterio.crs.CRS.from_epsg(model.info.srid)}
    records = pd.DataFrame([{
        "source_key": path.name, "source_id": path.name, "kind": "terrain", "name": path.stem,
        "attributes": pd.Series([summary]).to_json(orient="records")[1:-1],
        "geom": ewkb_hex(np.array([outline]), model.info.srid)[0], "base_z": zmin, "top_z": zmax, "lod": 0,
        "status": "existing", "valid_from": None, "valid_to": None,
    }])
    tiff = profile_bytes(band, transform, model.info.srid)
    with model.transaction() as conn:
        result = write_objects(conn, model.info, Batch("dem", layer, path, str(src_crs), summary), records)
        conn.execute(
            "INSERT INTO terrain_raster (code, geotiff, width, height, cell_size) VALUES (%s, %s, %s, %s, %s)",
            (result.codes.iloc[0], tiff, w, h, cell),
        )
    return result
