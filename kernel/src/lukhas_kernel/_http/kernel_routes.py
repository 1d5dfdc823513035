"""The kernel's own routes: health, readiness, plugins, user profiles, flags."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model

from .._lifecycle.kernel import Kernel
from .._lifecycle.records import PluginRecord
from .._plugin.route import Route
from .._plugin.states import PluginState, PluginView
from .auth import current_user
from .chaos_routes import chaos_routes
from .plugin_admin_routes import plugin_admin_routes
from .profile_routes import profile_routes

__all__ = ["kernel_routes"]


class Alive(BaseModel):
    status: str = "alive"


class PluginBrief(BaseModel):
    name: str
    state: PluginState
    reason: str | None


class Readiness(BaseModel):
    status: str
    kernel: str
    required: list[str]
    missing: list[str]
    plugins: list[PluginBrief]


class PluginList(BaseModel):
    status: str
    items: list[PluginView]
    count: int


@functools.lru_cache(maxsize=32)
def flag_models(names: tuple[str, ...]) -> tuple[type[BaseModel], type[BaseModel]]:
    """The models of `{"FLAG_NAME": bool, ...}`: every flag (answers), and any
    subset of them (PATCH bodies).

    Made from the flags a host has, so the OpenAPI document names each one
    and an unknown name is a validation error (`422`, nothing changed); the
    same flags give the same (immutable) models, built once per process.
    Flag names need not be identifiers: each is a field's alias.
    """
    config = ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False,
                        serialize_by_alias=True)
    every: dict[str, Any] = {f"flag_{i}": (StrictBool, Field(alias=name)) for i, name in enumerate(names)}
    # A factory, not `None`, as the default: the schema then shows no
    # (non-boolean) default, and `null` is still refused.
    some: dict[str, Any] = {f"flag_{i}": (StrictBool, Field(default_factory=lambda: None, alias=name))
                            for i, name in enumerate(names)}
    whole = create_model("FlagMap", __config__=config,
                         __doc__="Every run-time flag of this host and its value.", **every)
    partial = create_model("FlagPatch", __config__=config,
                           __doc__="Any subset of the flags, each with its new value.", **some)
    return whole, partial


def kernel_routes(kernel: Kernel) -> list[Route]:
    """The kernel's routes; `kernel.load()` has run, so every flag is known."""
    if kernel.services is None:
        raise ValueError("the kernel's routes need its services")
    return [*_health_routes(kernel), _plugins_route(kernel),
            *profile_routes(kernel, kernel.services.accounts), *_flag_routes(kernel),
            *plugin_admin_routes(kernel), *chaos_routes(kernel)]


def _health_routes(kernel: Kernel) -> list[Route]:
    async def healthz(request: web.Request) -> Alive:
        return Alive()

    async def readyz(request: web.Request) -> web.Response:
        required = kernel.settings.required
        missing = kernel.missing_required()
        ready = kernel.ready and not missing
        body = Readiness(
            status="ready" if ready else "not_ready",
            kernel="ready" if kernel.ready else "starting",
            required=required,
            missing=missing,
            plugins=[PluginBrief(name=r.name, state=r.state, reason=r.reason)
                     for r in kernel.records.values()],
        )
        return web.Response(status=200 if ready else 503, text=body.model_dump_json(),
                            content_type="application/json")

    return [
        Route("GET", "/healthz", healthz, response=Alive, summary="Liveness"),
        Route("GET", "/readyz", readyz, response=Readiness,
              summary="Readiness: kernel started and every required plugin serving",
              errors={503: "not ready; the body says why"}, response_statuses=(503,)),
    ]


def _plugins_route(kernel: Kernel) -> Route:
    # The last `/api/v1/plugins` body and what it was built from: the body
    # depends only on the records, so it is current while the same records
    # are at the same revisions.
    built_from: list[tuple[PluginRecord, int]] | None = None
    body = b""

    async def plugins(request: web.Request) -> web.Response:
        nonlocal built_from, body
        # Read before building: a change made meanwhile still shows as a new revision.
        source = [(p.record, p.record.revision) for p in kernel.plugins.values()]
        if source != built_from:
            items = kernel.view.plugins()
            body = PluginList(status=kernel.report().status, items=items,
                              count=len(items)).model_dump_json().encode()
            built_from = source
        return web.Response(body=body, content_type="application/json", charset="utf-8")

    return Route("GET", "/api/v1/plugins", plugins, response=PluginList,
                 summary="Every discovered plugin with its state and reason")


def _flag_routes(kernel: Kernel) -> list[Route]:
    flag_map, flag_patch = flag_models(tuple(kernel.flag_values()))

    async def get_flags(request: web.Request) -> BaseModel:
        return flag_map.model_validate(kernel.flag_values())

    async def patch_flags(request: web.Request, body: BaseModel) -> BaseModel:
        # Only the flags the body names: the others keep their values.
        changes = body.model_dump(by_alias=True, exclude_unset=True)
        return flag_map.model_validate(await kernel.update_flags(changes, current_user(request).id))

    return [
        Route("GET", "/api/v1/admin/flags", get_flags, response=flag_map, role="admin",
              summary="Run-time flags"),
        Route("PATCH", "/api/v1/admin/flags", patch_flags, body=flag_patch, response=flag_map,
              role="admin", summary="Change run-time flags (persisted; the environment wins at start)"),
    ]
