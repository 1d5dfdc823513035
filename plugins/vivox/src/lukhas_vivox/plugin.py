"""The vivox plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lukhas_kernel import HealthCheck, PluginInfo, PluginSettings, Route, hookimpl
from prometheus_client.registry import Collector

from .engine import DriftEngine
from .metrics import VivoxMetrics
from .models import DriftMetrics, VivoxSettings
from .routes import PREFIX, drift_routes
from .runtime import VivoxContext, VivoxRuntime
from .store import VivoxStore


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    # `drift_metrics` in user profiles, with its schema in /openapi.json.
    return PluginInfo(version="0.1.0", description="Behavioural drift metrics",
                      route_prefixes=(PREFIX,), profile_fields={"drift_metrics": DriftMetrics})


@hookimpl
def lukhas_settings_model() -> type[PluginSettings]:
    return VivoxSettings


@hookimpl
def lukhas_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
async def lukhas_setup(context: VivoxContext) -> None:
    if context.db is None:
        raise RuntimeError("vivox needs the kernel's database")
    settings = context.settings
    store, metrics = VivoxStore(context.db), VivoxMetrics()
    cache = context.cache("drift", DriftMetrics, ttl_s=settings.cache_ttl_s, size=settings.cache_size)
    context.runtime = VivoxRuntime(store, metrics, DriftEngine(store, metrics, cache, settings.cache_size))


@hookimpl
def lukhas_routes(context: VivoxContext) -> list[Route]:
    return drift_routes(context)


@hookimpl
def lukhas_health_checks(context: VivoxContext) -> dict[str, HealthCheck]:
    async def tables() -> None:
        await context.runtime.store.ping()

    return {"tables": tables}


@hookimpl
async def lukhas_profile_fields(context: VivoxContext, user: Mapping[str, Any],
                                options: Mapping[str, Any]) -> dict[str, DriftMetrics]:
    if not options.get("include_drift"):
        return {}  # not asked for: nothing computed
    return {"drift_metrics": await context.runtime.engine.current(user["user_id"])}


@hookimpl
def lukhas_metrics(context: VivoxContext) -> list[Collector]:
    return list(context.runtime.metrics.collectors)
