"""The sensor registry: `cim import sensors FILE` (CSV or GeoJSON) and the in-memory view ingest and push use.

A sensor is a city object of kind "sensor" (unified code <area>-SEN-<serial>); its own fields live in its
attributes, the objects it observes in sensor_binding, its latest reading in sensor_state.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import psycopg
import pyogrio
import shapely
from pydantic import ValidationError
from pyproj import CRS

from cim.importers.common import check_source, ewkb_hex, parse_crs, transform_xy
from cim.importers.errors import InputError
from cim.iot.rules import Rules, explain
from cim.model.store import Batch, Model, WriteResult, write_objects

# kind → (observed property, unit) when the file does not say (units in UCUM where one exists)
KINDS: dict[str, tuple[str, str]] = {
    "manhole_cover": ("cover_displacement", "mm"),
    "pipe_pressure": ("pressure", "MPa"),
    "pipe_flow": ("flow", "m3/h"),
    "tunnel_gas": ("methane", "%LEL"),
    "tunnel_temperature": ("air_temperature", "Cel"),
    "tunnel_humidity": ("relative_humidity", "%"),
    "settlement": ("settlement", "mm"),
    "water_level": ("water_level", "m"),
    "building_energy": ("power", "kW"),
}
RULE_FIELDS = ("hh", "h", "l", "ll", "deadband", "roc", "stale_s")
# what a sensor object's attributes hold for the IoT code; edited through PATCH /iot/sensors only
RESERVED = ("sensor_kind", "rules")
REGISTRY_CHANNEL = "cim_registry"  # NOTIFY after the registry changed (import, edit)


@dataclass(frozen=True)
class Sensor:
    code: str
    state_id: int
    device_id: str
    name: str | None
    kind: str
    property: str
    unit: str
    rules: Rules
    interval_s: float | None
    objects: tuple[str, ...]
    layers: tuple[str, ...]  # of the bound objects
    lon: float
    lat: float

    @property
    def stale_after(self) -> float | None:
        """Seconds of silence after which the sensor is offline: its rule, else 3 reporting intervals."""
        if self.rules.stale_s:
            return self.rules.stale_s
        return 3 * self.interval_s if self.interval_s else None


class Registry:
    """The sensors of a model by code, device id and history id."""

    def __init__(self, sensors: list[Sensor], signature: tuple = ()) -> None:
        self.sensors = sensors
        self.signature = signature
        self.by_ref = {s.device_id: s for s in sensors} | {s.code: s for s in sensors}
        self.by_id = {s.state_id: s for s in sensors}

    def __len__(self) -> int:
        return len(self.sensors)

    @staticmethod
    def current_signature(conn: psycopg.Connection) -> tuple:
        return conn.execute(
            "SELECT (SELECT max(id) FROM import_batch), (SELECT max(id) FROM object_edit)"
        ).fetchone()

    @classmethod
    def load(cls, conn: psycopg.Connection) -> Registry:
        signature = cls.current_signature(conn)
        rows = conn.execute("""
            SELECT o.code, s.id, o.source_id, o.name, o.attributes,
                   ST_X(ST_Transform(o.geom, 4326)), ST_Y(ST_Transform(o.geom, 4326)),
                   coalesce(array_agg(b.object_code ORDER BY b.position) FILTER (WHERE b.object_code IS NOT NULL),
                            '{}'),
                   coalesce(array_agg(DISTINCT ob.layer) FILTER (WHERE ob.layer IS NOT NULL), '{}')
            FROM city_object o
            JOIN sensor_state s ON s.code = o.code
            LEFT JOIN sensor_binding b ON b.sensor_code = o.code
            LEFT JOIN city_object ob ON ob.code = b.object_code
            WHERE o.kind = 'sensor'
            GROUP BY o.code, s.id
        """).fetchall()
        return cls([_sensor(*row) for row in rows], signature)


def describe(attrs: dict | None) -> tuple[str, str, str]:
    """A sensor object's (kind, property, unit) from its attributes, the kind's defaults where missing."""
    attrs = attrs or {}
    kind = str(attrs.get("sensor_kind", "generic"))
    prop, unit = KINDS.get(kind, ("value", ""))
    return kind, str(attrs.get("property", prop)), str(attrs.get("unit", unit))


def _sensor(code, state_id, device_id, name, attrs, lon, lat, objects, layers) -> Sensor:
    try:
        rules = Rules(**(attrs.get("rules") or {}))
    except (ValidationError, TypeError):
        rules = Rules()  # an edit outside the IoT API left rules the API would have refused: none apply
    kind, prop, unit = describe(attrs)
    interval = attrs.get("interval_s")
    return Sensor(code, state_id, device_id or code, name, kind, prop, unit, rules,
                  float(interval) if _number(interval) else None,
                  tuple(objects), tuple(layers), lon, lat)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


# -- import ---------------------------------------------------------------------------------------
def read_sensor_file(path: Path, crs: str | None, model_crs: CRS) -> tuple[pd.DataFrame, np.ndarray, CRS]:
    """The rows of a sensors file and their points (None where the file gives no location)."""
    check_source(path)
    if path.suffix.lower() == ".csv":
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(path, f"not a readable CSV file: {exc}") from None
        source_crs = parse_crs(path, crs) if crs else model_crs
        points = np.full(len(frame), None, dtype=object)
        if {"x", "y"} <= set(frame.columns):
            xyz = frame.reindex(columns=["x", "y", "z"]).apply(pd.to_numeric, errors="coerce")
            given = frame["x"].str.strip().ne("") & frame["y"].str.strip().ne("")
            bad = given & xyz[["x", "y"]].isna().any(axis=1)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputError(path, "x and y must be numbers", record=frame.get("id", pd.Series()).get(row, row + 2))
            if given.any():
                pts = shapely.points(xyz[["x", "y", "z"]].to_numpy()[given.to_numpy()])
                points[given.to_numpy()] = pts
        return frame.drop(columns=[c for c in ("x", "y", "z") if c in frame.columns]), points, source_crs
    try:
        gdf = pyogrio.read_dataframe(path)
    except Exception as exc:  # pyogrio raises several GDAL error types for unreadable files
        raise InputError(path, f"not a readable sensors file (GeoJSON or CSV): {' '.join(str(exc).split())}") from None
    source_crs = parse_crs(path, crs) if crs else CRS.from_user_input(gdf.crs or "OGC:CRS84")
    geoms = gdf.geometry.to_numpy().astype(object)
    points = np.where(shapely.is_missing(geoms) | shapely.is_empty(geoms), None, geoms)
    return pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), points, source_crs


def _refs(value: object) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v).strip() for v in value if str(v).strip()]
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()
    if text.startswith("["):
        try:
            return [str(v).strip() for v in json.loads(text)]
        except json.JSONDecodeError:
            pass
    return [v.strip() for v in text.split(";") if v.strip()]


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _rules(path: Path, record: str, row: pd.Series) -> dict:
    given = {}
    for name in RULE_FIELDS:
        text = _text(row.get(name))
        if text == "":
            continue
        try:
            given[name] = float(text)
        except ValueError:
            raise InputError(path, f"{name} must be a number, not {text!r}", record=record) from None
    try:
        return Rules(**given).model_dump(exclude_none=True, exclude_defaults=True)
    except ValidationError as exc:
        raise InputError(path, explain(exc), record=record) from None


def resolve_objects(conn: psycopg.Connection, refs: list[str]) -> dict[str, str]:
    """Reference → unified code for the references to objects in the model: codes, or layer:source_key (a
    code stays registered after its object is gone; a sensor cannot observe that)."""
    codes = [r for r in refs if ":" not in r]
    pairs = [r.split(":", 1) for r in refs if ":" in r]
    found = {c: c for (c,) in conn.execute("SELECT code FROM city_object WHERE code = ANY(%s)", (codes,))}
    if pairs:
        layers, keys = zip(*pairs, strict=True)
        for layer, key, code in conn.execute(
            "SELECT r.layer, r.source_key, r.code FROM code_registry r JOIN city_object o ON o.code = r.code "
            "JOIN unnest(%s::text[], %s::text[]) AS q(layer, key) ON r.layer = q.layer AND r.source_key = q.key",
            (list(layers), list(keys)),
        ):
            found[f"{layer}:{key}"] = code
    return found


def _anchors(conn: psycopg.Connection, codes: list[str]) -> dict[str, tuple[float, float, float]]:
    """Where a sensor without a location sits: on its object, nearest the object's centre, at its top."""
    rows = conn.execute("""
        SELECT code, ST_X(p), ST_Y(p), CASE WHEN GeometryType(geom) = 'POINT' THEN ST_Z(geom)
                                            ELSE coalesce(top_z, ST_ZMax(geom)) END
        FROM (SELECT code, geom, top_z, ST_ClosestPoint(f, ST_Centroid(f)) AS p
              FROM (SELECT code, geom, top_z, ST_Force2D(cim_footprint(geom)) AS f
                    FROM city_object WHERE code = ANY(%s)) o) q
    """, (codes,)).fetchall()
    return {code: (x, y, z if z is not None else 0.0) for code, x, y, z in rows}


