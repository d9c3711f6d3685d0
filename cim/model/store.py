"""Open a city model, create it with its storage CRS, and write import batches in one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg
from alembic import command
from alembic.config import Config
from pyproj import CRS
from pyproj.exceptions import CRSError
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from cim.crs import horizontal
from cim.db.server import connect, create_database, database_exists, model_url
from cim.model.kinds import abbr

MIGRATIONS = Path(__file__).with_name("migrations")

# Columns every importer hands to write_objects (one row per object); an optional "parent_key" names the
# source key of the containing object in the same batch.
RECORD_COLUMNS = (
    "source_key", "source_id", "kind", "name", "attributes", "geom", "base_z", "top_z", "lod", "status",
    "valid_from", "valid_to",
)


class ModelError(RuntimeError):
    """The model is missing, not initialised, or asked to change what never changes."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    srid: int
    crs_name: str
    area_code: str
    vertical_datum: str


def storage_crs(user_input: str) -> CRS:
    """Validate a storage CRS: projected, metric, with an EPSG code."""
    try:
        crs = CRS.from_user_input(user_input)
    except CRSError as exc:
        raise ModelError(f"unknown CRS {user_input!r}: {exc}") from None
    flat = horizontal(crs)
    if not flat.is_projected:
        raise ModelError(f"{user_input}: a storage CRS must be projected (metres), not {flat.type_name}")
    unit = flat.axis_info[0].unit_name
    if unit not in ("metre", "meter"):
        raise ModelError(f"{user_input}: a storage CRS must be in metres, this one is in {unit}")
    if flat.to_epsg() is None:
        raise ModelError(f"{user_input}: the storage CRS needs an EPSG code")
    return flat


