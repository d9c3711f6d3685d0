"""What the tiler draws: the model's layers as tilesets, each object's shape, and the SQL that reads them."""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from cim.model.kinds import NETWORKS
from cim.model.store import ModelError

# BIM spatial structure (extent boxes) and spaces (air) are not drawn; their elements are. Sensors are drawn live
# by the viewer from the API, not baked into tiles.
HIDDEN_KINDS = ("bim_project", "bim_site", "bim_building", "bim_storey", "bim_zone", "space", "sensor")
SURFACE_TYPES = ("TIN", "POLYHEDRALSURFACE", "TRIANGLE")
PIPE_KINDS = tuple(f"{n}_pipe" for n in NETWORKS)
NODE_KINDS = tuple(f"{n}_node" for n in NETWORKS)
DEFAULT_WIDTH = {"road": 7.0, "railway": 3.0, "water": 5.0}  # ribbon width (m) of line features by kind

# Shape of each object, by kind and stored geometry: decides the mesh builder.
SHAPE_SQL = f"""CASE
  WHEN o.kind IN {PIPE_KINDS!r} THEN 'tube'
  WHEN o.kind IN {NODE_KINDS!r} THEN 'node'
  WHEN GeometryType(o.geom) IN {SURFACE_TYPES!r} THEN 'surface'
  WHEN GeometryType(o.geom) IN ('POLYGON', 'MULTIPOLYGON') AND o.top_z > o.base_z AND coalesce(o.lod, 1) >= 1
    THEN 'prism'
  WHEN GeometryType(o.geom) IN ('POLYGON', 'MULTIPOLYGON', 'LINESTRING', 'MULTILINESTRING') THEN 'drape'
  ELSE 'none' END"""

# Size (m) of an object: the geometric error of leaving it out, and its rank for the coarse levels.
SIZE_SQL = """CASE shape
  WHEN 'tube' THEN coalesce(s.diameter_mm, greatest(s.width_mm, s.height_mm), 100) / 1000.0
  WHEN 'node' THEN greatest(coalesce(n.ground_z - n.bottom_z, 0), 0.5)
  WHEN 'prism' THEN greatest(o.top_z - o.base_z, sqrt(ST_Area(o.geom)))
  WHEN 'drape' THEN greatest(sqrt(ST_Area(o.geom)), ST_Length(o.geom) / 10)
  ELSE greatest(ST_XMax(o.geom) - ST_XMin(o.geom), ST_YMax(o.geom) - ST_YMin(o.geom),
                coalesce(o.top_z - o.base_z, 0)) END"""

# What identifies an object's drawing: when it changes, the tiles holding the object are rewritten.
FINGERPRINT_SQL = """md5(concat_ws('|', o.kind, o.name, o.attributes::text, ST_AsEWKB(o.geom)::text, o.base_z,
  o.top_z, o.lod, o.status, row(s.*)::text, row(n.*)::text))"""

LINE_WIDTH_SQL = """coalesce(CASE WHEN o.attributes->>'width' ~ '^[0-9]+(\\.[0-9]+)?$'
  THEN (o.attributes->>'width')::float END, {default})"""


@dataclass(frozen=True)
class TilesetSource:
    """One tileset: the objects of a layer (pipe layers give one for pipes and one for their nodes)."""

    name: str
    layer: str
    kinds: tuple[str, ...]  # the kinds drawn

    @property
    def class_name(self) -> str:
        return re.sub(r"\W", "_", self.name, flags=re.ASCII)

    def where(self) -> tuple[str, list]:
        sql = "o.layer = %s AND o.kind = ANY(%s)"
        params: list = [self.layer, list(self.kinds)]
        # A LOD1 block stands down where a BIM model of the same building is in the model.
        sql += (" AND NOT (o.kind = 'building' AND o.code IN (SELECT b.attributes->>'building_code' FROM "
                "city_object b WHERE b.kind = 'bim_building' AND b.attributes ? 'building_code'))")
        return sql, params


TERRAIN = "terrain"


def discover(conn: psycopg.Connection, only: list[str] | None = None) -> list[TilesetSource]:
    """The tilesets of the model (terrain is tiled from its rasters, named 'terrain')."""
    rows = conn.execute("SELECT layer, kind FROM city_object GROUP BY layer, kind ORDER BY layer, kind").fetchall()
    by_name: dict[str, tuple[str, list[str]]] = {}
    for layer, kind in rows:
        if kind in HIDDEN_KINDS or kind == "terrain":
            continue
        name = f"{layer}-nodes" if kind in NODE_KINDS else layer
        by_name.setdefault(name, (layer, []))[1].append(kind)
    sources = [TilesetSource(name, layer, tuple(kinds)) for name, (layer, kinds) in sorted(by_name.items())]
    if only:
        unknown = set(only) - {s.name for s in sources} - {TERRAIN}
        if unknown:
            known = ", ".join([TERRAIN] + [s.name for s in sources])
            raise ModelError(f"no tileset named {', '.join(sorted(unknown))} in the model (it has: {known})")
        sources = [s for s in sources if s.name in only]
    return sources


FROM_SQL = f"""FROM (SELECT o.*, {SHAPE_SQL} AS shape FROM city_object o) o
  LEFT JOIN pipe_segment s ON s.code = o.code
  LEFT JOIN pipe_node n ON n.code = o.code"""


def plan_sql(source: TilesetSource) -> tuple[str, list]:
    """Per object: code, shape, bbox (x/y/z min & max), point count, size, fingerprint."""
    where, params = source.where()
    sql = f"""SELECT o.code, o.shape,
      ST_XMin(o.geom), ST_YMin(o.geom), coalesce(least(o.base_z, ST_ZMin(o.geom)), ST_ZMin(o.geom)),
      ST_XMax(o.geom), ST_YMax(o.geom), coalesce(greatest(o.top_z, ST_ZMax(o.geom)), ST_ZMax(o.geom)),
      ST_NPoints(o.geom), {SIZE_SQL.replace('shape', 'o.shape')}, {FINGERPRINT_SQL}
      {FROM_SQL} WHERE {where} AND o.shape <> 'none'"""
    return sql, params


def fetch_sql(source: TilesetSource) -> str:
    """Everything the mesh builders and the property table need for a list of codes (%s = codes)."""
    width = LINE_WIDTH_SQL.format(default="CASE o.kind " + " ".join(
        f"WHEN '{k}' THEN {w}" for k, w in DEFAULT_WIDTH.items()) + " ELSE 3.0 END")
    return f"""SELECT o.code, o.shape, o.kind, o.name, o.base_z, o.top_z, o.attributes,
      CASE WHEN o.shape = 'drape' AND GeometryType(o.geom) LIKE '%%LINESTRING'
           THEN ST_AsBinary(ST_Buffer(ST_Force2D(o.geom), {width} / 2, 'endcap=flat join=round'))
           WHEN o.shape IN ('prism', 'drape') THEN ST_AsBinary(ST_Force2D(o.geom))
           ELSE ST_AsBinary(o.geom) END AS wkb,
      to_jsonb(s.*) - 'code' AS segment, to_jsonb(n.*) - 'code' AS node,
      (SELECT max(coalesce(p.diameter_mm, p.width_mm)) FROM pipe_segment p
        WHERE o.shape = 'node' AND (p.from_node = o.code OR p.to_node = o.code)) AS node_pipe_mm
      {FROM_SQL} WHERE o.code = ANY(%s)"""
