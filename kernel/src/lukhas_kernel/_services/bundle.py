"""The kernel's own services: storage, accounts, rate limits, cache, persisted flags."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from .._core.isolation import describe
from .._core.private_files import check_private
from .._core.settings import KernelSettings, SettingsError
from .accounts import Accounts
from .cache import Cache
from .ratelimit import RateLimits
from .storage import Database, StorageError, default_url

__all__ = ["KERNEL_MIGRATIONS", "Services", "database_from"]

KERNEL_MIGRATIONS = Path(__file__).parent / "migrations"
#: The kernel's extra that installs each supported server database driver.
_DRIVER_EXTRAS = {"asyncpg": "postgres"}


@dataclass
class Services:
    db: Database
    accounts: Accounts
    limits: RateLimits
    cache: Cache
    # Set when this start created the first admin: shown once, never logged.
    first_admin_token: str | None = None

    @classmethod
    async def open(cls, settings: KernelSettings, *, create_admin: bool = True) -> Services:
        """Open the database and bring the kernel's tables to head.

        Raises StorageError (one line) when the database cannot be used.
        """
        # Unusable URIs stop start-up before the database is touched.
        limits = RateLimits(settings.rate_limit_storage, settings.db_timeout_s)
        cache = Cache(settings.cache_url, settings.db_timeout_s)
        db = database_from(settings)
        try:
            await db.migrate("lukhas", KERNEL_MIGRATIONS, upgrade=settings.auto_migrate)
            accounts = Accounts(db, settings.auth_cache_ttl_s)
            token = await accounts.ensure_first_admin() if create_admin else None
        except StorageError:
            await _dispose_failed(db)
            raise
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            await _dispose_failed(db)
            raise StorageError(f"cannot open database {db.shown_url}: {describe(exc)}") from None
        return cls(db, accounts, limits, cache, token)

    async def close(self) -> None:
        await self.limits.close()
        await self.cache.close()
        await self.db.dispose()


def database_from(settings: KernelSettings) -> Database:
    """The kernel's database as the settings name it (nothing is opened yet).

    Raises SettingsError for a URL that cannot be used at all, StorageError
    when the SQLite file's directory cannot be created.
    """
    url = settings.database_url or default_url(settings.data_dir)
    check_private(settings.data_dir)
    try:
        return Database(url, settings.db_timeout_s, settings.db_busy_timeout_ms)
    except ImportError as exc:  # a driver that is not installed: name the extra that installs it
        driver = make_url(url).get_driver_name()
        extra = _DRIVER_EXTRAS.get(driver)
        reason = (f"the {driver} driver is not installed: pip install 'lukhas-kernel[{extra}]'"
                  if extra else describe(exc))
        raise SettingsError("LUKHAS_DATABASE_URL", reason) from None
    except SQLAlchemyError as exc:  # unparsable URL, unknown or sync driver
        raise SettingsError("LUKHAS_DATABASE_URL", describe(exc)) from None
    except OSError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        raise StorageError(f"cannot open database {shown}: {describe(exc)}") from None


async def _dispose_failed(db: Database) -> None:
    """Dispose of a database that could not be opened, before the caller exits.

    aiosqlite stops a connection that failed to open on the connection's own
    thread, which then reports to the event loop; if the loop closed first
    (the CLI exits at once), that thread prints a traceback. Wait for it.
    """
    await db.dispose()
    stray = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]

    def join_all() -> None:
        for thread in stray:
            thread.join(1.0)

    await asyncio.to_thread(join_all)
