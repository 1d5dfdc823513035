"""Storage: one SQLAlchemy async engine, and Alembic migrations per owner.

The kernel and each plugin own their tables (named with their prefix) and
their migrations. Every owner keeps its revision in its own version table
(`<owner>_alembic_version`), so one plugin's migrations never block or break
another's, and a plugin installed later simply starts its own history.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url

from .._core.deadlines import Deadlines
from .._core.private_files import check_private, private_file
from .group_commit import Write, WriteGroup
from .loop_reads import NotNow
from .revision_files import MigrationError, declared_head, failed_revision
from .sqlite_threads import WRITE, SqliteThreads, tune_sqlite

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["Database", "MigrationError", "StorageError", "UtcDateTime", "declared_head",
           "default_url"]

_ALEMBIC_ENV = Path(__file__).parent / "alembic"
T = TypeVar("T")


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


def default_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir.resolve() / 'lukhas.db'}"


def _asyncpg_connect_args(timeout_s: float, busy_timeout_ms: int) -> dict[str, Any]:
    """PostgreSQL's side of the storage timeout and the busy timeout.

    The client stops waiting after `timeout_s` (`asyncio.timeout`); the
    server is told to stop too (`statement_timeout`), so an abandoned query
    does not hold locks or a backend. A statement waits for a lock at most
    `busy_timeout_ms` (`lock_timeout`), as SQLite waits for its write lock;
    0 there means "do not wait", which PostgreSQL spells 1 ms (0 is forever).
    """
    return {"timeout": timeout_s,  # connecting
            "server_settings": {"application_name": "lukhas",
                                "statement_timeout": str(max(1, round(timeout_s * 1000))),
                                "lock_timeout": str(max(1, busy_timeout_ms))}}


def _connect_reporting_os_errors(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Connect; a server that cannot be reached is a storage error like any other.

    asyncpg raises OSError (refused, reset, unknown host) when it cannot
    connect, which SQLAlchemy passes on unwrapped: as the driver's
    OperationalError it is wrapped, and answered 503 like the rest instead
    of a 500 for an unknown exception.
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        raise dialect.loaded_dbapi.OperationalError(f"{type(exc).__name__}: {exc}") from exc


def _data_errors_as_such(context: ExceptionContext) -> BaseException | None:
    """A value the server refuses (SQLSTATE class 22: a NUL in a string, an
    integer past its column's range) as `sqlalchemy.exc.DataError`, which the
    host answers 422: asyncpg's are otherwise wrapped as a generic DBAPIError,
    indistinguishable from an outage (503)."""
    original = context.original_exception
    if (isinstance(context.sqlalchemy_exception, sa.exc.DBAPIError)
            and not isinstance(context.sqlalchemy_exception, sa.exc.DataError)
            and str(getattr(original, "sqlstate", None) or "").startswith("22")):
        return sa.exc.DataError(context.statement, context.parameters, original,
                                hide_parameters=True)
    return None


class Database:
    """The engine plus the timeout every statement runs under.

    Plugins receive it as `context.db`. ``await db.read(fn)`` and
    ``await db.write(fn)`` run a synchronous function of a `sa.Connection`:
    a read, or a write transaction. On a SQLite file that is one hop to a
    worker thread, the fast path for a request. ``async with db.begin() as
    conn`` (a transaction) and ``async with db.connect() as conn`` (reads) give
    an `AsyncConnection`, for code that awaits between statements.
    """

    def __init__(self, url: str, timeout_s: float, busy_timeout_ms: int = 5000) -> None:
        self.url = make_url(url)
        self.timeout_s = timeout_s
        # A write's caller stops waiting past the timeout (`Write.time_out`).
        self._write_deadlines: Deadlines[Write[Any]] = Deadlines(timeout_s, Write.time_out)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # A server connection may have been dropped while pooled; a file may not.
        # SQLite connections are reset by `tune_sqlite`, only when needed.
        # hide_parameters: a statement's values (a token's hash, a user's
        # data) never appear in an error's message, and so never in a log.
        options: dict[str, Any] = {"hide_parameters": True, "pool_pre_ping": not self.is_sqlite,
                                   "pool_reset_on_return": None if self.is_sqlite else "rollback"}
        # `:memory:` (or no name) is private to one connection; a file is shared.
        sqlite_file = self.is_sqlite and self.url.database not in (None, "", ":memory:")
        if sqlite_file:
            # Created 0600 before SQLite opens it: SQLite gives the -wal and
            # -shm files it creates the database file's mode.
            database = private_file(Path(self.url.database or ""))
            for companion in ("-wal", "-shm"):
                check_private(database.with_name(database.name + companion))
        if self.url.get_driver_name() == "asyncpg":
            options["connect_args"] = _asyncpg_connect_args(timeout_s, busy_timeout_ms)
        self._engine_options = options
        self._busy_timeout_ms = busy_timeout_ms
        # On a SQLite file `read` and `write` need no async engine: it is made
        # on first use (`begin`, `connect`, a migration), so a host whose
        # code uses only those never imports SQLAlchemy's asyncio extension
        # and ORM (a sixth of its start-up). Its driver is checked now all the same.
        self._engine: AsyncEngine | None = None
        if not sqlite_file:
            self._engine = self._create_engine()
        elif not self.url.get_dialect().is_async:
            raise sa.exc.ArgumentError(f"the driver {self.url.get_driver_name()!r} is not async: "
                                       "use sqlite+aiosqlite://")
        # Alembic keeps its migration context in module globals: one at a time.
        self._migrating = asyncio.Lock()
        # SQLite has one writer. Queueing this process's write transactions
        # (on a file: on the writer thread, see `_writes_held`), in order,
        # beats letting them race for the file lock: a loser polls with
        # SQLite's busy handler, whose sleeps grow to 100 ms, and throughput
        # under concurrent writes collapses (about 6 writes/s).
        self._write_lock = asyncio.Lock() if self.is_sqlite and not sqlite_file else None
        # A file database is also opened with the stdlib driver, for `read` and `write`.
        self._threads = SqliteThreads(self.url, busy_timeout_ms, timeout_s) if sqlite_file else None

    @property
    def engine(self) -> AsyncEngine:
        """The async engine (on a SQLite file, made now if not yet)."""
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> AsyncEngine:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.url, **self._engine_options)
        if self.is_sqlite:
            tune_sqlite(engine.sync_engine, self._busy_timeout_ms)
        else:
            event.listen(engine.sync_engine, "do_connect", _connect_reporting_os_errors)
            event.listen(engine.sync_engine, "handle_error", _data_errors_as_such)
        return engine

    @property
    def shown_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on success, within the storage timeout."""
        async with asyncio.timeout(self.timeout_s), self._writes_held(), self._transaction() as connection:
            yield connection

    @asynccontextmanager
    async def _writes_held(self) -> AsyncIterator[None]:
        """This process's other SQLite writes held back while a transaction
        runs on the async engine; in order: those queued before commit first."""
        if self._threads is None:
            async with self._write_lock or contextlib.nullcontext():
                yield
            return
        hold = self._threads.hold_writer()
        try:
            await asyncio.wrap_future(hold.granted)
            yield
        finally:
            hold.release()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            await connection.execution_options(**{WRITE: True})
            async with connection.begin():
                yield connection

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, within the storage timeout."""
        async with asyncio.timeout(self.timeout_s), self.engine.connect() as connection:
            yield connection

    async def read(self, fn: Callable[[sa.Connection], T], *, short: bool = False) -> T:
        """`fn(connection)` for reads, within the storage timeout.

        On a SQLite file it runs on a reader thread; elsewhere in a greenlet
        on the loop, whose driver calls are awaited (`AsyncConnection.run_sync`).
        Either way the loop is never blocked. `fn` must only use the database.
        A `short` read (a few rows through an index, little Python) runs on a
        SQLite file's loop connection at once, unless it would wait or runs
        long: then on a reader thread (loop_reads.py), so `fn` may run twice.
        """
        if self._threads is None:
            async with self.connect() as connection:
                return await connection.run_sync(fn)
        if short:
            with contextlib.suppress(NotNow):
                return self._threads.read_now(fn)
        async with asyncio.timeout(self.timeout_s):
            # Past the timeout the thread finishes the read and drops the result.
            return await asyncio.wrap_future(self._threads.read(fn))

    async def write(self, fn: Callable[[sa.Connection], T]) -> T:
        """`fn(connection)` in a write transaction, committed when it returns,
        within the storage timeout (see `read` for where it runs).

        On a SQLite file, concurrent writes are group-committed: the writer
        thread runs what is queued, each `fn` in its own savepoint (one that
        raises is undone alone), then commits once; each caller is answered
        after that commit. A caller that times out gets TimeoutError (503);
        its write is rolled back unless `fn` had already returned, so a write
        is at most ambiguous when unanswered, never lost when answered.
        """
        if self._threads is None:
            async with self.begin() as connection:
                return await connection.run_sync(fn)
        write = Write(fn)
        self._threads.write(write)
        return await write.outcome(self._write_deadlines)

    def write_group(self, finish: Callable[[sa.Connection, list[T]], object]) -> WriteGroup[T]:
        """Writes that all end with `finish(conn, results)` (a step that takes
        a lock they share), batched on PostgreSQL too: `await group.write(fn)`
        runs this process's queued writes of the group in one transaction,
        each `fn` in its own savepoint, then `finish` once with the results
        of those that succeeded, then one commit. Create it once (in setup)."""
        return WriteGroup(self.write, finish, batched=not self.is_sqlite,
                          deadlines=self._write_deadlines)

    def upsert(self, table: sa.Table) -> Any:
        """An INSERT into `table` that takes `.on_conflict_do_update(...)` or
        `.on_conflict_do_nothing(...)`: SQLite and PostgreSQL spell it alike,
        each in its own dialect's construct."""
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)

    async def ping(self) -> None:
        await self.read(lambda connection: connection.scalar(sa.text("SELECT 1")))

    async def revision(self, owner: str) -> str | None:
        """`owner`'s recorded revision, read without Alembic (None if none)."""
        table = f"{owner}_alembic_version"

        def read(connection: sa.Connection) -> str | None:
            if not sa.inspect(connection).has_table(table):
                return None
            version: str | None = connection.scalar(sa.text(f'SELECT version_num FROM "{table}"'))
            return version

        return await self.read(read, short=True)

    async def migrate(self, owner: str, versions: Path, *, upgrade: bool = True) -> str | None:
        """Bring `owner`'s tables to the head of its migrations in `versions`.

        With `upgrade` False, only check: raise StorageError unless at head.
        A database already at the head its revision files declare is left
        without importing Alembic (a fifth of the host's start-up time).
        Returns the revision the database is at afterwards.
        """
        head, current = await asyncio.gather(asyncio.to_thread(declared_head, versions),
                                             self.revision(owner))
        if head is not None and current == head:
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
            if connection.dialect.name == "postgresql":
                # Migrations are not bound by the storage timeout (a table rewrite
                # may take long); waiting for a lock still is (`lock_timeout`).
                connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
            try:
                head = ScriptDirectory.from_config(config).get_current_head()
            except Exception as exc:  # a revision file that cannot be read or placed
                raise failed_revision(exc, versions) from exc
            current = MigrationContext.configure(
                connection, opts={"version_table": table}).get_current_revision()
            if current != head:
                if not upgrade:
                    raise StorageError(
                        f"{owner} tables are at revision {current}, the code needs {head}: "
                        "run `lukhas db upgrade`")
                try:
                    command.upgrade(config, "head")
                except Exception as exc:
                    raise failed_revision(exc, versions) from exc
            return head

        async with self._migrating, self._transaction() as connection:
            return await connection.run_sync(run)

    async def dispose(self) -> None:
        if self._threads is not None:
            await asyncio.to_thread(self._threads.close)
        if self._engine is not None:
            await self._engine.dispose()

