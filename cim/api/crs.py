"""CRS parameters of OGC API - Features Part 2: URIs ↔ EPSG codes, axis order, and input geometries taken
into the storage CRS with pyproj."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from cim.api.problems import ApiError

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
# Listed in every collection besides CRS84 and the storage CRS: WGS 84, CGCS2000 geographic, Web Mercator.
LISTED_EPSG = (4326, 4490, 3857)
_EPSG_FORMS = (
    re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/0/(\d+)$"),
    re.compile(r"^urn:ogc:def:crs:EPSG:[\d.]*:(\d+)$", re.I),
    re.compile(r"^EPSG:(\d+)$", re.I),
)


@dataclass(frozen=True)
class Crs:
    """A CRS the API speaks: its URI, EPSG code (CRS84 = 4326 with lon/lat order) and axis order."""

    uri: str
    srid: int
    swapped: bool  # the CRS's first axis is northing/latitude: GeoJSON coordinates come y, x
    geographic: bool

    @property
    def digits(self) -> int:
        """Decimal places that keep millimetres: 8 in degrees, 3 in metres."""
        return 8 if self.geographic else 3


@lru_cache(maxsize=256)
def _describe(srid: int) -> tuple[bool, bool]:
    crs = CRS.from_epsg(srid)
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return first in ("north", "south"), crs.is_geographic


def parse_crs(value: str | None, param: str, known_srids: frozenset[int]) -> Crs:
    """A `crs`/`bbox-crs`/`filter-crs` value: CRS84 when empty; EPSG URIs, URNs and EPSG:N otherwise."""
    if value is None or value == "" or value in (CRS84, "CRS84", "OGC:CRS84"):
        return Crs(CRS84, 4326, False, True)
    text = value.strip().strip("[]")  # safe CURIE form [EPSG:4326]
    srid = None
    for form in _EPSG_FORMS:
        m = form.match(text)
        if m:
            srid = int(m.group(1))
            break
    if srid is None:
        raise ApiError(400, f"{param}: {value!r} is not a CRS this API knows; use {CRS84} or "
                            f"{EPSG_URI.format('<code>')}")
    if srid not in known_srids:
        raise ApiError(400, f"{param}: EPSG:{srid} is not supported by this server")
    try:
        swapped, geographic = _describe(srid)
    except CRSError:
        raise ApiError(400, f"{param}: EPSG:{srid} is not supported by this server") from None
    return Crs(EPSG_URI.format(srid), srid, swapped, geographic)


def listed_uris(storage_srid: int) -> list[str]:
    return [CRS84, *(EPSG_URI.format(c) for c in dict.fromkeys((*LISTED_EPSG, storage_srid)))]


@lru_cache(maxsize=64)
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(src), CRS.from_epsg(dst), always_xy=True)


def to_storage(geom: shapely.Geometry, crs: Crs, storage_srid: int) -> shapely.Geometry:
    """A geometry given in `crs` (in its axis order) as storage-CRS coordinates; Z passes unchanged. Edges in
    degrees are densified first so that a transformed polygon keeps its shape."""
    if crs.swapped:
        geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
    if crs.srid == storage_srid:
        return geom
    if crs.geographic:
        geom = shapely.segmentize(geom, 0.0005)  # about 50 m
    tr = _transformer(crs.srid, storage_srid)

    def move(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y, *coords[:, 2:].T])

    out = shapely.transform(geom, move, include_z=shapely.has_z(geom))
    if not np.isfinite(shapely.get_coordinates(out)).all():
        raise ApiError(400, f"coordinates outside the area of {crs.uri}")
    return out


def bbox_to_storage(box: tuple[float, ...], crs: Crs, storage_srid: int) -> tuple[shapely.Polygon, tuple]:
    """A `bbox` (4 or 6 numbers, in `crs` axis order) as a storage-CRS polygon, plus (zmin, zmax) or ()."""
    if len(box) == 6:
        x1, y1, z1, x2, y2, z2 = box
        zs: tuple = (z1, z2)
    else:
        x1, y1, x2, y2 = box
        zs = ()
    poly = shapely.box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return to_storage(poly, crs, storage_srid), zs
