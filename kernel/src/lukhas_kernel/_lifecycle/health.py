"""Health checks of one serving plugin: they move it between active and degraded only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from .._core.isolation import StageError, describe
from .._plugin.states import CheckResult, Stage
from .machine import PluginLifecycle

__all__ = ["check_health"]


async def check_health(plugin: PluginLifecycle) -> None:
    """Run every check the plugin declares (and an injected fault), concurrently."""
    parts, record = plugin.parts, plugin.record
    checks: dict[str, Callable[[], Any]] = {}
    if parts.calls.chaos.fault(plugin.name, Stage.HEALTH) is not None:
        checks["injected"] = partial(parts.calls.chaos.inject, plugin.name, Stage.HEALTH)
    problems: list[str] = []
    declared = parts.hooks.implementation("lukhas_health_checks", plugin.name)
    try:
        checks.update(declared(context=plugin.context) or {} if declared else {})
    except Exception as exc:
        problems.append(f"lukhas_health_checks raised {describe(exc)}")

    async def run(check: Callable[[], Any]) -> CheckResult:
        started = time.perf_counter()
        try:
            result, _ = await parts.calls.run(plugin.name, None, check)
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
    record.update(health_checks=results, health_problem="; ".join(problems) or None)
    plugin.apply_degraded()
