"""Per-route, per-caller rate limits with the `limits` library (moving window)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError
from limits.storage import storage_from_string

from ._cache import REDIS_SCHEMES, redis_client
from ._problems import ProblemError
from ._settings import SettingsError

if TYPE_CHECKING:
    from redis.asyncio import Redis

VARIABLE = "LUKHAS_RATE_LIMIT_STORAGE"

__all__ = ["RateLimits", "parse_limit"]


def parse_limit(spec: str) -> RateLimitItem:
    """`"50/minute"` → a RateLimitItem; ValueError for a bad spec."""
    return parse(spec)


class RateLimits:
    """One limiter for the host; storage from `LUKHAS_RATE_LIMIT_STORAGE`.

    `memory://` keeps windows in this process; `redis://…` (`rediss://`)
    shares them between host processes, through redis-py. Every call has
    the storage timeout.
    """

    def __init__(self, storage_uri: str, timeout_s: float) -> None:
        """Raises SettingsError for a URI that cannot be used (nothing is connected yet)."""
        uri = storage_uri.removeprefix("async+")
        options: dict[str, Any] = {}
        self._redis: Redis | None = None
        if urlsplit(uri).scheme in REDIS_SCHEMES:
            # Our own client: its sockets have the timeout, and it is closed with the host.
            self._redis = redis_client(uri, timeout_s, VARIABLE)
            options = {"implementation": "redispy", "connection_pool": self._redis.connection_pool}
        try:
            self.storage = storage_from_string("async+" + uri, **options)
        except (ConfigurationError, ValueError) as exc:
            raise SettingsError(VARIABLE, str(exc)) from None
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.timeout_s = timeout_s

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def hit(self, limit: RateLimitItem, route: str, caller: str) -> dict[str, str]:
        """Count one request; raise a 429 problem past the limit.

        Returns the RateLimit-* headers for the response either way.
        """
        try:
            async with asyncio.timeout(self.timeout_s):
                allowed = await self.limiter.hit(limit, route, caller)
                stats = await self.limiter.get_window_stats(limit, route, caller)
        except Exception as exc:
            raise ProblemError(503, f"rate-limit storage unavailable: {type(exc).__name__}") from exc
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(limit.amount),
            "RateLimit-Remaining": str(stats.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            retry = max(reset, 1)
            raise ProblemError(
                429,
                f"rate limit of {limit.amount} per {limit.get_expiry()} s exceeded; retry in {retry} s",
                type="urn:lukhas:problem:rate-limited",
                headers={**headers, "Retry-After": str(retry)},
            )
        return headers
