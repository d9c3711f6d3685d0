"""API keys: the server keeps only their SHA-256 digests (CIM_API_KEYS); writes always need a key, reads
only when CIM_API_PUBLIC_READ is false. A key comes in `X-API-Key: KEY` or `Authorization: Bearer KEY`."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from cim.api.problems import ApiError
from cim.config import Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cim"'}


def new_key() -> tuple[str, str]:
    """A fresh random key and the digest that goes into CIM_API_KEYS."""
    key = secrets.token_urlsafe(32)
    return key, digest(key)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def key_id(cfg: Settings, key: str | None) -> str | None:
    """Which configured key this is (the first 12 hex digits of its digest, for the edit log), else None."""
    if not key:
        return None
    given = digest(key)
    match = None
    for allowed in cfg.api_keys:
        if hmac.compare_digest(given, allowed.strip().lower()):
            match = allowed
    return match[:12] if match else None


def require_key(request: Request, cfg: Settings, action: str) -> str:
    """The key id of a request that must carry a valid key; 401 without one, 403 with a wrong one."""
    if not cfg.api_keys:
        raise ApiError(403, f"{action} is disabled: the server has no API key configured (CIM_API_KEYS)")
    key = presented_key(request)
    if key is None:
        raise ApiError(401, f"{action} needs an API key (X-API-Key header or Authorization: Bearer)", CHALLENGE)
    found = key_id(cfg, key)
    if found is None:
        raise ApiError(403, "the API key is not valid")
    return found


def check_read(request: Request, cfg: Settings) -> None:
    if not cfg.api_public_read:
        require_key(request, cfg, "reading")
