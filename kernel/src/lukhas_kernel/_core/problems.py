"""RFC 9457 problem details: the one shape of every error the host sends."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .redaction import redact

__all__ = ["Problem", "ProblemError", "problem_response", "problem_type", "validation_error",
           "validation_problem"]

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE = "urn:lukhas:problem:"
_SLUG = re.compile(r"[a-z0-9-]+")
#: Where a validation error's `loc` starts: the parts of a request a route's models validate.
_VALIDATED = ("body", "query")

#: The kind of problem a status means when the raiser names none. Every 503
#: names its own kind (failed, retrying, circuit-open, storage-unavailable…).
_SLUG_OF_STATUS = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 408: "timeout", 409: "conflict", 413: "payload-too-large",
    414: "uri-too-long", 422: "validation", 429: "rate-limited", 504: "timeout",
}


def problem_type(slug: str) -> str:
    """The `type` URI of a kind of problem: `urn:lukhas:problem:<slug>`.

    Raises ValueError for a slug that is not lower-case letters, digits and `-`.
    """
    if not _SLUG.fullmatch(slug):
        raise ValueError(f"a problem slug is made of a-z, 0-9 and '-', not {slug!r}")
    return PROBLEM_TYPE + slug


def _type_of(status: int) -> str:
    slug = _SLUG_OF_STATUS.get(status) or ("internal" if status >= 500 else "bad-request")
    return PROBLEM_TYPE + slug


def _checked_type(type: str | None, status: int) -> str:
    """`type`, or the kind `status` means when None. Any other URI (`about:blank`
    among them) is refused where it is written, so that no answer carries it."""
    if type is None:
        return _type_of(status)
    if not (type.startswith(PROBLEM_TYPE) and _SLUG.fullmatch(type[len(PROBLEM_TYPE):])):
        raise ValueError(f"a problem type is urn:lukhas:problem:<slug>, not {type!r}: "
                         "build it with problem_type('<slug>')")
    return type


class Problem(BaseModel):
    """The problem+json body (documented in OpenAPI as a component)."""

    type: str = "urn:lukhas:problem:internal"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class ProblemError(Exception):
    """Raise from a handler to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = _checked_type(type, status)
        self.errors = errors
        self.headers = headers or {}


def problem_response(
    status: int,
    detail: str,
    *,
    type: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A problem+json answer; `type` defaults to the kind `status` means."""
    body: dict[str, Any] = {
        "type": _checked_type(type, status),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": redact(detail),  # it may quote the request's path
    }
    if errors is not None:
        body["errors"] = errors
    return web.Response(
        status=status, text=json.dumps(body), content_type=PROBLEM_JSON, headers=headers
    )


def from_exception(exc: ProblemError) -> web.Response:
    return problem_response(
        exc.status, exc.detail, type=exc.type, errors=exc.errors, headers=exc.headers
    )


def validation_problem(exc: ValidationError, where: str) -> ProblemError:
    """422 listing each field error as `{loc, msg, type}`, loc starting at `where`."""
    errors = [
        {"loc": [where, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]
    return _invalid(where, errors)


def validation_error(loc: Sequence[str | int], msg: str, type: str = "value_error") -> ProblemError:
    """A 422 problem shaped exactly like the host's own validation answers, for a
    check a route's models cannot make (a bound taken from a setting, a rule
    over stored data). Raise it from a handler::

        raise validation_error(("body", "text"), f"at most {limit} characters", "string_too_long")

    `loc` is where the value is, starting with ``"body"`` or ``"query"``;
    `type` is a machine-readable kind, as pydantic's (``value_error``,
    ``string_too_long``, ``less_than_equal``…). Raises ValueError for any
    other first `loc` item.
    """
    if not loc or loc[0] not in _VALIDATED:
        raise ValueError(f"a validation error's loc starts with 'body' or 'query', not {list(loc)!r}")
    return _invalid(str(loc[0]), [{"loc": list(loc), "msg": msg, "type": type}])


def _invalid(where: str, errors: list[dict[str, Any]]) -> ProblemError:
    return ProblemError(422, f"the request {where} failed validation",
                        type=PROBLEM_TYPE + "validation", errors=errors)
