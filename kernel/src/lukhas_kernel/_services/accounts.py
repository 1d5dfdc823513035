"""Users and their bearer tokens (kernel tables `lukhas_users`, `lukhas_tokens`).

A token is `lk_` + 32 random bytes (url-safe base64) and is shown exactly
once; the database keeps only its SHA-256 and its first 12 characters.
Because tokens carry 256 bits of entropy, a fast hash is the right one: a
lookup by hash is safe and needs no per-token salt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .storage import Database, UtcDateTime

__all__ = ["AccountError", "Accounts", "User", "TIERS", "ROLES"]

TIERS = ("free", "premium", "enterprise")
ROLES = ("user", "admin")
TOKEN_PREFIX_CHARS = 12
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOKEN = re.compile(r"^lk_[A-Za-z0-9_-]{43,128}$")
# last_used_at is refreshed at most this often per token: a write per request
# would serialise every authenticated request on the database's one writer.
_LAST_USED_RESOLUTION = timedelta(seconds=60)
#: Tokens whose answer is kept at once; past it, expired ones are dropped (all, if none expired).
_CACHED_TOKENS = 10_000
log = structlog.get_logger("lukhas.accounts")

metadata = sa.MetaData()
users = sa.Table(
    "lukhas_users", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
tokens = sa.Table(
    "lukhas_tokens", metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("prefix", sa.String(TOKEN_PREFIX_CHARS), nullable=False, index=True),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("lukhas_users.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)


class AccountError(Exception):
    """A user or token operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class User:
    """The authenticated caller, as route handlers see it."""

    id: str
    username: str
    tier: str
    role: str
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def now() -> datetime:
    return datetime.now(UTC)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: sa.Row[Any]) -> User:
    return User(row.id, row.username, row.tier, row.role, row.created_at)


