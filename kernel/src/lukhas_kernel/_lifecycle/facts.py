"""The kernel's answers to plugins' questions (the `KernelView` they are handed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .._plugin.states import PluginView, StartupReport
from .records import PluginRecord, view_of
from .routes import RouteTable

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["KernelFacts"]


class KernelFacts:
    """Read-only snapshots of the kernel's records; implements `KernelView`."""

    def __init__(self, records: Callable[[], Mapping[str, PluginRecord]], table: RouteTable,
                 ready: Callable[[], bool],
                 declarations: Callable[[str], dict[str, list[Collector]]]) -> None:
        self._records = records
        self._table = table
        self._ready = ready
        self._declarations = declarations

    @property
    def ready(self) -> bool:
        return self._ready()

    def report(self) -> StartupReport:
        return StartupReport.of(self._records().values())

    def plugins(self) -> list[PluginView]:
        return [view_of(record) for record in self._records().values()]

    def owner_of(self, path: str) -> str | None:
        owner = self._table.owner_of(path)
        return owner if owner in self._records() else None

    def collectors(self) -> dict[str, list[Collector]]:
        return self._declarations("lukhas_metrics")
