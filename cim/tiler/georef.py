"""Placing meshes on the globe: orthometric → ellipsoidal heights (geoid), storage CRS → ECEF, and the
local east-north-up frame whose float64 ENU→ECEF matrix is a tileset's root `transform`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyproj
from pyproj import CRS, Transformer

from cim.config import settings
from cim.crs import horizontal

# Grids searched for when CIM_GEOID_GRID is unset (Debian's proj-data ships the first one).
EGM96_NAMES = ("egm96_15.gtx", "us_nga_egm96_15.tif")
SYSTEM_PROJ_DIRS = (Path("/usr/share/proj"), Path("/usr/local/share/proj"))


@dataclass(frozen=True)
class Geoid:
    grid: Path | None  # None = the constant undulation
    undulation: float

    @property
    def description(self) -> str:
        if self.grid is not None:
            return f"ellipsoidal = orthometric + geoid height from PROJ grid {self.grid.name}"
        return f"ellipsoidal = orthometric + {self.undulation:+.2f} m (constant geoid height, no PROJ grid found)"


def find_geoid() -> Geoid:
    """The configured geoid grid, else EGM96 from PROJ's data dirs, else the configured constant."""
    cfg = settings()
    names = (cfg.geoid_grid,) if cfg.geoid_grid else EGM96_NAMES
    dirs = [Path(pyproj.datadir.get_data_dir()), *SYSTEM_PROJ_DIRS]
    for name in names:
        candidates = [Path(name)] + [d / name for d in dirs]
        for path in candidates:
            if path.is_file():
                return Geoid(path.resolve(), cfg.geoid_undulation)
    return Geoid(None, cfg.geoid_undulation)


@lru_cache(maxsize=8)
def _transformers(srid: int, geoid: Geoid) -> tuple[Transformer, Transformer | None, Transformer]:
    to_lonlat = Transformer.from_crs(horizontal(CRS.from_epsg(srid)), CRS.from_epsg(4326), always_xy=True)
    shift = None
    if geoid.grid is not None:
        shift = Transformer.from_pipeline(
            "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
            f"+step +proj=vgridshift +grids={geoid.grid} +multiplier=1 "
            "+step +proj=unitconvert +xy_in=rad +xy_out=deg")
    to_ecef = Transformer.from_crs(CRS.from_epsg(4979), CRS.from_epsg(4978), always_xy=True)
    return to_lonlat, shift, to_ecef


def geodetic(points: np.ndarray, srid: int, geoid: Geoid) -> np.ndarray:
    """(n, 3) storage x, y, orthometric z → (n, 3) longitude, latitude (degrees), ellipsoidal height."""
    to_lonlat, shift, _ = _transformers(srid, geoid)
    lon, lat = to_lonlat.transform(points[:, 0], points[:, 1])
    if shift is None:
        h = points[:, 2] + geoid.undulation
    else:
        _, _, h = shift.transform(lon, lat, points[:, 2])
        h = np.where(np.isfinite(h), h, points[:, 2] + geoid.undulation)  # outside the grid
    return np.column_stack([lon, lat, h])


def ecef(points: np.ndarray, srid: int, geoid: Geoid) -> np.ndarray:
    """(n, 3) storage x, y, orthometric z → (n, 3) ECEF (EPSG:4978) metres, float64."""
    _, _, to_ecef = _transformers(srid, geoid)
    g = geodetic(points, srid, geoid)
    return np.column_stack(to_ecef.transform(g[:, 0], g[:, 1], g[:, 2]))


def enu_rotation(lon: float, lat: float) -> np.ndarray:
    """3×3 rotation taking ECEF vectors to east, north, up at (lon, lat) in degrees."""
    lo, la = np.radians(lon), np.radians(lat)
    return np.array([
        [-np.sin(lo), np.cos(lo), 0.0],
        [-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)],
        [np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)],
    ])


class Frame:
    """The east-north-up frame of one tileset, at a point of the model."""

    def __init__(self, origin: np.ndarray, srid: int, geoid: Geoid) -> None:
        self.srid, self.geoid = srid, geoid
        self.origin = np.asarray(origin, float)
        lon, lat, _ = geodetic(self.origin[None, :], srid, geoid)[0]
        self.lonlat = (float(lon), float(lat))
        self.origin_ecef = ecef(self.origin[None, :], srid, geoid)[0]
        self.rotation = enu_rotation(lon, lat)
        # Grid → ENU rotation of directions (normals): the map is conformal, so the image of the grid's
        # east axis fixes it (meridian convergence).
        probe = self.origin + np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
        east = np.diff(self.to_local(probe), axis=0)[0]
        gamma = np.arctan2(east[1], east[0])
        c, s = np.cos(gamma), np.sin(gamma)
        self.normal_rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """Storage-CRS points → float64 ENU metres relative to the frame origin."""
        return (ecef(points, self.srid, self.geoid) - self.origin_ecef) @ self.rotation.T

    def local_normals(self, normals: np.ndarray) -> np.ndarray:
        return (normals.astype(np.float64) @ self.normal_rotation.T).astype(np.float32)

    def matrix(self) -> list[float]:
        """ENU → ECEF as a column-major 4×4 list (a tile's `transform`)."""
        m = np.eye(4)
        m[:3, :3] = self.rotation.T
        m[:3, 3] = self.origin_ecef
        return [float(v) for v in m.T.ravel()]

    def to_region(self, lo: np.ndarray, hi: np.ndarray) -> list[float]:
        """A 3D Tiles `region` (radians, ellipsoidal heights) containing the local ENU box [lo, hi]."""
        corners = np.array(np.meshgrid(*zip(lo, hi, strict=True), indexing="ij")).reshape(3, -1).T
        world = corners @ self.rotation + self.origin_ecef
        _, _, to_ecef = _transformers(self.srid, self.geoid)
        lon, lat, h = to_ecef.transform(world[:, 0], world[:, 1], world[:, 2], direction="INVERSE")
        lon, lat = np.radians(lon), np.radians(lat)
        return [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()),
                float(h.min()), float(h.max())]
