"""GLYPH bindings for both peer apps: the same token bytes, rows and audit chain as Lukhas.

- Tokens: HS256 JWTs as PyJWT writes them for Lukhas (header `{"alg","kid","typ"}`
  sorted, claims in Lukhas's order, compact JSON, unpadded base64url), signed
  with the host's key (`key_file`) through an HMAC state
  prepared once and copied per token. Verification answers Lukhas's
  reasons: malformed (non-canonical base64 included), bad_signature, expired,
  revoked.
- A bind is one write transaction (BEGIN IMMEDIATE … COMMIT; `synchronous=FULL`:
  one fsync per bind): the binding row and its audit entry, appended to the
  hash chain after the head read inside the transaction, so Lukhas's own
  appends to the same file and the peers' keep one intact chain
  (`lukhas glyphs audit-verify`).
- A failed validation is an audit entry of its own; Lukhas aggregates a
  caller's repeated failures into one entry per window. The benchmark only
  validates good tokens.
- Binding rows are cached 5 s for validation, as Lukhas's `GLYPHS_CACHE_TTL_S`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import math
import re
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._reference_db import Expiring, Invalid, compact, json_time, stored

__all__ = ["BINDING", "ENDPOINT", "Bindings", "Signer", "bind", "checked_bind", "checked_context",
           "glyph_json", "key_file", "record_failure", "verdict"]

GENESIS = "0" * 64
BINDING_TTL_S = 5.0
ENDPOINT = re.compile(r"^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.:-]{1,128}$")
SYMBOLS = ("LINK", "TRUST", "GUARD", "FLOW", "SEAL", "ECHO")
PRIORITIES = ("LOW", "NORMAL", "HIGH", "CRITICAL")
CONTEXT_BYTES = 4096
_CLAIMS = ("jti", "source", "target", "symbol", "priority", "iat", "exp")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")

BINDING = ("SELECT id, owner, source, target, symbol, priority, context, created_at, expires_at, "
           "revoked_at FROM glyphs_bindings WHERE id = ?")
_INSERT_BINDING = ("INSERT INTO glyphs_bindings (id, owner, source, target, symbol, priority, context, "
                   "created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)")
_HEAD = "SELECT hash FROM glyphs_audit ORDER BY seq DESC LIMIT 1"
_INSERT_AUDIT = ("INSERT INTO glyphs_audit (at, action, glyph_id, actor, details, prev_hash, hash) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)")


def key_file(data_dir: Path) -> Path:
    """Where the glyphs plugin of a host on `data_dir` generated its signing key."""
    return data_dir / "plugins" / "glyphs" / "signing.key"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _canonical(segment: str) -> bool:
    """Base64url that re-encodes to itself (no set trailing bits, no padding)."""
    if not _SEGMENT.match(segment):
        return False
    try:
        return _b64(_unb64(segment)) == segment
    except (binascii.Error, ValueError):
        return False


class Signer:
    """HS256 with the host's key; the header segment and HMAC state made once."""

    def __init__(self, key: bytes) -> None:
        self.kid = hashlib.sha256(key).hexdigest()[:16]
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._header = _b64(compact({"alg": "HS256", "kid": self.kid, "typ": "JWT"}).encode())

    def _signature(self, signing_input: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(signing_input)
        return mac.digest()

    def sign(self, claims: dict[str, Any]) -> str:
        signing_input = f"{self._header}.{_b64(compact(claims).encode())}"
        return f"{signing_input}.{_b64(self._signature(signing_input.encode()))}"

    def verify(self, token: str, now: datetime) -> tuple[dict[str, Any] | None, str | None]:
        """`(claims, None)` for a good token, else `(None, reason)` or, past its
        expiry, `(claims, "expired")`: Lukhas's verdicts, in its order."""
        segments = token.split(".")
        if len(segments) != 3 or not all(_canonical(s) for s in segments):
            return None, "malformed"
        try:
            header = json.loads(_unb64(segments[0]))
        except ValueError:
            return None, "malformed"
        if not isinstance(header, dict) or not isinstance(header.get("kid", ""), str):
            return None, "malformed"
        if header.get("alg") != "HS256" or header.get("kid") != self.kid:
            return None, "bad_signature"
        expected = self._signature(f"{segments[0]}.{segments[1]}".encode())
        if not hmac.compare_digest(expected, _unb64(segments[2])):
            return None, "bad_signature"
        try:
            claims = json.loads(_unb64(segments[1]))
        except ValueError:
            return None, "malformed"
        if (not isinstance(claims, dict) or any(name not in claims for name in _CLAIMS)
                or not isinstance(claims["exp"], int) or not isinstance(claims["jti"], str)):
            return None, "malformed"
        if claims["exp"] <= now.timestamp():
            return claims, "expired"
        return claims, None


# -- the audit chain -----------------------------------------------------------------


def _append_audit(conn: sqlite3.Connection, action: str, glyph_id: str | None, actor: str | None,
                  details: dict[str, Any]) -> None:
    """Append an entry inside the caller's write transaction (it holds the write lock)."""
    at = datetime.now(UTC)
    head = conn.execute(_HEAD).fetchone()
    prev = head[0] if head else GENESIS
    payload = json.dumps([prev, at.isoformat(), action, glyph_id, actor, details],
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(payload.encode()).hexdigest()
    conn.execute(_INSERT_AUDIT, (stored(at), action, glyph_id, actor, json.dumps(details), prev, digest))


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT; rolled back when the block (or the commit) raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def record_failure(conn: sqlite3.Connection, glyph_id: str | None, actor: str, reason: str) -> None:
    """A failed validation's audit entry, committed."""
    with _transaction(conn):
        _append_audit(conn, "validate_failed", glyph_id, actor, {"reason": reason})


# -- binds -----------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


def checked_context(context: Any) -> dict[str, Any]:
    """A bind's context, or Invalid: a JSON object of finite numbers, at most
    CONTEXT_BYTES as compact JSON."""
    if (not isinstance(context, dict) or not _finite(context)
            or len(json.dumps(context, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
                   .encode()) > CONTEXT_BYTES):
        raise Invalid(f"context is a JSON object of finite numbers, at most {CONTEXT_BYTES} bytes")
    return context


def checked_bind(body: Any) -> dict[str, Any]:
    """A bind body with its defaults, or Invalid: Lukhas's rules for each field."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    unknown = set(body) - {"source", "target", "symbol", "priority", "context", "ttl_seconds"}
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}")
    request = {"priority": "NORMAL", "context": {}, "ttl_seconds": 86_400, **body}
    for name in ("source", "target"):
        if not isinstance(request.get(name), str) or not ENDPOINT.match(request[name]):
            raise Invalid(f"{name} must match {ENDPOINT.pattern}")
    if request.get("symbol") not in SYMBOLS or request["priority"] not in PRIORITIES:
        raise Invalid(f"symbol is one of {SYMBOLS}, priority one of {PRIORITIES}")
    checked_context(request["context"])
    ttl = request["ttl_seconds"]
    if isinstance(ttl, float) and ttl.is_integer():
        ttl = request["ttl_seconds"] = int(ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= 31_536_000:
        raise Invalid("ttl_seconds is an integer from 60 to 31536000")
    return request


def bind(conn: sqlite3.Connection, owner: str, request: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """Store a binding and its audit entry in one committed transaction; the
    answer of `POST /api/v1/glyphs/bind` (fields in Lukhas's order)."""
    created = datetime.now(UTC)
    expires = created + timedelta(seconds=request["ttl_seconds"])
    glyph_id = "gly_" + secrets.token_urlsafe(12)
    fields = {name: request[name] for name in ("source", "target", "symbol", "priority")}
    with _transaction(conn):
        conn.execute(_INSERT_BINDING, (glyph_id, owner, *fields.values(), json.dumps(request["context"]),
                                       stored(created), stored(expires)))
        _append_audit(conn, "create", glyph_id, owner, fields)
    token = signer.sign({"jti": glyph_id, **fields, "iat": int(created.timestamp()),
                         "exp": int(expires.timestamp())})
    return {"glyph_id": glyph_id, **fields, "context": request["context"], "created_by": owner,
            "created_at": json_time(stored(created)), "expires_at": json_time(stored(expires)),
            "active": True, "revoked_at": None, "token": token}


# -- reading bindings ---------------------------------------------------------------------


class Bindings:
    """Binding rows by id, cached BINDING_TTL_S (the peers revoke nothing)."""

    def __init__(self) -> None:
        self._rows: Expiring[str, tuple[Any, ...]] = Expiring(BINDING_TTL_S)

    def row(self, conn: sqlite3.Connection, glyph_id: str) -> tuple[Any, ...] | None:
        hit, row = self._rows.get(glyph_id)
        if not hit:
            row = conn.execute(BINDING, (glyph_id,)).fetchone()
            if row is not None:  # as Lukhas: a missing binding is looked up again next time
                self._rows.put(glyph_id, row)
        return row


def glyph_json(row: tuple[Any, ...], now: datetime) -> dict[str, Any]:
    """A binding row as Lukhas answers it: active unless revoked or expired by `now`."""
    glyph_id, owner, source, target, symbol, priority, context, created_at, expires_at, revoked_at = row
    return {"glyph_id": glyph_id, "source": source, "target": target, "symbol": symbol,
            "priority": priority, "context": json.loads(context), "created_by": owner,
            "created_at": json_time(created_at), "expires_at": json_time(expires_at),
            "active": revoked_at is None and expires_at > stored(now), "revoked_at": json_time(revoked_at)}


def verdict(conn: sqlite3.Connection, bindings: Bindings, signer: Signer, token: str
            ) -> tuple[dict[str, Any], str | None, str | None]:
    """The answer of `POST /api/v1/glyphs/validate`, its reason (None: valid)
    and the glyph id the token names (None when unreadable), for the audit."""
    now = datetime.now(UTC)
    claims, reason = signer.verify(token, now)
    glyph = None
    if claims is not None:
        row = bindings.row(conn, claims["jti"])
        glyph = None if row is None else glyph_json(row, now)
        if reason is None and (row is None or row[9] is not None):
            reason = "revoked"  # signed, but of a binding no longer (or never) stored
    answer = {"valid": reason is None, "reason": reason, "glyph": glyph}
    return answer, reason, None if claims is None else claims["jti"]
