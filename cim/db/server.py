"""Which server and database a command talks to, and creating/dropping model databases."""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from cim.config import settings
from cim.db.cluster import LocalCluster


def server_url() -> URL:
    """URL of the server: CIM_DATABASE_URL if set, else the local cluster."""
    raw = settings().database_url or LocalCluster().url
    url = make_url(raw)
    if url.drivername in ("postgresql", "postgres", "postgis"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def model_url(model: str | None = None) -> URL:
    """URL of a model's database: --model wins, then CIM_DATABASE_URL's database, then CIM_MODEL."""
    url = server_url()
    if model:
        return url.set(database=model)
    if settings().database_url and url.database:
        return url
    return url.set(database=settings().model)


def conninfo(url: URL) -> str:
    """A libpq connection string for psycopg from an SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url: URL, **kwargs) -> psycopg.Connection:
    return psycopg.connect(conninfo(url), **kwargs)


def database_exists(url: URL) -> bool:
    with connect(url.set(database="postgres"), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone() is not None


def create_database(url: URL) -> bool:
    """Create the model's database when missing; True when created now."""
    if database_exists(url):
        return False
    with connect(url.set(database="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
    return True


def drop_database(url: URL) -> None:
    with connect(url.set(database="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(url.database)))
