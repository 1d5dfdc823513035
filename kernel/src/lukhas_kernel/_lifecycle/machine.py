"""One plugin's lifecycle as a state machine.

    discovered → imported → registered → migrated → set up → routed → started
                                  ↑__________ teardown __________________|

Each transition is one method, isolated and timed (`PluginCalls`), and
moves the record's `phase` one step; a failed transition drops the plugin
(its record says the stage and reason, its hooks are unregistered). Any
plugin can be torn down to `registered` and brought up again alone while the
host serves; the kernel walks its dependents with it.

Invariant: teardown is owed exactly while `teardown_owed` (setup returned and
teardown has not run), even for a plugin dropped after setup.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from .._core.isolation import StageError, describe
from .._core.settings import KernelSettings, PluginSettings
from .._flags.parsing import flag_name, parse_flags
from .._flags.runtime import RuntimeFlags
from .._plugin.context import PluginContext, PluginInfo
from .._plugin.route import Route
from .._plugin.states import PluginState, Stage
from .._plugin.view import KernelView
from .._services.bundle import Services
from .breaker import Breaker
from .calls import PluginCalls
from .checks import (
    PLUGIN_API_VERSION,
    Dropped,
    check_hooks,
    migrations_dir,
    plugin_info,
    plugin_settings,
    publish_hookspecs,
)
from .discovery import valid_prefix
from .hooks import PluginHooks
from .records import Phase, PluginRecord
from .routes import RoutesRefused, RouteTable

__all__ = ["PLUGIN_API_VERSION", "Dropped", "KernelParts", "PluginLifecycle"]

log = structlog.get_logger("lukhas.kernel")
AnyContext = PluginContext[Any, Any]


async def _no_mark(plugin: str, stage: Stage) -> None:
    """Where nothing is recorded (no storage, or not a serving host)."""


@dataclass
class KernelParts:
    """What every plugin's lifecycle shares: the kernel's own objects."""

    settings: KernelSettings
    config: Mapping[str, Any]
    env_file: str | None
    services: Services | None
    flags: RuntimeFlags
    hooks: PluginHooks
    calls: PluginCalls
    table: RouteTable
    view: KernelView
    #: Records durably that `plugin`'s `stage` is under way, before it runs
    #: (crash-loop quarantine: a process that dies during it is seen later).
    mark: Callable[[str, Stage], Awaitable[None]] = field(default=_no_mark)
    #: Plugins in the order their setup last returned (teardown runs in reverse).
    set_up_order: list[str] = field(default_factory=list)


class PluginLifecycle:
    """The transitions of one plugin; the kernel decides when each runs."""

    def __init__(self, record: PluginRecord, parts: KernelParts) -> None:
        self.record = record
        self.parts = parts
        self.context: AnyContext | None = None
        #: What `lukhas_plugin_info` declared, read first at registration.
        self.info: PluginInfo | None = None
        #: The directory `lukhas_migrations` named, checked at registration.
        self.migrations: Path | None = None
        self.teardown_owed = False
        self._teardown: Callable[..., Any] | None = None
        #: Its routes' circuit breaker, set by the kernel when breakers are on.
        self.breaker: Breaker | None = None

    @property
    def name(self) -> str:
        return self.record.name

    def drop(self, stage: Stage, reason: str, state: PluginState = PluginState.FAILED,
             *, retriable: bool = False, cause: BaseException | None = None) -> None:
        """Record the failure and unregister the plugin's hooks (teardown stays owed).

        The one place a failure is logged, once per failed attempt: with the
        traceback of `cause` (the exception behind it) when there is one.
        """
        self.record.fail(stage, reason, state, error=cause)
        self.record.update(retriable=retriable)
        self.parts.hooks.unregister(self.name)
        if self.record.phase > Phase.IMPORTED:
            self.record.update(phase=Phase.IMPORTED)
        exc_info = {"exc_info": cause} if cause is not None else {}
        log.warning("plugin.failed" if state is PluginState.FAILED else "plugin.skipped",
                    plugin=self.name, stage=stage.value, reason=self.record.reason, **exc_info)

    async def step(self, transition: Callable[[], Any]) -> bool:
        """Run one transition (sync or async); on Dropped, drop. True if it went through."""
        try:
            result = transition()
            if inspect.isawaitable(result):
                await result
        except Dropped as dropped:
            self._drop(dropped)
            return False
        return True

    def step_sync(self, transition: Callable[..., None], *args: Any) -> bool:
        """`step` for a synchronous transition, outside the event loop's time."""
        try:
            transition(*args)
        except Dropped as dropped:
            self._drop(dropped)
            return False
        return True

    def _drop(self, dropped: Dropped) -> None:
        self.drop(dropped.stage, dropped.reason, dropped.state, retriable=dropped.retriable,
                  cause=dropped.cause)

    # -- up ------------------------------------------------------------------

    async def import_module(self) -> None:
        await self.parts.mark(self.name, Stage.IMPORT)
        try:
            module, ms = await self.parts.calls.import_module(self.name, self.record.module)
        except StageError as exc:
            raise Dropped(Stage.IMPORT, str(exc), cause=exc.cause) from None
        self.record.update(module_object=module, phase=Phase.IMPORTED)
        self.record.timed(Stage.IMPORT, ms)

    def read_info(self) -> None:
        """Read PluginInfo, before registering: plugins register in the order
        of their `requires`, so that hooks a plugin publishes exist before the
        plugins implementing them register."""
        assert self.record.module_object is not None, "reading info follows import"
        if self.info is None:
            info = self.info = plugin_info(self.record.module_object, self.parts.hooks)
            self.record.update(version=self.record.version or info.version,
                               requires=list(info.requires))

    def register(self) -> None:
        """Check and register the hooks, claim prefixes, check the migrations
        directory, load settings, publish hook specifications, make the context."""
        module, hooks = self.record.module_object, self.parts.hooks
        assert module is not None, "register follows import"
        self.read_info()
        info = self.info
        assert info is not None
        check_hooks(self.name, module, hooks, info.requires, self._state_of)
        try:
            hooks.register(self.name, module)
        except Exception as exc:  # pluggy's own validation, or the module's code
            raise Dropped(Stage.REGISTER, describe(exc), cause=exc) from None
        for prefix in info.route_prefixes:
            if not valid_prefix(prefix):
                raise Dropped(Stage.REGISTER, f"invalid route prefix {prefix!r}")
            if prefix not in self.record.prefixes:  # else also in the distribution's metadata
                self.claim(prefix)
                self.record.update(prefixes=[*self.record.prefixes, prefix])
        self.migrations = migrations_dir(self.name, hooks)
        settings = plugin_settings(self.name, hooks, self.parts.config, self.parts.env_file)
        declared = parse_flags(info.flags, {}, self.parts.env_file)  # SettingsError stops start-up
        self.parts.flags.declare(declared)
        publish_hookspecs(self.name, hooks)
        self.context = self._context(settings)
        self.record.update(phase=Phase.REGISTERED)

    def _state_of(self, other: str) -> PluginState | None:
        return next((view.state for view in self.parts.view.plugins() if view.name == other), None)

    def claim(self, prefix: str) -> None:
        try:
            self.parts.table.claim(self.name, prefix)
        except RoutesRefused as exc:
            raise Dropped(Stage.ROUTES, str(exc)) from None

    def _context(self, settings: PluginSettings | None) -> AnyContext:
        parts, services = self.parts, self.parts.services
        context: AnyContext = PluginContext.create(
            self.name, settings, parts.settings, services.db if services else None,
            parts.flags.declared, services.accounts.get_user if services else None,
            parts.view, services.cache if services else None)
        context.on_degraded_change(self.apply_degraded)
        return context

    async def migrate(self) -> None:
        """Bring the plugin's tables to head (or check them)."""
        versions = self.migrations
        if versions is not None:
            await self.parts.mark(self.name, Stage.MIGRATE)  # a durable write: only for work
            services = self.parts.services
            assert services is not None, "setting plugins up needs storage"
            upgrade = self.parts.settings.auto_migrate
            try:
                _, ms = await self.parts.calls.run(
                    self.name, None, lambda: services.db.migrate(self.name, versions, upgrade=upgrade))
            except StageError as exc:
                raise Dropped(Stage.MIGRATE, str(exc), retriable=True, cause=exc.cause) from None
            self.record.timed(Stage.MIGRATE, ms)
        self.record.update(phase=Phase.MIGRATED)

    async def set_up(self) -> None:
        await self._call(Stage.SETUP, "lukhas_setup")
        self._teardown = self.parts.hooks.implementation("lukhas_teardown", self.name)
        self.teardown_owed = True
        order = self.parts.set_up_order
        order[:] = [*(name for name in order if name != self.name), self.name]
        self.record.update(phase=Phase.SET_UP)

    def mount_routes(self) -> None:
        """Collect routes and middlewares and put them in force. Until its startup
        stage passes the plugin stays pending, and its routes answer 503."""
        hooks, context = self.parts.hooks, self.context
        try:
            routes = hooks.listed("lukhas_routes", self.name, Route, context=context)
            middlewares = hooks.listed("lukhas_middlewares", self.name, object, context=context)
            self.parts.table.mount(self.name, self.record.prefixes, routes, middlewares)
        except (TypeError, StageError, RoutesRefused) as exc:
            cause = exc.cause if isinstance(exc, StageError) else None  # else the kernel's check
            raise Dropped(Stage.ROUTES, str(exc), cause=cause) from None
        self.record.update(routes=[route.operation for route in routes], phase=Phase.ROUTED)

    async def start(self) -> None:
        """Run the startup stage: an attempt that gets through it brings the plugin up."""
        await self._call(Stage.STARTUP, "lukhas_startup")
        if self.record.paused is not None:  # disabled at run time meanwhile: up once enabled
            self.record.update(paused=(PluginState.ACTIVE, None, None), phase=Phase.STARTED)
            return
        self.record.update(state=PluginState.ACTIVE, stage=None, reason=None, phase=Phase.STARTED)
        self.apply_degraded()  # a fallback its setup or startup took

    async def _call(self, stage: Stage, hook: str) -> None:
        await self.parts.mark(self.name, stage)
        function = self.parts.hooks.implementation(hook, self.name)
        context = self.context
        try:
            _, ms = await self.parts.calls.run(
                self.name, stage, (lambda: function(context=context)) if function else (lambda: None))
        except StageError as exc:
            raise Dropped(stage, str(exc), retriable=True, cause=exc.cause) from None
        self.record.timed(stage, ms)

    # -- down ----------------------------------------------------------------

    async def tear_down(self) -> None:
        """Run the teardown owed, if any, within the timeout; back to registered.

        A teardown that fails is logged: the plugin is down either way.
        """
        if self.teardown_owed and self._teardown is not None:
            function, context = self._teardown, self.context
            try:
                await self.parts.calls.run(self.name, None, lambda: function(context=context))
            except StageError as exc:
                log.warning("plugin.teardown_failed", plugin=self.name, reason=str(exc))
        self.teardown_owed = False
        if self.context is not None:
            self.context.clear_runtime()
        if self.record.phase > Phase.REGISTERED:
            self.record.update(phase=Phase.REGISTERED)

    def reset(self) -> None:
        """Forget the last outcome before bringing the plugin up again."""
        self.record.update(state=PluginState.PENDING, stage=None, reason=None,
                           health_problem=None, health_checks={})

    # -- health --------------------------------------------------------------

    def apply_degraded(self) -> None:
        """Serving plugins are degraded while a health check or a fallback says so."""
        record = self.record
        if not record.state.serving:
            return
        fallback = self.context.degraded_reason if self.context else None
        breaker = self.breaker.reason if self.breaker else None
        reasons = [breaker or "",
                   f"health: {record.health_problem}" if record.health_problem else "",
                   f"fallback: {fallback}" if fallback else ""]
        reason = "; ".join(r for r in reasons if r)
        record.update(state=PluginState.DEGRADED if reason else PluginState.ACTIVE,
                      stage=Stage.HEALTH if record.health_problem else Stage.REQUEST if breaker else None,
                      reason=reason or None)

    # -- run time ------------------------------------------------------------

    def set_enabled(self, enabled: bool) -> None:
        """Disable the plugin at run time (its routes answer 403), or undo it."""
        record = self.record
        if not enabled and record.paused is None:
            record.update(paused=(record.state, record.stage, record.reason),
                          state=PluginState.DISABLED, stage=None,
                          reason=f"{flag_name(self.name)} set to false at run time")
        elif enabled and record.paused is not None:
            state, stage, reason = record.paused
            record.update(state=state, stage=stage, reason=reason, paused=None)
