"""What a plugin's state is, and how the host reports it (docs/plugin-states.md)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

__all__ = ["CheckResult", "PluginState", "PluginView", "Stage", "StartupReport"]


class PluginState(enum.StrEnum):
    """The state a plugin is in, as `/api/v1/plugins` shows it."""

    PENDING = "pending"
    ACTIVE = "active"
    DEGRADED = "degraded"
    DISABLED = "disabled"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: A migrate, setup or startup attempt failed and another is scheduled.
    RETRYING = "retrying"
    #: It failed too many consecutive host starts; it is not imported.
    QUARANTINED = "quarantined"

    @property
    def serving(self) -> bool:
        return self in _SERVING


#: Read on every request (is its plugin serving?): a set of plain strings hashes fastest.
_SERVING = frozenset({PluginState.ACTIVE, PluginState.DEGRADED})


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
    #: Attempts made at the failing stage since the plugin last came up.
    attempts: int = 0
    #: When the next attempt is due (RFC 3339), while retrying.
    next_attempt_at: datetime | None = None
    #: Its routes' circuit breaker: closed, open or half_open.
    breaker: str = "closed"
    #: How often that breaker opened in this host process.
    breaker_opened: int = 0


class _Stated(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> PluginState: ...
    @property
    def reason(self) -> str | None: ...


class StartupReport(BaseModel):
    """The start-up result (docs/plugin-states.md), logged once as `lukhas.startup`."""

    status: str
    initialized_systems: list[str]
    disabled: list[str]
    failed: dict[str, str]

    @classmethod
    def of(cls, plugins: Iterable[_Stated]) -> StartupReport:
        """`partial` when any enabled plugin is not active; `failed` when none serves."""
        everything = list(plugins)
        enabled = [p for p in everything if p.state is not PluginState.DISABLED]
        serving = [p.name for p in enabled if p.state.serving]
        if enabled and not serving:
            status = "failed"
        elif any(p.state is not PluginState.ACTIVE for p in enabled):
            status = "partial"
        else:
            status = "ok"
        return cls(
            status=status,
            initialized_systems=serving,
            disabled=[p.name for p in everything if p.state is PluginState.DISABLED],
            failed={p.name: p.reason or "" for p in enabled
                    if p.state in (PluginState.FAILED, PluginState.SKIPPED,
                                   PluginState.RETRYING, PluginState.QUARANTINED)},
        )
