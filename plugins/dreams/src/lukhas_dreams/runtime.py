"""The dreams plugin's run-time objects, as `lukhas_setup` stores them in `context.runtime`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lukhas_kernel import PluginContext

from .engine import Engines
from .jobs import JobRunner
from .metrics import DreamMetrics
from .models import DreamsSettings
from .store import DreamStore

__all__ = ["DreamsContext", "DreamsRuntime"]


@dataclass(frozen=True)
class DreamsRuntime:
    """What setup creates: the store, the engines' threads, the engines, metrics and runner."""

    store: DreamStore
    threads: ThreadPoolExecutor
    engines: Engines
    metrics: DreamMetrics
    runner: JobRunner


DreamsContext = PluginContext[DreamsSettings, DreamsRuntime]
