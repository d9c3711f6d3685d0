"""One endpoint, two encodings: JSON for programs, HTML for browsers (`f=html|json`, else the Accept header),
and the links every response carries."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode

import orjson
from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

from cim.api.problems import ApiError

Format = Literal["json", "html"]  # the `f` parameter
JSON = "application/json"
GEOJSON = "application/geo+json"
HTML = "text/html"
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                        autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def wants_html(request: Request, f: str | None) -> bool:
    if f is not None:
        if f not in ("json", "html"):
            raise ApiError(400, f"f: {f!r} is not a format of this API; use json or html")
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept.split("text/html")[0]


def segment(value: str) -> str:
    """A collection id or code as one URL path segment."""
    return quote(value, safe="")


def url(request: Request, path: str, **params: object) -> str:
    base = str(request.base_url).rstrip("/")
    query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
    return f"{base}{path}" + (f"?{query}" if query else "")


def self_links(request: Request, media: str = JSON, html: bool = True) -> list[dict]:
    """`self` (JSON) and `alternate` (HTML) links of the requested URL."""
    params = {k: v for k, v in request.query_params.multi_items() if k != "f"}
    out = [{"href": url(request, request.url.path, **params, f="json"), "rel": "self", "type": media,
            "title": "this document"}]
    if html:
        out.append({"href": url(request, request.url.path, **params, f="html"), "rel": "alternate", "type": HTML,
                    "title": "this document as HTML"})
    return out


def json_response(data: object, media: str = JSON, headers: dict[str, str] | None = None,
                  status: int = 200) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status_code=status, media_type=media,
                    headers=headers)


def html_response(template: str, request: Request, **context: object) -> HTMLResponse:
    page = TEMPLATES.get_template(template).render(request=request, base=str(request.base_url).rstrip("/"),
                                                   **context)
    return HTMLResponse(page)


def respond(request: Request, f: str | None, data: dict, template: str = "document.html", title: str = "",
            media: str = JSON, headers: dict[str, str] | None = None, **context: object) -> Response:
    """`data` as JSON, or rendered with `template` for a browser."""
    if wants_html(request, f):
        return html_response(template, request, data=data, title=title or data.get("title", "cim"), **context)
    return json_response(data, media, headers)
