"""The model's collections as the API shows them: one per layer (a pipe layer gives `<layer>` for its pipes
and `<layer>-nodes` for its nodes, as the tilesets do), each with its extent, typed queryables and tileset.

Read from the model when it changes (a new import batch), at most every CIM_API_CATALOG_TTL_S seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pyproj import CRS, Transformer
from sqlalchemy import Boolean, DateTime, Float, Integer, SmallInteger, case, cast, func, text
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION
from sqlalchemy.sql.elements import ColumnElement

from cim.api.db import ModelDb
from cim.api.problems import ApiError
from cim.model.kinds import NETWORKS
from cim.model.schema import city_object, pipe_node, pipe_segment

PIPE_KINDS = frozenset(f"{n}_pipe" for n in NETWORKS)
NODE_KINDS = frozenset(f"{n}_node" for n in NETWORKS)
ATTRIBUTE_SAMPLE = 2000  # rows per collection whose attribute keys and types make its queryables
obj = city_object.c


@dataclass(frozen=True)
class Queryable:
    """A property a filter, sortby or `properties` can name: its JSON Schema type and SQL expression."""

    name: str
    type: str  # string | number | integer | boolean | date-time | geometry
    expr: ColumnElement
    output: ColumnElement | None = None  # the value in the feature's properties (default: expr)
    description: str = ""
    attribute: bool = False  # from the attributes JSONB (its properties come with the whole object)
    sparse: bool = False  # left out of a feature's properties where null (network columns in a mixed search)

    def schema(self) -> dict:
        if self.type == "geometry":
            return {"title": self.name, "format": "geometry-any", "x-ogc-role": "primary-geometry"}
        if self.type == "date-time":
            out = {"title": self.name, "type": "string", "format": "date-time"}
        else:
            out = {"title": self.name, "type": self.type}
        if self.description:
            out["description"] = self.description
        if self.name == "code":
            out["x-ogc-role"] = "id"
        return out


def _type_of(column) -> str:
    t = column.type
    if isinstance(t, Boolean):
        return "boolean"
    if isinstance(t, Integer | SmallInteger):
        return "integer"
    if isinstance(t, Float):
        return "number"
    if isinstance(t, DateTime):
        return "date-time"
    return "string"


CORE_DESCRIPTIONS = {
    "code": "unified object code (统一编码), the feature id",
    "kind": "object kind (building, road, water_pipe, wall, …)",
    "layer": "model layer the object was imported into",
    "base_z": "lowest elevation, m (orthometric)",
    "top_z": "highest elevation, m (orthometric)",
    "lod": "level of detail: 0 draped, 1 extruded, 2+ CityJSON, 4 BIM",
    "status": "lifecycle: planned, under_construction, existing, demolished",
    "valid_from": "start of the object's validity (construction)",
    "valid_to": "end of the object's validity (demolition)",
    "source_file": "file the object was imported from",
    "source_id": "record id in that file",
    "parent_code": "containing object (BIM storey, building, …)",
}
CORE_COLUMNS = ("code", "kind", "layer", "name", "base_z", "top_z", "lod", "status", "valid_from", "valid_to",
                "source_file", "source_id", "parent_code")


def _core() -> dict[str, Queryable]:
    out = {"geometry": Queryable("geometry", "geometry", obj.geom, description="3D geometry (storage CRS)")}
    for name in CORE_COLUMNS:
        col = obj[name]
        out[name] = Queryable(name, _type_of(col), col, description=CORE_DESCRIPTIONS.get(name, ""))
    return out


def _table(table, sparse: bool = False) -> dict[str, Queryable]:
    return {c.name: Queryable(c.name, _type_of(c), c, sparse=sparse) for c in table.columns if c.name != "code"}


def mixed_queryables() -> dict[str, Queryable]:
    """Queryables of a search across collections: the object columns, and the pipe and node columns where
    the object has them."""
    out = {**_core(), **_table(pipe_segment, True), **_table(pipe_node, True)}
    network = func.coalesce(pipe_segment.c.network, pipe_node.c.network)
    out["network"] = Queryable("network", "string", network, sparse=True)
    return out


def mixed_join():
    return city_object.outerjoin(pipe_segment, pipe_segment.c.code == obj.code) \
        .outerjoin(pipe_node, pipe_node.c.code == obj.code)


def _attribute(key: str, kind: str) -> Queryable | None:
    raw = obj.attributes[key]
    typeof = func.jsonb_typeof(raw)
    if kind == "number":
        expr = case((typeof == "number", cast(obj.attributes[key].astext, DOUBLE_PRECISION)))
    elif kind == "boolean":
        expr = case((typeof == "boolean", cast(obj.attributes[key].astext, Boolean)))
    elif kind == "string":
        expr = case((typeof.in_(("string", "number", "boolean")), obj.attributes[key].astext))
    else:
        return None  # objects and arrays (IFC property sets, lists) are shown, not filtered
    return Queryable(key, kind, expr, raw, attribute=True)


@dataclass
class Collection:
    id: str
    layer: str
    kinds: tuple[str, ...]
    count: int
    family: str  # pipes | nodes | objects
    bbox: list[float]  # CRS84
    storage_bbox: list[float]
    z_range: tuple[float | None, float | None]
    time_range: tuple[str | None, str | None]
    queryables: dict[str, Queryable] = field(default_factory=dict)
    attribute_keys: frozenset[str] = frozenset()  # every attribute seen in the sample, nested ones included

    @property
    def key(self) -> tuple:
        """What the SQL of this collection's pages depends on (cim.api.features.compiled)."""
        return (self.id, self.layer, self.kinds, self.family, tuple((n, q.type) for n, q in self.queryables.items()))

    @property
    def title(self) -> str:
        return {"pipes": f"{self.layer} pipes", "nodes": f"{self.layer} network nodes"}.get(self.family, self.layer)

    @property
    def description(self) -> str:
        return f"{self.count:,} objects of kind {', '.join(self.kinds)} in layer {self.layer!r}"

    def join(self):
        """The FROM clause: city_object, with its pipe or node row for network collections."""
        if self.family == "pipes":
            return city_object.outerjoin(pipe_segment, pipe_segment.c.code == obj.code)
        if self.family == "nodes":
            return city_object.outerjoin(pipe_node, pipe_node.c.code == obj.code)
        return city_object

    def where(self) -> ColumnElement:
        return (obj.layer == self.layer) & obj.kind.in_(self.kinds)

    def tileset(self, tiles_dir: Path) -> str | None:
        """The tileset.json path under /tiles that draws this collection, when `cim tile` wrote it."""
        rel = f"{self.id}/tileset.json"
        return rel if (tiles_dir / rel).is_file() else None


