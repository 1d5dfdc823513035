"""Fault injection for chaos tests: `LUKHAS_CHAOS="plugin:stage:mode,..."`.

Modes: `raise` (an exception), `hang` (never finishes; the kernel's timeout
catches it), `delay_ms=N` (finishes late), `fail` (the stage reports failure
without raising: a health check answers unhealthy, any other stage raises),
`fail_times=N` (the first N calls raise, later ones pass) and `crash` (the
process exits at once with code 70, at `import`, `setup` or `startup` only).
An injected fault goes through exactly the code path a real one does; only
its message says `injected`.

The plan is one object shared by every caller and replaced in place (the
admin chaos routes), so callers look a fault up at each call rather than
keeping one.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import NoReturn

from .._plugin.states import Stage

__all__ = ["CRASH_EXIT_CODE", "ChaosError", "ChaosPlan", "ChaosSpecError", "Fault"]

_STAGES = {Stage.IMPORT, Stage.SETUP, Stage.STARTUP, Stage.HEALTH, Stage.REQUEST}
_CRASH_STAGES = {Stage.IMPORT, Stage.SETUP, Stage.STARTUP}
_HANG_S = 3600.0
#: The exit code of an injected `crash` (EX_SOFTWARE: an internal failure).
CRASH_EXIT_CODE = 70


class ChaosError(RuntimeError):
    """The exception an injected `raise`, `fail` or `fail_times` fault throws."""


class ChaosSpecError(ValueError):
    """Chaos entries that do not parse: `errors` is `[(index, message), ...]`,
    one for every bad entry, in order."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(message for _, message in errors))
        self.errors = errors


@dataclass(frozen=True)
class Fault:
    """One injected fault: `mode` in its canonical `LUKHAS_CHAOS` spelling."""

    plugin: str
    stage: Stage
    mode: str
    delay_s: float = 0.0
    times: int = 0  # fail_times=N: how many calls fail

    @property
    def message(self) -> str:
        return f"injected {self.mode}"

    @property
    def entry(self) -> str:
        """The `plugin:stage:mode` entry this fault was parsed from."""
        return f"{self.plugin}:{self.stage.value}:{self.mode}"


@dataclass
class _Active:
    # Faults and their call counts are swapped together, so a count never
    # outlives the faults it was counted for.
    faults: dict[tuple[str, Stage], Fault]
    counts: dict[tuple[str, Stage], int] = field(default_factory=dict)


def _integer(item: str, mode: str, name: str, minimum: int) -> int:
    try:
        value = int(mode.removeprefix(f"{name}="))
    except ValueError:
        raise ValueError(f"{item!r}: {name} needs an integer") from None
    if value < minimum:
        raise ValueError(f"{item!r}: {name} must not be negative" if minimum == 0
                         else f"{item!r}: {name} must be at least {minimum}")
    return value


def parse_fault(item: str, plugins: Collection[str] | None = None) -> Fault:
    """One `plugin:stage:mode` entry; ValueError naming it when it is bad.

    With `plugins`, a plugin not among them is an error too.
    """
    parts = item.split(":")
    if len(parts) != 3 or not parts[0]:
        raise ValueError(f"{item!r} is not plugin:stage:mode")
    plugin, stage_name, mode = parts
    if plugins is not None and plugin not in plugins:
        raise ValueError(f"{item!r}: no plugin {plugin!r}")
    try:
        stage = Stage(stage_name)
    except ValueError:
        stage = None
    if stage not in _STAGES:
        allowed = ", ".join(sorted(s.value for s in _STAGES))
        raise ValueError(f"{item!r}: stage must be one of {allowed}")
    if mode.startswith("delay_ms="):
        delay_ms = _integer(item, mode, "delay_ms", 0)
        return Fault(plugin, stage, f"delay_ms={delay_ms}", delay_s=delay_ms / 1000)
    if mode.startswith("fail_times="):
        times = _integer(item, mode, "fail_times", 1)
        return Fault(plugin, stage, f"fail_times={times}", times=times)
    if mode == "crash" and stage not in _CRASH_STAGES:
        raise ValueError(f"{item!r}: crash applies to the import, setup and startup stages only")
    if mode not in ("raise", "hang", "fail", "crash"):
        raise ValueError(f"{item!r}: mode must be raise, hang, fail, delay_ms=N, fail_times=N or crash")
    return Fault(plugin, stage, mode)


