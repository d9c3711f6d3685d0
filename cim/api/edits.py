"""Edits of an object's properties through the API: a JSON merge patch of `properties`, checked against what
may change, written in one transaction with its before/after in object_edit (the lineage after import).

Geometry, codes, kinds, heights and network topology come from imports only; the lifecycle, names, valve
states and attributes may be edited (a valve closed in the field changes the next isolation analysis). A sensor's
name, alarm rules, bound objects, unit, property and reporting interval are edited through the IoT API
(`edit_sensor`), which also tells the live registry (NOTIFY cim_registry)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from cim.api.catalog import Collection
from cim.api.problems import ApiError
from cim.iot.alarms import clear_alarms
from cim.iot.registry import REGISTRY_CHANNEL, RESERVED, resolve_objects
from cim.iot.rules import Rules, explain, finite
from cim.model.store import Model

STATUSES = ("planned", "under_construction", "existing", "demolished")
OBJECT_FIELDS = {"name": "text", "status": "status", "valid_from": "time", "valid_to": "time"}
FAMILY_FIELDS = {
    "nodes": ("pipe_node", {"normal_state": "valve_state", "operable": "bool"}),
    "pipes": ("pipe_segment", {"material": "text", "owner": "text", "pressure_class": "text", "year": "int"}),
}


def _value(name: str, kind: str, value: object) -> object:
    if value is None:
        if kind in ("status",):
            raise ApiError(400, f"properties.{name}: cannot be null")
        return None
    ok = {
        "text": isinstance(value, str),
        "status": value in STATUSES,
        "valve_state": value in ("open", "closed"),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "time": isinstance(value, str),
    }[kind]
    if not ok:
        expected = {"status": f"one of {', '.join(STATUSES)}", "valve_state": "open or closed",
                    "bool": "true or false", "int": "an integer", "time": "an RFC 3339 date-time",
                    "text": "a string"}[kind]
        raise ApiError(400, f"properties.{name}: expected {expected}")
    if kind == "time":
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, f"properties.{name}: {value!r} is not an RFC 3339 date-time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


# what the IoT code reads from a sensor's attributes
SENSOR_FIELDS = (*RESERVED, "unit", "property", "interval_s")


def _split(coll: Collection, changes: dict) -> tuple[dict, dict, dict]:
    """(city_object columns, network table columns, attributes) to set."""
    table_fields = FAMILY_FIELDS.get(coll.family, ("", {}))[1]
    columns, family, attributes = {}, {}, {}
    for name, value in changes.items():
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ApiError(400, "properties: names are strings of 1 to 200 characters")
        if name in OBJECT_FIELDS:
            columns[name] = _value(name, OBJECT_FIELDS[name], value)
        elif name in table_fields:
            family[name] = _value(name, table_fields[name], value)
        elif name in coll.queryables and not coll.queryables[name].attribute:
            raise ApiError(400, f"properties.{name}: cannot be edited (it comes from the import)")
        elif name in SENSOR_FIELDS and "sensor" in coll.kinds:
            raise ApiError(400, f"properties.{name}: a sensor's {name} is edited with PATCH /iot/sensors/{{code}}, "
                                "which checks it")
        else:
            attributes[name] = value
    return columns, family, attributes


def apply_edit(model: Model, coll: Collection, code: str, patch: object, editor: str) -> None:
    if not isinstance(patch, dict) or set(patch) - {"properties"} or not isinstance(patch.get("properties"), dict):
        raise ApiError(400, 'the body is a JSON merge patch of the properties: {"properties": {...}}')
    columns, family, attributes = _split(coll, patch["properties"])
    if not (columns or family or attributes):
        raise ApiError(400, "properties: nothing to change")
    table = FAMILY_FIELDS.get(coll.family, ("", {}))[0]
    try:
        with model.transaction() as conn:
            _write(conn, code, table, columns, family, attributes, editor)
    except psycopg.errors.CheckViolation as exc:  # e.g. valid_to before valid_from
        raise ApiError(400, f"properties: {exc.diag.message_primary} ({exc.diag.constraint_name})") from None


def _write(conn: psycopg.Connection, code: str, table: str, columns: dict, family: dict, attributes: dict,
           editor: str) -> None:
    before = _snapshot(conn, code, table, [*columns, *family], list(attributes))
    if columns:
        conn.execute(sql.SQL("UPDATE city_object SET {} WHERE code = %s").format(
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in columns)),
            [*columns.values(), code])
    if family:
        conn.execute(sql.SQL("UPDATE {} SET {} WHERE code = %s").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in family)),
            [*family.values(), code])
    if attributes:
        removed = [k for k, v in attributes.items() if v is None]
        kept = {k: v for k, v in attributes.items() if v is not None}
        conn.execute("UPDATE city_object SET attributes = (attributes - %s::text[]) || %s WHERE code = %s",
                     (removed, Jsonb(kept), code))
    after = _snapshot(conn, code, table, [*columns, *family], list(attributes))
    conn.execute("INSERT INTO object_edit (code, editor, before, after) VALUES (%s, %s, %s, %s)",
                 (code, editor, Jsonb(before), Jsonb(after)))
    # a sensor's attributes (its rules, unit, …) are the live registry's too
    conn.execute("SELECT pg_notify(%s, 'edit') FROM city_object WHERE code = %s AND kind = 'sensor'",
                 (REGISTRY_CHANNEL, code))


def _snapshot(conn: psycopg.Connection, code: str, table: str, fields: list[str], attributes: list[str]) -> dict:
    """The edited properties as they are now (JSON-ready)."""
    out = {}
    if fields:
        source = sql.SQL("city_object o LEFT JOIN {} t USING (code)").format(sql.Identifier(table)) if table \
            else sql.SQL("city_object o")
        row = conn.execute(sql.SQL("SELECT to_jsonb(x) FROM (SELECT {} FROM {} WHERE code = %s) x").format(
            sql.SQL(", ").join(sql.Identifier(f) for f in fields), source), (code,)).fetchone()
        out.update(row[0])
    if attributes:
        row = conn.execute("SELECT attributes FROM city_object WHERE code = %s", (code,)).fetchone()
        out.update({k: row[0].get(k) for k in attributes})
    return out


# -- sensors (PATCH /iot/sensors/{code}) ----------------------------------------------------------
SENSOR_FIELDS = ("name", "rules", "objects", "unit", "property", "interval_s")
SENSOR_SQL = """SELECT code, name, attributes FROM city_object
                WHERE kind = 'sensor' AND (code = %(ref)s OR source_id = %(ref)s)
                ORDER BY code = %(ref)s DESC, code LIMIT 1 FOR UPDATE"""


def _text_field(name: str, value: object, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ApiError(400, f"{name}: expected a string of 1 to 200 characters")
    return value.strip()


def _interval(value: object) -> float | None:
    if value is None:
        return None
    if not finite(value) or value <= 0:
        raise ApiError(400, "interval_s: expected a positive number of seconds (or null)")
    return float(value)


def merged_rules(current: dict, patch: object) -> dict:
    """The sensor's rules after a JSON merge patch (null removes a rule, or all of them), checked."""
    if patch is None:
        return {}
    if not isinstance(patch, dict):
        raise ApiError(400, 'rules: expected an object such as {"h": 5, "deadband": 0.5} (null removes a rule)')
    merged = {k: v for k, v in {**current, **patch}.items() if v is not None}
    try:
        rules = Rules(**merged)
    except ValidationError as exc:
        raise ApiError(400, f"rules.{explain(exc)}") from None
    return rules.model_dump(exclude_none=True, exclude_defaults=True)


