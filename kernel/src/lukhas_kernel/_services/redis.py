"""Redis for what host processes share outside the database: clients and outages.

Both users of Redis, the rate limits (`LUKHAS_RATE_LIMIT_STORAGE`) and the
plugins' cache (`LUKHAS_CACHE_URL`), make their client here and call it
through an :class:`Outage` guard, so both behave alike when Redis is gone:
every call has the storage timeout; after a failed call, calls fail at once
for RETRY_AFTER_S instead of each waiting out the timeout again; an outage is
logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import structlog

from .._core.isolation import describe
from .._core.settings import SettingsError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["REDIS_SCHEMES", "RETRY_AFTER_S", "Outage", "Unavailable", "redis_client", "shown_url"]

T = TypeVar("T")

log = structlog.get_logger("lukhas.redis")

REDIS_SCHEMES = ("redis", "rediss")
#: After a failed call, how long further calls fail at once before Redis is asked again.
RETRY_AFTER_S = 1.0


class Unavailable(Exception):
    """Redis did not answer, or failed less than RETRY_AFTER_S ago; the message says which."""


def redis_client(url: str, timeout_s: float, variable: str) -> Redis:
    """A redis-py asyncio client for `url` whose every socket operation has `timeout_s`.

    Nothing is connected yet. Raises SettingsError naming `variable` when
    redis-py is not installed or the URL cannot be parsed.
    """
    try:
        from redis.asyncio import Redis
    except ImportError:
        raise SettingsError(variable, "redis:// needs redis-py: pip install 'lukhas-kernel[redis]'") from None
    try:
        return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    except ValueError as exc:
        raise SettingsError(variable, f"not a Redis URL: {exc}") from None  # no password shown


def shown_url(url: str) -> str:
    """`url` without its user and password, for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


class Outage:
    """Calls to one Redis by one user, guarded; its outages are logged as
    `<user>.unavailable` (with `fallback`, what is done meanwhile) and
    `<user>.available`.

    `errors` are the exceptions that mean Redis cannot be used; anything
    else is a bug and propagates.
    """

    def __init__(self, user: str, url: str, timeout_s: float,
                 errors: tuple[type[BaseException], ...], fallback: str) -> None:
        self.user = user
        self.fallback = fallback
        self.shown = shown_url(url)
        self.timeout_s = timeout_s
        self.errors: tuple[type[BaseException], ...] = (*errors, OSError, TimeoutError)
        self._down_since: float | None = None
        self._retry_at = 0.0

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` within the timeout; Unavailable when Redis does not answer."""
        if time.monotonic() < self._retry_at:
            raise Unavailable(f"it failed less than {RETRY_AFTER_S:g} s ago")
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await call()
        except self.errors as exc:
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            if self._down_since is None:  # once per outage, not per request
                self._down_since = time.monotonic()
                log.warning(f"{self.user}.unavailable", url=self.shown, reason=describe(exc),
                            fallback=self.fallback)
            raise Unavailable(describe(exc)) from exc
        if self._down_since is not None:
            log.info(f"{self.user}.available", url=self.shown,
                     down_s=round(time.monotonic() - self._down_since, 3))
            self._down_since = None
        return result
