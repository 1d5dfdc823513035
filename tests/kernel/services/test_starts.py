"""The start ledger: consecutive failed starts per plugin, stage markers, and
markers of processes that did not survive their start counted as failed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from lukhas_kernel._services.bundle import KERNEL_MIGRATIONS
from lukhas_kernel._services.starts import Quarantine, StartLedger, plugin_markers
from lukhas_kernel._services.storage import Database
from support.database import on_database

pytestmark = pytest.mark.both_databases

HOST = socket.gethostname()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The test's database with the kernel's tables at head."""
    database = Database(database_url, timeout_s=10)
    await database.migrate("lukhas", KERNEL_MIGRATIONS)
    yield database
    await database.dispose()


def dead_pid() -> int:
    """The pid of a process of this host that has ended (started and waited for)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


async def markers(database_url: str) -> dict[tuple[str, str], str]:
    """(plugin, process) -> stage, read on a connection of its own."""
    def read(connection: sa.Connection) -> dict[tuple[str, str], str]:
        rows = connection.execute(sa.select(plugin_markers)).all()
        return {(row.plugin, row.process): row.stage for row in rows}

    return await on_database(database_url, read)


async def test_a_ledger_names_this_process_by_default(db):
    assert StartLedger(db).process == f"{HOST}:{os.getpid()}"


async def test_failed_starts_count_and_a_start_that_came_up_resets(db):
    ledger = StartLedger(db)
    for reason in ("boom", "bang"):
        await ledger.stage_started("notes", "setup")
        await ledger.start_ended("notes", "failed", "setup", reason)
    assert await ledger.quarantined(2) == {"notes": Quarantine("notes", 2, "setup", "bang")}
    await ledger.stage_started("notes", "startup")
    await ledger.start_ended("notes", "up")
    assert await ledger.quarantined(1) == {}


async def test_an_uncounted_start_leaves_the_count_as_it_is(db):
    ledger = StartLedger(db)
    await ledger.start_ended("notes", "failed", "migrate", "no table")
    await ledger.start_ended("notes", "uncounted")
    assert await ledger.quarantined(1) == {"notes": Quarantine("notes", 1, "migrate", "no table")}


async def test_a_marker_is_committed_per_stage_and_goes_with_the_outcome(db, database_url):
    ledger = StartLedger(db)
    await ledger.stage_started("notes", "import")
    await ledger.stage_started("notes", "setup")
    assert await markers(database_url) == {("notes", ledger.process): "setup"}
    await ledger.start_ended("notes", "uncounted")
    assert await markers(database_url) == {}


async def test_begin_counts_the_marker_of_a_dead_process_as_a_failed_start(db, database_url):
    gone = StartLedger(db, process=f"{HOST}:{dead_pid()}")
    await gone.start_ended("notes", "failed", "startup", "timed out")
    await gone.stage_started("notes", "setup")
    await StartLedger(db).begin()
    assert await StartLedger(db).quarantined(1) == {
        "notes": Quarantine("notes", 2, "setup", "process exited during setup")}
    assert await markers(database_url) == {}


async def test_begin_counts_a_stale_marker_with_this_process_pid(db, database_url):
    # A predecessor with the same pid (a container's pid 1, restarted) left it.
    ledger = StartLedger(db)
    await ledger.stage_started("notes", "import")
    await ledger.begin()
    assert await ledger.quarantined(1) == {
        "notes": Quarantine("notes", 1, "import", "process exited during import")}
    assert await markers(database_url) == {}


async def test_begin_leaves_markers_of_live_processes_and_of_other_hosts(db, database_url):
    alive = StartLedger(db, process=f"{HOST}:{os.getppid()}")
    elsewhere = StartLedger(db, process=f"not-{HOST}:{dead_pid()}")
    await alive.stage_started("notes", "setup")
    await elsewhere.stage_started("notes", "startup")
    await StartLedger(db).begin()
    assert await StartLedger(db).quarantined(1) == {}
    assert await markers(database_url) == {("notes", alive.process): "setup",
                                           ("notes", elsewhere.process): "startup"}


async def test_quarantined_from_the_threshold_on_and_never_for_zero(db):
    ledger = StartLedger(db)
    for _ in range(3):
        await ledger.start_ended("notes", "failed", "setup", "boom")
    await ledger.start_ended("vivox", "failed", "import", "no module")
    assert set(await ledger.quarantined(3)) == {"notes"}
    assert set(await ledger.quarantined(1)) == {"notes", "vivox"}
    assert await ledger.quarantined(4) == {}
    assert await ledger.quarantined(0) == {}


async def test_release_clears_only_a_quarantined_plugin(db):
    ledger = StartLedger(db)
    for _ in range(2):
        await ledger.start_ended("notes", "failed", "setup", "boom")
    assert await ledger.release("notes", 3) is False  # 2 of 3: not quarantined
    assert await ledger.release("unknown", 3) is False
    assert await ledger.release("notes", 0) is False  # 0: nothing is ever quarantined
    assert await ledger.release("notes", 2) is True
    assert await ledger.quarantined(1) == {}
    assert await ledger.release("notes", 2) is False
    await ledger.start_ended("notes", "failed", "setup", "boom")  # counting starts afresh
    assert await ledger.quarantined(1) == {"notes": Quarantine("notes", 1, "setup", "boom")}


async def test_the_ledger_tables_exist_only_once_migrated(database_url):
    database = Database(database_url, timeout_s=10)
    try:
        assert await StartLedger(database).has_tables() is False
        await database.migrate("lukhas", KERNEL_MIGRATIONS)
        assert await StartLedger(database).has_tables() is True
    finally:
        await database.dispose()


def test_detail_names_the_count_and_the_last_failure():
    quarantine = Quarantine("notes", 3, "setup", "process exited during setup")
    assert quarantine.detail == ("notes subsystem quarantined: failed 3 consecutive starts, "
                                 "last: setup: process exited during setup")
