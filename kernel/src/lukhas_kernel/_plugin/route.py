"""Routes as plugins declare them (the host's handler wrapper enforces them)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

__all__ = ["MAX_TARGET_BYTES", "Handler", "Route", "handler_mismatch", "openapi_path",
           "path_parameters"]

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


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def handler_mismatch(route: Route) -> str | None:
    """Why `route.handler` cannot be called as the host calls it, or None.

    The host calls ``handler(request, body=..., query=...)``, each keyword
    exactly when the route declares its model (see `wrap_handler`). A
    handler that takes another keyword, lacks a declared one, or takes one
    that is never passed would fail, or silently go without its input, at
    every request; this names the mismatch before any request is served.
    """
    handler = route.handler
    name = getattr(handler, "__name__", "the handler")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return None
    parameters = signature.parameters
    named = {p.name for p in parameters.values() if p.kind in _NAMED}
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for keyword, model in (("body", route.body), ("query", route.query)):
        if model is not None and keyword not in named and not any_keyword:
            return (f"the route declares {keyword}={model.__name__}, but handler {name} "
                    f"has no {keyword} parameter")
        if model is None and keyword in named:
            return (f"handler {name} takes {keyword}, but the route declares no {keyword} "
                    f"model: Route(..., {keyword}=YourModel)")
    passed = {keyword: None for keyword in named & {"body", "query"}}
    try:
        signature.bind(None, **passed)
    except TypeError as exc:
        first = next(iter(parameters.values()), None)
        if first is None or first.kind in (inspect.Parameter.KEYWORD_ONLY,
                                           inspect.Parameter.VAR_KEYWORD):
            return f"handler {name} must take the request as its first parameter"
        never = [p.name for p in list(parameters.values())[1:]
                 if p.default is inspect.Parameter.empty and p.name not in passed
                 and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        what = f"has parameter {', '.join(never)}, which the host never passes" if never else str(exc)
        return f"handler {name} {what}: a handler takes (request, body=..., query=...)"
    return None
