"""The vivox plugin's run-time objects, as `lukhas_setup` stores them in `context.runtime`."""

from __future__ import annotations

from dataclasses import dataclass

from lukhas_kernel import PluginContext

from .engine import DriftEngine
from .metrics import VivoxMetrics
from .models import VivoxSettings
from .store import VivoxStore

__all__ = ["VivoxContext", "VivoxRuntime"]


@dataclass(frozen=True)
class VivoxRuntime:
    """What setup creates: the store, the metrics and the drift engine over both."""

    store: VivoxStore
    metrics: VivoxMetrics
    engine: DriftEngine


VivoxContext = PluginContext[VivoxSettings, VivoxRuntime]
