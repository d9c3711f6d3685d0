"""Terrain rasters kept in the model (GeoTIFF in the storage CRS) and ground sampling from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg
from affine import Affine
from rasterio.io import MemoryFile


@dataclass
class Raster:
    code: str
    values: np.ndarray  # float64, NaN where nodata
    transform: Affine

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear height at (x, y); NaN outside the raster or next to nodata."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        inv = ~self.transform
        col = inv.a * x + inv.b * y + inv.c - 0.5  # relative to cell centres
        row = inv.d * x + inv.e * y + inv.f - 0.5
        h, w = self.values.shape
        inside = (col >= -0.5) & (col <= w - 0.5) & (row >= -0.5) & (row <= h - 0.5)
        col = np.clip(col, 0, w - 1)
        row = np.clip(row, 0, h - 1)
        c0 = np.minimum(np.floor(col).astype(np.int64), max(w - 2, 0))
        r0 = np.minimum(np.floor(row).astype(np.int64), max(h - 2, 0))
        c1 = np.minimum(c0 + 1, w - 1)
        r1 = np.minimum(r0 + 1, h - 1)
        fc = col - c0
        fr = row - r0
        v = self.values
        z = (v[r0, c0] * (1 - fc) * (1 - fr) + v[r0, c1] * fc * (1 - fr)
             + v[r1, c0] * (1 - fc) * fr + v[r1, c1] * fc * fr)
        return np.where(inside, z, np.nan)


def read_geotiff(data: bytes) -> tuple[np.ndarray, Affine]:
    with MemoryFile(data) as mem, mem.open() as src:
        band = src.read(1, masked=True).astype(float)
        return band.filled(np.nan), src.transform


class Ground:
    """Ground height from every terrain raster of the model; the newest import wins where they overlap."""

    def __init__(self, rasters: list[Raster]) -> None:
        self.rasters = rasters

    @classmethod
    def load(cls, conn: psycopg.Connection) -> Ground:
        rows = conn.execute(
            "SELECT t.code, t.geotiff FROM terrain_raster t JOIN city_object o USING (code) "
            "ORDER BY o.batch_id DESC"
        ).fetchall()
        rasters = []
        for code, data in rows:
            values, transform = read_geotiff(bytes(data))
            rasters.append(Raster(code, values, transform))
        return cls(rasters)

    def __bool__(self) -> bool:
        return bool(self.rasters)

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        z = np.full(np.shape(x), np.nan)
        for raster in self.rasters:
            todo = np.isnan(z)
            if not todo.any():
                break
            z[todo] = raster.sample(np.asarray(x)[todo], np.asarray(y)[todo])
        return z


def profile_bytes(values: np.ndarray, transform: Affine, srid: int, nodata: float = -9999.0) -> bytes:
    """A tiled, compressed float32 GeoTIFF of `values` (NaN = nodata) in EPSG:srid."""
    data = np.where(np.isnan(values), nodata, values).astype("float32")
    h, w = data.shape
    profile = dict(driver="GTiff", width=w, height=h, count=1, dtype="float32", crs=f"EPSG:{srid}",
                   transform=transform, nodata=nodata, compress="deflate", tiled=True,
                   blockxsize=256, blockysize=256)
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data, 1)
        return mem.read()