def _bound(conn: psycopg.Connection, code: str, refs: object) -> list[str]:
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
        raise ApiError(400, "objects: expected a non-empty list of unified codes or layer:source_key references")
    refs = [r.strip() for r in refs]
    found = resolve_objects(conn, refs)
    missing = [r for r in refs if r not in found]
    if missing:
        raise ApiError(400, f"objects: {missing[0]!r} is not in the model")
    codes = list(dict.fromkeys(found[r] for r in refs))
    if code in codes:
        raise ApiError(400, "objects: a sensor cannot observe itself")
    return codes


def _sensor_snapshot(conn: psycopg.Connection, code: str, fields: list[str]) -> dict:
    name, attrs = conn.execute("SELECT name, attributes FROM city_object WHERE code = %s", (code,)).fetchone()
    out = {}
    for f in fields:
        if f == "name":
            out[f] = name
        elif f == "objects":
            out[f] = [c for (c,) in conn.execute(
                "SELECT object_code FROM sensor_binding WHERE sensor_code = %s ORDER BY position", (code,))]
        else:
            out[f] = attrs.get(f)
    return out


def edit_sensor(model: Model, ref: str, patch: object, editor: str) -> str:
    """Change a sensor's name, rules, bound objects, unit, property or reporting interval in one transaction,
    logged in object_edit; alarms of rules that no longer exist are cleared. Returns the sensor's code."""
    if not isinstance(patch, dict) or not patch:
        raise ApiError(400, f"the body is a JSON object with any of {', '.join(SENSOR_FIELDS)}")
    unknown = sorted(set(patch) - set(SENSOR_FIELDS))
    if unknown:
        raise ApiError(400, f"{unknown[0]}: cannot be edited here (editable: {', '.join(SENSOR_FIELDS)})")
    with model.transaction() as conn:
        row = conn.execute(SENSOR_SQL, {"ref": ref}).fetchone()
        if row is None:
            raise ApiError(404, f"no sensor {ref!r} (a sensor's code or device id)")
        code, name, attrs = row
        attrs = dict(attrs)
        if "name" in patch:
            name = _text_field("name", patch["name"], nullable=True)
        for field in ("unit", "property"):
            if field in patch:
                attrs[field] = _text_field(field, patch[field], nullable=False)
        if "interval_s" in patch:
            attrs["interval_s"] = _interval(patch["interval_s"])
            if attrs["interval_s"] is None:
                del attrs["interval_s"]
        if "rules" in patch:
            attrs["rules"] = merged_rules(attrs.get("rules") or {}, patch["rules"])
        objects = _bound(conn, code, patch["objects"]) if "objects" in patch else None
        _write_sensor(conn, code, name, attrs, objects, list(patch), editor)
    return code