class Accounts:
    """Users and tokens; `authenticate` is cached for `cache_ttl_s` seconds."""

    def __init__(self, db: Database, cache_ttl_s: float = 5.0) -> None:
        self.db = db
        self._cache_ttl_s = cache_ttl_s
        # token -> (expires at, on time.monotonic(); its user or None; its hash).
        # Keyed by the token itself: a hit, every request's case, then costs one
        # dict lookup, with no hashing and no pattern match (a third of an
        # authenticated request's own CPU time with cachetools' TTLCache).
        self._cache: dict[str, tuple[float, User | None, str]] = {}
        self._lookups: dict[str, asyncio.Future[User | None]] = {}

    # -- users -------------------------------------------------------------

    async def create_user(self, username: str, tier: str = "free", admin: bool = False) -> tuple[User, str]:
        """Create a user with a first token; returns both (the token's only showing)."""
        if not _USERNAME.match(username):
            raise AccountError(f"invalid username {username!r}: 1-64 letters, digits, '_', '.', '-'")
        if tier not in TIERS:
            raise AccountError(f"invalid tier {tier!r}: one of {', '.join(TIERS)}")
        user = User("usr_" + secrets.token_hex(12), username, tier, "admin" if admin else "user", now())
        token = _new_token()

        def insert(conn: sa.Connection) -> None:
            conn.execute(users.insert().values(
                id=user.id, username=username, tier=tier, role=user.role, created_at=user.created_at))
            conn.execute(tokens.insert().values(_token_row(token, user.id)))

        try:
            await self.db.write(insert)
        except IntegrityError:
            raise AccountError(f"user {username!r} already exists") from None
        return user, token

    async def ensure_first_admin(self) -> str | None:
        """On an empty database create `admin`; return its token, else None."""
        if await self.db.read(lambda conn: conn.scalar(sa.select(sa.func.count()).select_from(users))):
            return None
        try:
            return (await self.create_user("admin", "enterprise", admin=True))[1]
        except AccountError:  # another process created it first
            return None

    async def get_user(self, user_id: str) -> User | None:
        row = await self.db.read(
            lambda conn: conn.execute(users.select().where(users.c.id == user_id)).first())
        return _user(row) if row else None

    async def user_named(self, username: str) -> User:
        row = await self.db.read(
            lambda conn: conn.execute(users.select().where(users.c.username == username)).first())
        if row is None:
            raise AccountError(f"no user {username!r}")
        return _user(row)

    async def list_users(self) -> list[User]:
        rows = await self.db.read(
            lambda conn: conn.execute(users.select().order_by(users.c.created_at, users.c.username)).all())
        return [_user(row) for row in rows]

    # -- tokens ------------------------------------------------------------

    async def issue_token(self, username: str) -> str:
        user = await self.user_named(username)
        token = _new_token()
        await self.db.write(lambda conn: conn.execute(tokens.insert().values(_token_row(token, user.id))))
        return token

    async def list_tokens(self, username: str) -> list[dict[str, object]]:
        user = await self.user_named(username)
        rows = await self.db.read(lambda conn: conn.execute(
            sa.select(tokens.c.prefix, tokens.c.created_at, tokens.c.last_used_at, tokens.c.revoked_at)
            .where(tokens.c.user_id == user.id).order_by(tokens.c.created_at)).all())
        return [{"prefix": r.prefix, "created_at": r.created_at,
                 "last_used_at": r.last_used_at, "revoked_at": r.revoked_at} for r in rows]

    async def revoke(self, prefix: str) -> str:
        """Revoke the one live token starting with `prefix` (≥ 8 characters)."""
        if len(prefix) < 8:
            raise AccountError("a token prefix needs at least 8 characters")
        candidate = prefix[:TOKEN_PREFIX_CHARS]

        def revoke_one(conn: sa.Connection) -> tuple[str, str]:  # its hash and prefix
            rows = conn.execute(
                sa.select(tokens.c.hash, tokens.c.prefix)
                .where(tokens.c.prefix.startswith(candidate, autoescape=True),
                       tokens.c.revoked_at.is_(None))).all()
            if _TOKEN.match(prefix):  # a whole token: compare its hash
                rows = [r for r in rows if hmac.compare_digest(r.hash, _hash(prefix))]
            if not rows:
                raise AccountError(f"no live token starts with {prefix!r}")
            if len(rows) > 1:
                raise AccountError(f"{len(rows)} tokens start with {prefix!r}; give more characters")
            conn.execute(tokens.update().where(tokens.c.hash == rows[0].hash).values(revoked_at=now()))
            return rows[0].hash, rows[0].prefix

        digest, prefix_shown = await self.db.write(revoke_one)
        for cached, entry in list(self._cache.items()):
            if entry[2] == digest:
                del self._cache[cached]
        return prefix_shown

    def _fresh(self, token: str) -> tuple[float, User | None, str] | None:
        """The token's cache entry (a user, or a known "no such token") while it is fresh."""
        cached = self._cache.get(token)
        return cached if cached is not None and cached[0] > time.monotonic() else None

    def cached_user(self, token: str) -> User | None:
        """The token's user if the cache holds it fresh, else None (then
        `authenticate` decides): no coroutine for the usual request."""
        cached = self._fresh(token)
        return cached[1] if cached is not None else None

    async def authenticate(self, token: str) -> User | None:
        """The live token's user, or None; never raises for a bad token.

        Concurrent misses for one token share a single lookup, so a cache
        expiry under load costs one query, not one per waiting request.
        """
        cached = self._fresh(token)
        if cached is not None:
            return cached[1]
        if not _TOKEN.match(token):
            return None
        pending = self._lookups.get(token)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(token))
            self._lookups[token] = pending
            pending.add_done_callback(lambda _: self._lookups.pop(token, None))
        return await asyncio.shield(pending)

    async def _lookup(self, token: str) -> User | None:
        digest = _hash(token)
        row = await self.db.read(lambda conn: conn.execute(
            sa.select(tokens.c.hash, tokens.c.last_used_at, users)
            .join(users, users.c.id == tokens.c.user_id)
            .where(tokens.c.hash == digest, tokens.c.revoked_at.is_(None))).first(), short=True)
        user = _user(row) if row is not None and hmac.compare_digest(row.hash, digest) else None
        if row is not None and user is not None and (
                row.last_used_at is None or now() - row.last_used_at > _LAST_USED_RESOLUTION):
            await self._touch(digest)
        self._remember(token, digest, user)
        return user

    def _remember(self, token: str, digest: str, user: User | None) -> None:
        if self._cache_ttl_s <= 0:
            return
        now = time.monotonic()
        if len(self._cache) >= _CACHED_TOKENS:
            for expired in [t for t, entry in self._cache.items() if entry[0] <= now]:
                del self._cache[expired]
            if len(self._cache) >= _CACHED_TOKENS:
                self._cache.clear()
        self._cache[token] = (now + self._cache_ttl_s, user, digest)

    async def _touch(self, digest: str) -> None:
        """Record use; bookkeeping only, so a busy database must not fail the request."""
        try:
            await self.db.write(lambda conn: conn.execute(
                tokens.update().where(tokens.c.hash == digest).values(last_used_at=now())))
        except (SQLAlchemyError, TimeoutError) as exc:
            log.warning("token.last_used_not_recorded", reason=type(exc).__name__)


def _new_token() -> str:
    return "lk_" + secrets.token_urlsafe(32)


def _token_row(token: str, user_id: str) -> dict[str, object]:
    return {"hash": _hash(token), "prefix": token[:TOKEN_PREFIX_CHARS], "user_id": user_id,
            "created_at": now()}
