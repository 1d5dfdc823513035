"""The request middleware: one metrics observation and one log event per request.

It runs inside the kernel's outermost middleware, so it sees every final
answer (errors already as problem+json) and the request id; it is bypassed
while the plugin is disabled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from lukhas_kernel import KernelView, request_id, request_user

from .request_metrics import HttpMetrics

__all__ = ["UNMATCHED", "request_middleware"]

#: The route label of a request no route matched (404, 405, a failed plugin's paths).
UNMATCHED = "unmatched"
#: The plugin label of requests the kernel answers itself.
KERNEL = "kernel"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_middleware(metrics: HttpMetrics, kernel: KernelView, log: Callable[..., Any] | None) -> Any:
    """An aiohttp middleware observing each request into `metrics` and `log`
    (a bound logger's method for the configured level, None for no logs)."""
    owners: dict[web.AbstractResource, tuple[str, str]] = {}  # resource -> (route, plugin)

    def observe(request: web.Request, status: int, seconds: float) -> None:
        resource = request.match_info.route.resource
        # A resource's labels never change; an unmatched path's owner comes from its prefix.
        if resource is None:
            route, plugin = UNMATCHED, kernel.owner_of(request.path) or KERNEL
        elif (found := owners.get(resource)) is not None:
            route, plugin = found
        else:
            route, plugin = owners[resource] = (resource.canonical,
                                                kernel.owner_of(resource.canonical) or KERNEL)
        method = request.method
        metrics.observe(route, method if method in _METHODS else "other", status, plugin, seconds)
        if log is None:
            return
        user = request_user(request)
        log("http.request", request_id=request_id(request), method=method, route=route,
            path=request.path, status=status, duration_ms=round(seconds * 1000, 3),
            user_id=user.id if user is not None else None, plugin=plugin)

    @web.middleware
    async def observed(request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        metrics.in_flight += 1
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            raise  # the client went away: nothing was answered
        except Exception as exc:
            # Raised by a middleware inside this one; the kernel answers it,
            # with the exception's status when it has one.
            status = getattr(exc, "status", None)
            observe(request, status if isinstance(status, int) else 500, time.perf_counter() - started)
            raise
        finally:
            metrics.in_flight -= 1
        observe(request, response.status, time.perf_counter() - started)
        return response

    return observed
