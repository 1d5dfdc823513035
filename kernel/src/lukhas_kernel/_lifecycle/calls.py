"""The one seam every lifecycle call into a plugin goes through: isolation
(deadline, one-line reason) with the chaos plan's fault for the stage first."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._core.isolation import import_in_thread, run_isolated
from .._plugin.states import Stage
from .chaos import ChaosPlan

__all__ = ["PluginCalls"]


class PluginCalls:
    """Runs plugin code for the lifecycle; raises StageError with the reason."""

    def __init__(self, timeout_s: float, chaos: ChaosPlan) -> None:
        self.timeout_s = timeout_s
        self.chaos = chaos

    async def run(self, plugin: str, stage: Stage | None, call: Callable[[], Any]) -> tuple[Any, float]:
        """`call()` (sync or async) within the plugin timeout; (result, elapsed ms).

        A fault the chaos plan holds for (`plugin`, `stage`) is applied first,
        inside the same deadline, so it takes the path a real failure takes.
        """
        if stage is None or self.chaos.fault(plugin, stage) is None:
            return await run_isolated(plugin, self.timeout_s, call)
        return await run_isolated(plugin, self.timeout_s, call,
                                  lambda: self.chaos.inject(plugin, stage))

    async def import_module(self, plugin: str, module: str) -> tuple[ModuleType, float]:
        """Import `module` off the event loop, within the plugin timeout."""
        def inject() -> None:
            self.chaos.inject_sync(plugin, Stage.IMPORT)

        result, ms = await run_isolated(plugin, self.timeout_s,
                                        lambda: import_in_thread(module, inject))
        return result, ms
