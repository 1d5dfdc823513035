"""The plugin lifecycle: discovery → import → register → setup → routes →
startup → health, each plugin isolated, in dependency order.

Invariants:
- every discovered plugin has exactly one record, and after `start()` its
  state is never PENDING;
- a plugin not serving has its hook implementations unregistered, except
  that teardown stays owed to any plugin whose setup returned;
- prefixes are claimed by at most one owner; the kernel's come first.
"""

from __future__ import annotations

import asyncio
import graphlib
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pluggy
import structlog
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from .. import hookspecs
from .._core.isolation import StageError, describe, import_in_thread, run_isolated
from .._core.settings import (
    KernelSettings,
    PluginSettings,
    flag_name,
    load_flags,
    load_settings,
    parse_flags,
)
from .._flags.store import RuntimeFlags
from .._plugin.context import PluginContext, PluginInfo
from .._plugin.route import Route
from .._plugin.view import KernelView
from .._services.bundle import Services
from .._services.ratelimit import parse_limit
from .chaos import ChaosPlan
from .discovery import discover, valid_prefix
from .records import CheckResult, PluginRecord, PluginState, Stage, StartupReport

__all__ = ["Kernel", "PLUGIN_API_VERSION", "KERNEL_PREFIXES"]

PLUGIN_API_VERSION = "1.0"
#: Paths the kernel serves itself; no plugin may claim them.
KERNEL_PREFIXES = ("/healthz", "/readyz", "/openapi.json", "/docs", "/api/v1/plugins",
                   "/api/v1/users", "/api/v1/admin")

log = structlog.get_logger("lukhas.kernel")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