def build_sensor_records(conn: psycopg.Connection, path: Path, frame: pd.DataFrame, points: np.ndarray,
                         source_crs: CRS, model_crs: CRS, srid: int) -> tuple[pd.DataFrame, list[list[str]]]:
    """Checked write_objects records of the sensors and the object codes each is bound to."""
    if len(frame) == 0:
        raise InputError(path, "no sensors in the file")
    for column in ("id", "kind", "objects"):
        if column not in frame.columns:
            raise InputError(path, f"column {column!r} is missing; a sensor needs id, kind and objects")
    ids = frame["id"].map(_text)
    for pos, (dev, dup) in enumerate(zip(ids, ids.duplicated(), strict=True)):
        if dev == "":
            raise InputError(path, "id is empty", record=pos + 1)
        if dup:
            raise InputError(path, "id appears twice in the file", record=dev)
    refs = [_refs(v) for v in frame["objects"]]
    resolved = resolve_objects(conn, sorted({r for rs in refs for r in rs}))
    bound: list[list[str]] = []
    attributes: list[str] = []
    reserved = [c for c in frame.columns if c in RESERVED]
    if reserved:
        raise InputError(path, f"column {reserved[0]!r} is a name cim keeps for itself; rename it")
    extra = [c for c in frame.columns if c not in ("id", "name", "kind", "property", "unit", "objects",
                                                   "interval_s", *RULE_FIELDS)]
    for dev, rs, (_, row) in zip(ids, refs, frame.iterrows(), strict=True):
        kind = _text(row["kind"])
        if not kind:
            raise InputError(path, "kind is empty", record=dev)
        if not rs:
            raise InputError(path, "objects is empty: a sensor observes at least one model object", record=dev)
        missing = [r for r in rs if r not in resolved]
        if missing:
            raise InputError(path, f"object {missing[0]!r} is not in the model", record=dev)
        prop, unit = KINDS.get(kind, ("", ""))
        prop, unit = _text(row.get("property")) or prop, _text(row.get("unit")) or unit
        if not prop or not unit:
            raise InputError(path, f"kind {kind!r} is not a known kind: give its property and unit", record=dev)
        attrs = {"sensor_kind": kind, "property": prop, "unit": unit, "rules": _rules(path, dev, row)}
        interval = _text(row.get("interval_s"))
        if interval:
            try:
                attrs["interval_s"] = float(interval)
                assert attrs["interval_s"] > 0 and math.isfinite(attrs["interval_s"])
            except (ValueError, AssertionError):
                raise InputError(path, f"interval_s must be a positive number, not {interval!r}", record=dev) from None
        attrs.update({c: row[c] for c in extra if _text(row[c]) != ""})
        attributes.append(orjson.dumps(attrs, default=str).decode())
        bound.append(list(dict.fromkeys(resolved[r] for r in rs)))
    given = np.array([p is not None for p in points], dtype=bool)
    if given.any():
        kinds = shapely.get_type_id(points[given].astype(object))
        if (kinds != 0).any():
            raise InputError(path, "a sensor's location must be a Point",
                             record=ids[np.flatnonzero(given)[np.flatnonzero(kinds != 0)[0]]])
        try:
            points[given] = transform_xy(points[given], source_crs, model_crs)
        except ValueError as exc:
            raise InputError(path, str(exc)) from None
    anchors = _anchors(conn, [b[0] for b in bound])
    xyz = np.array([
        shapely.get_coordinates(p, include_z=True)[0] if p is not None else anchors[b[0]]
        for p, b in zip(points, bound, strict=True)
    ], dtype=float)
    no_z = np.isnan(xyz[:, 2])
    if no_z.any():
        xyz[no_z, 2] = [anchors[b[0]][2] for b, n in zip(bound, no_z, strict=True) if n]
    geoms = shapely.points(xyz)
    records = pd.DataFrame({
        "source_key": ids, "source_id": ids, "kind": "sensor",
        "name": frame["name"].map(lambda v: _text(v) or None) if "name" in frame.columns else None,
        "attributes": attributes, "geom": ewkb_hex(geoms, srid), "base_z": xyz[:, 2], "top_z": xyz[:, 2],
        "lod": None, "status": "existing", "valid_from": None, "valid_to": None,
    })
    return records, bound


