"""The dreams plugin's hook implementations."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lukhas_kernel import HealthCheck, PluginContext, PluginInfo, PluginSettings, Route, hookimpl
from prometheus_client.registry import Collector

from . import cluster, engine
from .engine import Engines, ParallelEngine, SequentialEngine
from .jobs import JobRunner
from .metrics import DreamMetrics
from .models import DreamsSettings
from .routes import FLAG, dream_routes
from .store import DreamStore


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="0.1.0", description="Dream jobs on sequential and parallel engines",
                      flags={FLAG: False})


@hookimpl
def lukhas_settings_model() -> type[PluginSettings]:
    return DreamsSettings


@hookimpl
def lukhas_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
async def lukhas_setup(context: PluginContext) -> None:
    settings: DreamsSettings = context.settings  # type: ignore[assignment]
    store = DreamStore(context.db)
    threads = ThreadPoolExecutor(settings.max_running, thread_name_prefix="dreams")
    # Looked up at call time, so a test can make the pool fail to start.
    parallel = ParallelEngine(
        (lambda: cluster.dask_executor(settings.dask_scheduler, settings.dask_timeout_s))
        if settings.dask_scheduler else (lambda: engine.process_pool(settings.workers)))
    engines = Engines(SequentialEngine(threads), parallel, context.set_degraded)
    metrics = DreamMetrics()
    context.state.update(
        store=store, threads=threads, engines=engines, metrics=metrics,
        runner=JobRunner(store, engines, metrics, max_running=settings.max_running,
                         job_timeout_s=settings.job_timeout_s,
                         poll_interval_s=settings.poll_interval_s, lease_s=settings.lease_s))


@hookimpl
def lukhas_routes(context: PluginContext) -> list[Route]:
    return dream_routes(context)


@hookimpl
async def lukhas_startup(context: PluginContext) -> None:
    await context.state["runner"].start()


@hookimpl
def lukhas_health_checks(context: PluginContext) -> dict[str, HealthCheck]:
    settings: DreamsSettings = context.settings  # type: ignore[assignment]
    engines: Engines = context.state["engines"]
    metrics: DreamMetrics = context.state["metrics"]

    async def pool() -> None:
        # The pool is started only once parallel dreams are asked for, and
        # checked while it is wanted or owes a recovery.
        if context.flags[FLAG] or engines.parallel.started or engines.fallback_reason:
            await engines.check_pool()

    async def queue() -> None:
        await metrics.refresh(context.state["store"])  # other processes queue jobs too
        depth = metrics.queue_depth
        if depth > settings.queue_alert:
            raise RuntimeError(f"{depth} dreams queued, over DREAMS_QUEUE_ALERT={settings.queue_alert}")

    return {"pool": pool, "queue": queue}


@hookimpl
def lukhas_metrics(context: PluginContext) -> list[Collector]:
    return [context.state["metrics"]]


@hookimpl
async def lukhas_teardown(context: PluginContext) -> None:
    await context.state["runner"].stop()
    engines: Engines = context.state["engines"]
    threads: ThreadPoolExecutor = context.state["threads"]
    # Both wait for branches already computing; run off the loop.
    await asyncio.to_thread(engines.parallel.shutdown)
    await asyncio.to_thread(threads.shutdown, True, cancel_futures=True)
