"""RFC 9457 problem details: the one shape of every error the host sends."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .redaction import redact

__all__ = ["Problem", "ProblemError", "problem_response", "problem_type", "validation_problem"]

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE = "urn:lukhas:problem:"

#: The kind of problem a status means when the raiser names none. Every 503
#: names its own kind (failed, retrying, circuit-open, storage-unavailable…).
_SLUG_OF_STATUS = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 408: "timeout", 409: "conflict", 413: "payload-too-large",
    414: "uri-too-long", 422: "validation", 429: "rate-limited", 504: "timeout",
}


def problem_type(slug: str) -> str:
    """The `type` URI of a kind of problem: `urn:lukhas:problem:<slug>`."""
    return PROBLEM_TYPE + slug


def _type_of(status: int) -> str:
    slug = _SLUG_OF_STATUS.get(status) or ("internal" if status >= 500 else "bad-request")
    return PROBLEM_TYPE + slug


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
        self.type = type or _type_of(status)
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
        "type": type or _type_of(status),
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
    return ProblemError(
        422,
        f"the request {where} failed validation",
        type="urn:lukhas:problem:validation",
        errors=errors,
    )