def end_alarms_of_removed(conn: psycopg.Connection, actor: str) -> int:
    """Clear the open alarms of sensors no longer in the model (a re-import left them out): nothing else
    would ever end them."""
    from cim.iot.alarms import clear_alarms

    ids = [i for (i,) in conn.execute(
        "SELECT a.id FROM alarm a WHERE a.state <> 'cleared' AND NOT EXISTS "
        "(SELECT 1 FROM city_object o WHERE o.code = a.sensor_code AND o.kind = 'sensor')")]
    clear_alarms(conn, ids, actor, "the sensor is no longer in the model")
    return len(ids)


def import_sensors(model: Model, path: Path, layer: str = "sensors", crs: str | None = None) -> WriteResult:
    """Import a sensors file into `layer` in one transaction: sensor objects, bindings, state rows."""
    frame, points, source_crs = read_sensor_file(path, crs, model.crs)
    with model.transaction() as conn:
        records, bound = build_sensor_records(conn, path, frame, points, source_crs, model.crs, model.info.srid)
        summary = {"sensors": len(records), "bindings": sum(len(b) for b in bound)}
        result = write_objects(conn, model.info, Batch("sensors", layer, path, source_crs.to_string(), summary),
                               records)
        codes = result.codes.tolist()
        with conn.cursor().copy("COPY sensor_binding (sensor_code, object_code, position) FROM STDIN") as cp:
            for code, objects in zip(codes, bound, strict=True):
                for pos, obj in enumerate(objects):
                    cp.write_row((code, obj, pos))
        conn.execute("INSERT INTO sensor_state (code) SELECT unnest(%s::text[]) ON CONFLICT (code) DO NOTHING",
                     (codes,))
        summary["alarms_ended"] = end_alarms_of_removed(conn, "import")
        conn.execute("SELECT pg_notify(%s, 'import')", (REGISTRY_CHANNEL,))
    return result
