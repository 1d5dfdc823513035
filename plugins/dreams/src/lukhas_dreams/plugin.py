"""The dreams plugin's hook implementations."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lukhas_kernel import HealthCheck, PluginInfo, PluginSettings, Route, hookimpl
from prometheus_client.registry import Collector

from . import cluster, engine
from .engine import Engines, ParallelEngine, SequentialEngine
from .jobs import JobRunner
from .metrics import DreamMetrics
from .models import DreamsSettings
from .routes import FLAG, dream_routes
from .runtime import DreamsContext, DreamsRuntime
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
async def lukhas_setup(context: DreamsContext) -> None:
    settings = context.settings
    if context.db is None:
        raise RuntimeError("dreams needs the kernel's database")
    store = DreamStore(context.db)
    threads = ThreadPoolExecutor(settings.max_running, thread_name_prefix="dreams")
    # Looked up at call time, so a test can make the pool fail to start.
    parallel = ParallelEngine(
        (lambda: cluster.dask_executor(settings.dask_scheduler, settings.dask_timeout_s))
        if settings.dask_scheduler else (lambda: engine.process_pool(settings.workers)))
    engines = Engines(SequentialEngine(threads), parallel, context.set_degraded)
    metrics = DreamMetrics()
    context.runtime = DreamsRuntime(
        store=store, threads=threads, engines=engines, metrics=metrics,
        runner=JobRunner(store, engines, metrics, max_running=settings.max_running,
                         job_timeout_s=settings.job_timeout_s,
                         poll_interval_s=settings.poll_interval_s, lease_s=settings.lease_s))


@hookimpl
def lukhas_routes(context: DreamsContext) -> list[Route]:
    return dream_routes(context)


@hookimpl
async def lukhas_startup(context: DreamsContext) -> None:
    await context.runtime.runner.start()


@hookimpl
def lukhas_health_checks(context: DreamsContext) -> dict[str, HealthCheck]:
    settings = context.settings
    runtime = context.runtime
    engines, metrics = runtime.engines, runtime.metrics

    async def pool() -> None:
        # The pool is started only once parallel dreams are asked for, and
        # checked while it is wanted or owes a recovery.
        if context.flags[FLAG] or engines.parallel.started or engines.fallback_reason:
            await engines.check_pool()

    async def queue() -> None:
        await metrics.refresh(runtime.store)  # other processes queue jobs too
        depth = metrics.queue_depth
        if depth > settings.queue_alert:
            raise RuntimeError(f"{depth} dreams queued, over DREAMS_QUEUE_ALERT={settings.queue_alert}")

    return {"pool": pool, "queue": queue}


@hookimpl
def lukhas_metrics(context: DreamsContext) -> list[Collector]:
    return [context.runtime.metrics]


@hookimpl
async def lukhas_teardown(context: DreamsContext) -> None:
    runtime = context.runtime
    await runtime.runner.stop()
    # Both wait for branches already computing; run off the loop.
    await asyncio.to_thread(runtime.engines.parallel.shutdown)
    await asyncio.to_thread(runtime.threads.shutdown, True, cancel_futures=True)
