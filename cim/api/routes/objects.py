"""Object detail by unified code, whatever its collection: attributes and BIM property sets, lineage (import
batch and later edits), containment (storey, building, site, and the GIS building a BIM model stands for),
network topology of pipes and nodes, the buildings a network serves, where it is drawn, and the live state of
the sensors observing it (or, for a sensor, its own state and the objects it observes)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import text
from starlette.responses import Response

from cim.api.app import ApiState, state
from cim.api.catalog import NODE_KINDS
from cim.api.problems import ApiError
from cim.api.render import GEOJSON, JSON, Format, respond, segment, self_links, url
from cim.iot.registry import describe

router = APIRouter(tags=["Objects"])
CHILDREN_SHOWN = 200

OBJECT_SQL = text("""
    SELECT o.code, o.kind, o.layer, o.name, o.attributes, o.base_z, o.top_z, o.lod, o.status, o.valid_from,
           o.valid_to, o.source_file, o.source_id, o.parent_code, GeometryType(o.geom) AS geometry_type,
           b.id AS batch_id, b.importer, b.source_name, b.source_sha256, b.source_crs, b.started_at, b.finished_at
    FROM city_object o JOIN import_batch b ON b.id = o.batch_id WHERE o.code = :code""")
PARENTS_SQL = text("""
    WITH RECURSIVE up(code, depth) AS (
      SELECT parent_code, 1 FROM city_object WHERE code = :code AND parent_code IS NOT NULL
      UNION ALL
      SELECT o.parent_code, up.depth + 1 FROM up JOIN city_object o ON o.code = up.code
      WHERE o.parent_code IS NOT NULL AND up.depth < 32)
    SELECT o.code, o.kind, o.name, o.attributes->>'building_code' FROM up JOIN city_object o USING (code)
    ORDER BY up.depth""")
CHILDREN_SQL = text("""SELECT code, kind, name FROM city_object WHERE parent_code = :code ORDER BY code
                       LIMIT :n""")
CHILD_COUNT_SQL = text("SELECT count(*) FROM city_object WHERE parent_code = :code")
EDITS_SQL = text("""SELECT edited_at, editor, before, after FROM object_edit WHERE code = :code
                    ORDER BY id""")
PIPE_SQL = text("SELECT to_jsonb(s) - 'code' FROM pipe_segment s WHERE code = :code")
NODE_SQL = text("SELECT to_jsonb(n) - 'code' FROM pipe_node n WHERE code = :code")
NODE_PIPES_SQL = text("""SELECT code, CASE WHEN from_node = :code THEN 'from' ELSE 'to' END FROM pipe_segment
                         WHERE from_node = :code OR to_node = :code ORDER BY code""")
BIM_OF_SQL = text("""SELECT code, name FROM city_object WHERE kind = 'bim_building'
                     AND attributes->>'building_code' = :code""")
SERVED_BY_SQL = text("""SELECT n.code, n.network, n.node_type FROM pipe_node n WHERE n.building_code = :code
                        ORDER BY n.code""")
SENSORS_OF_SQL = text("""
    SELECT o.code, o.name, o.source_id, o.attributes, st.time, st.value, st.status, st.severity, st.received_at
    FROM sensor_binding b JOIN city_object o ON o.code = b.sensor_code JOIN sensor_state st ON st.code = o.code
    WHERE b.object_code = :code ORDER BY o.code""")
SENSOR_STATE_SQL = text("""SELECT time, value, status, severity, received_at FROM sensor_state
                           WHERE code = :code""")
OBSERVES_SQL = text("""SELECT ob.code, ob.kind, ob.layer, ob.name FROM sensor_binding b
                       JOIN city_object ob ON ob.code = b.object_code WHERE b.sensor_code = :code
                       ORDER BY b.position""")
OPEN_ALARMS_SQL = text("""
    SELECT id, sensor_code AS sensor, rule, severity, state, raised_at, value, limit_value AS limit, message,
           acknowledged_at, acknowledged_by
    FROM alarm WHERE sensor_code = ANY(:codes) AND state <> 'cleared'
    ORDER BY severity DESC, raised_at""")


def collection_of(layer: str, kind: str) -> str:
    return f"{layer}-nodes" if kind in NODE_KINDS else layer


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def sensor_brief(code: str, name: str | None, device: str | None, attrs: dict, state: tuple | None) -> dict:
    """A sensor's kind, unit and latest state, as object detail shows it."""
    kind, prop, unit = describe(attrs)
    time, value, status, severity, received = state or (None, None, "unknown", 0, None)
    return {"code": code, "name": name, "device": device or code, "kind": kind,
            "property": prop, "unit": unit, "time": _iso(time),
            "value": value, "status": status, "severity": severity, "received_at": _iso(received)}


