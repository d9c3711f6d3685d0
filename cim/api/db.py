"""The API's connections to the city model: an async SQLAlchemy engine (psycopg), whose connections also run
the feature pages' compiled SQL straight through psycopg; the model's synchronous handle for the pipe
analyses; and the CRSs the API speaks.

The pool is fixed in size: a new connection costs a backend start and, at its first transform, PROJ's set-up
(about 100 ms), so connections are kept, never churned per request."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cim.config import Settings
from cim.model.store import Model


@dataclass
class ModelDb:
    model: Model
    engine: AsyncEngine
    known_srids: frozenset[int]  # the CRSs the API speaks besides CRS84: CIM_API_CRS and the storage CRS

    @property
    def srid(self) -> int:
        return self.model.info.srid


async def open_db(model: Model, cfg: Settings) -> ModelDb:
    options = f"-c statement_timeout={cfg.api_statement_timeout_ms} -c default_transaction_read_only=on"
    engine = create_async_engine(model.url, pool_size=cfg.api_pool_size, max_overflow=0, pool_timeout=60,
                                 connect_args={"options": options})
    async with engine.connect() as conn:
        known = (await conn.execute(text("SELECT srid FROM spatial_ref_sys WHERE auth_name = 'EPSG' AND "
                                         "srid = ANY(:srids)"), {"srids": list(cfg.api_crs)})).scalars().all()
    return ModelDb(model, engine, frozenset(known) | {model.info.srid})
