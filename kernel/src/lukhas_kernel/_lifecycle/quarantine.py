"""Crash-loop quarantine, as the lifecycle sees it: stage markers before each
stage and the outcome of each start, recorded through the start ledger.

A start the process did not survive (a segfault, `os._exit`, `kill -9`)
leaves its marker behind; the next start counts it as a failed start. A
plugin that failed `LUKHAS_QUARANTINE_AFTER` starts in a row is not
imported until released.

Recording is best effort: a database that refuses a marker is logged and
the host serves on, since a missed count only delays a quarantine.
"""

from __future__ import annotations

from typing import Literal

import structlog

from .._core.isolation import describe
from .._plugin.states import Stage
from .._services.starts import Quarantine, StartLedger

__all__ = ["Outcome", "StartCount"]

log = structlog.get_logger("lukhas.kernel")
Outcome = Literal["up", "failed", "uncounted"]


class StartCount:
    """This process's start, counted per plugin in the ledger."""

    def __init__(self, ledger: StartLedger, after: int) -> None:
        self.ledger = ledger
        self.after = after
        self.quarantined: dict[str, Quarantine] = {}
        # A failed start counts once per process, whatever restarts follow.
        self._counted: set[str] = set()

    async def begin(self) -> None:
        """Count the starts dead processes left unfinished; read who is quarantined."""
        await self.ledger.begin()
        self.quarantined = await self.ledger.quarantined(self.after)

    async def mark(self, plugin: str, stage: Stage) -> None:
        """Durably note that `plugin`'s `stage` is under way (before it runs)."""
        try:
            await self.ledger.stage_started(plugin, stage.value)
        except Exception as exc:
            log.warning("quarantine.unrecorded", plugin=plugin, stage=stage.value, reason=describe(exc))

    async def ended(self, plugin: str, outcome: Outcome, reason: str | None = None) -> None:
        """The start's outcome for `plugin`; `reason` is its `<stage>: <reason>`."""
        if outcome == "failed":
            if plugin in self._counted:
                outcome = "uncounted"
            self._counted.add(plugin)
        stage, _, why = (reason or "").partition(": ")
        try:
            await self.ledger.start_ended(plugin, outcome, stage or None, why or None)
        except Exception as exc:
            log.warning("quarantine.unrecorded", plugin=plugin, reason=describe(exc))

    async def release(self, plugin: str) -> bool:
        """Clear `plugin`'s quarantine; False when it was not quarantined."""
        released = await self.ledger.release(plugin, self.after)
        self.quarantined.pop(plugin, None)
        return released
