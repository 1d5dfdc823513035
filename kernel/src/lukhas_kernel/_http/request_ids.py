"""Request ids: the client's `X-Request-ID` when it is well-formed, else one made here."""

from __future__ import annotations

import itertools
import os
import re

from aiohttp import web

__all__ = ["REQUEST_ID_KEY", "request_id", "request_id_of"]

REQUEST_ID_KEY = web.RequestKey("lukhas_request_id", str)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Generated request ids: 16 random hex digits per process, then a 16-digit hex
# counter. 32 characters like a uuid4's hex, unique within the process and, by
# the random half, across processes; far cheaper than `uuid.uuid4()`.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def request_id_of(request: web.Request) -> str:
    """The id the request is answered with: the client's, or a new one."""
    given = request.headers.get("X-Request-ID", "")
    return given if given and _REQUEST_ID.match(given) else _new_request_id()


def request_id(request: web.Request) -> str | None:
    """The request's id, as its `X-Request-ID` answer header will carry it."""
    return request.get(REQUEST_ID_KEY)