class Kernel:
    """Loads plugins and keeps their records; the host serves what it mounted."""

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
        self.flags = RuntimeFlags(services.flags if services else None, env_file)
        self.config = config or {}
        self.env_file = env_file
        self.installed = installed
        self.chaos = chaos or ChaosPlan()
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.contexts: dict[str, PluginContext] = {}
        self.routes: list[tuple[str, Route]] = []
        self.middlewares: list[tuple[str, Any]] = []
        self.ready = False
        self._claims: dict[str, str] = {prefix: "the kernel" for prefix in KERNEL_PREFIXES}
        # Plugins whose setup returned, in that order, with their teardown hook
        # captured then: a plugin dropped later is unregistered but still owed it.
        self._teardowns: dict[str, Callable[..., Any] | None] = {}
        self._start_paused: list[str] = []
        self.view = KernelView(self)

    # -- queries ---------------------------------------------------------

    @property
    def timeout_s(self) -> float:
        return self.settings.plugin_timeout_s

    def report(self) -> StartupReport:
        return StartupReport.of(list(self.records.values()))

    def missing_required(self) -> list[str]:
        """Plugins named in LUKHAS_REQUIRED_PLUGINS that are not active or degraded."""
        return [name for name in self.settings.required
                if name not in self.records or not self.records[name].state.serving]

    def owner_of(self, path: str) -> PluginRecord | None:
        """The plugin whose prefix holds `path` (prefixes never overlap)."""
        for prefix, owner in self._claims.items():
            if owner in self.records and (path == prefix or path.startswith(prefix + "/")):
                return self.records[owner]
        return None

    def implementation(self, hook: str, plugin: str) -> Callable[..., Any] | None:
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name == plugin:
                return impl.function
        return None

    # -- load: everything before the app exists ----------------------------

    async def load(self, *, set_up: bool = True) -> None:
        """Discover, import, register, then (if `set_up`) set up and collect routes.

        Raises SettingsError only for the kernel's own settings (flags); any
        plugin's own problem is recorded on its record instead.
        """
        found = discover(self.settings.extras, installed=self.installed)
        self.records = {record.name: record for record in found}
        pending = [r for r in found if r.state is PluginState.PENDING]
        flags = load_flags([r.name for r in pending], self.config, self.env_file)
        await self.flags.load_persisted()
        for record in found:
            # Known before import (the default and the metadata's prefixes), so a
            # disabled plugin's routes answer 403 rather than 404.
            record.prefixes = [f"/api/v1/{record.name}", *record.prefixes]
            if record.state is not PluginState.FAILED:
                for prefix in record.prefixes:
                    if not self._claim(record, prefix):
                        break  # the clash failed the plugin
            if record.state is not PluginState.PENDING:
                continue
            persisted = self.flags.persisted(flag_name(record.name))
            if persisted is False:
                # Disabled through the API: loaded, then paused, so that the
                # API can enable it again without a restart.
                self._start_paused.append(record.name)
            elif not (flags[record.name] if persisted is None else persisted):
                record.state = PluginState.DISABLED
                record.reason = f"{flag_name(record.name)} is false"
        pending = [r for r in found if r.state is PluginState.PENDING]
        await asyncio.gather(*(self._import(r) for r in pending))
        for record in pending:
            if record.state is PluginState.PENDING:
                self._register(record)
        if not set_up:
            return
        await self._in_dependency_order(Stage.SETUP, self._setup)
        for name in list(self._teardowns):
            self._collect_routes(self.records[name])

    async def _import(self, record: PluginRecord) -> None:
        def inject() -> None:
            self.chaos.inject_sync(record.name, Stage.IMPORT)

        try:
            record.module_object, ms = await run_isolated(
                record.name, self.timeout_s, lambda: import_in_thread(record.module, inject)
            )
            record.timed(Stage.IMPORT, ms)
        except StageError as exc:
            record.fail(Stage.IMPORT, str(exc))

    def _register(self, record: PluginRecord) -> None:
        try:
            self.pm.register(record.module_object, name=record.name)
            self.pm.check_pending()
        except Exception as exc:  # pluggy's validation errors, or the module's own
            self._drop(record, Stage.REGISTER, describe(exc))
            return
        info_hook = self.implementation("lukhas_plugin_info", record.name)
        try:
            info = info_hook() if info_hook else None
        except Exception as exc:
            return self._drop(record, Stage.REGISTER, describe(exc))
        if not isinstance(info, PluginInfo):
            return self._drop(record, Stage.REGISTER, "lukhas_plugin_info must return a PluginInfo")
        try:
            compatible = PLUGIN_API_VERSION in SpecifierSet(info.api)
        except InvalidSpecifier:
            return self._drop(record, Stage.REGISTER, f"invalid api range {info.api!r}")
        if not compatible:
            return self._drop(
                record, Stage.REGISTER,
                f"incompatible: needs {info.api}, kernel has {PLUGIN_API_VERSION}",
            )
        record.version = record.version or info.version
        record.requires = list(info.requires)
        for prefix in info.route_prefixes:
            if not valid_prefix(prefix):
                return self._drop(record, Stage.REGISTER, f"invalid route prefix {prefix!r}")
            if prefix in record.prefixes:  # also declared in the distribution's metadata
                continue
            if not self._claim(record, prefix):
                return
            record.prefixes = [*record.prefixes, prefix]
        settings_model = self.implementation("lukhas_settings_model", record.name)
        try:
            settings = self._settings(record.name, settings_model() if settings_model else None)
        except Exception as exc:
            return self._drop(record, Stage.REGISTER, str(exc) if exc.args else describe(exc))
        declared = parse_flags(info.flags, {}, self.env_file)  # SettingsError stops start-up
        for name, value in declared.items():
            persisted = self.flags.persisted(name)
            self.flags.declared.setdefault(name, value if persisted is None else persisted)
        context = PluginContext.create(
            record.name, settings, self.settings, self.services.db if self.services else None,
            self.flags.declared, self.services.accounts.get_user if self.services else None,
            self.view, self.services.cache if self.services else None)
        context.on_degraded_change(lambda: self._apply_degraded(record, context))
        self.contexts[record.name] = context

    def _settings(self, name: str, model: type[PluginSettings] | None) -> PluginSettings | None:
        if model is None:
            return None
        if not (isinstance(model, type) and issubclass(model, PluginSettings)):
            raise TypeError("lukhas_settings_model must return a PluginSettings subclass")
        return load_settings(model, self.config, ("plugins", name), self.env_file)

    def _claim(self, record: PluginRecord, prefix: str) -> bool:
        for claimed, owner in self._claims.items():
            if owner != record.name and _overlaps(prefix, claimed):
                first = owner if owner == "the kernel" else f"plugin {owner}"
                reason = f"route prefix {prefix} clashes with {claimed}, claimed by {first}"
                self._drop(record, Stage.ROUTES, reason)
                return False
        self._claims[prefix] = record.name
        return True

    def _drop(self, record: PluginRecord, stage: Stage, reason: str,
              state: PluginState = PluginState.FAILED) -> None:
        """Record the failure and unregister the plugin's hooks."""
        record.fail(stage, reason, state)
        if self.pm.has_plugin(record.name):
            self.pm.unregister(name=record.name)
        log.warning("plugin.failed" if state is PluginState.FAILED else "plugin.skipped",
                    plugin=record.name, stage=stage.value, reason=record.reason)

    # -- ordering ----------------------------------------------------------

    async def _in_dependency_order(
        self, stage: Stage, step: Callable[[PluginRecord, PluginContext], Awaitable[None]]
    ) -> None:
        """Run `step` for every pending/serving plugin once its requirements
        have run; independent plugins run concurrently; cycles fail."""
        eligible = {n for n, r in self.records.items()
                    if n in self.contexts and r.state in (PluginState.PENDING, PluginState.ACTIVE)}
        graph = {n: {d for d in self.records[n].requires if d in eligible} for n in eligible}
        while True:
            try:
                graphlib.TopologicalSorter(graph).prepare()
                break
            except graphlib.CycleError as exc:
                cycle: list[str] = exc.args[1]
                for name in set(cycle):
                    self._drop(self.records[name], stage, "dependency cycle: " + " -> ".join(cycle))
                    graph.pop(name)
                for deps in graph.values():
                    deps.difference_update(cycle)
        sorter = graphlib.TopologicalSorter(graph)
        sorter.prepare()
        running: dict[asyncio.Task[None], str] = {}
        while sorter.is_active():
            for name in sorter.get_ready():
                task = asyncio.create_task(self._step(stage, name, step))
                running[task] = name
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                sorter.done(running.pop(task))

    async def _step(self, stage: Stage, name: str,
                    step: Callable[[PluginRecord, PluginContext], Awaitable[None]]) -> None:
        record = self.records[name]
        for dependency in record.requires:
            other = self.records.get(dependency)
            if other is None:
                return self._skip(record, stage, f"requires {dependency}, which is not installed")
            ready = other.set_up if stage is Stage.SETUP else other.state.serving
            if not ready:
                return self._skip(record, stage, f"requires {dependency}, which is {other.state.value}")
        await step(record, self.contexts[name])

    def _skip(self, record: PluginRecord, stage: Stage, reason: str) -> None:
        self._drop(record, stage, reason, PluginState.SKIPPED)

    async def _call(self, record: PluginRecord, stage: Stage, hook: str, **kwargs: Any) -> bool:
        """Call one plugin's hook for `stage`; on failure drop it, return False."""
        function = self.implementation(hook, record.name)
        try:
            _, ms = await run_isolated(
                record.name,
                self.timeout_s,
                (lambda: function(**kwargs)) if function else (lambda: None),
                lambda: self.chaos.inject(record.name, stage),
            )
        except StageError as exc:
            self._drop(record, stage, str(exc))
            return False
        record.timed(stage, ms)
        return True

    # -- stages ------------------------------------------------------------

    async def _setup(self, record: PluginRecord, context: PluginContext) -> None:
        if not await self._migrate(record):
            return
        if await self._call(record, Stage.SETUP, "lukhas_setup", context=context):
            record.set_up = True
            self._teardowns[record.name] = self.implementation("lukhas_teardown", record.name)

    async def _migrate(self, record: PluginRecord) -> bool:
        """Bring the plugin's tables to head (or check them); False if it failed."""
        declared = self.implementation("lukhas_migrations", record.name)
        if declared is None:
            return True
        assert self.services is not None, "setting plugins up needs storage"
        db, upgrade = self.services.db, self.settings.auto_migrate
        try:
            _, ms = await run_isolated(
                record.name, self.timeout_s,
                lambda: db.migrate(record.name, Path(declared()), upgrade=upgrade))
        except StageError as exc:
            self._drop(record, Stage.MIGRATE, str(exc))
            return False
        record.timed(Stage.MIGRATE, ms)
        return True

    def _collect_routes(self, record: PluginRecord) -> None:
        if record.state is not PluginState.PENDING:
            return
        context = self.contexts[record.name]
        try:
            routes = self._hook_list("lukhas_routes", record.name, context, Route)
            middlewares = self._hook_list("lukhas_middlewares", record.name, context, object)
        except (TypeError, StageError) as exc:
            return self._drop(record, Stage.ROUTES, str(exc))
        mounted = {(r.method.upper(), r.path): owner for owner, r in self.routes}
        for route in routes:
            key = (route.method.upper(), route.path)
            if not any(route.path == p or route.path.startswith(p + "/") for p in record.prefixes):
                return self._drop(record, Stage.ROUTES, f"{route.operation} is outside its prefixes "
                                  + ", ".join(record.prefixes))
            if key in mounted:
                return self._drop(record, Stage.ROUTES, f"{route.operation} already claimed by "
                                  f"{'plugin ' + mounted[key] if mounted[key] != record.name else 'itself'}")
            if route.rate_limit is not None:
                try:
                    parse_limit(route.rate_limit)
                except ValueError:
                    return self._drop(record, Stage.ROUTES, f"{route.operation}: invalid rate limit "
                                      f"{route.rate_limit!r}")
            mounted[key] = record.name
        self.routes.extend((record.name, route) for route in routes)
        self.middlewares.extend((record.name, m) for m in middlewares)
        record.routes = [route.operation for route in routes]
        record.state = PluginState.ACTIVE

    def _hook_list(self, hook: str, name: str, context: PluginContext, kind: type) -> list[Any]:
        function = self.implementation(hook, name)
        if function is None:
            return []
        try:
            items = list(function(context=context) or [])
        except Exception as exc:
            raise StageError(describe(exc)) from exc
        if not all(isinstance(item, kind) for item in items):
            raise TypeError(f"{hook} must return a list of {kind.__name__}")
        return items

    # -- start and stop: while the app starts and shuts down ----------------

    async def start(self) -> StartupReport:
        """Run startup hooks, then health checks; log the start-up result."""
        await self._in_dependency_order(Stage.STARTUP, self._startup)
        await self.check_health()
        for name in self._start_paused:
            self.set_enabled(name, False)
        self.ready = True
        for name in self.settings.required:
            if name not in self.records:
                log.warning("plugin.required_missing", plugin=name,
                            reason="named in LUKHAS_REQUIRED_PLUGINS but not installed")
        report = self.report()
        log.info("lukhas.startup", **report.model_dump())
        return report

    async def _startup(self, record: PluginRecord, context: PluginContext) -> None:
        await self._call(record, Stage.STARTUP, "lukhas_startup", context=context)

    async def check_health(self) -> None:
        """Run every serving plugin's health checks; active ↔ degraded only."""
        serving = [r for r in self.records.values() if r.state.serving]
        await asyncio.gather(*(self._health(r) for r in serving))

    async def _health(self, record: PluginRecord) -> None:
        context = self.contexts[record.name]
        checks: dict[str, Callable[[], Any]] = {}
        if self.chaos.fault(record.name, Stage.HEALTH) is not None:
            checks["injected"] = partial(self.chaos.inject, record.name, Stage.HEALTH)
        problems: list[str] = []
        declared = self.implementation("lukhas_health_checks", record.name)
        try:
            checks.update(declared(context=context) or {} if declared else {})
        except Exception as exc:
            problems.append(f"lukhas_health_checks raised {describe(exc)}")

        async def run(check: Callable[[], Any]) -> CheckResult:
            started = time.perf_counter()
            try:
                result, _ = await run_isolated(record.name, self.timeout_s, check)
                passed, reason = result is not False, None
            except StageError as exc:
                passed, reason = False, str(exc)
            return CheckResult(passed=passed, ms=round((time.perf_counter() - started) * 1000, 3),
                               reason=reason)

        started = asyncio.get_running_loop().time()
        results = dict(zip(checks, await asyncio.gather(*map(run, checks.values())), strict=True))
        elapsed_ms = (asyncio.get_running_loop().time() - started) * 1000
        problems += [f"check {name!r} failed" + (f": {result.reason}" if result.reason else "")
                     for name, result in results.items() if not result.passed]
        record.timed(Stage.HEALTH, elapsed_ms, replace=False)
        record.health_checks = results
        record.health_problem = "; ".join(problems) or None
        self._apply_degraded(record, context)

    def _apply_degraded(self, record: PluginRecord, context: PluginContext) -> None:
        """Serving plugins are degraded while a health check or a fallback says so."""
        if not record.state.serving:
            return
        reasons = [f"health: {record.health_problem}" if record.health_problem else "",
                   f"fallback: {context.degraded_reason}" if context.degraded_reason else ""]
        reason = "; ".join(r for r in reasons if r)
        record.state = PluginState.DEGRADED if reason else PluginState.ACTIVE
        record.stage = Stage.HEALTH if record.health_problem else None
        record.reason = reason or None

    async def stop(self) -> None:
        """Tear plugins down in reverse set-up order, each within the timeout."""
        for name, function in reversed(self._teardowns.items()):
            if function is not None:
                context = self.contexts[name]
                try:
                    await run_isolated(name, self.timeout_s, partial(function, context=context))
                except StageError as exc:
                    log.warning("plugin.teardown_failed", plugin=name, reason=str(exc))
            self.records[name].set_up = False
        self._teardowns.clear()
        self.ready = False

    async def close(self) -> None:
        """Stop the plugins, then release the kernel's storage."""
        await self.stop()
        if self.services is not None:
            await self.services.close()

    # -- run-time flags ----------------------------------------------------

    def flag_values(self) -> dict[str, bool]:
        """Every run-time flag: loaded plugins' `<NAME>_ENABLED`, then declared ones."""
        enabled = {flag_name(name): self.records[name].state is not PluginState.DISABLED
                   for name in self.contexts}
        return dict(sorted({**enabled, **self.flags.declared}.items()))

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Disable a loaded plugin at run time (its routes answer 403), or undo it."""
        record = self.records[name]
        if not enabled and record.paused is None:
            record.paused = (record.state, record.stage, record.reason)
            record.state, record.stage = PluginState.DISABLED, None
            record.reason = f"{flag_name(name)} set to false at run time"
        elif enabled and record.paused is not None:
            record.state, record.stage, record.reason = record.paused
            record.paused = None

    async def update_flags(self, changes: Mapping[str, bool], actor: str) -> dict[str, bool]:
        """Persist and apply `changes` (names already validated); return every flag."""
        assert self.flags.store is not None, "changing flags needs storage"
        await self.flags.store.save(changes, actor)
        self.flags.remember(changes)
        self._apply_flags(changes)
        log.info("flags.changed", audit=True, actor=actor, changes=dict(changes))
        return self.flag_values()

    async def follow_flags(self) -> None:
        """Apply the flags another host process changed since the last call."""
        applied = self._apply_flags(await self.flags.changed_elsewhere())
        if applied:
            log.info("flags.followed", changes=applied)

    def _apply_flags(self, changes: Mapping[str, bool]) -> dict[str, bool]:
        """Put `changes` in force; names this host does not have are ignored.
        Returns those applied (idempotent: applying a value again changes nothing)."""
        plugins = {flag_name(name): name for name in self.contexts}
        applied = {}
        for flag, value in changes.items():
            if flag in plugins:
                self.set_enabled(plugins[flag], value)
            elif flag in self.flags.declared:
                self.flags.declared[flag] = value
            else:
                continue
            applied[flag] = value
        return applied

    # -- request time ------------------------------------------------------

    def declarations(self, hook: str) -> dict[str, list[Any]]:
        """Call a sync hook that returns a list (e.g. `lukhas_metrics`) on every
        serving plugin; non-empty results by plugin.

        A plugin whose hook raises or returns something else is logged and
        left out; the others' lists are kept.
        """
        results: dict[str, list[Any]] = {}
        for name, record in self.records.items():
            if not record.state.serving:
                continue
            try:
                items = self._hook_list(hook, name, self.contexts[name], object)
            except (TypeError, StageError) as exc:
                log.warning("plugin.hook_failed", plugin=name, hook=hook, reason=str(exc))
                continue
            if items:
                results[name] = items
        return results

    async def call_each(self, hook: str, **kwargs: Any) -> dict[str, Any]:
        """Call `hook` on every serving plugin, concurrently and isolated.

        Each implementation receives the arguments it declares of `kwargs`
        and its own plugin's ``context``.

        A plugin that raises or runs past the plugin timeout is logged and left
        out of the result; the others' results are kept.
        """
        impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls()
                 if i.plugin_name in self.records and self.records[i.plugin_name].state.serving]

        async def one(impl: pluggy.HookImpl) -> tuple[str, Any, str | None]:
            # Each plugin gets its own context and only the arguments it declares.
            offered = {**kwargs, "context": self.contexts.get(impl.plugin_name)}
            arguments = {name: offered[name] for name in impl.argnames}
            try:
                result, _ = await run_isolated(
                    impl.plugin_name, self.timeout_s, lambda: impl.function(**arguments),
                    lambda: self.chaos.inject(impl.plugin_name, Stage.REQUEST),
                )
                return impl.plugin_name, result, None
            except StageError as exc:
                return impl.plugin_name, None, str(exc)

        results = {}
        for name, result, problem in await asyncio.gather(*(one(i) for i in impls)):
            if problem is None:
                results[name] = result
            else:
                log.warning("plugin.hook_failed", plugin=name, hook=hook, reason=problem)
        return results
