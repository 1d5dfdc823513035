"""A cache for plugins, in this process or shared through Redis (`LUKHAS_CACHE_URL`).

A plugin asks its context for a region (`context.cache("drift", Model,
ttl_s=…, size=…)`) and reads through it with :meth:`CacheRegion.get`, which
computes a missing value once for all concurrent callers of the process.

Invariant: a value computed from data read before an invalidation is never
served after it. Each key has a generation; a read returns it with the value,
a computation is stored tagged with the generation its read saw, and a value
is served only while its tag is the key's current generation. An
invalidation replaces the generation, so whatever was stored (or is still
being computed) before it can no longer be served.

- `memory://`: a cachetools TTL cache per region; generations are counters.
- `redis://…`: every host process shares the values. A generation is a
  random token in a key of its own: a read is one script call returning the
  generation (made up if there is none) and the value together; an
  invalidation sets a new token and deletes the value in one transaction.
  Every call has the storage timeout and goes through the outage guard of
  `_redis` (shared with the rate limits). While Redis cannot be reached, reads
  compute from the database (logged once per outage), and invalidations wait
  in the process to be delivered first thing the next time Redis answers;
  until then this process neither serves nor stores those keys. Another
  process can serve such a key's old value at most until it expires (the
  region's TTL): the staleness an undelivered invalidation can cause is
  bounded by the TTL, never longer.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from cachetools import TTLCache
from pydantic import TypeAdapter, ValidationError

from .._core.settings import SettingsError
from .redis import REDIS_SCHEMES, Outage, Unavailable, redis_client

__all__ = ["Cache", "CacheRegion"]

T = TypeVar("T")


# KEYS: generation, value; ARGV: a fresh token, the generation's TTL (ms).
# The token becomes the generation when the key has none (first read, or it expired).
_READ = """
local generation = redis.call('GET', KEYS[1])
if not generation then
  generation = ARGV[1]
  redis.call('SET', KEYS[1], generation, 'PX', ARGV[2])
end
return {generation, redis.call('GET', KEYS[2])}
"""
# KEYS: generation, value; ARGV: the generation read, the tagged value, its TTL,
# the generation's TTL (ms). Stored only if no invalidation came in between.
_STORE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


class _Redis:
    """The cache's Redis client and its outage guard."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.client = redis_client(url, timeout_s, "LUKHAS_CACHE_URL")
        from redis.exceptions import RedisError  # importable: the client was made

        self.outage = Outage("cache", url, timeout_s, (RedisError,), fallback="computing from the database")
        self.run = self.outage.run
        self.read = self.client.register_script(_READ)
        self.store = self.client.register_script(_STORE)


class _Lookup(Generic[T]):
    """What a read found: the value (None: a miss) and the key's generation
    (None: the cache cannot be used now; compute, don't store)."""

    __slots__ = ("generation", "value")

    def __init__(self, value: T | None, generation: Hashable | None) -> None:
        self.value = value
        self.generation = generation


class _MemoryStore(Generic[T]):
    def __init__(self, ttl_s: float, size: int) -> None:
        self.values: TTLCache[str, tuple[int, T]] | None = TTLCache(size, ttl_s) if ttl_s > 0 else None
        self.generations: Counter[str] = Counter()

    async def read(self, key: str) -> _Lookup[T]:
        generation = self.generations[key]
        found = self.values.get(key) if self.values is not None else None
        return _Lookup(found[1] if found and found[0] == generation else None, generation)

    async def store(self, key: str, generation: Hashable, value: T) -> None:
        if self.values is not None and self.generations[key] == generation:
            self.values[key] = (generation, value)

    def invalidate(self, key: str) -> None:
        self.generations[key] += 1
        if self.values is not None:
            self.values.pop(key, None)

    async def flush(self) -> None:
        """Nothing to deliver: invalidations take effect at once."""


