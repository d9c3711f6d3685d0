"""Serves the viewer: its page and scripts, CesiumJS from the npm package, and /viewer/config.json (the tilesets,
the ground and the start view, read from what `cim tile` wrote)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pyproj import Transformer
from starlette.staticfiles import StaticFiles

from cim.api.app import ApiState, state
from cim.api.problems import ApiError
from cim.config import Settings
from cim.tiler.georef import find_geoid, geodetic

STATIC = Path(__file__).parent / "static"

router = APIRouter(prefix="/viewer", include_in_schema=False)

# Where the catalog's title (the layer, "<network> pipes", "<network> network nodes") says less than it could
TITLES = {"terrain": "Terrain (DEM mesh)", "bim": "BIM models", "tunnels": "Utility tunnels"}


def _geoid_height(srid: int, lon: float, lat: float) -> float:
    """Ellipsoidal minus orthometric height at a point: what puts the API's heights where the tiles are."""
    x, y = Transformer.from_crs(4326, srid, always_xy=True).transform(lon, lat)
    return float(geodetic(np.array([[x, y, 0.0]]), srid, find_geoid())[0, 2])


def viewer_config(cfg: Settings, collections: dict, srid: int, model_name: str) -> dict:
    """What the page needs to start: one entry per tileset (title, URL, network layer, count), the ground, the
    start view and the geoid height."""
    root_path = cfg.tiles_dir / "tileset.json"
    if not root_path.is_file():
        raise ApiError(404, f"no tiles in {cfg.tiles_dir}: run `cim tile` (make tiles) first")
    root = json.loads(root_path.read_text())
    ground_path = cfg.tiles_dir / "ground" / "ground.json"
    ground = json.loads(ground_path.read_text()) if ground_path.is_file() else None
    layers = []
    for child in root["root"].get("children", []):
        uri = child["content"]["uri"]
        layer_id = uri.split("/")[0]
        coll = collections.get(layer_id)
        layers.append({
            "id": layer_id, "title": TITLES.get(layer_id) or (coll.title if coll else layer_id).capitalize(),
            "url": f"/tiles/{uri}",
            "layer": coll.layer if coll else layer_id, "family": coll.family if coll else "objects",
            "kinds": list(coll.kinds) if coll else [], "count": coll.count if coll else None,
            # the ground is drawn from the same DEM: the terrain mesh would only hide its base map
            "show": not (layer_id == "terrain" and ground is not None),
        })
    west, south, east, north, low, high = root["root"]["boundingVolume"]["region"]
    lon, lat = np.degrees((west + east) / 2), np.degrees((south + north) / 2)
    return {
        "model": model_name,
        "layers": layers,
        "ground": ({**ground, "base": "/tiles/ground/"} if ground else None),
        "home": {"rectangle": [float(np.degrees(v)) for v in (west, south, east, north)], "low": low, "high": high},
        "geoid_height": _geoid_height(srid, float(lon), float(lat)),
        "writes": bool(cfg.api_keys),
        "reads_need_key": not cfg.api_public_read,
    }


@router.get("/config.json")
async def config(st: ApiState = Depends(state)) -> JSONResponse:
    collections = await st.catalog.current()
    model = st.db.model
    return JSONResponse(viewer_config(st.cfg, collections, st.db.srid, model.info.name),
                        headers={"Cache-Control": "no-cache"})


@router.get("", response_class=RedirectResponse)
async def viewer_root() -> RedirectResponse:
    return RedirectResponse("/viewer/")


@router.get("/", response_class=HTMLResponse)
async def page(st: ApiState = Depends(state)) -> HTMLResponse:
    if not (st.cfg.cesium_dir / "Cesium.js").is_file():
        return HTMLResponse(f"<!doctype html><title>cim viewer</title><p>CesiumJS is not installed at "
                            f"{st.cfg.cesium_dir}: run <code>make setup</code> (it runs <code>npm ci</code>).</p>",
                            status_code=503)
    return HTMLResponse((STATIC / "index.html").read_text(), headers={"Cache-Control": "no-cache"})


def mount(app: FastAPI, cfg: Settings) -> None:
    app.include_router(router)
    app.mount("/viewer/app", StaticFiles(directory=STATIC), name="viewer-app")
    app.mount("/viewer/cesium", StaticFiles(directory=cfg.cesium_dir, check_dir=False), name="cesium")
