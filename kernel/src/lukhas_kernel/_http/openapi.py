"""OpenAPI 3.1 from the routes' pydantic models, and Swagger UI served locally.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic emits, so
the models' schemas go into `components.schemas` unchanged.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from .._core.problems import PROBLEM_JSON, Problem, ProblemError
from .._core.version import KERNEL_VERSION
from .._plugin.route import MAX_TARGET_BYTES, Route, openapi_path, path_parameters
from .auth import needs_token

__all__ = ["add_docs_routes", "openapi_document"]

_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lukhas API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>
"""
_DOCS_INIT = "window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});\n"


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def openapi_document(mounted: list[tuple[str | None, Route]], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `(plugin or None for the kernel, route)` pairs."""
    from pydantic.json_schema import models_json_schema

    keys: list[tuple[type[BaseModel], Any]] = [(Problem, "serialization")]
    for _, route in mounted:
        keys += [(m, "validation") for m in (route.body, route.query) if m is not None]
        if route.response is not None:
            keys.append((route.response, "serialization"))
    refs, definitions = models_json_schema(
        list(dict.fromkeys(keys)), ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for plugin, route in mounted:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(plugin, route, refs)
    tags = sorted({plugin or "kernel" for plugin, _ in mounted})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lukhas", "version": version},
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "lk_… token from `lukhas tokens issue`"}},
        },
    }


def _operation(plugin: str | None, route: Route,
               refs: Mapping[tuple[Any, Any], dict[str, Any]]) -> dict[str, Any]:
    """One route's OpenAPI operation: parameters, body, every answer."""
    operation: dict[str, Any] = {
        "tags": [plugin or "kernel"],
        "summary": route.summary or route.operation,
        "operationId": f"{plugin or 'kernel'}_{route.method.lower()}_"
        + "".join(c if c.isalnum() else "_" for c in route.path).strip("_"),
        "responses": {},
    }
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in path_parameters(route.path)]
    if route.query is not None:
        schema = route.query.model_json_schema()
        required = set(schema.get("required", []))
        parameters += [{"name": name, "in": "query", "required": name in required,
                        "schema": prop}
                       for name, prop in schema.get("properties", {}).items()]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(route.body, "validation")]}}}
    if needs_token(route.path):
        operation["security"] = [{"bearer": []}]
    problems = _problems(plugin, route)
    for status, reasons in sorted(problems.items()):
        operation["responses"][str(status)] = _problem("; or ".join(dict.fromkeys(reasons)))
    success: dict[str, Any] = {"description": route.summary or "success"}
    if route.response is not None:
        success["content"] = {route.media_type: {
            "schema": refs[(route.response, "serialization")]}}
    elif route.media_type != "application/json":
        success["content"] = {route.media_type: {"schema": {"type": "string"}}}
    operation["responses"][str(route.status)] = success
    for status in route.response_statuses:
        # Answered with the route's own model as well as, for other reasons, a problem.
        answer = operation["responses"].setdefault(str(status), {"description": success["description"]})
        answer["content"] = {**success.get("content", {}), **answer.get("content", {})}
    return operation


def _problems(plugin: str | None, route: Route) -> dict[int, list[str]]:
    """Problem answers by status, each with every reason it can have."""
    # Problem answers by status, each with every reason it can have: the
    # route's own (`errors`), then what the host answers around any
    # handler (`app.py`, `handlers.py`): body and query validation, the
    # token, the role, the plugin's state, storage and the time limit.
    problems: dict[int, list[str]] = {status: [text] for status, text in route.errors.items()}
    if route.body is not None:
        problems.setdefault(400, []).append("malformed JSON")
        problems.setdefault(413, []).append("the body is over LUKHAS_MAX_BODY_BYTES")
    if route.body is not None or route.query is not None:
        problems.setdefault(422, []).append("validation failed")
    if needs_token(route.path):
        problems.setdefault(401, []).append("missing, malformed, unknown or revoked token")
        if route.role == "admin":
            problems.setdefault(403, []).append("the admin role is needed")
    if route.rate_limit:
        problems.setdefault(429, []).append(f"rate limited ({route.rate_limit} per caller)")
    if plugin is not None:
        problems.setdefault(403, []).append(f"the {plugin} subsystem is disabled")
        problems.setdefault(503, []).append(f"the {plugin} subsystem failed or was skipped")
    if plugin is not None or needs_token(route.path):
        problems.setdefault(503, []).append("storage unavailable")
    problems.setdefault(503, []).append("no answer within LUKHAS_REQUEST_TIMEOUT_S")
    problems.setdefault(414, []).append(f"the request target is longer than {MAX_TARGET_BYTES} bytes")
    return problems



def add_docs_routes(app: web.Application, revision: Callable[[], int],
                    mounted: Callable[[], list[tuple[str | None, Route]]]) -> None:
    """Mount `/openapi.json`, `/docs` and the Swagger UI assets (no CDN).

    `mounted()` lists the routes in force, by owner (None for the kernel),
    and `revision()` changes whenever they do: a plugin brought up after
    start-up (a retry, a restart) adds its own.
    """
    # Built on first request, not at start-up: it costs as much as loading a
    # plugin; built again only when the routes in force changed.
    cache: dict[int, str] = {}

    async def spec(request: web.Request) -> web.Response:
        key = revision()
        if key not in cache:
            cache.clear()
            cache[key] = json.dumps(openapi_document(mounted(), KERNEL_VERSION))
        return web.Response(text=cache[key], content_type="application/json")

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_HTML, content_type="text/html")

    async def init(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_INIT, content_type="application/javascript")

    # The bundle's files by name, listed once (at the first request for one,
    # like everything here: a host starts without them): a request names one
    # of them or gets a 404 problem; no path from a request ever reaches the file system.
    assets: dict[str, Path] = {}

    # Each read whole at its first request (off the event loop), then kept:
    # a FileResponse answers Range and conditional requests itself, with
    # bodiless 416 and 412 answers that cannot be problems; the whole file is
    # always a correct answer to them.
    loaded: dict[str, bytes] = {}

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not assets:
            assets.update(await asyncio.to_thread(_swagger_assets))
        path = assets.get(name)
        if path is None:
            raise ProblemError(404, f"no resource at {request.path}")
        if name not in loaded:
            loaded[name] = await asyncio.to_thread(path.read_bytes)
        return web.Response(body=loaded[name], headers={"Cache-Control": "max-age=3600"},
                            content_type=mimetypes.guess_type(name)[0] or "application/octet-stream")

    app.router.add_get("/openapi.json", spec)
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/init.js", init)
    app.router.add_get("/docs/static/{name}", asset)


def _swagger_assets() -> dict[str, Path]:
    from openapi_ui_bundles import swagger_ui

    return {path.name: path for path in Path(swagger_ui.static_path).iterdir() if path.is_file()}