class _RedisStore(Generic[T]):
    def __init__(self, redis: _Redis, prefix: str, adapter: TypeAdapter[T], ttl_s: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.adapter = adapter
        self.ttl_ms = max(1, round(ttl_s * 1000))
        # A generation outlives the values tagged with it (a value stored late
        # in its generation's life would otherwise turn into a needless miss).
        self.generation_ttl_ms = 2 * self.ttl_ms
        # Invalidations not yet delivered to Redis, with the serial of the
        # latest: one made during a delivery is delivered again.
        self.pending: dict[str, int] = {}
        self._serial = 0

    def _keys(self, key: str) -> list[str]:
        # One hash tag for both keys: they live on the same node of a cluster,
        # as the scripts that use both need.
        tag = f"{{{self.prefix}:{key}}}"
        return [f"lukhas:cache:{tag}:generation", f"lukhas:cache:{tag}:value"]

    async def read(self, key: str) -> _Lookup[T]:
        await self.flush()
        if key in self.pending:
            return _Lookup(None, None)
        token = secrets.token_hex(8)
        generation, raw = await self.redis.run(lambda: self.redis.read(
            keys=self._keys(key), args=[token, self.generation_ttl_ms]))
        tag, _, payload = (raw or b"").partition(b"\n")
        if raw is None or tag != generation:
            return _Lookup(None, generation)
        try:
            return _Lookup(self.adapter.validate_json(payload), generation)
        except ValidationError:  # written by an older model: a miss
            return _Lookup(None, generation)

    async def store(self, key: str, generation: Hashable, value: T) -> None:
        if key in self.pending:
            return
        assert isinstance(generation, bytes)
        tagged = generation + b"\n" + self.adapter.dump_json(value)
        await self.redis.run(lambda: self.redis.store(
            keys=self._keys(key), args=[generation, tagged, self.ttl_ms, self.generation_ttl_ms]))

    def invalidate(self, key: str) -> None:
        self._serial += 1
        self.pending[key] = self._serial

    async def flush(self) -> None:
        """Deliver pending invalidations (one transaction); Unavailable if Redis is down."""
        if not self.pending:
            return
        batch = dict(self.pending)

        async def deliver() -> None:
            async with self.redis.client.pipeline(transaction=True) as pipe:
                for key in batch:
                    generation, value = self._keys(key)
                    pipe.set(generation, secrets.token_hex(8), px=self.generation_ttl_ms)
                    pipe.delete(value)
                await pipe.execute()

        await self.redis.run(deliver)
        for key, serial in batch.items():
            if self.pending.get(key) == serial:
                del self.pending[key]


class CacheRegion(Generic[T]):
    """One plugin's named cache of values of one type, by string key.

    With `ttl_s` 0 nothing is kept, but concurrent computations of a key
    still run once. Values must be serializable by pydantic (a model, or
    any type a TypeAdapter handles) when the cache is Redis; None is never
    cached.
    """

    def __init__(self, store: _MemoryStore[T] | _RedisStore[T]) -> None:
        self._store = store
        self._flights: dict[tuple[str, Hashable], asyncio.Future[T]] = {}

    async def get(self, key: str, compute: Callable[[], Awaitable[T]],
                  on_miss: Callable[[], Awaitable[object]] | None = None) -> tuple[T, bool]:
        """The value of `key` and whether it was cached; computed on a miss.

        `on_miss` runs before a computation (e.g. to check the key exists; it
        may raise). Concurrent misses of one generation compute once; a read
        after an invalidation never joins a computation started before it.
        When the cache is unavailable, the value is computed and not kept.
        """
        try:
            found = await self._store.read(key)
        except Unavailable:
            found = _Lookup(None, None)
        if found.value is not None:
            return found.value, True
        if on_miss is not None:
            await on_miss()
        if found.generation is None:
            return await compute(), False
        flight = (key, found.generation)
        pending = self._flights.get(flight)
        if pending is not None:
            return await asyncio.shield(pending), False
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._flights[flight] = future
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(value)
        finally:
            self._flights.pop(flight, None)
        try:
            await self._store.store(key, found.generation, value)
        except Unavailable:
            pass  # logged by the client; the next read computes again
        return value, False

    def invalidate(self, key: str) -> None:
        """Forget `key`: at once in this process, in the others once delivered.

        A shared cache delivers it before this region's next read; await
        :meth:`flush` to deliver it now.
        """
        self._store.invalidate(key)

    async def flush(self) -> bool:
        """Deliver pending invalidations to the shared cache; False if it is unavailable."""
        try:
            await self._store.flush()
        except Unavailable:
            return False
        return True


class Cache:
    """The host's cache service, from `LUKHAS_CACHE_URL`; plugins get regions of it."""

    def __init__(self, url: str, timeout_s: float) -> None:
        """Raises SettingsError for a URL that cannot be used (nothing is connected yet)."""
        scheme = urlsplit(url).scheme
        if scheme == "memory":
            self._redis: _Redis | None = None
        elif scheme in REDIS_SCHEMES:
            self._redis = _Redis(url, timeout_s)
        else:
            raise SettingsError("LUKHAS_CACHE_URL", f"unknown cache {url!r}: use memory:// or redis://…")

    @property
    def shared(self) -> bool:
        """Whether every host process sees the same values."""
        return self._redis is not None

    def region(self, namespace: str, model: Any, *, ttl_s: float, size: int) -> CacheRegion[Any]:
        """A region for values of type `model`, kept `ttl_s` seconds.

        `size` bounds the entries of an in-process region; a shared one is
        bounded by Redis' own memory policy.
        """
        if self._redis is None or ttl_s <= 0:
            return CacheRegion(_MemoryStore(ttl_s, size))
        return CacheRegion(_RedisStore(self._redis, namespace, TypeAdapter(model), ttl_s))

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.client.aclose()
