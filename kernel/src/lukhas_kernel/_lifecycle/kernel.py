"""The kernel: a small coordinator over every plugin's lifecycle.

It decides which transitions run when (`machine.py` holds them): at load,
import every plugin concurrently, register each, then set plugins up in
dependency order; at start, run startup hooks in order, then health checks.
While the host serves, `recovery.py` brings plugins up again: on demand
(`restart`), its dependents with it, and by retrying failed stages.

Invariants:
- every discovered plugin has exactly one record and one lifecycle, and after
  `start()` its state is never PENDING (except while an attempt at it runs);
- a plugin not serving has its hook implementations unregistered, except
  that teardown stays owed to any plugin whose setup returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import structlog

from .._core.settings import KernelSettings, config_table
from .._flags.parsing import flag_name, load_flags
from .._flags.runtime import RuntimeFlags
from .._flags.store import FlagStore
from .._plugin.context import PluginContext
from .._plugin.states import PluginState, StartupReport
from .._services.bundle import Services
from .._services.starts import StartLedger
from .breaker import Breaker, BreakerPolicy, BreakerState
from .calls import PluginCalls
from .chaos import ChaosPlan
from .checks import warn_unknown_keys
from .discovery import discover
from .dispatch import Dispatcher, HookCalls
from .facts import KernelFacts
from .health import check_health
from .hooks import PluginHooks
from .machine import PLUGIN_API_VERSION, KernelParts, PluginLifecycle
from .ordering import registration_order, set_up_in_order, start_in_order
from .quarantine import StartCount
from .records import PluginRecord
from .recovery import Recovery
from .retries import RetryPolicy
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
        hosting: bool = False,
    ) -> None:
        self.settings = settings
        self.services = services
        self.installed = installed
        self.chaos = chaos if chaos is not None else ChaosPlan()
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
        # Only a serving host retries, keeps breakers and counts its starts
        # (a CLI command that loads plugins is not a start of the host).
        self.hosting = hosting
        self.starts = StartCount(StartLedger(services.db), settings.quarantine_after) \
            if hosting and services else None
        if self.starts is not None:
            self.parts.mark = self.starts.mark
        self.recovery = Recovery(self.plugins, RetryPolicy.of(settings) if hosting else None,
                                 self.starts, self._registered)

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
        warn_unknown_keys("kernel", KernelSettings, config_table(self.parts.config, "kernel"))
        found = discover(self.settings.extras, installed=self.installed)
        self.plugins.clear()
        self.plugins.update((record.name, PluginLifecycle(record, self.parts)) for record in found)
        await self.flags.load_persisted()
        if self.starts is not None:
            await self.starts.begin()
        self._decide_enabled(found)
        if self.hosting and self.settings.breaker_enabled:
            policy = BreakerPolicy.of(self.settings)
            for plugin in self.plugins.values():
                plugin.breaker = Breaker(plugin.name, policy,
                                         on_change=partial(self._breaker_changed, plugin))
        pending = [p for p in self.plugins.values() if p.record.state is PluginState.PENDING]
        await asyncio.gather(*(p.step(p.import_module) for p in pending))
        imported = [p for p in pending if p.record.state is PluginState.PENDING]
        for plugin in imported:
            plugin.step_sync(plugin.read_info)
        for plugin in registration_order(imported):
            if plugin.record.state is PluginState.PENDING and await plugin.step(plugin.register):
                self._registered(plugin)
        if set_up:
            await set_up_in_order(self.plugins, self._pending())

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
            elif self.starts is not None and record.name in self.starts.quarantined:
                record.update(state=PluginState.QUARANTINED,
                              reason=self.starts.quarantined[record.name].summary)

    def _registered(self, plugin: PluginLifecycle) -> None:
        """What follows a plugin's registration: its flag switch, its `context.hooks`."""
        self.flags.add_switch(flag_name(plugin.name),
                              lambda: plugin.record.state is not PluginState.DISABLED,
                              plugin.set_enabled)
        if plugin.context is not None:
            plugin.context.hooks = HookCalls(plugin.name, self.dispatch)

    def _pending(self) -> list[str]:
        return [n for n, p in self.plugins.items()
                if p.context is not None and p.record.state is PluginState.PENDING]

    # -- start and stop: while the app starts and shuts down ----------------

    async def start(self) -> StartupReport:
        """Run startup hooks, then health checks; log the start-up result.
        A hosting kernel then schedules retries and counts the start."""
        await start_in_order(self.plugins, list(self.plugins))
        await self.check_health()
        await self.recovery.settle(list(self.plugins))
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

    # -- while serving: restarts, retries, quarantine (recovery.py) ---------

    async def restart(self, name: str) -> PluginRecord:
        """Bring `name` and its dependents up again now (see `Recovery.restart`)."""
        return await self.recovery.restart(name)

    async def release(self, name: str) -> bool:
        """Clear `name`'s quarantine; False if it was not quarantined."""
        return await self.recovery.release(name)

    def retrying_detail(self, record: PluginRecord) -> tuple[str, int]:
        """The 503 detail of a retrying plugin's routes, and its Retry-After."""
        return self.recovery.retrying_detail(record)

    def _breaker_changed(self, plugin: PluginLifecycle, breaker: Breaker, previous: BreakerState) -> None:
        plugin.record.update(breaker=breaker.state.value, breaker_opened=breaker.opened_total)
        if breaker.state is BreakerState.OPEN:
            log.warning("plugin.breaker_opened", plugin=plugin.name, reason=breaker.reason)
        elif breaker.state is BreakerState.CLOSED:
            log.info("plugin.breaker_closed", plugin=plugin.name)
        plugin.apply_degraded()

    async def stop(self) -> None:
        """Cancel retries; tear plugins down in reverse set-up order, each within the timeout."""
        await self.recovery.close()
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
