"""Field types that accept exactly what their JSON Schema documents.

pydantic's lax mode coerces more than the schema it publishes admits: `"4"`
and `true` become integers, `"0"` becomes 1970-01-01, `"0.5"` a float. A
client that reads the OpenAPI document then cannot tell a rejected request
from an accepted one. Strict mode goes too far the other way for integers:
JSON Schema's `integer` includes `4.0`, which strict pydantic refuses. These
types sit in between, for request bodies (`JsonInt`) and queries (`IsoDate`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Strict

__all__ = ["IsoDate", "JsonInt", "Rfc3339Datetime"]

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?$")
_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _integral(value: Any) -> Any:
    # 4.0 is the integer 4 in JSON (and JSON Schema); 4.5, "4" and true stay
    # what they are and fail the strict integer check.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _only_strings_matching(pattern: re.Pattern[str], parsed: type, message: str) -> Callable[[Any], Any]:
    """A before-validator: an already parsed `parsed` passes, a string must match
    `pattern`; anything else pydantic would read (a number, "0") is refused."""

    def check(value: Any) -> Any:
        if isinstance(value, parsed):
            return value
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(message)
        return value

    return check


# A missing offset passes the pattern so that AwareDatetime names that problem.
_rfc3339 = _only_strings_matching(
    _RFC3339, datetime, "expected an RFC 3339 timestamp such as 2024-05-01T12:00:00Z")
_full_date = _only_strings_matching(_FULL_DATE, date, "expected a date as YYYY-MM-DD")


#: An integer in a JSON body: `4` or `4.0`; never `"4"`, `true` or `4.5`.
JsonInt = Annotated[int, BeforeValidator(_integral), Strict()]
#: A timestamp with an offset, as an RFC 3339 string only (body or query).
Rfc3339Datetime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
#: A calendar date as `YYYY-MM-DD` only (body or query).
IsoDate = Annotated[date, BeforeValidator(_full_date)]