def _collections_of(rows: list, storage_srid: int) -> dict[str, dict]:
    grouped: dict[str, dict] = defaultdict(lambda: {"kinds": [], "count": 0, "box": None, "z": [None, None],
                                                   "t": [None, None], "open": False})
    for layer, kind, n, x0, y0, z0, x1, y1, z1, t0, t1, open_end in rows:
        family = "pipes" if kind in PIPE_KINDS else "nodes" if kind in NODE_KINDS else "objects"
        cid = f"{layer}-nodes" if family == "nodes" else layer
        g = grouped[cid]
        g.update(layer=layer, family=family if g.get("family") in (None, family) else "objects")
        g["kinds"].append(kind)
        g["count"] += n
        box = g["box"]
        g["box"] = [x0, y0, x1, y1] if box is None else [min(box[0], x0), min(box[1], y0), max(box[2], x1),
                                                         max(box[3], y1)]
        g["z"] = [z0 if g["z"][0] is None else min(g["z"][0], z0), z1 if g["z"][1] is None else max(g["z"][1], z1)]
        if t0 is not None:
            g["t"][0] = t0 if g["t"][0] is None else min(g["t"][0], t0)
        if t1 is not None:
            g["t"][1] = t1 if g["t"][1] is None else max(g["t"][1], t1)
        g["open"] |= bool(open_end)
    return grouped


