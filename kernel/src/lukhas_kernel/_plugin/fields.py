"""Field types that accept exactly what their JSON Schema documents.

pydantic's lax mode coerces more than the schema it publishes admits: `"4"`
and `true` become integers, `"0"` becomes 1970-01-01, `"0.5"` a float. A
client that reads the OpenAPI document then cannot tell a rejected request
from an accepted one. Strict mode goes too far the other way for integers:
JSON Schema's `integer` includes `4.0`, which strict pydantic refuses. These
types sit in between, for request bodies (`JsonInt`) and queries (`IsoDate`).

Timestamps and dates are also bounded: years `1970..9998` as written. Every
stored value then stays representable through what is computed from it, with
room to spare: converting to UTC (an offset moves it by under a day), the next
day's start, a window of days before it. The range, and the digits a value may
have, are in the published schema as a `pattern`, so a client (or a schema
fuzzer) sees exactly what is accepted. See docs/plugin-api.md, "Field types".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Strict, WithJsonSchema

__all__ = ["INPUT_YEARS", "IsoDate", "JsonInt", "Rfc3339Datetime"]

#: The first and last year a timestamp or date sent to a route may have.
INPUT_YEARS = (1970, 9998)

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

# What the schema publishes: the accepted years, months 01-12, days 01-31,
# hours 00-23, minutes and seconds 00-59 (no leap second: Python has none), and
# an offset of less than a day. February 30th matches; `format` rules it out.
# ASCII digits only: `\d` is any Unicode digit to some regex engines.
_YEAR = r"(?:19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_DATE = _YEAR + r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
DATETIME_PATTERN = rf"^{_DATE}[Tt ]{_CLOCK}:[0-5][0-9](?:\.[0-9]+)?(?:[Zz]|[+-]{_CLOCK})$"
DATE_PATTERN = rf"^{_DATE}$"
_RANGE = f"years {INPUT_YEARS[0]}..{INPUT_YEARS[1]}"


def _in_years(value: date) -> date:
    # The year as written, offset included: what the published pattern says.
    if not INPUT_YEARS[0] <= value.year <= INPUT_YEARS[1]:
        raise ValueError(f"the year must be within {INPUT_YEARS[0]}..{INPUT_YEARS[1]}")
    return value


#: An integer in a JSON body: `4` or `4.0`; never `"4"`, `true` or `4.5`.
JsonInt = Annotated[int, BeforeValidator(_integral), Strict()]
#: A timestamp with an offset, as an RFC 3339 string only (body or query),
#: in `INPUT_YEARS`.
Rfc3339Datetime = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_years),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN,
                    "description": f"RFC 3339 with an offset, {_RANGE}"})]
#: A calendar date as `YYYY-MM-DD` only (body or query), in `INPUT_YEARS`.
IsoDate = Annotated[
    date, BeforeValidator(_full_date), AfterValidator(_in_years),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN,
                    "description": f"YYYY-MM-DD, {_RANGE}"})]
