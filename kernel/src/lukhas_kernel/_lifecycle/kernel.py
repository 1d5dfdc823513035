"""The kernel: a small coordinator over every plugin's lifecycle.

It decides which transitions run when (`machine.py` holds them): at load,
import every plugin concurrently, register each, then set plugins up in
dependency order; at start, run startup hooks in order, then health checks.
Any plugin can be brought up again alone (`restart`), its dependents with it.

Invariants:
- every discovered plugin has exactly one record and one lifecycle, and after
  `start()` its state is never PENDING (except while it is being restarted);
- a plugin not serving has its hook implementations unregistered, except
  that teardown stays owed to any plugin whose setup returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from .._core.settings import KernelSettings
from .._flags.parsing import flag_name, load_flags
from .._flags.runtime import RuntimeFlags
from .._flags.store import FlagStore
from .._plugin.context import PluginContext
from .._plugin.states import PluginState, Stage, StartupReport
from .._services.bundle import Services
from .calls import PluginCalls
from .chaos import ChaosPlan
from .discovery import discover
from .dispatch import Dispatcher
from .facts import KernelFacts
from .health import check_health
from .hooks import PluginHooks
from .machine import PLUGIN_API_VERSION, KernelParts, PluginLifecycle
from .ordering import dependents, in_dependency_order
from .records import Phase, PluginRecord
from .routes import KERNEL_PREFIXES, RouteTable

__all__ = ["KERNEL_PREFIXES", "PLUGIN_API_VERSION", "Kernel"]

log = structlog.get_logger("lukhas.kernel")


class Kernel:
    """Loads plugins and keeps their records; the host serves what they mounted."""

    def __init__(
        self,
        settings: KernelSettings,
        config: Mapping[str, Any] | None = None,
        *,
        services: Services | None,
        env_file: str | None = ".env",
        installed: bool = True,
        chaos: ChaosPlan | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.installed = installed
        self.chaos = chaos or ChaosPlan()
        self.ready = False
        self.plugins: dict[str, PluginLifecycle] = {}
        self.table = RouteTable()
        self.hooks = PluginHooks()
        self.view = KernelFacts(lambda: self.records, self.table, lambda: self.ready,
                                lambda hook: self.dispatch.declarations(hook))
        self.parts = KernelParts(
            settings=settings, config=config or {}, env_file=env_file, services=services,
            flags=RuntimeFlags(FlagStore(services.db) if services else None, env_file),
            hooks=self.hooks, calls=PluginCalls(settings.plugin_timeout_s, self.chaos),
            table=self.table, view=self.view)
        self.dispatch = Dispatcher(self.parts, self.plugins)
        self._start_paused: list[str] = []
        self._restarting: set[str] = set()

    # -- queries ---------------------------------------------------------

    @property
    def flags(self) -> RuntimeFlags:
        return self.parts.flags

    @property
    def records(self) -> dict[str, PluginRecord]:
        return {name: plugin.record for name, plugin in self.plugins.items()}

    @property
    def contexts(self) -> dict[str, PluginContext[Any, Any]]:
        """The context of every plugin that was registered."""
        return {n: p.context for n, p in self.plugins.items() if p.context is not None}

    def report(self) -> StartupReport:
        return self.view.report()

    def missing_required(self) -> list[str]:
        """Plugins named in LUKHAS_REQUIRED_PLUGINS that are not active or degraded."""
        return [name for name in self.settings.required
                if name not in self.plugins or not self.plugins[name].record.state.serving]

    def owner_of(self, path: str) -> PluginRecord | None:
        """The plugin whose prefix holds `path` (prefixes never overlap)."""
        owner = self.table.owner_of(path)
        return self.plugins[owner].record if owner in self.plugins else None

    def implementation(self, hook: str, plugin: str) -> Callable[..., Any] | None:
        return self.hooks.implementation(hook, plugin)

    def declarations(self, hook: str) -> dict[str, list[Any]]:
        return self.dispatch.declarations(hook)

    async def call_each(self, hook: str, **kwargs: Any) -> dict[str, Any]:
        return await self.dispatch.call_each(hook, **kwargs)

    # -- load: everything before the app exists ----------------------------

    async def load(self, *, set_up: bool = True) -> None:
        """Discover, import, register, then (if `set_up`) set up and mount routes.

        Raises SettingsError only for the kernel's own settings (flags); any
        plugin's own problem is recorded on its record instead.
        """
        found = discover(self.settings.extras, installed=self.installed)
        self.plugins.clear()
        self.plugins.update((record.name, PluginLifecycle(record, self.parts)) for record in found)
        await self.flags.load_persisted()
        self._decide_enabled(found)
        pending = [p for p in self.plugins.values() if p.record.state is PluginState.PENDING]
        await asyncio.gather(*(p.step(p.import_module) for p in pending))
        for plugin in pending:
            if plugin.record.state is PluginState.PENDING and await plugin.step(plugin.register):
                self._add_switch(plugin)
        if set_up:
            await self._set_up(self._pending())

    def _decide_enabled(self, found: list[PluginRecord]) -> None:
        """Claim each plugin's known prefixes and apply its enabled flag."""
        pending = [r.name for r in found if r.state is PluginState.PENDING]
        configured = load_flags(pending, self.parts.config, self.parts.env_file)
        for record in found:
            plugin = self.plugins[record.name]
            # Known before import (the default and the metadata's prefixes), so a
            # disabled plugin's routes answer 403 rather than 404.
            record.update(prefixes=[f"/api/v1/{record.name}", *record.prefixes])
            if record.state is not PluginState.FAILED:
                for prefix in record.prefixes:
                    if not plugin.step_sync(plugin.claim, prefix):
                        break  # the clash failed the plugin
            if record.state is not PluginState.PENDING:
                continue
            persisted = self.flags.persisted(flag_name(record.name))
            if persisted is False:
                # Disabled through the API: loaded, then paused, so that the
                # API can enable it again without a restart.
                self._start_paused.append(record.name)
            elif not (configured[record.name] if persisted is None else persisted):
                record.update(state=PluginState.DISABLED, reason=f"{flag_name(record.name)} is false")

    def _add_switch(self, plugin: PluginLifecycle) -> None:
        self.flags.add_switch(flag_name(plugin.name),
                              lambda: plugin.record.state is not PluginState.DISABLED,
                              plugin.set_enabled)

    def _pending(self) -> list[str]:
        return [n for n, p in self.plugins.items()
                if p.context is not None and p.record.state is PluginState.PENDING]

    async def _set_up(self, names: list[str]) -> None:
        """Migrate, set up and mount `names` (registered, pending) in dependency order."""
        async def up(plugin: PluginLifecycle) -> None:
            if plugin.record.phase < Phase.REGISTERED and not await plugin.step(plugin.register):
                return
            for transition in (plugin.migrate, plugin.set_up):
                if not await plugin.step(transition):
                    return
            await plugin.step(plugin.mount_routes)

        await in_dependency_order(self.plugins, names, Stage.SETUP, up)

    async def _start(self, names: list[str]) -> None:
        serving = [n for n in names if self.plugins[n].record.state.serving]

        async def start(plugin: PluginLifecycle) -> None:
            await plugin.step(plugin.start)

        await in_dependency_order(self.plugins, serving, Stage.STARTUP, start)

    # -- start and stop: while the app starts and shuts down ----------------

    async def start(self) -> StartupReport:
        """Run startup hooks, then health checks; log the start-up result."""
        await self._start(list(self.plugins))
        await self.check_health()
        for name in self._start_paused:
            self.plugins[name].set_enabled(False)
        self.ready = True
        for name in self.settings.required:
            if name not in self.plugins:
                log.warning("plugin.required_missing", plugin=name,
                            reason="named in LUKHAS_REQUIRED_PLUGINS but not installed")
        report = self.report()
        log.info("lukhas.startup", **report.model_dump())
        return report

    async def check_health(self) -> None:
        """Run every serving plugin's health checks; active ↔ degraded only."""
        await asyncio.gather(*(check_health(p) for p in self.plugins.values() if p.record.state.serving))

    async def restart(self, name: str) -> PluginRecord:
        """Tear `name` down (its dependents first), then bring it and them up
        again: migrate → setup → routes → startup → health, while the host serves.

        Raises KeyError for a plugin not discovered, ValueError for one that
        cannot be brought up again here (disabled, failed at import or
        register, or already being restarted).
        """
        plugin = self.plugins[name]
        if name in self._restarting or plugin.record.state is PluginState.DISABLED \
                or plugin.context is None:
            raise ValueError(f"{name} cannot be restarted while {plugin.record.state.value}")
        group = [name, *(d for d in dependents(name, self.plugins)
                         if self.plugins[d].context is not None
                         and self.plugins[d].record.state is not PluginState.DISABLED)]
        self._restarting.update(group)
        try:
            for member in reversed(group):
                await self.plugins[member].tear_down()
            for member in group:
                self.plugins[member].reset()
            await self._set_up(group)
            await self._start(group)
            await asyncio.gather(*(check_health(self.plugins[m]) for m in group
                                   if self.plugins[m].record.state.serving))
        finally:
            self._restarting.difference_update(group)
        return plugin.record

    async def stop(self) -> None:
        """Tear plugins down in reverse set-up order, each within the timeout."""
        for name in reversed(self.parts.set_up_order):
            await self.plugins[name].tear_down()
        self.parts.set_up_order.clear()
        self.ready = False

    async def close(self) -> None:
        """Stop the plugins, then release the kernel's storage."""
        await self.stop()
        if self.services is not None:
            await self.services.close()

    # -- run-time flags ----------------------------------------------------

    def flag_values(self) -> dict[str, bool]:
        """Every run-time flag: loaded plugins' `<NAME>_ENABLED`, then declared ones."""
        return self.flags.values()

    async def update_flags(self, changes: Mapping[str, bool], actor: str) -> dict[str, bool]:
        """Persist and apply `changes` (names already validated); return every flag."""
        return await self.flags.update(changes, actor)

    async def follow_flags(self) -> None:
        """Apply the flags another host process changed since the last call."""
        await self.flags.follow()
