"""The handler wrapper that enforces what a route declares.

The wrapper is the single place where request bodies and queries are parsed
and validated, so every route answers 400/422 the same way and every route's
models are known to the OpenAPI generator.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from .._core.deadlines import Deadlines
from .._core.problems import ProblemError, validation_error, validation_problem
from .._plugin.route import Handler, Route

__all__ = ["Guard", "LogField", "wrap_handler"]

# PostgreSQL can neither store nor compare a string with a NUL character and
# SQLite can: every route refuses them up front, so the answer to such a
# request does not depend on the database behind the host.
_NUL = "\x00"


def _serialise(result: Any, status: int) -> web.StreamResponse:
    # A JSON document the handler made, or a response, before a model: pydantic's
    # metaclass is an ABCMeta, whose isinstance() check runs in Python.
    if isinstance(result, bytes):
        return web.Response(status=status, body=result, content_type="application/json",
                            charset="utf-8")
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, BaseModel):
        return web.Response(
            status=status, text=result.model_dump_json(), content_type="application/json"
        )
    if result is None:
        return web.Response(status=status)
    return web.json_response(result, status=status)


Guard = Callable[[web.Request], Awaitable[dict[str, str]]]


class LogField:
    """One key of structlog's context, bound for a request and reset after it.

    The same as `bind_contextvars(key=value)` and `reset_contextvars(**tokens)`,
    at a tenth of their cost: structlog keeps one context variable per key, which
    the first binding hands over (`Token.var`); later ones set it directly.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._var: contextvars.ContextVar[Any] | None = None

    def bind(self, value: Any) -> contextvars.Token[Any]:
        """Bind `value`; pass the token to `reset` when the request is done."""
        if self._var is None:
            token: contextvars.Token[Any] = structlog.contextvars.bind_contextvars(
                **{self.key: value})[self.key]
            self._var = token.var
            return token
        return self._var.set(value)

    @staticmethod
    def reset(token: contextvars.Token[Any]) -> None:
        token.var.reset(token)


_PLUGIN = LogField("plugin")
#: The message of the cancellation a handler past its time limit gets, which
#: tells it from any other (the client went away, the host stops).
_TIMED_OUT = "lukhas: the request handler ran out of time"


def _time_out(task: asyncio.Task[Any]) -> None:
    task.cancel(_TIMED_OUT)


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
    # Everything that does not depend on the request is worked out here, once:
    # this runs on every request of every route.
    call, status, body_model = route.handler, route.status, route.body
    late = f"{route.operation} did not answer within {timeout_s:g}s"
    # Each running handler of the route is cancelled once past `timeout_s`.
    deadlines: Deadlines[asyncio.Task[Any]] = Deadlines(timeout_s, _time_out)

    async def handle(request: web.Request) -> web.StreamResponse:
        token = _PLUGIN.bind(plugin)
        try:
            return await validated(request)
        finally:
            _PLUGIN.reset(token)

    async def validated(request: web.Request) -> web.StreamResponse:
        headers = await guard(request) if guard is not None else None
        kwargs = _query_input(route, request)
        if body_model is not None:
            kwargs["body"] = await _body_input(body_model, request)
        # The loop of the request's connection: asking for the running one
        # (as current_task() does) costs a getpid() system call on Python 3.11.
        loop = request.task.get_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        watched = deadlines.watch(task, loop)
        try:
            if before is not None:
                await before()
            result = await call(request, **kwargs)
        except asyncio.CancelledError as exc:
            if exc.args[:1] != (_TIMED_OUT,):
                raise
            task.uncancel()
            raise ProblemError(503, late, type="urn:lukhas:problem:timeout") from None
        finally:
            watched.discard(task)
        response = _serialise(result, status)
        if headers:
            response.headers.update(headers)
        return response

    # A kernel route has no plugin to bind: one coroutine frame fewer per request.
    wrapper = validated if plugin is None else handle
    wrapper.__name__ = getattr(route.handler, "__name__", "handler")
    return wrapper


def _query_input(route: Route, request: web.Request) -> dict[str, Any]:
    """The handler's `query` argument, validated (if it takes one); a problem if not valid."""
    # A NUL reaches the path or the query only percent-encoded: no "%00", none to look for.
    if "%00" in request.raw_path:
        _refuse_nul(request.match_info, request.query)
    if route.query is None:
        return {}
    try:
        return {"query": route.query.model_validate(dict(request.query))}
    except ValidationError as exc:
        raise validation_problem(exc, "query") from None


async def _body_input(model: type[BaseModel], request: web.Request) -> BaseModel:
    """The handler's `body` argument, validated; a problem if not valid."""
    raw = await request.read()
    if b"\\u0000" in raw:  # JSON can only carry a NUL escaped; look closer
        _refuse_nul_in_body(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ProblemError(400, "the request body is not valid JSON") from None
        raise validation_problem(exc, "body") from None


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
