"""RFC 9457 problem details: the one shape of every error the host sends."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .redaction import redact

__all__ = ["Problem", "ProblemError", "problem_response", "validation_problem"]

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """The problem+json body (documented in OpenAPI as a component)."""

    type: str = "about:blank"
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
        type: str = "about:blank",
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type
        self.errors = errors
        self.headers = headers or {}


def problem_response(
    status: int,
    detail: str,
    *,
    type: str = "about:blank",
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "type": type,
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
