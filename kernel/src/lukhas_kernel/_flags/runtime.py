"""Run-time flags in force: how a configured value meets a persisted one,
applying changes, and following the changes other host processes make.

A flag's value at start-up comes from, in order: the environment or `.env`
when it names the flag, the value last set through the admin API, the config
file, the default. Changes through the API apply at once and are persisted;
other host processes on the same database apply them when they next read the
table (every `FLAGS_POLL_S`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog
from sqlalchemy.exc import SQLAlchemyError

from .parsing import explicit_in_environment
from .store import FlagStore

__all__ = ["FLAGS_POLL_S", "RuntimeFlags", "Switch"]

#: How often a host process reads `lukhas_flags` for changes made by another
#: one: a change through any process applies in all within this plus a query.
FLAGS_POLL_S = 0.5
log = structlog.get_logger("lukhas.kernel")

#: Turns a plugin on or off at run time; called with the flag's new value.
Switch = Callable[[bool], None]


class RuntimeFlags:
    """Every run-time flag of this host: plugins' `<NAME>_ENABLED` (through
    their switches) and the flags plugins declare (values held here)."""

    def __init__(self, store: FlagStore | None, env_file: str | None) -> None:
        self.store = store
        self.env_file = env_file
        #: Flags plugins declared (`PluginInfo.flags`), by name; plugins read it live.
        self.declared: dict[str, bool] = {}
        self._switches: dict[str, tuple[Callable[[], bool], Switch]] = {}
        self._persisted: dict[str, bool] = {}

    async def load_persisted(self) -> None:
        if self.store is not None:
            self._persisted = await self.store.load()

    def persisted(self, name: str) -> bool | None:
        """The value last set through the API, unless the environment names the flag."""
        if name not in self._persisted or explicit_in_environment([name], self.env_file):
            return None
        return self._persisted[name]

    def declare(self, defaults: Mapping[str, bool]) -> None:
        """Flags a plugin declares, each at its persisted value if any, else its default."""
        for name, value in defaults.items():
            persisted = self.persisted(name)
            self.declared.setdefault(name, value if persisted is None else persisted)

    def add_switch(self, name: str, enabled: Callable[[], bool], switch: Switch) -> None:
        """A plugin's own flag: `enabled()` reads it, `switch(value)` applies it."""
        self._switches[name] = (enabled, switch)

    def values(self) -> dict[str, bool]:
        """Every run-time flag by name, sorted."""
        plugins = {name: enabled() for name, (enabled, _) in self._switches.items()}
        return dict(sorted({**plugins, **self.declared}.items()))

    async def update(self, changes: Mapping[str, bool], actor: str) -> dict[str, bool]:
        """Persist and apply `changes` (names already validated); return every flag."""
        assert self.store is not None, "changing flags needs storage"
        await self.store.save(changes, actor)
        self._persisted = {**self._persisted, **changes}
        self.apply(changes)
        log.info("flags.changed", audit=True, actor=actor, changes=dict(changes))
        return self.values()

    def apply(self, changes: Mapping[str, bool]) -> dict[str, bool]:
        """Put `changes` in force; names this host does not have are ignored.
        Returns those applied (idempotent: applying a value again changes nothing)."""
        applied = {}
        for name, value in changes.items():
            if name in self._switches:
                self._switches[name][1](value)
            elif name in self.declared:
                self.declared[name] = value
            else:
                continue
            applied[name] = value
        return applied

    async def follow(self) -> None:
        """Apply the flags another host process changed since the last call.

        Applying the whole difference converges: every process ends on the
        last committed value of each flag.
        """
        if self.store is None:
            return
        current = await self.store.load()
        changed = {name: value for name, value in current.items() if self._persisted.get(name) != value}
        self._persisted = current
        applied = self.apply(changed)
        if applied:
            log.info("flags.followed", changes=applied)

    async def follow_forever(self, timeout_s: float) -> None:
        """`follow` every FLAGS_POLL_S, each read within `timeout_s`, until cancelled."""
        failing = False
        while True:
            await asyncio.sleep(FLAGS_POLL_S)
            try:
                # Not asyncio.wait_for: on Python 3.11 it can swallow the
                # cancellation that stops this loop at shutdown (when the
                # query finishes just as it arrives), and the host never stops.
                async with asyncio.timeout(timeout_s):
                    await self.follow()
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                if not failing:  # once per outage, not twice a second
                    log.warning("flags.follow_failed", reason=f"{type(exc).__name__}: {exc}"[:300])
                failing = True
            else:
                failing = False
