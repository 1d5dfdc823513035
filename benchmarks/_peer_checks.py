"""Before a peer is measured against Lukhas: it answers what Lukhas answers.

A reference that answered less (a shorter body, a missing field, a token
Lukhas would refuse) would be faster for the wrong reason, so a difference
stops the benchmark with the two answers where they part.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ._common import BenchError, http_json, progress
from ._reference_glyphs import Signer, key_file
from ._servers import Server
from .routes import Endpoint

__all__ = ["check_answers"]

BIND_PATH = "/api/v1/glyphs/bind"
VALIDATE_PATH = "/api/v1/glyphs/validate"
#: What a new binding has of its own: ids, times and so its token.
_GENERATED = ("glyph_id", "created_at", "expires_at", "token")
_SHOWN = 80


def check_answers(lukhas: Server, peers: list[Server], endpoints: list[Endpoint]) -> None:
    """Each peer answers each endpoint as `lukhas` does (see db_routes' docstring),
    and 401 without a token."""
    for peer in peers:
        first = endpoints[0]
        status, body = http_json(peer.port, first.method, first.path, {}, first.body)
        if status != 401:
            raise BenchError(f"{peer.label}: {first.method} {first.path} without a token answered {status}, "
                             f"not 401: {body[:200]!r}")
        for endpoint in endpoints:
            if endpoint.path == BIND_PATH:
                _same_bind(lukhas, peer, endpoint)
            else:
                _same_bytes(lukhas, peer, endpoint)
        progress(f"{peer.label}: answers as Lukhas does on {', '.join(e.name for e in endpoints)}")


def _answer(server: Server, endpoint: Endpoint) -> tuple[int, bytes]:
    return http_json(server.port, endpoint.method, endpoint.path, server.headers, endpoint.body)


def _difference(want: bytes, got: bytes) -> str:
    """Where two bodies part, with some bytes before and after."""
    pairs = enumerate(zip(want, got, strict=False))
    at = next((i for i, (a, b) in pairs if a != b), min(len(want), len(got)))
    start = max(0, at - _SHOWN)
    return (f"they part at byte {at} of {len(want)}:\n  Lukhas: {want[start:at + _SHOWN]!r}\n"
            f"  peer:   {got[start:at + _SHOWN]!r}")


def _same_bytes(lukhas: Server, peer: Server, endpoint: Endpoint) -> None:
    want, got = _answer(lukhas, endpoint), _answer(peer, endpoint)
    if want[0] != got[0]:
        raise BenchError(f"{peer.label}: {endpoint.name} answered {got[0]}, Lukhas {want[0]}: "
                         f"{got[1][:300]!r}")
    if want[1] != got[1]:
        raise BenchError(f"{peer.label}: {endpoint.name} answers other bytes than Lukhas: "
                         f"{_difference(want[1], got[1])}")


def _same_bind(lukhas: Server, peer: Server, endpoint: Endpoint) -> None:
    """The same shape and values but for what is new in each binding; a token
    Lukhas validates; the very token Lukhas signs, from the peer's signer."""
    (status, raw), (peer_status, peer_raw) = _answer(lukhas, endpoint), _answer(peer, endpoint)
    if status != endpoint.status or peer_status != status:
        raise BenchError(f"{peer.label}: {endpoint.name} answered {peer_status}, Lukhas {status}: "
                         f"{peer_raw[:300]!r}")
    want, got = json.loads(raw), json.loads(peer_raw)
    if list(got) != list(want):
        raise BenchError(f"{peer.label}: {endpoint.name} answers the keys {list(got)}, Lukhas {list(want)}")
    differing = [key for key in want if key not in _GENERATED and got[key] != want[key]]
    if differing:
        raise BenchError(f"{peer.label}: {endpoint.name} answers other {differing} than Lukhas: "
                         f"{[got[k] for k in differing]} against {[want[k] for k in differing]}")
    status, verdict = http_json(lukhas.port, "POST", VALIDATE_PATH, lukhas.headers, {"token": got["token"]})
    stored = {key: value for key, value in got.items() if key != "token"}
    if status != 200 or json.loads(verdict) != {"valid": True, "reason": None, "glyph": stored}:
        raise BenchError(f"{peer.label}: Lukhas does not validate the binding the peer made as the peer "
                         f"answered it: {verdict[:400]!r} for {stored}")
    key = key_file(lukhas.workdir / "data").read_bytes().strip()
    if Signer(key).sign(_claims(want["token"])) != want["token"]:
        raise BenchError(f"{peer.label}: its signer makes other token bytes than Lukhas for the same claims")


def _claims(token: str) -> dict[str, Any]:
    """A JWT's claims, in the order they were written."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims
