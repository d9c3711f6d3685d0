"""Edits of an object's properties through the API: a JSON merge patch of `properties`, checked against what
may change, written in one transaction with its before/after in object_edit (the lineage after import).

Geometry, codes, kinds, heights and network topology come from imports only; the lifecycle, names, valve
states and attributes may be edited (a valve closed in the field changes the next isolation analysis)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from cim.api.catalog import Collection
from cim.api.problems import ApiError
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
