"""Routes as plugins declare them (the host's handler wrapper enforces them)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

__all__ = ["MAX_TARGET_BYTES", "Handler", "Route", "openapi_path", "path_parameters"]

Handler = Callable[..., Awaitable[Any]]
#: Longest request target (path and query) the host serves; longer is `414`.
MAX_TARGET_BYTES = 8192
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Route:
    """One HTTP operation.

    The handler is called as ``handler(request, body=..., query=...)``, each
    keyword present only when the matching model is declared, already
    validated. It returns a pydantic model or dict (sent as JSON with
    `status`), None (sent as an empty `status` response, e.g. 204), or any
    aiohttp response.
    """

    method: str
    path: str
    handler: Handler
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    summary: str = ""
    # Other documented answers, as problem+json, e.g. {404: "no such dream"}.
    errors: dict[int, str] = field(default_factory=dict)
    # Statuses besides `status` answered with the `response` model too, e.g.
    # /readyz's 503 while not ready (described in `errors`).
    response_statuses: tuple[int, ...] = ()
    # Who may call it: "user" (any authenticated caller) or "admin". Every
    # route under /api/v1 needs a bearer token; routes outside it are public.
    role: str = "user"
    # Per-caller limit in the `limits` notation, e.g. "50/minute".
    rate_limit: str | None = None
    # What a successful answer carries; a route without a `response` model
    # that answers e.g. "text/html" says so here for the OpenAPI document.
    media_type: str = "application/json"

    @property
    def operation(self) -> str:
        return f"{self.method.upper()} {self.path}"


def path_parameters(path: str) -> list[str]:
    return _PARAM.findall(path)


def openapi_path(path: str) -> str:
    """`/x/{id:\\d+}` → `/x/{id}`."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
