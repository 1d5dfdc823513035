"""GLYPH tokens: JWTs signed with HMAC-SHA256, a `kid` naming the key.

The tokens are byte for byte what PyJWT's `jwt.encode(claims, key, "HS256",
headers={"kid": kid})` makes, so tokens signed before and after any change
here verify alike. Signing does not call PyJWT: per key, the header segment
is encoded once and an HMAC is keyed and fed that segment once; each token
copies it and adds only its payload (PyJWT re-checks the key, re-encodes the
header and re-keys the HMAC on every call).

Verification never raises on garbage: it answers a reason. PyJWT accepts
base64 whose unused trailing bits are set (a second spelling of the same
bytes), so every segment must also be canonical: re-encoding its bytes must
give it back. A token whose header is one this module writes, and whose
payload holds only the claims it writes, is judged here (the same judgement
PyJWT's decode makes of it, with a constant-time comparison of the
signatures); any other token (a header or claims only a key holder could have
written differently) is judged by PyJWT itself, as it always was. Expiry is
checked against `clock.now()`, not inside PyJWT, so that one clock rules the
whole plugin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from . import clock

if TYPE_CHECKING:  # models imports this module
    from .models import Reason

__all__ = ["MIN_KEY_BYTES", "Signer", "configured_key", "load_or_create_key"]

ALGORITHM = "HS256"
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_CLAIMS = ("jti", "source", "target", "symbol", "priority", "iat", "exp")
_CLAIM_SET = frozenset(_CLAIMS)
#: The shortest key accepted, from the file or `LUKHAS_GLYPH_SIGNING_KEY`: HS256's own size.
MIN_KEY_BYTES = 32
log = structlog.get_logger("lukhas.glyphs")


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def configured_key(value: str) -> bytes:
    """The key set in `LUKHAS_GLYPH_SIGNING_KEY`; ValueError naming the variable
    (never showing the value) when shorter than `MIN_KEY_BYTES` bytes."""
    key = value.encode()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"LUKHAS_GLYPH_SIGNING_KEY holds {len(key)} bytes, fewer than "
                         f"{MIN_KEY_BYTES}: set a longer key, or unset it to have one generated")
    return key


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, created once when missing: mode 0600 whatever the umask.

    Raises ValueError naming the file when it holds fewer than `MIN_KEY_BYTES`
    bytes (a short HMAC key is guessable); a file that group or others may
    read is used, with a `storage.insecure_permissions` warning.
    """
    if not path.exists():
        _create_key(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("storage.insecure_permissions", path=str(path), mode=f"{mode:04o}",
                    fix=f"chmod 600 {path}")
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"signing key file {path} holds {len(key)} bytes, fewer than "
                         f"{MIN_KEY_BYTES}: put a longer key in it, or remove it to have one "
                         "generated (tokens signed with the old key then stop verifying)")
    return key


def _create_key(path: Path) -> None:
    """Write a new key to `path` unless another process got there first.

    The key is written and fsynced under a temporary name and then linked
    into place, so `path` never exists half-written (a crash leaves no empty
    key file that would refuse the next start) and the first link wins.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # the umask may have taken owner bits away
            file.write(secrets.token_urlsafe(48).encode())
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process's key is in place: it is the key
    finally:
        temporary.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the link survives a crash
    finally:
        os.close(directory)


def _decoded(segment: str) -> bytes | None:
    """The bytes `segment` spells in base64url without padding, or None unless
    it is their one canonical spelling."""
    if not _SEGMENT.match(segment):
        return None
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _encoded(raw) == segment else None


def _encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _header_segment(kid: str) -> str:
    """The header segment PyJWT writes for HS256 and `kid`: sorted keys, no spaces."""
    header = {"alg": ALGORITHM, "kid": kid, "typ": "JWT"}
    return _encoded(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())


class Signer:
    """Signs with the current key; verifies with it or any previous one."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        self.current = current
        self.kid = key_id(current)
        self.keys = {key_id(key): key for key in (*previous, current)}
        # Per key: its header segment, and an HMAC keyed with it that has
        # already hashed "<header>.". Never updated itself, only copied.
        self._prepared = {
            _header_segment(kid): hmac.new(key, f"{_header_segment(kid)}.".encode(), hashlib.sha256)
            for kid, key in self.keys.items()
        }
        self._header = _header_segment(self.kid)
        self._signing = self._prepared[self._header]

    def sign(self, claims: dict[str, Any]) -> str:
        """The token for `claims` (str and int values), as `jwt.encode` makes it."""
        # Serialised as PyJWT serialises a payload: compact, keys in their order.
        payload = _encoded(json.dumps(claims, separators=(",", ":")).encode())
        mac = self._signing.copy()
        mac.update(payload.encode())
        return f"{self._header}.{payload}.{_encoded(mac.digest())}"

    def verify(self, token: str) -> tuple[dict[str, Any] | None, Reason | None]:
        """`(claims, None)` for a good token, else `(None, reason)` or, past its
        expiry, `(claims, "expired")`."""
        segments = token.split(".")
        if len(segments) != 3:
            return None, "malformed"
        header, payload, signature = segments
        prepared = self._prepared.get(header)
        if prepared is None:  # not a header this module writes
            return self._verify_with_pyjwt(token, segments)
        raw_payload, raw_signature = _decoded(payload), _decoded(signature)
        if raw_payload is None or raw_signature is None:
            return None, "malformed"
        mac = prepared.copy()
        mac.update(payload.encode())
        if not hmac.compare_digest(mac.digest(), raw_signature):
            return None, "bad_signature"
        try:
            claims = json.loads(raw_payload)
        except (ValueError, RecursionError):
            return None, "malformed"
        if not isinstance(claims, dict):
            return None, "malformed"
        if not claims.keys() <= _CLAIM_SET:  # claims PyJWT would check further
            return self._verify_with_pyjwt(token, segments)
        if any(claims.get(claim) is None for claim in _CLAIMS):
            return None, "malformed"
        return _checked(claims)

    def _verify_with_pyjwt(self, token: str, segments: list[str]
                           ) -> tuple[dict[str, Any] | None, Reason | None]:
        """The judgement of a token this module would not have written:
        PyJWT's, imported only for such a token."""
        import jwt

        if not all(_decoded(s) is not None for s in segments):
            return None, "malformed"
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return None, "malformed"
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
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
        return _checked(claims)


def _checked(claims: dict[str, Any]) -> tuple[dict[str, Any] | None, Reason | None]:
    """The verdict on a token whose signature and required claims are good."""
    if not isinstance(claims.get("exp"), int) or not isinstance(claims.get("jti"), str):
        return None, "malformed"
    if claims["exp"] <= clock.now().timestamp():
        return claims, "expired"
    return claims, None
