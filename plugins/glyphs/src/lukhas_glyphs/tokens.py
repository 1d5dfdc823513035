"""GLYPH tokens: JWTs signed with HMAC-SHA256, a `kid` naming the key.

Verification never raises on garbage: it answers a reason. PyJWT accepts
base64 whose unused trailing bits are set (a second spelling of the same
bytes), so every segment must also be canonical: re-encoding its bytes must
give it back. Expiry is checked against `clock.now()`, not inside PyJWT, so
that one clock rules the whole plugin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt

from . import clock

__all__ = ["Signer", "load_or_create_key"]

ALGORITHM = "HS256"
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_CLAIMS = ("jti", "source", "target", "symbol", "priority", "iat", "exp")


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, created once (mode 0600) when missing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as file:
        key = secrets.token_urlsafe(48).encode()
        file.write(key)
        file.flush()
        os.fsync(file.fileno())
    return key


def _canonical(segment: str) -> bool:
    if not _SEGMENT.match(segment):
        return False
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return False
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == segment


class Signer:
    """Signs with the current key; verifies with it or any previous one."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        self.current = current
        self.kid = key_id(current)
        self.keys = {key_id(key): key for key in (*previous, current)}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.current, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verify(self, token: str) -> tuple[dict[str, Any] | None, str | None]:
        """`(claims, None)` for a good token, else `(None, reason)` or, past its
        expiry, `(claims, "expired")`."""
        segments = token.split(".")
        if len(segments) != 3 or not all(_canonical(s) for s in segments):
            return None, "malformed"
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return None, "malformed"
        key = self.keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
        if header.get("alg") != ALGORITHM or key is None:
            return None, "bad_signature"
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM],
                                options={"verify_exp": False, "verify_iat": False,
                                         "require": list(_CLAIMS)})
        except jwt.InvalidSignatureError:
            return None, "bad_signature"
        except jwt.InvalidTokenError:
            return None, "malformed"
        if not isinstance(claims.get("exp"), int) or not isinstance(claims.get("jti"), str):
            return None, "malformed"
        if claims["exp"] <= clock.now().timestamp():
            return claims, "expired"
        return claims, None
