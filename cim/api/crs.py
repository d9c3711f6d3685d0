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
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
MAX_VERTICES = 20_000  # an input geometry densified for a transform stays below this
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
    """A `crs`/`bbox-crs`/`filter-crs` value: CRS84 when empty; EPSG URIs, URNs and EPSG:N of the listed CRSs
    (`known_srids`: CIM_API_CRS and the storage CRS) otherwise."""
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
        listed = ", ".join(f"EPSG:{c}" for c in sorted(known_srids))
        raise ApiError(400, f"{param}: EPSG:{srid} is not one of this server's CRSs (CRS84, {listed})")
    try:
        swapped, geographic = _describe(srid)
    except CRSError:
        raise ApiError(400, f"{param}: EPSG:{srid} is not supported by this server") from None
    return Crs(EPSG_URI.format(srid), srid, swapped, geographic)


def listed_uris(srids: frozenset[int], storage_srid: int) -> list[str]:
    """The `crs` list of every collection: CRS84, then the storage CRS, then the others."""
    return [CRS84, *(EPSG_URI.format(c) for c in dict.fromkeys((storage_srid, *sorted(srids))))]


@lru_cache(maxsize=64)
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(src), CRS.from_epsg(dst), always_xy=True)


@lru_cache(maxsize=16)
def area_of_use(srid: int) -> tuple[float, float, float, float]:
    """The storage CRS's area of use in degrees (west, south, east, north), 1° wider on each side."""
    w, s, e, n = CRS.from_epsg(srid).area_of_use.bounds
    return max(w - 1, -180.0), max(s - 1, -90.0), min(e + 1, 180.0), min(n + 1, 90.0)


def _move(geom: shapely.Geometry, tr: Transformer) -> shapely.Geometry:
    def fn(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y, *coords[:, 2:].T])

    return shapely.transform(geom, fn, include_z=bool(shapely.has_z(geom)))


def _densified(geom: shapely.Geometry, wanted: float) -> shapely.Geometry:
    """Edges split every `wanted` units, or coarser when that would make too many vertices."""
    if shapely.get_num_coordinates(geom) < 2 or geom.geom_type in ("Point", "MultiPoint"):
        return geom
    step = max(wanted, shapely.length(shapely.boundary(geom) if geom.area else geom) / MAX_VERTICES)
    return shapely.segmentize(geom, step) if step > 0 else geom


def to_storage(geom: shapely.Geometry, crs: Crs, storage_srid: int) -> shapely.Geometry:
    """A geometry given in `crs` (in its axis order) as storage-CRS coordinates; Z passes unchanged.

    Other CRSs go through longitude/latitude: checked to be on the globe, and clipped to the storage CRS's
    area of use (a Gauss-Krüger zone folds points far from its meridian back onto it), then densified so that
    a transformed polygon keeps its shape."""
    if crs.swapped:
        geom = shapely.transform(geom, lambda xy: xy[:, ::-1], include_z=bool(shapely.has_z(geom)))
    if crs.srid == storage_srid:
        return geom
    if not crs.geographic:
        geom = _move(_densified(geom, 50.0), _transformer(crs.srid, 4326))
    lonlat = shapely.get_coordinates(geom)
    if not np.isfinite(lonlat).all() or (np.abs(lonlat[:, 0]) > 180).any() or (np.abs(lonlat[:, 1]) > 90).any():
        raise ApiError(400, f"coordinates outside the globe for {crs.uri} (longitude/latitude expected)")
    w, s, e, n = area_of_use(storage_srid)
    x0, y0, x1, y1 = geom.bounds
    if x0 < w or y0 < s or x1 > e or y1 > n:
        if shapely.has_z(geom) or geom.geom_type not in ("Polygon", "MultiPolygon", "LineString",
                                                         "MultiLineString"):
            raise ApiError(400, f"the geometry reaches outside the area of EPSG:{storage_srid} "
                                f"({w}..{e} E, {s}..{n} N)")
        geom = shapely.clip_by_rect(geom, w, s, e, n)
        if geom.is_empty:
            return geom
    # a straight edge in degrees bends by under a millimetre over 300 m in a transverse Mercator zone
    return _move(_densified(geom, 0.003), _transformer(4326, storage_srid))


def bbox_to_storage(box: tuple[float, ...], crs: Crs, storage_srid: int) -> tuple[shapely.Polygon, tuple]:
    """A `bbox` (4 or 6 numbers, in `crs` axis order) as a storage-CRS polygon (empty when it lies outside the
    model's area), plus (zmin, zmax) or ()."""
    if len(box) == 6:
        x1, y1, z1, x2, y2, z2 = box
        zs: tuple = (z1, z2)
    else:
        x1, y1, x2, y2 = box
        zs = ()
    poly = shapely.box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return to_storage(poly, crs, storage_srid), zs
