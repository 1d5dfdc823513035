"""Per-route, per-caller rate limits with the `limits` library (moving window)."""

from __future__ import annotations

import asyncio
import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from ._problems import ProblemError

__all__ = ["RateLimits", "parse_limit"]


def parse_limit(spec: str) -> RateLimitItem:
    """`"50/minute"` → a RateLimitItem; ValueError for a bad spec."""
    return parse(spec)


class RateLimits:
    """One limiter for the host; storage from `LUKHAS_RATE_LIMIT_STORAGE`.

    `memory://` keeps windows in this process; `redis://…` shares them
    between host processes. Every call has the storage timeout.
    """

    def __init__(self, storage_uri: str, timeout_s: float) -> None:
        uri = storage_uri if storage_uri.startswith("async+") else "async+" + storage_uri
        self.storage = storage_from_string(uri)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.timeout_s = timeout_s

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