class ChaosPlan:
    """The active faults; empty when chaos is not enabled. Replaceable in place."""

    def __init__(self, faults: Iterable[Fault] | None = None) -> None:
        self._active = _Active({(f.plugin, f.stage): f for f in faults or []})
        # Counts are bumped from the import thread and the event loop alike.
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, spec: str) -> ChaosPlan:
        """Parse comma-separated `plugin:stage:mode` items; ValueError naming the
        first bad item. A later item for the same plugin and stage wins."""
        items = filter(None, (part.strip() for part in spec.split(",")))
        return cls([parse_fault(item) for item in items])

    @staticmethod
    def parse_entries(entries: list[str], plugins: Collection[str] | None = None) -> list[Fault]:
        """Parse every entry; ChaosSpecError listing each bad one with its index.

        With `plugins`, an entry naming another plugin is bad; so is a second
        entry for the same plugin and stage (only one fault applies to a call).
        """
        faults: list[Fault] = []
        errors: list[tuple[int, str]] = []
        seen: dict[tuple[str, Stage], int] = {}
        for index, item in enumerate(entries):
            try:
                fault = parse_fault(item.strip(), plugins)
            except ValueError as exc:
                errors.append((index, str(exc)))
                continue
            key = (fault.plugin, fault.stage)
            if key in seen:
                errors.append((index, f"{item!r}: {fault.plugin}:{fault.stage.value} "
                                      f"is already given by entry {seen[key]}"))
                continue
            seen[key] = index
            faults.append(fault)
        if errors:
            raise ChaosSpecError(errors)
        return faults

    def replace(self, faults: list[Fault]) -> None:
        """Make `faults` the whole plan, at once; every fail_times count restarts."""
        active = _Active({(f.plugin, f.stage): f for f in faults})
        with self._lock:
            self._active = active

    def entries(self) -> list[str]:
        """The active faults as `plugin:stage:mode` entries."""
        return [fault.entry for fault in self._active.faults.values()]

    @property
    def _faults(self) -> dict[tuple[str, Stage], Fault]:
        return self._active.faults

    def __bool__(self) -> bool:
        return bool(self._active.faults)

    def fault(self, plugin: str, stage: Stage) -> Fault | None:
        """The fault for `plugin` at `stage`, if any."""
        return self._active.faults.get((plugin, stage))

    def _take(self, plugin: str, stage: Stage) -> tuple[Fault | None, int]:
        """The fault and, for fail_times, this call's number (1-based)."""
        active = self._active
        fault = active.faults.get((plugin, stage))
        if fault is None or not fault.times:
            return fault, 0
        with self._lock:
            call = active.counts.get((plugin, stage), 0) + 1
            active.counts[(plugin, stage)] = call
        return fault, call

    def _raise_or_crash(self, fault: Fault, call: int) -> bool:
        """Raise or exit for `fault`; else whether the call must then wait
        (hang, delay_ms) rather than pass at once."""
        if fault.mode == "crash":
            _crash(fault)
        if fault.times:
            if call > fault.times:
                return False
            raise ChaosError(f"{fault.message} (call {call} of {fault.times})")
        if fault.mode in ("raise", "fail"):
            raise ChaosError(fault.message)
        return True

    def inject_sync(self, plugin: str, stage: Stage) -> None:
        """Apply a fault in a worker thread (the import stage)."""
        fault, call = self._take(plugin, stage)
        if fault is not None and self._raise_or_crash(fault, call):
            time.sleep(_HANG_S if fault.mode == "hang" else fault.delay_s)

    async def inject(self, plugin: str, stage: Stage) -> bool:
        """Apply a fault on the event loop; False means "report unhealthy"."""
        fault, call = self._take(plugin, stage)
        if fault is None:
            return True
        if fault.mode == "fail" and stage is Stage.HEALTH:
            return False
        if self._raise_or_crash(fault, call):
            await asyncio.sleep(_HANG_S if fault.mode == "hang" else fault.delay_s)
        return True


def _crash(fault: Fault) -> NoReturn:
    # As a segfault would: no finally blocks, no atexit, no flushed buffers.
    # One unbuffered line first, so whoever reads the log knows it was chaos.
    line = (f"lukhas chaos: injected crash in {fault.plugin} at {fault.stage.value}; "
            f"exiting {CRASH_EXIT_CODE}\n")
    try:
        os.write(2, line.encode())
    except OSError:
        pass
    os._exit(CRASH_EXIT_CODE)
