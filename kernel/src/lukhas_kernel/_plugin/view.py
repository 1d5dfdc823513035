"""The kernel as a plugin sees it: read-only facts about every plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .states import PluginView, StartupReport

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["KernelView"]


class KernelView(Protocol):
    """Handed to every plugin as `context.kernel`; nothing here changes the kernel.

    The observability plugin builds its metrics and status page from it. Every
    answer is a snapshot taken at the call.
    """

    @property
    def ready(self) -> bool:
        """True once start-up has finished and the host serves."""
        ...

    def report(self) -> StartupReport:
        """The start-up result (docs/plugin-states.md), as it stands now."""
        ...

    def plugins(self) -> list[PluginView]:
        """Every discovered plugin as `/api/v1/plugins` shows it."""
        ...

    def owner_of(self, path: str) -> str | None:
        """The plugin whose route prefix holds `path`; None for the kernel's own
        paths and for paths nobody claimed."""
        ...

    def collectors(self) -> dict[str, list[Collector]]:
        """Every serving plugin's Prometheus collectors (hook `lukhas_metrics`), by plugin."""
        ...
