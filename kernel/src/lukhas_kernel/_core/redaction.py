"""Secrets never leave the process in a log line or an error body.

The host never logs headers or bodies, and answers a request its HTTP parser
refuses without quoting it (see `_logging.parser_reason`). What it does log
or echo, a path, an exception's message, can still carry a secret a client
put in the wrong place (`GET /lk_…`) or a driver quoted. Every log event and
every problem's detail passes through `redact`, which replaces what looks
like a bearer token, an `Authorization` value or a signed JWT.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

__all__ = ["REDACTED", "redact", "redact_event"]

REDACTED = "[redacted]"
_SECRET = re.compile(
    r"lk_[A-Za-z0-9_-]{8,}"                                # the kernel's bearer tokens
    r"|\b(?:Bearer|Basic) +[A-Za-z0-9._~+/=-]{8,}"          # an Authorization value
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"   # a JWT (GLYPH tokens)
)
# Cheap tests first: nearly every string holds none of these, and the regex
# then never runs (every request logs an event).
_MARKS = ("lk_", "Bearer", "Basic", "eyJ")


def redact(text: str) -> str:
    """`text` with every token-like part replaced by `[redacted]`."""
    if not any(mark in text for mark in _MARKS):
        return text
    return _SECRET.sub(REDACTED, text)


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: `redact` on every string value of the event."""
    for key, value in event.items():
        if type(value) is str:
            event[key] = redact(value)
    return event
