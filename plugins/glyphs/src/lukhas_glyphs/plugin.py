"""The glyphs plugin's hook implementations."""

from __future__ import annotations

from pathlib import Path

import click
from lukhas_kernel import HealthCheck, PluginInfo, PluginSettings, Route, hookimpl
from prometheus_client.registry import Collector

from .cli import glyphs
from .metrics import GlyphMetrics
from .models import GlyphsSettings
from .routes import glyph_routes
from .runtime import GlyphsContext, GlyphsRuntime
from .store import GlyphStore
from .tokens import Signer, configured_key, load_or_create_key


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="0.1.0", description="GLYPH bindings, signed tokens, audit trail")


@hookimpl
def lukhas_settings_model() -> type[PluginSettings]:
    return GlyphsSettings


@hookimpl
def lukhas_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
async def lukhas_setup(context: GlyphsContext) -> None:
    """Load (or generate) the signing key and open the store; a key too short fails the plugin."""
    settings = context.settings
    if context.db is None:
        raise RuntimeError("glyphs needs the kernel's database")
    current = (configured_key(settings.signing_key.get_secret_value()) if settings.signing_key
               else load_or_create_key(context.data_dir / "signing.key"))
    previous = [k.strip().encode() for k in settings.previous_keys.get_secret_value().split(",")
                if k.strip()]
    store = GlyphStore(context.db, settings.cache_ttl_s, audit_window_s=settings.audit_window_s)
    context.runtime = GlyphsRuntime(store=store, metrics=GlyphMetrics(), signer=Signer(current, previous))


@hookimpl
def lukhas_routes(context: GlyphsContext) -> list[Route]:
    return glyph_routes(context)


@hookimpl
def lukhas_health_checks(context: GlyphsContext) -> dict[str, HealthCheck]:
    async def tables() -> None:
        # Also sets the active-bindings gauge: at start-up, and as bindings expire.
        context.runtime.metrics.active = await context.runtime.store.active_count()
        # And seals closed windows of failed validations that no later failure sealed,
        # so each window's count reaches the chain within one health interval.
        await context.runtime.store.failures.seal()

    return {"tables": tables}


@hookimpl
def lukhas_metrics(context: GlyphsContext) -> list[Collector]:
    return [context.runtime.metrics]


@hookimpl
def lukhas_cli_commands() -> list[click.Command]:
    return [glyphs]
