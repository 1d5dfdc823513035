"""The observability plugin's hook implementations."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import structlog
from aiohttp import web
from lukhas_kernel import PluginContext, PluginInfo, PluginSettings, Route, hookimpl
from prometheus_client import PlatformCollector, ProcessCollector, disable_created_metrics
from prometheus_client.registry import Collector

from .metrics import HttpMetrics, StartupGauge, Totals, multiprocess_collector
from .middleware import request_middleware
from .models import ObservabilitySettings
from .routes import observability_routes
from .status import TrafficWindow


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="0.1.0", description="Prometheus metrics, request logs and a status page",
                      route_prefixes=("/metrics", "/status"))


@hookimpl
def lukhas_settings_model() -> type[PluginSettings]:
    return ObservabilitySettings


@hookimpl
async def lukhas_setup(context: PluginContext) -> None:
    settings: ObservabilitySettings = context.settings  # type: ignore[assignment]
    # No `_created` gauge beside every counter and histogram child: the text
    # format can only carry them as extra series, doubling the exposition.
    disable_created_metrics()
    multiprocess = multiprocess_collector()
    http = HttpMetrics(multiprocess)
    # process_* describe one process: with several workers a scrape would show
    # whichever answered, and its CPU counter would seem to reset at random.
    process = [ProcessCollector(registry=None)] if multiprocess is None else []
    context.state.update(
        http=http, window=TrafficWindow(settings.status_window_s), multiprocess=multiprocess,
        startup=StartupGauge() if multiprocess is not None else None,
        collectors=[http, *process, PlatformCollector(registry=None)])


@hookimpl
def lukhas_routes(context: PluginContext) -> list[Route]:
    return observability_routes(context)


@hookimpl
def lukhas_middlewares(context: PluginContext) -> list[web.Middleware]:
    settings: ObservabilitySettings = context.settings  # type: ignore[assignment]
    # Bound once: a lazy logger would rebuild itself on every request. Below
    # the host's log level, requests build no log fields at all.
    log = structlog.get_logger("lukhas.requests").bind()
    level = logging.getLevelNamesMapping()[settings.request_log_level.upper()]
    enabled = getattr(log, "is_enabled_for", lambda _: True)(level)
    return [request_middleware(context.state["http"], context.kernel,  # type: ignore[arg-type]
                               getattr(log, settings.request_log_level) if enabled else None)]


@hookimpl
async def lukhas_startup(context: PluginContext) -> None:
    window: TrafficWindow = context.state["window"]
    http: HttpMetrics = context.state["http"]
    startup: StartupGauge | None = context.state["startup"]
    kernel = context.kernel

    async def read() -> dict[str, Totals]:
        if startup is not None:  # this worker's start-up times, for other workers' scrapes
            startup.record(kernel.plugins())
        # In a thread: with several workers, the totals are read from their files.
        return await asyncio.to_thread(http.totals)

    context.state["sampler"] = asyncio.create_task(window.run(read))


@hookimpl
async def lukhas_teardown(context: PluginContext) -> None:
    sampler = context.state.pop("sampler", None)
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler


@hookimpl
def lukhas_metrics(context: PluginContext) -> list[Collector]:
    return context.state["collectors"]
