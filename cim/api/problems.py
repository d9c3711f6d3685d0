"""Errors as RFC 9457 problem details (application/problem+json): invalid input is a 400 that says which
parameter and why, never a 500."""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM = "application/problem+json"
log = logging.getLogger("cim.api")

# SQLSTATEs that a query built from user input can raise: data exceptions (class 22: bad number or date
# text, division by zero, out of range), an operator that does not exist for the types compared (42883), a
# datatype mismatch (42804). They are the user's mistake, so 400.
USER_SQLSTATE_CLASSES = ("22",)
USER_SQLSTATES = ("42883", "42804", "XX000")  # XX000: PostGIS reports a bad geometry as an internal error


class ApiError(Exception):
    """An error the client can act on: HTTP status and one-line detail."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path", "body", "header"))
        parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def user_db_error(exc: BaseException) -> str | None:
    """The message of a database error caused by the request's values (see USER_SQLSTATES), else None."""
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, psycopg.Error):
        return None
    if isinstance(orig, psycopg.DataError) and not orig.sqlstate:  # refused by psycopg itself (a NUL byte)
        return str(orig).splitlines()[0]
    state = orig.sqlstate or ""
    if state[:2] in USER_SQLSTATE_CLASSES or state in USER_SQLSTATES:
        diag = orig.diag.message_primary or str(orig)
        return diag.splitlines()[0]
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return problem(exc.status, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return problem(400, _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(DBAPIError)
    async def _db(request: Request, exc: DBAPIError) -> Response:
        message = user_db_error(exc)
        if message is not None:
            return problem(400, f"the query cannot run with these values: {message}")
        orig = getattr(exc, "orig", None)
        if isinstance(orig, psycopg.errors.QueryCanceled):
            return problem(503, "the query took too long; narrow it (bbox, filter, limit)",
                           {"Retry-After": "5"})
        log.exception("database error on %s", request.url.path)
        return problem(503, "the database is not available", {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return problem(500, "unexpected server error; it has been logged")

    @app.exception_handler(psycopg.Error)
    async def _psycopg(request: Request, exc: psycopg.Error) -> Response:
        message = user_db_error(exc)
        if message is not None:
            return problem(400, f"the query cannot run with these values: {message}")
        log.exception("database error on %s", request.url.path)
        return problem(503, "the database is not available", {"Retry-After": "5"})
