"""Per-route, per-caller rate limits with the `limits` library (moving window)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from limits import RateLimitItem, WindowStats, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError
from limits.storage import storage_from_string

from .._core.problems import ProblemError
from .._core.settings import SettingsError
from .redis import REDIS_SCHEMES, Outage, Unavailable, redis_client

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
    the storage timeout; while the storage fails, limited routes answer 503
    (see `_redis.Outage`: after a failure, at once for a second).
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
        # `limits` raises its own errors and the client's: any exception of a
        # call means the storage cannot be used now.
        self.outage = Outage("ratelimit", uri, timeout_s, (Exception,), fallback="answering 503")

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def hit(self, limit: RateLimitItem, route: str, caller: str) -> dict[str, str]:
        """Count one request; raise a 429 problem past the limit.

        Returns the RateLimit-* headers for the response either way.
        """
        async def count() -> tuple[bool, WindowStats]:
            return (await self.limiter.hit(limit, route, caller),
                    await self.limiter.get_window_stats(limit, route, caller))

        try:
            allowed, stats = await self.outage.run(count)
        except Unavailable as exc:
            raise ProblemError(503, f"rate-limit storage unavailable: {exc}",
                               type="urn:lukhas:problem:storage-unavailable",
                               headers={"Retry-After": "1"}) from exc
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
