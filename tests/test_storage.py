"""Storage: migrations per owner, failures isolated, 503 and recovery while serving."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import plugin_states, problem
from lukhas_kernel._storage import Database, default_url
from lukhas_kernel.testing import KERNEL_KEY

NOTES_MIGRATIONS = Path(__file__).parent / "sample_plugins" / "notes_migrations"


def tables(db_file: Path) -> dict[str, list[str]]:
    with sqlite3.connect(db_file) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: [c[1] for c in conn.execute(f"PRAGMA table_info({name})")] for name in names}


async def test_migrations_from_empty(lukhas_host, tmp_path):
    client = await lukhas_host(["sample_plugins.notes"], data_dir=tmp_path / "d")
    assert (await plugin_states(client))["notes"]["state"] == "active"
    found = tables(tmp_path / "d" / "lukhas.db")
    assert {"lukhas_users", "lukhas_tokens", "lukhas_flags", "lukhas_alembic_version",
            "notes_items", "notes_alembic_version"} <= found.keys()
    assert "pinned" in found["notes_items"]
    with sqlite3.connect(tmp_path / "d" / "lukhas.db") as conn:
        assert conn.execute("SELECT version_num FROM notes_alembic_version").fetchall() == [("notes_0002",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_upgrade_of_an_existing_database_keeps_data(lukhas_host, tmp_path):
    # The database as an older release of the plugin left it: revision 1 only.
    old = tmp_path / "old_migrations"
    old.mkdir()
    shutil.copy(NOTES_MIGRATIONS / "0001_notes_items.py", old)
    data_dir = tmp_path / "d"
    db = Database(default_url(data_dir), timeout_s=5)
    await db.migrate("notes", old)
    async with db.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO notes_items (id, owner, text) VALUES ('nte_old', 'usr_x', 'kept')")
    await db.dispose()
    assert "pinned" not in tables(data_dir / "lukhas.db")["notes_items"]

    client = await lukhas_host(["sample_plugins.notes"], data_dir=data_dir)
    assert (await plugin_states(client))["notes"]["state"] == "active"
    with sqlite3.connect(data_dir / "lukhas.db") as conn:
        assert conn.execute("SELECT id, text, pinned FROM notes_items").fetchall() == [("nte_old", "kept", 0)]


async def test_failing_migration_fails_only_that_plugin(lukhas_host, tmp_path):
    client = await lukhas_host(["sample_plugins.broken_migration", "sample_plugins.notes"],
                               data_dir=tmp_path / "d")
    states = await plugin_states(client)
    assert states["broken_migration"]["state"] == "failed"
    assert states["broken_migration"]["reason"] == "migrate: OperationalError: no such table: no_such_table"
    assert states["notes"]["state"] == "active"
    await problem(await client.get("/api/v1/broken_migration/ping"), 503)
    # The failed revision was rolled back whole.
    assert "broken_migration_items" not in tables(tmp_path / "d" / "lukhas.db")


async def test_without_auto_migrate_an_outdated_plugin_fails(lukhas_host, tmp_path):
    data_dir = tmp_path / "d"
    first = await lukhas_host([], data_dir=data_dir)  # kernel tables only
    await first.close()
    client = await lukhas_host(["sample_plugins.notes"], data_dir=data_dir, auto_migrate=False)
    item = (await plugin_states(client))["notes"]
    assert item["state"] == "failed"
    assert item["reason"] == ("migrate: StorageError: notes tables are at revision None, "
                              "the code needs notes_0002: run `lukhas db upgrade`")


@pytest.mark.chaos
async def test_database_unavailable_while_serving_is_503_then_recovers(lukhas_host, tmp_path):
    """Another process holds SQLite's write lock past the busy timeout, then lets go."""
    client = await lukhas_host(["sample_plugins.notes"], data_dir=tmp_path / "d", db_busy_timeout_ms=50)
    assert (await client.post("/api/v1/notes", json={"text": "before"})).status == 201

    blocker = sqlite3.connect(tmp_path / "d" / "lukhas.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = await client.post("/api/v1/notes", json={"text": "during"})
        body = await problem(response, 503)
        assert body["detail"] == "storage unavailable; retry shortly"
        assert response.headers["Retry-After"] == "1"
        flags = await client.patch("/api/v1/admin/flags", json={"NOTES_SHOUT_ENABLED": True})
        await problem(flags, 503)
        assert (await client.get("/healthz")).status == 200
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    response = await client.post("/api/v1/notes", json={"text": "after"})
    assert response.status == 201
    with sqlite3.connect(tmp_path / "d" / "lukhas.db") as conn:
        assert sorted(r[0] for r in conn.execute("SELECT text FROM notes_items")) == ["after", "before"]
    assert (await (await client.get("/api/v1/admin/flags")).json())["NOTES_SHOUT_ENABLED"] is False


async def test_engine_is_disposed_at_shutdown(lukhas_host, tmp_path):
    client = await lukhas_host(["sample_plugins.notes"], data_dir=tmp_path / "d")
    engine = client.app[KERNEL_KEY].services.db.engine
    assert (await client.post("/api/v1/notes", json={"text": "x"})).status == 201
    await client.close()
    assert engine.pool.checkedin() == 0


def _alembic_head(versions):
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from lukhas_kernel._services import KERNEL_MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(KERNEL_MIGRATIONS.parent / "_alembic"))
    config.set_main_option("version_locations", str(versions))
    config.set_main_option("path_separator", "os")
    return ScriptDirectory.from_config(config).get_current_head()


def test_head_read_without_alembic_agrees_with_alembic(tmp_path):
    from pathlib import Path

    import lukhas_dreams
    import lukhas_glyphs
    import lukhas_vivox
    from lukhas_kernel._services import KERNEL_MIGRATIONS
    from lukhas_kernel._storage import declared_head

    directories = [KERNEL_MIGRATIONS, Path(__file__).parent / "sample_plugins" / "notes_migrations",
                   *(Path(m.__file__).parent / "migrations"
                     for m in (lukhas_dreams, lukhas_vivox, lukhas_glyphs))]
    for versions in directories:
        assert declared_head(versions) == _alembic_head(versions), versions
    # A merge of two branches is left to Alembic.
    merge = tmp_path / "merge"
    merge.mkdir()
    for name, down in (("a", "None"), ("b", '"a"'), ("c", '"a"')):
        (merge / f"{name}.py").write_text(f'revision = "{name}"\ndown_revision = {down}\n')
    (merge / "d.py").write_text('revision = "d"\ndown_revision = ("b", "c")\n')
    assert declared_head(merge) is None