def _migrate(url: URL, srid: int) -> None:
    cfg = Config(str(MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["srid"] = srid
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def read_info(conn: psycopg.Connection) -> ModelInfo | None:
    exists = conn.execute("SELECT to_regclass('public.model_info') IS NOT NULL").fetchone()[0]
    if not exists:
        return None
    row = conn.execute("SELECT name, srid, crs_name, area_code, vertical_datum FROM model_info").fetchone()
    return ModelInfo(*row) if row else None


def init_model(url: URL, crs: str, area_code: str, vertical_datum: str) -> tuple[ModelInfo, bool]:
    """Create the model's database and schema with its storage CRS; (info, created now)."""
    wanted = storage_crs(crs)
    srid = wanted.to_epsg()
    create_database(url)
    with connect(url) as conn:
        info = read_info(conn)
        if info is None:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            if conn.execute("SELECT 1 FROM spatial_ref_sys WHERE srid = %s", (srid,)).fetchone() is None:
                raise ModelError(f"EPSG:{srid} is not in this PostGIS's spatial_ref_sys")
    if info is not None and info.srid != srid:
        raise ModelError(
            f"model {info.name!r} already stores EPSG:{info.srid}; a model's CRS never changes "
            f"(create a second model with --model NAME)"
        )
    _migrate(url, srid)
    if info is not None:
        return info, False
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO model_info (id, name, srid, crs_name, area_code, vertical_datum) "
            "VALUES (1, %s, %s, %s, %s, %s)",
            (url.database, srid, wanted.name, area_code, vertical_datum),
        )
        return read_info(conn), True


class Model:
    """An initialised city model: its URL and storage CRS."""

    def __init__(self, url: URL, info: ModelInfo) -> None:
        self.url = url
        self.info = info

    @classmethod
    def open(cls, name: str | None = None) -> Model:
        url = model_url(name)
        try:
            exists = database_exists(url)
        except psycopg.OperationalError as exc:
            raise ModelError(f"cannot reach the database server ({exc}); run `cim db up` first") from None
        if not exists:
            raise ModelError(f"model {url.database!r} does not exist; create it with `cim db init --crs EPSG:…`")
        with connect(url) as conn:
            info = read_info(conn)
        if info is None:
            raise ModelError(f"database {url.database!r} is not a city model; run `cim db init --crs EPSG:…`")
        return cls(url, info)

    @property
    def crs(self) -> CRS:
        return CRS.from_epsg(self.info.srid)

    def connect(self, **kwargs) -> psycopg.Connection:
        return connect(self.url, **kwargs)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """One import = one transaction: commit on success, roll back on any error or interrupt."""
        with connect(self.url) as conn:
            try:
                conn.execute("SET LOCAL synchronous_commit = on")
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def counts(self) -> list[tuple[str, str, int]]:
        with self.connect() as conn:
            return conn.execute(
                "SELECT layer, kind, count(*) FROM city_object GROUP BY layer, kind ORDER BY layer, kind"
            ).fetchall()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Batch:
    """What one import brings: its importer, target layer, source file and a summary to record."""

    importer: str
    layer: str
    source: Path
    source_crs: str | None = None
    summary: dict = field(default_factory=dict)


@dataclass
class WriteResult:
    batch_id: int
    written: int
    replaced: int
    codes: pd.Series  # unified code per source_key, in record order
    new_codes: int
    moved: int = 0  # objects that another file of the layer had brought before


def _assign_codes(conn: psycopg.Connection, info: ModelInfo, layer: str, keys: pd.Series,
                  kinds: pd.Series) -> tuple[pd.Series, int]:
    """Unified codes for these source keys: the registered one when known, else the next serial."""
    known = dict(conn.execute(
        "SELECT source_key, code FROM code_registry WHERE layer = %s AND source_key = ANY(%s)",
        (layer, keys.tolist()),
    ).fetchall())
    codes = [known.get(k) for k in keys.tolist()]
    new = pd.DataFrame({"key": keys, "kind": kinds})[[c is None for c in codes]]
    if len(new):
        new["prefix"] = info.area_code + "-" + new["kind"].map(abbr)
        for prefix, group in new.groupby("prefix", sort=True):
            last = conn.execute(
                "INSERT INTO code_serial AS s (prefix, last_serial) VALUES (%s, %s) ON CONFLICT (prefix) "
                "DO UPDATE SET last_serial = s.last_serial + EXCLUDED.last_serial RETURNING last_serial",
                (prefix, len(group)),
            ).fetchone()[0]
            for pos, serial in zip(group.index, range(last - len(group) + 1, last + 1), strict=False):
                codes[pos] = f"{prefix}-{serial:07d}"
        with conn.cursor().copy("COPY code_registry (code, kind, layer, source_key) FROM STDIN") as cp:
            for pos, kind, key in zip(new.index, new["kind"], new["key"], strict=False):
                cp.write_row((codes[pos], kind, layer, key))
    return pd.Series(codes, index=keys.index, dtype=object), len(new)


def _nullable(values: pd.Series) -> list:
    return values.astype(object).where(values.notna(), None).tolist()


def write_objects(conn: psycopg.Connection, info: ModelInfo, batch: Batch, records: pd.DataFrame,
                  progress: Callable[[int], None] | None = None, chunk: int = 20_000) -> WriteResult:
    """Replace the objects this source brought to this layer with `records`, inside the caller's
    transaction; assign unified codes; record the batch."""
    missing = set(RECORD_COLUMNS) - set(records.columns)
    if missing:
        raise ValueError(f"records lack columns {sorted(missing)}")
    if records["source_key"].duplicated().any():
        raise ValueError("duplicate source keys in one batch")
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('cim-import'))")
    source_name = batch.source.name
    batch_id = conn.execute(
        "INSERT INTO import_batch (importer, layer, source_name, source_path, source_sha256, source_crs, "
        "summary) VALUES (%s, %s, %s, %s, %s, %s, '{}') RETURNING id",
        (batch.importer, batch.layer, source_name, str(batch.source.resolve()), file_sha256(batch.source),
         batch.source_crs),
    ).fetchone()[0]
    replaced = conn.execute(
        "DELETE FROM city_object WHERE layer = %s AND source_file = %s", (batch.layer, source_name)
    ).rowcount
    records = records.reset_index(drop=True)
    codes, new_codes = _assign_codes(conn, info, batch.layer, records["source_key"], records["kind"])
    # A record that another file of this layer brought before (same id) has moved to this file: the newer
    # delivery wins, so its old copy goes.
    moved = 0
    if new_codes < len(codes):
        moved = conn.execute(
            "DELETE FROM city_object WHERE layer = %s AND source_file <> %s AND code = ANY(%s)",
            (batch.layer, source_name, codes.tolist()),
        ).rowcount
    parents = [None] * len(records)
    if "parent_key" in records.columns:
        by_key = dict(zip(records["source_key"], codes, strict=True))
        parents = [by_key.get(k) for k in records["parent_key"]]
    columns = [
        codes.tolist(), records["kind"].tolist(), _nullable(records["name"]), records["attributes"].tolist(),
        records["geom"].tolist(), _nullable(records["base_z"]), _nullable(records["top_z"]),
        _nullable(records["lod"]), records["status"].tolist(), _nullable(records["valid_from"]),
        _nullable(records["valid_to"]), _nullable(records["source_id"]), parents,
    ]
    sql = (
        "COPY city_object (code, kind, name, attributes, geom, base_z, top_z, lod, status, valid_from, "
        "valid_to, source_id, parent_code, layer, batch_id, source_file) FROM STDIN"
    )
    fixed = (batch.layer, batch_id, source_name)
    with conn.cursor().copy(sql) as cp:
        for start in range(0, len(records), chunk):
            for row in zip(*(col[start:start + chunk] for col in columns), strict=False):
                cp.write_row(row + fixed)
            if progress:
                progress(min(chunk, len(records) - start))
    summary = dict(batch.summary, replaced=replaced, moved_from_other_files=moved, new_codes=new_codes)
    conn.execute(
        "UPDATE import_batch SET finished_at = clock_timestamp(), object_count = %s, replaced_count = %s, summary = %s "
        "WHERE id = %s",
        (len(records), replaced, psycopg.types.json.Jsonb(summary), batch_id),
    )
    return WriteResult(batch_id, len(records), replaced, codes, new_codes, moved)
