"""The FastAPI application: OGC API - Features over the city model, 3D queries, object detail, pipe analyses,
the tilesets and live IoT (see docs/api.md)."""

from __future__ import annotations

import gc
import mimetypes
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from cim import __version__
from cim.api import openapi, problems
from cim.api.catalog import Catalog
from cim.api.db import ModelDb, open_db
from cim.api.ingest import HttpIngest
from cim.api.live import STREAM_PATHS, LiveHub, check_access
from cim.api.problems import problem
from cim.api.security import check_read
from cim.config import Settings, settings
from cim.model.store import Model, ModelError
from cim.viewer import is_public

mimetypes.add_type("model/gltf-binary", ".glb")
mimetypes.add_type("application/json", ".json")

SCHEMA_REVISION = "0005"  # the API needs the model's SQL functions and edit log (cim db init upgrades)


@dataclass
class ApiState:
    cfg: Settings
    db: ModelDb
    catalog: Catalog
    live: LiveHub
    ingest: HttpIngest


async def state(request: Request) -> ApiState:
    """The app's state as a dependency (async: a plain function would cost a thread hop per request)."""
    return request.app.state.cim


class BodyLimit:
    """Refuses request bodies over CIM_API_MAX_BODY_BYTES (413), declared or streamed; `paths` have limits of
    their own (the IoT batch ingest: CIM_IOT_MAX_BODY_BYTES)."""

    def __init__(self, app: ASGIApp, limit: int, paths: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.paths = paths or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.paths.get(scope["path"], self.limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await problem(413, f"the request body is over {limit} bytes")(scope, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise problems.ApiError(413, f"the request body is over {limit} bytes")
            return message

        return await self.app(scope, limited, send)


class ReadAccess:
    """Reads need a key when CIM_API_PUBLIC_READ is false (writes check theirs in their route, the WebSocket in
    its endpoint); the live streams also take it as ?api_key=."""

    def __init__(self, app: ASGIApp, cfg: Settings) -> None:
        self.app = app
        self.cfg = cfg

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.cfg.api_public_read and scope["method"] in ("GET", "HEAD") \
                and not is_public(scope["path"]):
            try:
                if scope["path"] in STREAM_PATHS:
                    check_access(Request(scope), self.cfg)
                else:
                    check_read(Request(scope), self.cfg)
            except problems.ApiError as exc:
                return await problem(exc.status, exc.detail, exc.headers)(scope, receive, send)
        return await self.app(scope, receive, send)


def _check_schema(model: Model) -> None:
    with model.connect() as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    if row is None or row[0] < SCHEMA_REVISION:
        raise ModelError(f"model {model.info.name!r} has an older schema ({row[0] if row else 'none'}); "
                         f"upgrade it with `cim db init --model {model.info.name}`")


def create_app(model: Model | None = None, cfg: Settings | None = None) -> FastAPI:
    """The API of one city model (default: the configured one, opened at start-up)."""
    cfg = cfg or settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        m = model or Model.open()
        _check_schema(m)
        db = await open_db(m, cfg)
        live = LiveHub(m, cfg)
        ingest = HttpIngest(m, cfg)
        live.on_reload = ingest.mark_stale
        app.state.cim = ApiState(cfg, db, Catalog(db, cfg.api_catalog_ttl_s), live, ingest)
        await app.state.cim.catalog.current()
        await live.start()
        # what start-up loaded lives as long as the server: out of the collector's way, and fewer full
        # collections (each pauses every request in flight)
        gc.freeze()
        gc.set_threshold(20_000, 20, 50)
        try:
            yield
        finally:
            await live.stop()
            ingest.close()
            await db.engine.dispose()

    app = FastAPI(
        title="cim city model API",
        version=__version__,
        description="OGC API - Features over a city information model (GIS + BIM + pipe networks), with 3D "
                    "queries, object detail, pipe network analyses and OGC 3D Tiles.",
        lifespan=lifespan,
        openapi_url=None,  # /api serves the OpenAPI 3.0 form (cim.api.openapi)
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    openapi.install(app)

    from cim.api.routes import analysis, core, features, iot, objects, search, tiles
    from cim.viewer import server as viewer

    for module in (core, features, objects, search, analysis, iot):
        app.include_router(module.router)
    tiles.mount(app, cfg.tiles_dir)
    viewer.mount(app, cfg)
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=4)  # level 9 costs 5x the CPU
    app.add_middleware(CORSMiddleware, allow_origins=cfg.api_cors_origins, allow_methods=["*"],
                       allow_headers=["*"], expose_headers=["ETag", "Content-Crs", "Link"])
    app.add_middleware(BodyLimit, limit=cfg.api_max_body_bytes, paths={"/iot/observations": cfg.iot_max_body_bytes})
    app.add_middleware(ReadAccess, cfg=cfg)
    return app
