"""Storage: migrations per owner, failures isolated, 503 and recovery while serving."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from lukhas_kernel._services.storage import Database
from lukhas_kernel.testing import KERNEL_KEY
from sqlalchemy.ext.asyncio import create_async_engine
from support.answers import plugin_states, problem
from support.database import on_database
from support.net import free_port
from support.paths import SAMPLE_PLUGINS

pytestmark = pytest.mark.both_databases

NOTES_MIGRATIONS = SAMPLE_PLUGINS / "notes_migrations"


async def tables(url: str) -> dict[str, list[str]]:
    """Each table with its columns."""
    def columns(conn: sa.Connection) -> dict[str, list[str]]:
        inspector = sa.inspect(conn)
        return {name: [column["name"] for column in inspector.get_columns(name)]
                for name in inspector.get_table_names()}

    return await on_database(url, columns)


async def test_migrations_from_empty(lukhas_host, database_url):
    client = await lukhas_host(["sample_plugins.notes"])
    assert (await plugin_states(client))["notes"]["state"] == "active"
    found = await tables(database_url)
    assert {"lukhas_users", "lukhas_tokens", "lukhas_flags", "lukhas_alembic_version",
            "notes_items", "notes_alembic_version"} <= found.keys()
    assert "pinned" in found["notes_items"]
    assert await client.app[KERNEL_KEY].services.db.revision("notes") == "notes_0002"


@pytest.mark.sqlite_only
async def test_sqlite_file_is_in_wal_mode(lukhas_host, tmp_path):
    await lukhas_host([])
    with sqlite3.connect(tmp_path / "data" / "lukhas.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_upgrade_of_an_existing_database_keeps_data(lukhas_host, database_url, tmp_path):
    # The database as an older release of the plugin left it: revision 1 only.
    old = tmp_path / "old_migrations"
    old.mkdir()
    shutil.copy(NOTES_MIGRATIONS / "0001_notes_items.py", old)
    db = Database(database_url, timeout_s=5)
    await db.migrate("notes", old)
    async with db.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO notes_items (id, owner, text) VALUES ('nte_old', 'usr_x', 'kept')")
    await db.dispose()
    assert "pinned" not in (await tables(database_url))["notes_items"]

    client = await lukhas_host(["sample_plugins.notes"])
    assert (await plugin_states(client))["notes"]["state"] == "active"
    response = await client.get("/api/v1/notes/nte_old")  # as the admin
    assert response.status == 200
    assert await response.json() == {"id": "nte_old", "owner": "usr_x", "text": "kept", "pinned": False}


async def test_failing_migration_fails_only_that_plugin(lukhas_host, database_url, backend):
    client = await lukhas_host(["sample_plugins.broken_migration", "sample_plugins.notes"],
                               plugin_retries=0)
    states = await plugin_states(client)
    assert states["broken_migration"]["state"] == "failed"
    # The revision file at fault, then the database's own words.
    assert states["broken_migration"]["reason"] == "migrate: MigrationError: 0001_broken.py " \
        "(revision broken_0001): " + {
            "sqlite": "OperationalError: no such table: no_such_table",
            "postgres": 'ProgrammingError: relation "no_such_table" does not exist',
        }[backend]
    assert states["notes"]["state"] == "active"
    await problem(await client.get("/api/v1/broken_migration/ping"), 503)
    # The failed revision was rolled back whole.
    assert "broken_migration_items" not in await tables(database_url)


async def test_without_auto_migrate_an_outdated_plugin_fails(lukhas_host, tmp_path):
    data_dir = tmp_path / "d"
    first = await lukhas_host([], data_dir=data_dir)  # kernel tables only
    await first.close()
    client = await lukhas_host(["sample_plugins.notes"], data_dir=data_dir, auto_migrate=False,
                               plugin_retries=0)
    item = (await plugin_states(client))["notes"]
    assert item["state"] == "failed"
    assert item["reason"] == ("migrate: StorageError: notes tables are at revision None, "
                              "the code needs notes_0002: run `lukhas db upgrade`")


@asynccontextmanager
async def writes_blocked(backend: str, url: str) -> AsyncIterator[None]:
    """Another process's transaction keeps every write waiting until the block ends.

    SQLite: it holds the file's write lock. PostgreSQL: it holds the written
    tables in EXCLUSIVE mode, which, like SQLite's lock, still lets reads through.
    """
    if backend == "sqlite":
        blocker = sqlite3.connect(sa.make_url(url).database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    else:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn, conn.begin():
                await conn.exec_driver_sql("LOCK TABLE notes_items, lukhas_flags IN EXCLUSIVE MODE")
                yield
        finally:
            await engine.dispose()


@pytest.mark.chaos
async def test_database_unavailable_while_serving_is_503_then_recovers(lukhas_host, database_url, backend):
    """Another process holds the write lock past the busy timeout (SQLite's
    busy_timeout, PostgreSQL's lock_timeout), then lets go."""
    client = await lukhas_host(["sample_plugins.notes"], db_busy_timeout_ms=50)
    assert (await client.post("/api/v1/notes", json={"text": "before"})).status == 201

    async with writes_blocked(backend, database_url):
        response = await client.post("/api/v1/notes", json={"text": "during"})
        body = await problem(response, 503)
        assert body["detail"] == "storage unavailable; retry shortly"
        assert response.headers["Retry-After"] == "1"
        flags = await client.patch("/api/v1/admin/flags", json={"NOTES_SHOUT_ENABLED": True})
        await problem(flags, 503)
        assert (await client.get("/healthz")).status == 200

    response = await client.post("/api/v1/notes", json={"text": "after"})
    assert response.status == 201
    texts = await on_database(database_url, lambda conn: conn.exec_driver_sql(
        "SELECT text FROM notes_items").scalars().all())
    assert sorted(texts) == ["after", "before"]
    assert (await (await client.get("/api/v1/admin/flags")).json())["NOTES_SHOUT_ENABLED"] is False


@pytest.mark.chaos
@pytest.mark.postgres_only
async def test_server_refusing_connections_is_503_then_recovers(lukhas_host, postgres_cluster, backend):
    """The server drops the host's connections and refuses new ones, then
    accepts them again: 503 meanwhile, then served on fresh connections."""
    client = await lukhas_host(["sample_plugins.notes"])
    assert (await client.post("/api/v1/notes", json={"text": "before"})).status == 201
    name = client.app[KERNEL_KEY].services.db.url.database
    postgres_cluster.sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    postgres_cluster.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        await problem(await client.post("/api/v1/notes", json={"text": "during"}), 503)
    finally:
        postgres_cluster.sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert (await client.post("/api/v1/notes", json={"text": "after"})).status == 201


async def test_unreachable_server_is_a_storage_error():
    """Not even a connection (refused): a SQLAlchemy error like any other, which
    the host answers 503 and start-up reports in one line."""
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/lukhas", 5)
    try:
        with pytest.raises(sa.exc.OperationalError, match="ConnectionRefusedError"):
            await db.ping()
    finally:
        await db.dispose()


async def test_engine_is_disposed_at_shutdown(lukhas_host, tmp_path):
    client = await lukhas_host(["sample_plugins.notes"], data_dir=tmp_path / "d")
    engine = client.app[KERNEL_KEY].services.db.engine
    assert (await client.post("/api/v1/notes", json={"text": "x"})).status == 201
    await client.close()
    assert engine.pool.checkedin() == 0


def _alembic_head(versions):
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from lukhas_kernel._services.bundle import KERNEL_MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(KERNEL_MIGRATIONS.parent / "alembic"))
    config.set_main_option("version_locations", str(versions))
    config.set_main_option("path_separator", "os")
    return ScriptDirectory.from_config(config).get_current_head()


def test_head_read_without_alembic_agrees_with_alembic(tmp_path):

    import lukhas_dreams
    import lukhas_glyphs
    import lukhas_vivox
    from lukhas_kernel._services.bundle import KERNEL_MIGRATIONS
    from lukhas_kernel._services.storage import declared_head

    directories = [KERNEL_MIGRATIONS, SAMPLE_PLUGINS / "notes_migrations",
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