class Catalog:
    """The collections of one model, refreshed after imports."""

    def __init__(self, db: ModelDb, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self.collections: dict[str, Collection] = {}
        self.max_radius = 0.0  # m: the widest pipe's half size, the margin of 3D index searches
        self._signature: tuple | None = None
        self._checked = 0.0
        self._lock = asyncio.Lock()
        self._to_crs84 = Transformer.from_crs(CRS.from_epsg(db.srid), CRS.from_epsg(4326), always_xy=True)

    async def current(self) -> dict[str, Collection]:
        if time.monotonic() - self._checked < self.ttl and self._signature is not None:
            return self.collections
        async with self._lock:
            if time.monotonic() - self._checked < self.ttl and self._signature is not None:
                return self.collections
            async with self.db.engine.connect() as conn:
                sig = tuple((await conn.execute(text(
                    "SELECT coalesce(max(id), 0), count(*) FROM import_batch"))).one())
                if sig != self._signature:
                    await self._load(conn)
                    self._signature = sig
            self._checked = time.monotonic()
        return self.collections

    async def _load(self, conn) -> None:
        rows = (await conn.execute(text("""
            SELECT layer, kind, count(*), min(ST_XMin(bbox3d)), min(ST_YMin(bbox3d)), min(ST_ZMin(bbox3d)),
                   max(ST_XMax(bbox3d)), max(ST_YMax(bbox3d)), max(ST_ZMax(bbox3d)),
                   min(valid_from), max(valid_to), bool_or(valid_to IS NULL AND valid_from IS NOT NULL)
            FROM city_object GROUP BY layer, kind ORDER BY layer, kind"""))).all()
        self.max_radius = float((await conn.execute(text(
            "SELECT coalesce(max(greatest(diameter_mm, width_mm, height_mm)), 0) / 2000.0 FROM pipe_segment"
        ))).scalar_one())
        found: dict[str, Collection] = {}
        for cid, g in sorted(_collections_of(rows, self.db.srid).items()):
            x0, y0, x1, y1 = g["box"]
            lon0, lat0, lon1, lat1 = self._to_crs84.transform_bounds(x0, y0, x1, y1)
            t0, t1 = g["t"]
            coll = Collection(
                cid, g["layer"], tuple(g["kinds"]), g["count"], g["family"],
                [round(v, 8) for v in (lon0, lat0, lon1, lat1)], [x0, y0, x1, y1], tuple(g["z"]),
                (t0.isoformat() if t0 else None, None if g["open"] or t1 is None else t1.isoformat()),
            )
            coll.queryables, coll.attribute_keys = await self._queryables(conn, coll)
            found[cid] = coll
        self.collections = found

    async def _queryables(self, conn, coll: Collection) -> tuple[dict[str, Queryable], frozenset[str]]:
        out = _core()
        if coll.family == "pipes":
            out.update(_table(pipe_segment))
        elif coll.family == "nodes":
            out.update(_table(pipe_node))
        sample = (await conn.execute(text("""
            SELECT key, jsonb_typeof(value) AS t, count(*) AS n
            FROM (SELECT attributes FROM city_object WHERE layer = :layer AND kind = ANY(:kinds) LIMIT :n) s,
                 jsonb_each(s.attributes)
            WHERE jsonb_typeof(value) <> 'null' GROUP BY 1, 2 ORDER BY 1, 3 DESC"""),
            {"layer": coll.layer, "kinds": list(coll.kinds), "n": ATTRIBUTE_SAMPLE})).all()
        for key, kind, _ in sample:
            if key in out:
                continue  # the first row of a key is its most frequent type; core columns win over attributes
            q = _attribute(key, kind)
            if q is not None:
                out[key] = q
        return out, frozenset(key for key, _, _ in sample)

    async def get(self, cid: str) -> Collection:
        found = (await self.current()).get(cid)
        if found is None:
            raise ApiError(404, f"no collection {cid!r}; see /collections")
        return found
