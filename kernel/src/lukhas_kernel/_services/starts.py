"""Each plugin's consecutive failed host starts, and the stage markers of
starts under way: what crash-loop quarantine decides on.

A host process writes a marker (plugin, process, stage) before each of a
plugin's stages, committed before the stage runs, and deletes it with the
start's outcome. A marker left by a process that is gone is a start that
process did not survive (a segfault, `os._exit`, `kill -9`).

Invariant: a marker names its process as `<hostname>:<pid>`, and only
processes of the same host judge it: a pid means nothing elsewhere.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from .._core.processes import process_ended
from .accounts import metadata, now
from .storage import Database, UtcDateTime

__all__ = ["Quarantine", "StartLedger", "plugin_markers", "plugin_starts"]

plugin_starts = sa.Table(
    "lukhas_plugin_starts", metadata,
    sa.Column("plugin", sa.Text, primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_stage", sa.Text, nullable=True),
    sa.Column("last_reason", sa.Text, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
plugin_markers = sa.Table(
    "lukhas_plugin_markers", metadata,
    sa.Column("plugin", sa.Text, primary_key=True),
    sa.Column("process", sa.Text, primary_key=True),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True)
class Quarantine:
    """A plugin's run of failed starts, as stored."""

    plugin: str
    failures: int
    stage: str | None
    reason: str | None

    @property
    def summary(self) -> str:
        """Why it is quarantined: the plugin's reason, and the CLI's column."""
        return f"failed {self.failures} consecutive starts, last: {self.stage}: {self.reason}"

    @property
    def detail(self) -> str:
        """What its routes answer while it is quarantined."""
        return f"{self.plugin} subsystem quarantined: {self.summary}"


def this_process() -> str:
    """This process as markers name it: `<hostname>:<pid>`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _gone(pid: int) -> bool:
    """Whether process `pid` of this host has ended."""
    # A marker with this process's pid is a predecessor's.
    return pid == os.getpid() or process_ended(pid)


class StartLedger:
    """The two tables, read and written with the kernel's storage timeout."""

    def __init__(self, db: Database, process: str | None = None) -> None:
        self.db = db
        self.process = process or this_process()

    async def begin(self) -> None:
        """Once per host process, before any plugin is imported: count the
        starts this host's dead processes left under way as failed."""
        host = self.process.rpartition(":")[0]

        def run(connection: sa.Connection) -> None:
            for row in connection.execute(sa.select(plugin_markers)).all():
                marker_host, _, pid = row.process.rpartition(":")
                if marker_host != host or not pid.isdigit() or not _gone(int(pid)):
                    continue
                connection.execute(sa.delete(plugin_markers).where(
                    plugin_markers.c.plugin == row.plugin, plugin_markers.c.process == row.process))
                self._failed(connection, row.plugin, row.stage, f"process exited during {row.stage}")

        await self.db.write(run)

    async def has_tables(self) -> bool:
        """Whether the ledger's tables exist (a database not yet migrated to
        this kernel's revision has none, so nothing is quarantined there)."""
        return await self.db.read(lambda connection: sa.inspect(connection).has_table(plugin_starts.name))

    async def quarantined(self, after: int) -> dict[str, Quarantine]:
        """The plugins that failed at least `after` starts in a row (none for 0)."""
        if after <= 0:
            return {}

        def run(connection: sa.Connection) -> dict[str, Quarantine]:
            rows = connection.execute(sa.select(plugin_starts).where(plugin_starts.c.failures >= after))
            return {row.plugin: Quarantine(row.plugin, row.failures, row.last_stage, row.last_reason)
                    for row in rows}

        return await self.db.read(run)

    async def stage_started(self, plugin: str, stage: str) -> None:
        """Note `plugin`'s `stage` under way in this process; returns once committed."""
        values = {"stage": stage, "started_at": now()}
        statement = self.db.upsert(plugin_markers).values(plugin=plugin, process=self.process, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[plugin_markers.c.plugin, plugin_markers.c.process], set_=values)
        await self.db.write(lambda connection: connection.execute(statement))

    async def start_ended(self, plugin: str, outcome: Literal["up", "failed", "uncounted"],
                          stage: str | None = None, reason: str | None = None) -> None:
        """The outcome of this process's start for `plugin`: "up" resets its
        count, "failed" adds one, "uncounted" leaves it; the marker goes."""
        def run(connection: sa.Connection) -> None:
            connection.execute(sa.delete(plugin_markers).where(
                plugin_markers.c.plugin == plugin, plugin_markers.c.process == self.process))
            if outcome == "up":
                connection.execute(sa.delete(plugin_starts).where(plugin_starts.c.plugin == plugin))
            elif outcome == "failed":
                self._failed(connection, plugin, stage, reason)

        await self.db.write(run)

    async def release(self, plugin: str, after: int) -> bool:
        """Clear `plugin`'s count if it is quarantined; False if it is not."""
        def run(connection: sa.Connection) -> bool:
            if after <= 0:
                return False
            gone = connection.execute(sa.delete(plugin_starts).where(
                plugin_starts.c.plugin == plugin, plugin_starts.c.failures >= after))
            return bool(gone.rowcount)

        return await self.db.write(run)

    def _failed(self, connection: sa.Connection, plugin: str, stage: str | None,
                reason: str | None) -> None:
        # A traceback-sized reason would only bloat every listing that shows it.
        values = {"last_stage": stage, "last_reason": (reason or "")[:2000] or None, "updated_at": now()}
        statement = self.db.upsert(plugin_starts).values(plugin=plugin, failures=1, **values)
        connection.execute(statement.on_conflict_do_update(
            index_elements=[plugin_starts.c.plugin],
            set_={"failures": plugin_starts.c.failures + 1, **values}))
