"""The observability plugin's hook implementations."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import structlog
from aiohttp.typedefs import Middleware
from lukhas_kernel import PluginInfo, PluginSettings, Route, hookimpl
from prometheus_client import PlatformCollector, ProcessCollector, disable_created_metrics
from prometheus_client.registry import Collector

from .metrics import StartupGauge, multiprocess_collector
from .middleware import request_middleware
from .models import ObservabilitySettings
from .request_metrics import Totals, http_metrics
from .routes import observability_routes
from .runtime import ObservabilityContext, ObservabilityRuntime, kernel_of
from .status import TrafficWindow


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="0.1.0", description="Prometheus metrics, request logs and a status page",
                      route_prefixes=("/metrics", "/status"))


@hookimpl
def lukhas_settings_model() -> type[PluginSettings]:
    return ObservabilitySettings


@hookimpl
async def lukhas_setup(context: ObservabilityContext) -> None:
    # No `_created` gauge beside every counter and histogram child: the text
    # format can only carry them as extra series, doubling the exposition.
    disable_created_metrics()
    multiprocess = multiprocess_collector()
    http = http_metrics(multiprocess)
    # process_* describe one process: with several workers a scrape would show
    # whichever answered, and its CPU counter would seem to reset at random.
    process = [ProcessCollector(registry=None)] if multiprocess is None else []
    context.runtime = ObservabilityRuntime(
        http=http, window=TrafficWindow(context.settings.status_window_s), multiprocess=multiprocess,
        startup=StartupGauge() if multiprocess is not None else None,
        collectors=[http, *process, PlatformCollector(registry=None)])


@hookimpl
def lukhas_routes(context: ObservabilityContext) -> list[Route]:
    return observability_routes(context)


@hookimpl
def lukhas_middlewares(context: ObservabilityContext) -> list[Middleware]:
    settings = context.settings
    # Bound once: a lazy logger would rebuild itself on every request. Below
    # the host's log level, requests build no log fields at all.
    log = structlog.get_logger("lukhas.requests").bind()
    level = logging.getLevelNamesMapping()[settings.request_log_level.upper()]
    enabled = getattr(log, "is_enabled_for", lambda _: True)(level)
    return [request_middleware(context.runtime.http, kernel_of(context),
                               getattr(log, settings.request_log_level) if enabled else None)]


@hookimpl
async def lukhas_startup(context: ObservabilityContext) -> None:
    runtime, kernel = context.runtime, kernel_of(context)
    http, startup = runtime.http, runtime.startup

    async def read() -> dict[str, Totals]:
        if startup is not None:  # this worker's start-up times, for other workers' scrapes
            startup.record(kernel.plugins())
        # In a thread: with several workers, the totals are read from their files.
        return await asyncio.to_thread(http.totals)

    runtime.sampler = asyncio.create_task(runtime.window.run(read))


@hookimpl
async def lukhas_teardown(context: ObservabilityContext) -> None:
    sampler, context.runtime.sampler = context.runtime.sampler, None
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler


@hookimpl
def lukhas_metrics(context: ObservabilityContext) -> list[Collector]:
    return context.runtime.collectors
