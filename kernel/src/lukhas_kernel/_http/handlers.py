"""The handler wrapper that enforces what a route declares.

The wrapper is the single place where request bodies and queries are parsed
and validated, so every route answers 400/422 the same way and every route's
models are known to the OpenAPI generator.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from .._core.problems import ProblemError, validation_error, validation_problem
from .._plugin.route import Handler, Route

__all__ = ["Guard", "wrap_handler"]

# PostgreSQL can neither store nor compare a string with a NUL character and
# SQLite can: every route refuses them up front, so the answer to such a
# request does not depend on the database behind the host.
_NUL = "\x00"


def _serialise(result: Any, status: int) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if result is None:
        return web.Response(status=status)
    if isinstance(result, BaseModel):
        return web.Response(
            status=status, text=result.model_dump_json(), content_type="application/json"
        )
    return web.json_response(result, status=status)


Guard = Callable[[web.Request], Awaitable[dict[str, str]]]


def wrap_handler(
    route: Route,
    timeout_s: float,
    plugin: str | None = None,
    before: Callable[[], Awaitable[Any]] | None = None,
    guard: Guard | None = None,
) -> Handler:
    """Validate input, call the handler within `timeout_s`, serialise the result.

    `guard` runs first (role and rate limit: it raises a problem or returns
    headers for the response); `plugin` is bound into structlog's context for
    the request; `before` runs inside the timeout (chaos at the request stage).
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        if plugin is None:
            return await validated(request)
        tokens = structlog.contextvars.bind_contextvars(plugin=plugin)
        try:
            return await validated(request)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    async def validated(request: web.Request) -> web.StreamResponse:
        headers = await guard(request) if guard is not None else None
        kwargs = await _inputs(route, request)
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                if before is not None:
                    await before()
                result = await route.handler(request, **kwargs)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise ProblemError(
                503, f"{route.operation} did not answer within {timeout_s:g}s",
                type="urn:lukhas:problem:timeout") from None
        response = _serialise(result, route.status)
        if headers:
            response.headers.update(headers)
        return response

    handle.__name__ = getattr(route.handler, "__name__", "handler")
    return handle


async def _inputs(route: Route, request: web.Request) -> dict[str, Any]:
    """The handler's `query` and `body` arguments, validated; a problem if not valid."""
    _refuse_nul(request.match_info, request.query)
    kwargs: dict[str, Any] = {}
    if route.query is not None:
        try:
            kwargs["query"] = route.query.model_validate(dict(request.query))
        except ValidationError as exc:
            raise validation_problem(exc, "query") from None
    if route.body is not None:
        raw = await request.read()
        if b"\\u0000" in raw:  # JSON can only carry a NUL escaped; look closer
            _refuse_nul_in_body(raw)
        try:
            kwargs["body"] = route.body.model_validate_json(raw)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise ProblemError(400, "the request body is not valid JSON") from None
            raise validation_problem(exc, "body") from None
    return kwargs


def _nul_problem(loc: list[str | int]) -> ProblemError:
    return validation_error(loc, "must not contain the NUL character", "string_nul")


def _refuse_nul(path: Mapping[str, str], query: Mapping[str, str]) -> None:
    """404 for a path parameter with a NUL (it names nothing); 422 for a query value."""
    if any(_NUL in value for value in path.values()):
        raise ProblemError(404, "no such resource")
    for name, value in query.items():
        if _NUL in value or _NUL in name:
            raise _nul_problem(["query", name])


def _refuse_nul_in_body(raw: bytes) -> None:
    """422 naming the first string (value or key) of a JSON body that holds a NUL.
    A body that is not JSON, or nested past the parser's depth, is left to
    the model's validation (400)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return
    pending: list[tuple[list[str | int], Any]] = [(["body"], document)]
    while pending:
        loc, value = pending.pop()
        if isinstance(value, str) and _NUL in value:
            raise _nul_problem(loc)
        if isinstance(value, dict):
            for key, item in value.items():
                if _NUL in key:
                    raise _nul_problem(loc)
                pending.append(([*loc, key], item))
        elif isinstance(value, list):
            pending.extend(([*loc, index], item) for index, item in enumerate(value))
