"""The aiohttp host: kernel routes, middlewares, plugin routes and gating."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_urldispatcher import MatchInfoError
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from .._core.logging import server_logger
from .._core.problems import ProblemError, from_exception, problem_response, problem_type
from .._lifecycle.breaker import Breaker
from .._lifecycle.kernel import Kernel
from .._lifecycle.records import PluginRecord
from .._lifecycle.routes import KERNEL_PREFIXES, Mounted
from .._plugin.route import MAX_TARGET_BYTES, Route
from .._plugin.states import PluginState, Stage
from .._services.bundle import Services
from .._services.ratelimit import RateLimits
from .answers import http_problem, stamp_answer
from .auth import USER_KEY, bearer_token, guard_for, needs_token, user_of
from .handlers import LogField, wrap_handler
from .kernel_routes import kernel_routes
from .openapi import add_docs_routes
from .request_ids import REQUEST_ID_KEY, request_id, request_id_of

__all__ = ["KERNEL_KEY", "build_app", "request_id"]

KERNEL_KEY = web.AppKey("lukhas_kernel", Kernel)
# aiohttp's HTTP parser answers a longer request line itself, with a plain-text
# 400 before any middleware runs; the headroom lets the host answer 414 as a
# problem (with X-Request-ID) for targets up to this size.
_PARSER_LINE_BYTES = 8 * MAX_TARGET_BYTES
log = structlog.get_logger("lukhas.host")

def _gate(kernel: Kernel, record: PluginRecord) -> web.Response:
    """The answer for a plugin's routes while it does not serve (docs/plugin-states.md)."""
    name, state = record.name, record.state
    if state is PluginState.DISABLED:
        return problem_response(403, f"{name} subsystem is not enabled",
                                type=problem_type("disabled"))
    if state is PluginState.RETRYING:
        detail, after = kernel.retrying_detail(record)
        return problem_response(503, detail, type=problem_type("retrying"),
                                headers={"Retry-After": str(after)})
    if state is PluginState.PENDING:  # an attempt at bringing it up is running
        return problem_response(503, f"{name} subsystem restarting", type=problem_type("retrying"),
                                headers={"Retry-After": "1"})
    slug = {PluginState.SKIPPED: "skipped", PluginState.QUARANTINED: "quarantined"}.get(state, "failed")
    return problem_response(503, f"{name} subsystem {slug}: {record.reason}", type=problem_type(slug))


