"""The API definition as OpenAPI 3.0 (what OGC API - Features' oas30 class and OWSLib ask for): FastAPI's
3.1 document with 3.1-only JSON Schema turned into 3.0 forms, the problem responses every operation can give,
and the API key scheme of the writes."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

MEDIA = "application/vnd.oai.openapi+json;version=3.0"
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}},
    "required": ["title", "status", "detail"],
}
KEYED = [{"apiKey": []}, {"bearer": []}]  # the security of operations that need a key
ERRORS = {
    "400": "Invalid parameters or body: the detail names the parameter and the reason.",
    "401": "An API key is needed (writes; reads when CIM_API_PUBLIC_READ is false).",
    "403": "The API key is not valid, or writes are disabled.",
    "404": "No such collection, feature, object or file.",
    "413": "The request body is too large (CIM_API_MAX_BODY_BYTES; CIM_IOT_MAX_BODY_BYTES and CIM_IOT_MAX_BATCH "
           "for /iot/observations).",
    "503": "The database is not available or the query took too long.",
}


def _to_30(node: object) -> object:
    """JSON Schema of OpenAPI 3.1 (2020-12) in the OpenAPI 3.0 dialect."""
    if isinstance(node, list):
        return [_to_30(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_30(v) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            out["nullable"] = True
            if len(rest) == 1 and "$ref" not in rest[0]:
                out = {**rest[0], **out}
            elif rest:
                out["allOf" if len(rest) == 1 else key] = rest
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else out["type"]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[plain] = out[bound]
            out[bound] = True
    if isinstance(out.get("examples"), list) and "in" not in out:
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    return out


def openapi_30(app: FastAPI) -> dict:
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                      openapi_version="3.0.3", tags=app.openapi_tags)
    doc = _to_30(doc)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                   "description": "A key whose SHA-256 digest is in CIM_API_KEYS (`cim api-key` makes one)."},
        "bearer": {"type": "http", "scheme": "bearer", "description": "The same key as a bearer token."},
    }
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for ops in doc.get("paths", {}).values():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            for status, text in ERRORS.items():
                responses.setdefault(status, {"description": text, "content": problem})
            if method not in ("get", "head") and "security" not in op:  # a route may declare its own
                op["security"] = KEYED if method == "patch" else []
    return doc


def install(app: FastAPI) -> None:
    """Serve the 3.0 document at /api (FastAPI's own 3.1 route is off)."""
    app.openapi = lambda: app.openapi_schema or _cache(app)


def _cache(app: FastAPI) -> dict:
    app.openapi_schema = openapi_30(app)
    return app.openapi_schema
