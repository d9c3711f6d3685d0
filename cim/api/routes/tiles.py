"""The tilesets `cim tile` wrote, served at /tiles with glTF and JSON media types, ETags (304 on
If-None-Match), caching and CORS (from the app's middleware)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class TileFiles(StaticFiles):
    """Static tiles: tileset.json revalidated on every use (it changes when tiles do), glb kept a minute."""

    async def check_config(self) -> None:
        """No tiles yet (`cim tile` not run) is a 404 per file, not a server error."""
        if self.directory is not None and Path(self.directory).is_dir():
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            fresh = "public, max-age=60" if path.endswith(".glb") else "no-cache"
            response.headers["Cache-Control"] = fresh
        return response


def mount(app: FastAPI, tiles_dir: Path) -> None:
    app.mount("/tiles", TileFiles(directory=tiles_dir, check_dir=False), name="tiles")
