"""The kernel as a plugin sees it: read-only facts about every plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lifecycle.records import PluginView, StartupReport

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from .._lifecycle.kernel import Kernel

__all__ = ["KernelView"]


class KernelView:
    """Handed to every plugin as `context.kernel`; nothing here changes the kernel.

    The observability plugin builds its metrics and status page from it. Every
    answer is a snapshot taken at the call.
    """

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel

    @property
    def ready(self) -> bool:
        """True once start-up has finished and the host serves."""
        return self._kernel.ready

    def report(self) -> StartupReport:
        """The start-up result (README.md, Plugin states), as it stands now."""
        return self._kernel.report()

    def plugins(self) -> list[PluginView]:
        """Every discovered plugin as `/api/v1/plugins` shows it."""
        return [PluginView.of(record) for record in self._kernel.records.values()]

    def owner_of(self, path: str) -> str | None:
        """The plugin whose route prefix holds `path`; None for the kernel's own
        paths and for paths nobody claimed."""
        record = self._kernel.owner_of(path)
        return record.name if record is not None else None

    def collectors(self) -> dict[str, list[Collector]]:
        """Every serving plugin's Prometheus collectors (hook `lukhas_metrics`), by plugin."""
        return self._kernel.declarations("lukhas_metrics")