async def live_part(conn, row) -> dict:
    """`sensors` and `alarms` (the open ones) of an object; a sensor's own `sensor` state and what it observes."""
    code = row["code"]
    if row["kind"] == "sensor":
        state = (await conn.execute(SENSOR_STATE_SQL, {"code": code})).first()
        observes = (await conn.execute(OBSERVES_SQL, {"code": code})).all()
        attrs = row["attributes"] or {}
        own = sensor_brief(code, row["name"], row["source_id"], attrs, tuple(state) if state else None)
        own.update(rules=attrs.get("rules") or {}, interval_s=attrs.get("interval_s"),
                   objects=[{"code": c, "kind": k, "layer": lay, "name": n, "collection": collection_of(lay, k)}
                            for c, k, lay, n in observes])
        codes, out = [code], {"sensor": own}
    else:
        sensors = (await conn.execute(SENSORS_OF_SQL, {"code": code})).all()
        out = {"sensors": [sensor_brief(c, n, dev, attrs or {}, (t, v, s, sev, rec))
                           for c, n, dev, attrs, t, v, s, sev, rec in sensors]}
        codes = [s["code"] for s in out["sensors"]]
    alarms = (await conn.execute(OPEN_ALARMS_SQL, {"codes": codes})).mappings().all() if codes else []
    out["alarms"] = [{k: _iso(v) if k in ("raised_at", "acknowledged_at") else v for k, v in a.items()}
                     for a in alarms]
    return out


@router.get("/objects/{code}", summary="Everything the model knows about one object")
async def detail(request: Request, code: str, f: Format | None = None, st: ApiState = Depends(state)) -> Response:
    async with st.db.engine.connect() as conn:
        row = (await conn.execute(OBJECT_SQL, {"code": code})).mappings().first()
        if row is None:
            raise ApiError(404, f"no object {code!r} in the model")
        parents = (await conn.execute(PARENTS_SQL, {"code": code})).all()
        children = (await conn.execute(CHILDREN_SQL, {"code": code, "n": CHILDREN_SHOWN})).all()
        n_children = (await conn.execute(CHILD_COUNT_SQL, {"code": code})).scalar_one()
        edits = (await conn.execute(EDITS_SQL, {"code": code})).all()
        pipe = (await conn.execute(PIPE_SQL, {"code": code})).scalar()
        node = (await conn.execute(NODE_SQL, {"code": code})).scalar()
        node_pipes = (await conn.execute(NODE_PIPES_SQL, {"code": code})).all() if node else []
        bim = (await conn.execute(BIM_OF_SQL, {"code": code})).all() if row["kind"] == "building" else []
        served = (await conn.execute(SERVED_BY_SQL, {"code": code})).all() if row["kind"] == "building" else []
        live = await live_part(conn, row)
    cid = collection_of(row["layer"], row["kind"])
    attributes = dict(row["attributes"])
    psets = attributes.pop("psets", None)
    data = {
        "title": f"{row['code']} ({row['kind']})",
        "code": row["code"],
        "kind": row["kind"],
        "name": row["name"],
        "collection": cid,
        "layer": row["layer"],
        "status": row["status"],
        "valid_from": _iso(row["valid_from"]),
        "valid_to": _iso(row["valid_to"]),
        "base_z": row["base_z"],
        "top_z": row["top_z"],
        "lod": row["lod"],
        "geometry_type": row["geometry_type"],
        "attributes": attributes,
        "lineage": {
            "import": {"batch": row["batch_id"], "importer": row["importer"], "source_file": row["source_file"],
                       "source_id": row["source_id"], "source_sha256": row["source_sha256"],
                       "source_crs": row["source_crs"], "imported_at": _iso(row["finished_at"] or row["started_at"])},
            "edits": [{"at": _iso(at), "editor": who, "before": before, "after": after}
                      for at, who, before, after in edits],
        },
        "containment": {
            "parents": [{"code": c, "kind": k, "name": n} for c, k, n, _ in parents],
            "storey": next(({"code": c, "name": n} for c, k, n, _ in parents if k == "bim_storey"), None),
            "building": next(({"code": c, "name": n, "gis_building": gb} for c, k, n, gb in parents
                              if k == "bim_building"), None),
            "children": n_children,
            "first_children": [{"code": c, "kind": k, "name": n} for c, k, n in children],
        },
    }
    if psets is not None:
        data["property_sets"] = psets
    if row["kind"] == "bim_building" and attributes.get("building_code"):
        data["containment"]["stands_for"] = attributes["building_code"]
    if bim:
        data["bim_models"] = [{"code": c, "name": n} for c, n in bim]
    if served:
        data["service_connections"] = [{"code": c, "network": net, "node_type": t} for c, net, t in served]
    if pipe is not None:
        data["pipe"] = pipe
    if node is not None:
        data["node"] = node
        data["node"]["pipes"] = [{"code": c, "end": end} for c, end in node_pipes]
    data.update(live)
    links = [
        *self_links(request),
        {"href": url(request, f"/collections/{segment(cid)}/items/{segment(code)}"), "rel": "item",
         "type": GEOJSON, "title": "the feature (GeoJSON)"},
        {"href": url(request, f"/collections/{segment(cid)}"), "rel": "collection", "type": JSON,
         "title": cid},
    ]
    if live.get("sensors") or "sensor" in live:
        links.append({"href": url(request, f"/objects/{segment(code)}/history"), "rel": "related", "type": JSON,
                      "title": "sensor readings in time buckets"})
    coll = (await st.catalog.current()).get(cid)
    tileset = coll.tileset(st.cfg.tiles_dir) if coll is not None else None
    if tileset is not None:
        data["tileset"] = url(request, f"/tiles/{tileset}")
        links.append({"href": data["tileset"], "rel": "http://www.opengis.net/def/rel/ogc/1.0/tileset",
                      "type": "application/json+3dtiles", "title": "drawn in this tileset"})
    data["links"] = links
    return respond(request, f, data)