def _write_sensor(conn: psycopg.Connection, code: str, name: str | None, attrs: dict, objects: list[str] | None,
                  fields: list[str], editor: str) -> None:
    # the state row first, as ingest locks it before the alarms: no deadlock with a batch in flight
    conn.execute("SELECT 1 FROM sensor_state WHERE code = %s FOR UPDATE", (code,))
    before = _sensor_snapshot(conn, code, fields)
    conn.execute("UPDATE city_object SET name = %s, attributes = %s WHERE code = %s", (name, Jsonb(attrs), code))
    if objects is not None:
        conn.execute("DELETE FROM sensor_binding WHERE sensor_code = %s", (code,))
        with conn.cursor().copy("COPY sensor_binding (sensor_code, object_code, position) FROM STDIN") as cp:
            for pos, obj in enumerate(objects):
                cp.write_row((code, obj, pos))
    after = _sensor_snapshot(conn, code, fields)
    conn.execute("INSERT INTO object_edit (code, editor, before, after) VALUES (%s, %s, %s, %s)",
                 (code, editor, Jsonb(before), Jsonb(after)))
    conn.execute("SELECT pg_notify(%s, 'edit')", (REGISTRY_CHANNEL,))
    if "rules" in fields:
        rules = Rules(**attrs.get("rules", {}))
        kept = [r for r, _ in rules.limits()] + (["ROC"] if rules.roc is not None else []) + ["STALE"]
        ids = [i for (i,) in conn.execute("SELECT id FROM alarm WHERE sensor_code = %s AND state <> 'cleared' "
                                          "AND rule <> ALL(%s)", (code, kept))]
        clear_alarms(conn, ids, editor, "the rule was removed from the sensor")


