"""`lukhas plugins release NAME` and the quarantine in `lukhas plugins list`,
as real processes on the test's database."""

from __future__ import annotations

import json

import pytest
from lukhas_kernel._services.bundle import KERNEL_MIGRATIONS
from lukhas_kernel._services.starts import Quarantine, StartLedger
from lukhas_kernel._services.storage import Database
from support.cli import cli, data_dir, ok, one_line_error

pytestmark = pytest.mark.both_databases

PLUGINS = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy"}


async def failed_starts(database_url: str, plugin: str, count: int) -> None:
    """`count` failed starts of `plugin`, on a database migrated to head."""
    db = Database(database_url, timeout_s=10)
    try:
        await db.migrate("lukhas", KERNEL_MIGRATIONS)
        for _ in range(count):
            await StartLedger(db).start_ended(plugin, "failed", "setup", "boom")
    finally:
        await db.dispose()


async def quarantined(database_url: str) -> dict[str, Quarantine]:
    db = Database(database_url, timeout_s=10)
    try:
        return await StartLedger(db).quarantined(1)
    finally:
        await db.dispose()


async def test_release_clears_a_quarantine_once(tmp_path, database_url, database_env):
    await failed_starts(database_url, "healthy", 3)
    released = ok(cli(tmp_path, "plugins", "release", "healthy", env=database_env))
    assert released == "released healthy: it is tried again at the next start\n"
    assert await quarantined(database_url) == {}
    again = cli(tmp_path, "plugins", "release", "healthy", env=database_env)
    assert one_line_error(again, 1) == "lukhas: healthy is not quarantined"


async def test_release_below_the_threshold_is_not_quarantined(tmp_path, database_url, database_env):
    await failed_starts(database_url, "healthy", 2)
    below = cli(tmp_path, "plugins", "release", "healthy", env=database_env)
    assert one_line_error(below, 1) == "lukhas: healthy is not quarantined"
    assert (await quarantined(database_url))["healthy"].failures == 2
    ok(cli(tmp_path, "plugins", "release", "healthy",
           env={**database_env, "LUKHAS_QUARANTINE_AFTER": "2"}))
    assert await quarantined(database_url) == {}


@pytest.mark.sqlite_only
def test_release_without_a_database_exits_2_and_creates_none(tmp_path):
    result = cli(tmp_path, "plugins", "release", "healthy")
    database = data_dir(tmp_path) / "lukhas.db"
    assert one_line_error(result, 2) == (
        f"lukhas: no database at {database}; start the host or set LUKHAS_DATA_DIR")
    assert not database.exists()


async def test_list_shows_quarantined_plugins(tmp_path, database_url, database_env):
    env = {**database_env, **PLUGINS}
    plain = ok(cli(tmp_path, "plugins", "list", env=env))
    assert plain.splitlines()[0].split() == ["NAME", "DISTRIBUTION", "VERSION", "ENABLED", "MODULE"]

    await failed_starts(database_url, "healthy", 3)
    header, *rows = ok(cli(tmp_path, "plugins", "list", env=env)).splitlines()
    assert header.split()[-1] == "STATE"
    healthy = next(row for row in rows if row.startswith("healthy "))
    assert healthy.endswith("quarantined (failed 3 consecutive starts, last: setup: boom)")
    assert all(row.endswith(" -") for row in rows if row is not healthy)

    listing = json.loads(ok(cli(tmp_path, "plugins", "list", "--json", env=env)))
    items = {item["name"]: item["quarantined"] for item in listing["items"]}
    assert items.pop("healthy") == {"failures": 3, "stage": "setup", "reason": "boom"}
    assert set(items.values()) == {None}


@pytest.mark.sqlite_only
def test_list_without_a_database_creates_none(tmp_path):
    listing = json.loads(ok(cli(tmp_path, "plugins", "list", "--json", env=PLUGINS)))
    assert {item["quarantined"] for item in listing["items"]} == {None}
    assert not (data_dir(tmp_path) / "lukhas.db").exists()
