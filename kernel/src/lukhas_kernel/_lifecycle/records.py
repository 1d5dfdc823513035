"""What the kernel knows about each plugin: its state and why."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import ModuleType

from pydantic import BaseModel

# Bumped on every attribute assignment to any PluginRecord (see PluginRecord),
# so "unchanged version" proves "no record changed" to caches of derived views.
_version = 0


def records_version() -> int:
    """A counter that differs after any change to any plugin record."""
    return _version


class PluginState(enum.StrEnum):
    """The state a plugin ends start-up in (README.md, Plugin states)."""

    PENDING = "pending"
    ACTIVE = "active"
    DEGRADED = "degraded"
    DISABLED = "disabled"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def serving(self) -> bool:
        return self in (PluginState.ACTIVE, PluginState.DEGRADED)


class Stage(enum.StrEnum):
    """Lifecycle stages, in order; a failure names the one it happened in."""

    DISCOVERY = "discovery"
    IMPORT = "import"
    REGISTER = "register"
    MIGRATE = "migrate"
    SETUP = "setup"
    ROUTES = "routes"
    STARTUP = "startup"
    HEALTH = "health"
    REQUEST = "request"


class CheckResult(BaseModel):
    """The last run of one health check: passed or not, how long it took, why not."""

    passed: bool
    ms: float
    reason: str | None = None


@dataclass
class PluginRecord:
    """One discovered plugin. `reason` is set whenever state is not active.

    Invariant: a field is only ever changed by assigning it (never by
    mutating a list, dict or CheckResult in place: use `timed` for
    `startup_ms`), and every assignment bumps `records_version()`. Answers
    built from records (e.g. the `/api/v1/plugins` body) may therefore be
    cached under that version.
    """

    name: str
    module: str
    distribution: str | None
    version: str | None
    state: PluginState = PluginState.PENDING
    stage: Stage | None = None
    reason: str | None = None
    requires: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    startup_ms: dict[str, float] = field(default_factory=dict)
    module_object: ModuleType | None = field(default=None, repr=False)
    # True once setup returned, so teardown is owed even if a later stage fails.
    set_up: bool = False
    health_problem: str | None = None
    # The last run of each named health check.
    health_checks: dict[str, CheckResult] = field(default_factory=dict)
    # While disabled at run time: the state, stage and reason to return to.
    paused: tuple[PluginState, Stage | None, str | None] | None = None

    def __setattr__(self, name: str, value: object) -> None:
        global _version
        _version += 1
        object.__setattr__(self, name, value)

    def timed(self, stage: Stage, ms: float, *, replace: bool = True) -> None:
        """Record how long `stage` took (only if not yet recorded unless `replace`),
        as a new dict so that the change is an assignment (see the invariant)."""
        if replace or stage.value not in self.startup_ms:
            self.startup_ms = {**self.startup_ms, stage.value: round(ms, 3)}

    def fail(self, stage: Stage, reason: str, state: PluginState = PluginState.FAILED) -> None:
        self.state = state
        self.stage = stage
        self.reason = f"{stage.value}: {reason}"

    @property
    def total_startup_ms(self) -> float:
        return round(sum(self.startup_ms.values()), 3)


class PluginView(BaseModel):
    """A plugin as `/api/v1/plugins` and `lukhas doctor` show it."""

    name: str
    version: str | None
    distribution: str | None
    state: PluginState
    stage: Stage | None
    reason: str | None
    requires: list[str]
    startup_ms: float
    stages_ms: dict[str, float]
    routes: list[str]
    health_checks: dict[str, CheckResult]

    @classmethod
    def of(cls, record: PluginRecord) -> PluginView:
        return cls(
            name=record.name,
            version=record.version,
            distribution=record.distribution,
            state=record.state,
            stage=record.stage,
            reason=record.reason,
            requires=record.requires,
            startup_ms=record.total_startup_ms,
            stages_ms=record.startup_ms,
            routes=record.routes,
            health_checks=record.health_checks,
        )


class StartupReport(BaseModel):
    """The start-up result (README.md, Plugin states), logged once as `lukhas.startup`."""

    status: str
    initialized_systems: list[str]
    disabled: list[str]
    failed: dict[str, str]

    @classmethod
    def of(cls, records: list[PluginRecord]) -> StartupReport:
        enabled = [r for r in records if r.state is not PluginState.DISABLED]
        serving = [r.name for r in enabled if r.state.serving]
        if enabled and not serving:
            status = "failed"
        elif any(r.state is not PluginState.ACTIVE for r in enabled):
            status = "partial"
        else:
            status = "ok"
        return cls(
            status=status,
            initialized_systems=serving,
            disabled=[r.name for r in records if r.state is PluginState.DISABLED],
            failed={
                r.name: r.reason or ""
                for r in enabled
                if r.state in (PluginState.FAILED, PluginState.SKIPPED)
            },
        )
