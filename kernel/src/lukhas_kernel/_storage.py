"""Storage: one SQLAlchemy async engine, and Alembic migrations per owner.

The kernel and each plugin own their tables (named with their prefix) and
their migrations. Every owner keeps its revision in its own version table
(`<owner>_alembic_version`), so one plugin's migrations never block or break
another's, and a plugin installed later simply starts its own history.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["Database", "StorageError", "UtcDateTime", "default_url"]

_ALEMBIC_ENV = Path(__file__).parent / "_alembic"
_WRITE = "lukhas_write"  # execution option marking a `Database.begin()` connection


class StorageError(Exception):
    """The database cannot be used; the message is one line for a person."""


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite stores no offset and hands back naive values; everything stored
    is UTC, so the offset is put back on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC values")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


_REVISION = re.compile(r"""^revision\s*(?::[^=]*)?=\s*["']([^"']+)["']""", re.MULTILINE)
_DOWN = re.compile(r"""^down_revision\s*(?::[^=]*)?=\s*(?:None|["']([^"']+)["'])\s*$""", re.MULTILINE)


def declared_head(versions: Path) -> str | None:
    """The head of the linear history in `versions`, read without Alembic.

    None when it cannot be told this way (a merge, an unusual file): then
    Alembic itself is asked. Importing Alembic costs a fifth of a start-up.
    """
    revisions, parents = set(), set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN.search(text)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def default_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir.resolve() / 'lukhas.db'}"


class Database:
    """The engine plus the timeout every statement runs under.

    Plugins receive it as `context.db` and use ``async with db.begin() as conn``
    (a transaction) or ``async with db.connect() as conn`` (reads).
    """

    def __init__(self, url: str, timeout_s: float, busy_timeout_ms: int = 5000) -> None:
        self.url = make_url(url)
        self.timeout_s = timeout_s
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # A server connection may have been dropped while pooled; a file may not.
        # SQLite connections are reset by `_tune_sqlite`, only when needed.
        options: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite,
                                   "pool_reset_on_return": None if self.is_sqlite else "rollback"}
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        # Alembic keeps its migration context in module globals: one at a time.
        self._migrating = asyncio.Lock()
        # SQLite has one writer. Queueing this process's write transactions
        # here, in order, beats letting them race for the file lock: a loser
        # polls with SQLite's busy handler, whose sleeps grow to 100 ms, and
        # throughput under concurrent writes collapses (about 6 writes/s).
        self._writer: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self.is_sqlite else contextlib.nullcontext())
        if self.is_sqlite:
            self._tune_sqlite(busy_timeout_ms)

    def _tune_sqlite(self, busy_timeout_ms: int) -> None:
        @event.listens_for(self.engine.sync_engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers run beside the one writer; the busy timeout makes
            # a second writer (the CLI, another host) wait instead of failing.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # The driver's own transaction handling skips DDL (a failed
            # migration would stay half-applied); SQLAlchemy issues BEGIN itself.
            dbapi_connection.isolation_level = None

        @event.listens_for(self.engine.sync_engine.pool, "reset")
        def on_reset(dbapi_connection: Any, _record: Any, state: Any) -> None:
            # A connection comes back with a transaction open only when its
            # commit or rollback was interrupted; it must not keep the write
            # lock. Otherwise there is nothing to roll back, and asking costs
            # a round trip to the driver's thread on every request.
            if state.terminate_only:
                return
            driver = getattr(dbapi_connection, "_connection", None)  # the aiosqlite Connection
            if driver is None or driver.in_transaction:
                dbapi_connection.rollback()

        @event.listens_for(self.engine.sync_engine, "begin")
        def on_begin(connection: sa.Connection) -> None:
            # A write transaction (`begin()`) takes the write lock up front: one
            # that reads then writes (a check, then an insert) would otherwise
            # fail at once with "database is locked" when another writer
            # committed meanwhile, instead of waiting under the busy timeout.
            # Reads (`connect()`) issue no BEGIN: each statement reads its own
            # snapshot, and a request's read costs a third of the round trips
            # to the driver's thread.
            if connection.get_execution_options().get(_WRITE, False):
                connection.exec_driver_sql("BEGIN IMMEDIATE")

    @property
    def shown_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on success, within the storage timeout."""
        async with asyncio.timeout(self.timeout_s), self._writer, self._transaction() as connection:
            yield connection

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            await connection.execution_options(**{_WRITE: True})
            async with connection.begin():
                yield connection

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, within the storage timeout."""
        async with asyncio.timeout(self.timeout_s), self.engine.connect() as connection:
            yield connection

    async def ping(self) -> None:
        async with self.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def revision(self, owner: str) -> str | None:
        """`owner`'s recorded revision, read without Alembic (None if none)."""
        table = f"{owner}_alembic_version"
        async with self.connect() as conn:
            exists = await conn.run_sync(lambda sync: sa.inspect(sync).has_table(table))
            if not exists:
                return None
            return await conn.scalar(sa.text(f'SELECT version_num FROM "{table}"'))

    async def migrate(self, owner: str, versions: Path, *, upgrade: bool = True) -> str | None:
        """Bring `owner`'s tables to the head of its migrations in `versions`.

        With `upgrade` False, only check: raise StorageError unless at head.
        A database already at the head its revision files declare is left
        without importing Alembic (a fifth of the host's start-up time).
        Returns the revision the database is at afterwards.
        """
        head = await asyncio.to_thread(declared_head, versions)
        if head is not None and await self.revision(owner) == head:
            return head
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(_ALEMBIC_ENV))
        config.set_main_option("version_locations", str(versions))
        config.set_main_option("path_separator", "os")
        table = f"{owner}_alembic_version"
        config.attributes["version_table"] = table

        def run(connection: sa.Connection) -> str | None:
            config.attributes["connection"] = connection
            head = ScriptDirectory.from_config(config).get_current_head()
            current = MigrationContext.configure(
                connection, opts={"version_table": table}).get_current_revision()
            if current != head:
                if not upgrade:
                    raise StorageError(
                        f"{owner} tables are at revision {current}, the code needs {head}: "
                        "run `lukhas db upgrade`")
                command.upgrade(config, "head")
            return head

        async with self._migrating, self._transaction() as connection:
            return await connection.run_sync(run)

    async def dispose(self) -> None:
        await self.engine.dispose()
