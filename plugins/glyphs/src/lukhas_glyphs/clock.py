"""The one clock of the plugin: tests replace `now` to move time, never sleep."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
