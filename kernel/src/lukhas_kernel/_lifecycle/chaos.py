"""Fault injection for chaos tests: `LUKHAS_CHAOS="plugin:stage:mode,..."`.

Modes: `raise` (an exception), `hang` (never finishes; the kernel's timeout
catches it), `delay_ms=N` (finishes late), `fail` (the stage reports failure
without raising: a health check answers unhealthy, any other stage raises).
An injected fault goes through exactly the code path a real one does; only
its message says `injected`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .._plugin.states import Stage

__all__ = ["ChaosError", "ChaosPlan", "Fault"]

_STAGES = {Stage.IMPORT, Stage.SETUP, Stage.STARTUP, Stage.HEALTH, Stage.REQUEST}
_HANG_S = 3600.0


class ChaosError(RuntimeError):
    """The exception an injected `raise` or `fail` fault throws."""


@dataclass(frozen=True)
class Fault:
    plugin: str
    stage: Stage
    mode: str
    delay_s: float = 0.0

    @property
    def message(self) -> str:
        return f"injected {self.mode}"


class ChaosPlan:
    """The parsed `LUKHAS_CHAOS` value; empty when chaos is not enabled."""

    def __init__(self, faults: list[Fault] | None = None) -> None:
        self._faults = {(f.plugin, f.stage): f for f in faults or []}

    @classmethod
    def parse(cls, spec: str) -> ChaosPlan:
        """Parse `plugin:stage:mode` items; raises ValueError naming the bad item."""
        faults = []
        for item in filter(None, (part.strip() for part in spec.split(","))):
            parts = item.split(":")
            if len(parts) != 3:
                raise ValueError(f"{item!r} is not plugin:stage:mode")
            plugin, stage_name, mode = parts
            try:
                stage = Stage(stage_name)
            except ValueError:
                stage = None
            if stage not in _STAGES:
                allowed = ", ".join(sorted(s.value for s in _STAGES))
                raise ValueError(f"{item!r}: stage must be one of {allowed}")
            delay_s = 0.0
            if mode.startswith("delay_ms="):
                try:
                    delay_s = int(mode.removeprefix("delay_ms=")) / 1000
                except ValueError:
                    raise ValueError(f"{item!r}: delay_ms needs an integer") from None
                if delay_s < 0:
                    raise ValueError(f"{item!r}: delay_ms must not be negative")
            elif mode not in ("raise", "hang", "fail"):
                raise ValueError(f"{item!r}: mode must be raise, hang, fail or delay_ms=N")
            faults.append(Fault(plugin, stage, mode, delay_s))
        return cls(faults)

    def __bool__(self) -> bool:
        return bool(self._faults)

    def fault(self, plugin: str, stage: Stage) -> Fault | None:
        return self._faults.get((plugin, stage))

    def inject_sync(self, plugin: str, stage: Stage) -> None:
        """Apply a fault in a worker thread (the import stage)."""
        fault = self.fault(plugin, stage)
        if fault is None:
            return
        if fault.mode in ("raise", "fail"):
            raise ChaosError(fault.message)
        time.sleep(_HANG_S if fault.mode == "hang" else fault.delay_s)

    async def inject(self, plugin: str, stage: Stage) -> bool:
        """Apply a fault on the event loop; False means "report unhealthy"."""
        fault = self.fault(plugin, stage)
        if fault is None:
            return True
        if fault.mode == "fail" and stage is Stage.HEALTH:
            return False
        if fault.mode in ("raise", "fail"):
            raise ChaosError(fault.message)
        await asyncio.sleep(_HANG_S if fault.mode == "hang" else fault.delay_s)
        return True
