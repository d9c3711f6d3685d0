"""Settings from the environment (prefix CIM_), one place for every tunable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIM_", extra="ignore")

    database_url: str | None = None
    """An existing PostgreSQL+PostGIS server (any database on it); unset = the local cluster."""
    model: str = "cim"
    """Name of the city model = the database that holds it."""
    data_dir: Path = PROJECT_ROOT / ".cim"
    """Where the local cluster, logs and other runtime state live (git-ignored)."""
    pg_port: int = 55432
    pg_bindir: Path | None = None
    """PostgreSQL server binaries; found automatically when unset."""
    area_code: str = "440402"
    """Administrative area prefix of new unified codes (440402 = Xiangzhou, Zhuhai)."""
    storey_height: float = 3.0
    default_building_height: float = 10.0
    pipe_snap_tolerance: float = 0.1
    """Pipe ends and points closer than this (m) are one node when lines do not name their points."""
    pipe_cover: dict[str, float] = {"water": 1.0, "drainage": 1.5, "gas": 0.9, "power": 0.7, "telecom": 0.7,
                                    "heat": 1.0}
    """Cover (ground to pipe crown, m) assumed per network where a pipe has no depth or elevation."""
    geoid_grid: str | None = None
    """PROJ geoid grid (file or name) for orthometric → ellipsoidal heights; unset = EGM96 when installed."""
    geoid_undulation: float = -4.4
    """Constant geoid height N (m) used when no grid is found: EGM96 at Zhuhai (22.27 N, 113.55 E)."""
    tile_max_triangles: int = 20000
    """Triangle budget of one tile; a tile with more objects keeps the most significant and splits the rest."""

    # The analyst API (`cim serve`)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_public_read: bool = True
    """Reads need no key; false = every request needs an API key."""
    api_keys: Annotated[list[str], NoDecode] = []
    """SHA-256 hex digests of the accepted API keys (comma-separated; `cim serve key` makes one)."""
    api_default_limit: int = 100
    api_max_limit: int = 10000
    """Largest page of features; a larger `limit` is cut to it (and the response says so)."""
    api_max_body_bytes: int = 1_000_000
    api_statement_timeout_ms: int = 20000
    api_cors_origins: Annotated[list[str], NoDecode] = ["*"]
    api_crs: Annotated[list[int], NoDecode] = [4326, 4490, 3857, 32649, 32650]
    """EPSG codes the API speaks besides CRS84 and the storage CRS (WGS 84, CGCS2000, Web Mercator, UTM 49/50N)."""
    api_pool_size: int = 10
    api_catalog_ttl_s: float = 5.0
    """How often at most the API looks for new imports (new layers, extents, queryables)."""
    tiles_dir: Path = PROJECT_ROOT / "tiles"
    """The tilesets `cim serve` publishes at /tiles (what `cim tile` wrote)."""
    cesium_dir: Path = PROJECT_ROOT / "node_modules" / "cesium" / "Build" / "Cesium"
    """CesiumJS for the viewer (`npm ci`, pinned in package.json), served at /viewer/cesium, never from a CDN."""

    # Live IoT (see docs/iot.md)
    mqtt_url: str | None = None
    """An existing MQTT broker (mqtt://[user:password@]host:port); unset = the project's own Mosquitto."""
    mqtt_port: int = 11883
    """Port of the project's own Mosquitto (`cim iot broker up`, loopback only)."""
    mqtt_topic_prefix: str = "cim"
    """Readings arrive on <prefix>/sensors/<sensor>/observations."""
    iot_batch_ms: int = 50
    """The ingester commits what arrived at most this often (and acknowledges it to the broker after)."""
    iot_max_batch: int = 50000
    """Largest batch one ingest transaction takes (MQTT messages, or observations of one HTTP request)."""
    iot_max_body_bytes: int = 32_000_000
    """Largest HTTP observation batch (POST /iot/observations)."""
    iot_max_age_days: float = 400.0
    """Readings older than this are refused (history partitions are daily)."""
    iot_max_future_s: float = 300.0
    """Readings stamped further ahead of this machine's clock are refused (clock skew allowance)."""
    iot_stale_check_s: float = 2.0
    """How often the ingester looks for sensors that went silent."""

    @field_validator("api_keys", "api_cors_origins", "api_crs", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


@lru_cache
def settings() -> Settings:
    return Settings()
