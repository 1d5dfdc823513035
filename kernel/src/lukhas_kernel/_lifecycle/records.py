"""What the kernel knows about each plugin: how far up its lifecycle it is,
its state and why.

Invariant: a record changes only through its methods, and every change
bumps its `revision`; answers built from records (the `/api/v1/plugins`
body) are current while every record's revision is unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from traceback import format_exception
from types import ModuleType
from typing import Any

from .._core.redaction import redact
from .._plugin.states import CheckResult, PluginState, PluginView, Stage

__all__ = ["Phase", "PluginRecord", "view_of"]


class Phase(enum.IntEnum):
    """How far up its lifecycle a plugin is; it moves one step at a time,
    and comes back down to REGISTERED through teardown."""

    DISCOVERED = 0
    IMPORTED = 1
    REGISTERED = 2
    MIGRATED = 3
    SET_UP = 4
    ROUTED = 5
    STARTED = 6


@dataclass(eq=False)
class PluginRecord:
    """One discovered plugin. `reason` is set whenever state is not active."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    prefixes: list[str] = field(default_factory=list)
    state: PluginState = PluginState.PENDING
    stage: Stage | None = None
    reason: str | None = None
    phase: Phase = Phase.DISCOVERED
    requires: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    startup_ms: dict[str, float] = field(default_factory=dict)
    module_object: ModuleType | None = field(default=None, repr=False)
    health_problem: str | None = None
    # The last run of each named health check.
    health_checks: dict[str, CheckResult] = field(default_factory=dict)
    # While disabled at run time: the state, stage and reason to return to.
    paused: tuple[PluginState, Stage | None, str | None] | None = None
    # Attempts made at the failing stage since the plugin last came up, and
    # while retrying when the next is due (wall clock, for the API).
    attempts: int = 0
    # The last failure was the plugin's own migrate, setup or startup code.
    retriable: bool = False
    next_attempt_at: datetime | None = None
    breaker: str = "closed"
    breaker_opened: int = 0
    # The last failure's traceback, when an exception caused it (`lukhas doctor
    # --verbose`); never in the HTTP answer, which is no place for code paths.
    traceback: str | None = field(default=None, repr=False)
    revision: int = 0

    def update(self, **changes: Any) -> None:
        """Change fields (by assignment, never in place) and bump the revision."""
        for name, value in changes.items():
            setattr(self, name, value)
        self.revision += 1

    @property
    def set_up(self) -> bool:
        """Setup returned and teardown has not run yet: teardown is owed."""
        return self.phase >= Phase.SET_UP

    def timed(self, stage: Stage, ms: float, *, replace: bool = True) -> None:
        """Record how long `stage` took (only if not yet recorded unless `replace`)."""
        if replace or stage.value not in self.startup_ms:
            self.update(startup_ms={**self.startup_ms, stage.value: round(ms, 3)})

    def fail(self, stage: Stage, reason: str, state: PluginState = PluginState.FAILED,
             error: BaseException | None = None) -> None:
        """The plugin failed (or was skipped) at `stage`; `error` is the exception behind it."""
        self.update(state=state, stage=stage, reason=f"{stage.value}: {reason}",
                    traceback=redact("".join(format_exception(error))) if error is not None else None)

    @property
    def total_startup_ms(self) -> float:
        return round(sum(self.startup_ms.values()), 3)


def view_of(record: PluginRecord) -> PluginView:
    """The record as `/api/v1/plugins` shows it.

    A plugin that serves shows no attempts and no next attempt: the attempt
    that brought it up (through its startup stage) is over even before the
    kernel has settled its count, after the health checks that follow.
    """
    up = record.state.serving
    return PluginView(
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
        attempts=0 if up else record.attempts,
        next_attempt_at=None if up else record.next_attempt_at,
        breaker=record.breaker,
        breaker_opened=record.breaker_opened,
    )
