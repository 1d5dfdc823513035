"""What the observability plugin's setup creates, typed for its hooks and routes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from lukhas_kernel import KernelView, PluginContext
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .metrics import StartupGauge
from .models import ObservabilitySettings
from .request_metrics import HttpMetrics
from .status import TrafficWindow


@dataclass
class ObservabilityRuntime:
    http: HttpMetrics
    window: TrafficWindow
    # prometheus-client's collector of every worker's files, with `--workers N`.
    multiprocess: MultiProcessCollector | None
    startup: StartupGauge | None
    collectors: list[Collector]
    sampler: asyncio.Task[None] | None = field(default=None, repr=False)


ObservabilityContext = PluginContext[ObservabilitySettings, ObservabilityRuntime]


def kernel_of(context: ObservabilityContext) -> KernelView:
    """The kernel view every loaded plugin is handed."""
    if context.kernel is None:
        raise RuntimeError("observability needs the kernel's view of its plugins")
    return context.kernel