def _to_problem(request: web.Request, exc: Exception, owner: PluginRecord | None) -> web.StreamResponse:
    if isinstance(exc, ProblemError):
        return from_exception(exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return web.Response(status=exc.status, headers=exc.headers)
        return http_problem(request, exc)
    if isinstance(exc, IntegrityError):
        return problem_response(409, "the request conflicts with stored data",
                                type="urn:lukhas:problem:conflict")
    if isinstance(exc, DataError):  # a server database refused a value of the request
        return problem_response(422, "a value of the request cannot be stored or compared")
    if isinstance(exc, (SQLAlchemyError, TimeoutError)):
        log.warning("storage.unavailable", path=request.path, reason=f"{type(exc).__name__}: {exc}"[:300],
                    plugin=owner.name if owner else None)
        return problem_response(503, "storage unavailable; retry shortly",
                                type="urn:lukhas:problem:storage-unavailable",
                                headers={"Retry-After": "1"})
    log.exception("request.unhandled", path=request.path, method=request.method,
                  plugin=owner.name if owner else None)
    return problem_response(500, f"internal error; quote request id {request.get(REQUEST_ID_KEY)}")


def build_app(kernel: Kernel) -> web.Application:
    """An aiohttp app serving the kernel's routes and every loaded plugin's.

    `kernel.load()` must have run; the app's start-up runs `kernel.start()`.
    """
    settings, services = kernel.settings, kernel.services
    if services is None:
        raise ValueError("the host serves a kernel opened with its services")

    # The mount key of each route handler (None: a kernel route), filled in below.
    keys: dict[Handler, tuple[str, str] | None] = {}
    app = web.Application(
        middlewares=_middlewares(kernel, services, keys),
        client_max_size=settings.max_body_bytes,
        handler_args={"logger": server_logger(), "max_line_size": _PARSER_LINE_BYTES},
    )
    app[KERNEL_KEY] = kernel
    app.on_response_prepare.append(stamp_answer)

    own = kernel_routes(kernel)
    for route in own:
        handler = wrap_handler(route, settings.request_timeout_s, guard=guard_for(route, services.limits))
        app.router.add_route(route.method, route.path, handler)
        if any(route.path == p or route.path.startswith(p + "/") for p in KERNEL_PREFIXES):
            keys[handler] = None  # under a prefix of the kernel's, which no plugin can claim
    for key in kernel.table.mounted:
        handler = _plugin_handler(kernel, services.limits, key)
        app.router.add_route(key[0], key[1], handler)
        keys[handler] = key
    late = _late_routes(kernel, services.limits)
    for prefix in kernel.table.plugin_prefixes():
        app.router.add_route("*", prefix, late)
        app.router.add_route("*", prefix + "/{tail:.*}", late)
    kernel_own: list[tuple[str | None, Route]] = [(None, r) for r in own]
    add_docs_routes(app, lambda: kernel.table.revision,
                    lambda: kernel_own + [(entry.plugin, entry.route)
                                          for entry in kernel.table.mounted.values()])

    async def start(app: web.Application) -> None:
        await kernel.start()

    async def stop(app: web.Application) -> None:
        await kernel.close()

    app.on_startup.append(start)
    app.cleanup_ctx.append(_periodic_health)
    app.cleanup_ctx.append(_following_flags)
    app.on_cleanup.append(stop)
    return app


def _owner(kernel: Kernel, keys: dict[Handler, tuple[str, str] | None],
           request: web.Request) -> PluginRecord | None:
    """`kernel.owner_of(request.path)`, told by the route the request matched
    when it can be: a plugin's routes lie under its own prefixes, which never
    overlap another's, and a kernel route under a kernel prefix. Scanning every
    prefix costs more than the rest of the gate."""
    handler = request.match_info.handler
    if handler in keys:
        key = keys[handler]
        if key is None:
            return None
        entry = kernel.table.mounted.get(key)
        if entry is not None and entry.plugin in kernel.plugins:
            return kernel.plugins[entry.plugin].record
    return kernel.owner_of(request.path)


def _middlewares(kernel: Kernel, services: Services,
                 keys: dict[Handler, tuple[str, str] | None]) -> list[Middleware]:
    """Outermost: the request id and the last word on errors; then plugins'
    middlewares (each bypassed while its plugin does not serve); innermost:
    authentication, the plugin's gate and the body limit."""
    settings = kernel.settings

    request_id_field = LogField("request_id")

    @web.middleware
    async def outermost(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[REQUEST_ID_KEY] = request_id = request_id_of(request)
        token = request_id_field.bind(request_id)
        try:
            return await handler(request)
        except Exception as exc:
            return _to_problem(request, exc, kernel.owner_of(request.path))
        finally:
            request_id_field.reset(token)

    @web.middleware
    async def gate_and_problems(request: web.Request, handler: Handler) -> web.StreamResponse:
        owner = _owner(kernel, keys, request)
        if len(request.raw_path) > MAX_TARGET_BYTES:
            return problem_response(414, f"the request target is longer than {MAX_TARGET_BYTES} bytes")
        try:
            # Authentication comes first: without a token nothing about a
            # route, not even its plugin's state, is revealed.
            if needs_token(request.path):
                token = bearer_token(request)
                # Answered from the auth cache without a coroutine, as most requests are.
                user = services.accounts.cached_user(token)
                request[USER_KEY] = user if user is not None else await user_of(token, services.accounts)
            if owner is not None and not owner.state.serving:
                return _gate(kernel, owner)
            if (request.content_length or 0) > settings.max_body_bytes:
                return problem_response(413, "the request body is larger than LUKHAS_MAX_BODY_BYTES")
            return await handler(request)
        except Exception as exc:
            return _to_problem(request, exc, owner)

    def bypassed_unless_serving(name: str, index: int) -> Middleware:
        record, middlewares = kernel.records[name], kernel.table.middlewares

        # A plain function returning the awaitable to run, not a coroutine of
        # its own: aiohttp awaits what a middleware returns, and a frame fewer
        # per request is measurable on the fastest routes.
        @web.middleware
        def guarded(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
            # The plugin's middleware as last mounted (it is brought up again
            # with new ones); none while it does not serve.
            current = middlewares.get(name, [])
            if not record.state.serving or index >= len(current):
                return handler(request)
            middleware: Middleware = current[index]
            return middleware(request, handler)

        return guarded

    plugin_middlewares = [bypassed_unless_serving(n, i)
                          for n, ms in kernel.table.middlewares.items() for i in range(len(ms))]
    return [outermost, *plugin_middlewares, gate_and_problems]


def _plugin_handler(kernel: Kernel, limits: RateLimits, key: tuple[str, str]) -> Handler:
    """The aiohttp handler of one plugin route: the route as its plugin last
    mounted it, wrapped at its first request after each mount, behind the
    plugin's circuit breaker."""
    table, timeout_s = kernel.table, kernel.settings.request_timeout_s

    def wrapped(entry: Mounted) -> Handler:
        name = entry.plugin
        handler: Handler = wrap_handler(entry.route, timeout_s, name,
                                        lambda: kernel.chaos.inject(name, Stage.REQUEST),
                                        guard_for(entry.route, limits))
        entry.handler = handler
        return handler

    async def handle(request: web.Request) -> web.StreamResponse:
        entry = table.mounted.get(key)
        if entry is None:  # the plugin no longer has this route
            raise web.HTTPNotFound()
        handler: Handler = entry.handler or wrapped(entry)
        breaker = kernel.plugins[entry.plugin].breaker
        if breaker is None:
            return await handler(request)
        return await _through_breaker(breaker, handler, request)

    return handle


#: Answers that count as a plugin's failure for its breaker; 4xx never do.
_FAILURES = frozenset({500, 502, 503, 504})


async def _through_breaker(breaker: Breaker, handler: Handler, request: web.Request) -> web.StreamResponse:
    """Call `handler` unless the breaker refuses; tell the breaker how it went."""
    refusal = breaker.admit()
    if refusal is not None:
        return problem_response(503, refusal.detail, type=problem_type("circuit-open"),
                                headers={"Retry-After": str(refusal.retry_after_s)})
    try:
        response = await handler(request)
    except (ProblemError, web.HTTPException) as exc:
        breaker.record(exc.status in _FAILURES)
        raise
    except (IntegrityError, DataError):  # answered 409 and 422: the client's doing
        breaker.record(False)
        raise
    except Exception:  # answered 500 or 503
        breaker.record(True)
        raise
    except BaseException:  # cancelled: the client went away, nothing to count
        breaker.release()
        raise
    breaker.record(response.status in _FAILURES)
    return response


def _late_routes(kernel: Kernel, limits: RateLimits) -> Handler:
    """The catch-all at the end of every plugin prefix. aiohttp's router is
    frozen once the app starts, but a plugin can mount its routes later (a
    retry or a restart brings it up): such a request is resolved against the
    plugin's routes as currently mounted. Paths with a route of their own at
    build time never get here."""
    table = kernel.table
    routers: dict[str, tuple[int, web.UrlDispatcher]] = {}  # built at a table revision

    def router_of(plugin: str) -> web.UrlDispatcher:
        cached = routers.get(plugin)
        if cached is None or cached[0] != table.revision:
            router = web.UrlDispatcher()
            for method, path in (key for key, entry in table.mounted.items() if entry.plugin == plugin):
                router.add_route(method, path, _plugin_handler(kernel, limits, (method, path)))
            cached = routers[plugin] = (table.revision, router)
        return cached[1]

    async def handle(request: web.Request) -> web.StreamResponse:
        owner = table.owner_of(request.path)
        if owner is None:
            raise web.HTTPNotFound()
        match = await router_of(owner).resolve(request)
        match.add_app(request.app)
        # What aiohttp's own dispatch does: handlers and middlewares read the
        # route and its path parameters from here.
        request._match_info = match
        if isinstance(match, MatchInfoError):
            raise match.http_exception
        return await match.handler(request)

    return handle


@contextlib.asynccontextmanager
async def _in_background(loop: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `loop` as a task while the app serves; cancel it, and wait for it, at cleanup."""
    task = asyncio.create_task(loop)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _periodic_health(app: web.Application) -> AsyncIterator[None]:
    """Re-run health checks so states follow plugins that recover or decay."""
    kernel = app[KERNEL_KEY]

    async def loop() -> None:
        while True:
            await asyncio.sleep(kernel.settings.health_interval_s)
            await kernel.check_health()

    async with _in_background(loop()):
        yield


async def _following_flags(app: web.Application) -> AsyncIterator[None]:
    """Apply run-time flags changed through another host process sharing the
    database (`lukhas serve --workers N`, or hosts on several machines), off the
    request path: one bounded query of `lukhas_flags` per poll."""
    kernel = app[KERNEL_KEY]
    if kernel.flags.store is None:  # no storage: nothing to follow
        yield
        return
    async with _in_background(kernel.flags.follow_forever(kernel.settings.db_timeout_s)):
        yield
