"""Bringing plugins up again while the host serves: restarts on demand,
retries with backoff, and the outcome of each attempt for quarantine.

Invariants:
- at most one attempt at a plugin runs at a time (`_restarting` holds the
  plugins an attempt is running for, its dependents included);
- after every attempt, `settle` runs for each plugin it touched: a retriable
  failure gets its next attempt scheduled or becomes final, a recovery is
  logged, and the outcome is counted for quarantine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import structlog

from .._plugin.states import PluginState
from .health import check_health
from .machine import PluginLifecycle
from .ordering import dependents, set_up_in_order, start_in_order
from .quarantine import Outcome, StartCount
from .records import Phase, PluginRecord
from .retries import Retries, RetryPolicy

__all__ = ["Recovery"]

log = structlog.get_logger("lukhas.kernel")
_NOT_BROUGHT_UP = (PluginState.DISABLED, PluginState.QUARANTINED)


class Recovery:
    """Restarts, retries and start outcomes over the kernel's plugins.

    Without a retry policy (a kernel that does not host) failures are final
    at once; without a start count nothing is recorded for quarantine.
    """

    def __init__(self, plugins: Mapping[str, PluginLifecycle], policy: RetryPolicy | None,
                 starts: StartCount | None, registered: Callable[[PluginLifecycle], None]) -> None:
        self.plugins = plugins
        self.policy = policy
        self.retries = Retries(policy or RetryPolicy(0, 1.0, 1.0), self._retry)
        self.starts = starts
        self._registered = registered  # the kernel's follow-up to a late registration
        self._restarting: set[str] = set()
        self._released: set[str] = set()

    async def restart(self, name: str) -> PluginRecord:
        """Tear `name` down (its dependents first), then bring it and them up
        again: migrate → setup → routes → startup → health, while the host
        serves. A retry waiting for it is cancelled; a failure now starts a
        new series of retries.

        Raises KeyError for a plugin not discovered, ValueError for one that
        cannot be brought up again here (disabled, quarantined, failed at
        import or register, or an attempt at it is running).
        """
        plugin = self.plugins[name]
        state = plugin.record.state
        if name in self._restarting:
            raise ValueError(f"{name} is being brought up already")
        if state in _NOT_BROUGHT_UP:
            raise ValueError(f"{name} cannot be restarted while {state.value}")
        if plugin.context is None and name not in self._released:
            raise ValueError(f"{name} cannot be restarted: it failed at "
                             f"{plugin.record.stage or 'import'} and needs a new install")
        self.retries.cancel(name)
        plugin.record.update(attempts=0, next_attempt_at=None)
        await self._bring_up(name)
        return plugin.record

    async def _retry(self, name: str) -> None:
        """A retry is due: bring the plugin up again unless that is moot now."""
        if name not in self._restarting and self.plugins[name].record.state is PluginState.RETRYING:
            await self._bring_up(name)

    async def _bring_up(self, name: str) -> None:
        plugin = self.plugins[name]
        if plugin.context is None and not await self._load(plugin):
            await self.settle([name])
            return
        group = [name, *(d for d in dependents(name, self.plugins)
                         if self.plugins[d].context is not None
                         and self.plugins[d].record.state not in _NOT_BROUGHT_UP)]
        self._restarting.update(group)
        try:
            for member in reversed(group):
                await self.plugins[member].tear_down()
            for member in group:
                self.retries.cancel(member)
                self.plugins[member].reset()
                if (breaker := self.plugins[member].breaker) is not None:
                    breaker.reset()
            await set_up_in_order(self.plugins, group)
            await start_in_order(self.plugins, group)
            await asyncio.gather(*(check_health(self.plugins[m]) for m in group
                                   if self.plugins[m].record.state.serving))
        finally:
            self._restarting.difference_update(group)
        await self.settle(group)

    async def _load(self, plugin: PluginLifecycle) -> bool:
        """Import and register a plugin this process never did (released from
        quarantine); True when it is registered."""
        self._restarting.add(plugin.name)
        try:
            plugin.reset()
            await plugin.step(plugin.import_module)
            if plugin.record.phase is Phase.IMPORTED and await plugin.step(plugin.register):
                self._released.discard(plugin.name)
                self._registered(plugin)
                return True
            return False
        finally:
            self._restarting.discard(plugin.name)

    # -- outcomes ----------------------------------------------------------

    async def settle(self, names: list[str]) -> None:
        """After an attempt at `names`: schedule the next one for a plugin whose
        own stage code failed, note recoveries, count each outcome."""
        outcomes = []
        for name in names:
            record = self.plugins[name].record
            if record.state is PluginState.FAILED and record.retriable and self.policy is not None:
                record.update(attempts=record.attempts + 1)
                if record.attempts < self.policy.attempts:
                    self._schedule_retry(record)
                    continue
            if record.state.serving:
                if record.attempts:
                    log.info("plugin.recovered", plugin=name, attempts=record.attempts + 1)
                record.update(attempts=0, next_attempt_at=None)
                outcomes.append(self._ended(name, "up"))
            elif record.state is PluginState.FAILED:
                record.update(next_attempt_at=None)
                outcomes.append(self._ended(name, "failed", record.reason))
            elif record.state in (PluginState.SKIPPED, PluginState.DISABLED):
                outcomes.append(self._ended(name, "uncounted"))
        await asyncio.gather(*outcomes)

    def _schedule_retry(self, record: PluginRecord) -> None:
        delay_s = self.retries.policy.delay_s(record.attempts)
        self.retries.schedule(record.name, delay_s)
        record.update(state=PluginState.RETRYING,
                      next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay_s))
        log.warning("plugin.retry_scheduled", plugin=record.name,
                    stage=record.stage.value if record.stage else None,
                    attempt=record.attempts, delay_s=delay_s, reason=record.reason)

    def retrying_detail(self, record: PluginRecord) -> tuple[str, int]:
        """The 503 detail of a retrying plugin's routes, and its Retry-After."""
        after = self.retries.retry_after_s(record.name)
        return (f"{record.name} subsystem retrying: {record.reason}; attempt {record.attempts} of "
                f"{self.retries.policy.attempts} failed, next in {after} s", after)

    async def _ended(self, name: str, outcome: Outcome, reason: str | None = None) -> None:
        if self.starts is not None:
            await self.starts.ended(name, outcome, reason)

    async def release(self, name: str) -> bool:
        """Clear `name`'s quarantine (False if it was not quarantined); this
        process may then bring it up through `restart`."""
        if self.starts is None or not await self.starts.release(name):
            return False
        plugin = self.plugins.get(name)
        if plugin is not None and plugin.record.state is PluginState.QUARANTINED:
            self._released.add(name)
            plugin.record.update(state=PluginState.FAILED, stage=None,
                                 reason="released from quarantine; restart it to load it")
        return True

    async def close(self) -> None:
        """Cancel every retry. A plugin still retrying, or mid-attempt, did not
        fail this start: its stage marker goes, so the next start does not
        take it for a crash."""
        await self.retries.close()
        await asyncio.gather(*(self._ended(name, "uncounted") for name, plugin in self.plugins.items()
                               if plugin.record.state in (PluginState.RETRYING, PluginState.PENDING)))
