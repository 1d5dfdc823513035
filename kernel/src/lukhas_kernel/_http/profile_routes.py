"""User profiles: `GET /api/v1/users/me` and `GET /api/v1/users/{user_id}`.

A profile is the kernel's fields plus what serving plugins contribute through
`lukhas_profile_fields`. A field a plugin declares in
`PluginInfo.profile_fields` is in the profile's schema with its type (or
null), always present, and a contribution that does not fit its type is
dropped like one that raised; an undeclared field is passed on as given
(schema: any).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Optional

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from .._core.isolation import describe
from .._core.problems import ProblemError
from .._lifecycle.kernel import Kernel
from .._plugin.context import KERNEL_PROFILE_FIELDS
from .._plugin.route import Route
from .._services.accounts import Accounts, User
from .auth import current_user

__all__ = ["ProfileQuery", "profile_routes"]

log = structlog.get_logger("lukhas.kernel")


class ProfileQuery(BaseModel):
    model_config = ConfigDict(extra="allow")  # plugins read their own options

    include_drift: bool = False


class KernelProfile(BaseModel):
    """The kernel's fields, and any a plugin contributes without declaring it."""

    model_config = ConfigDict(extra="allow")

    user_id: str
    username: str
    tier: str
    # In every profile since the first plugin-API version, null unless vivox
    # contributes it (vivox declares its type when it is loaded).
    drift_metrics: Any | None = None


#: A declared field: the plugin that declared it, and the validator of its values.
Declared = tuple[str, TypeAdapter[Any]]


def _nullable(kind: Any) -> Any:
    """`kind` or None, for any type expression (`kind | None` fails for some, e.g. "Name")."""
    return Optional[kind]  # noqa: UP045


def profile_model(declarations: Mapping[str, Mapping[str, Any]]) -> tuple[type[BaseModel],
                                                                         dict[str, Declared]]:
    """The profile's model with every field plugins declared (`{plugin: {field: type}}`,
    in load order), and each field's declaring plugin and validator.

    The first plugin to declare a field owns it; a later declaration of the
    same field is ignored, with a warning naming both.
    """
    kept: dict[str, tuple[str, Any]] = {}  # field -> (plugin, type)
    for plugin, declared in declarations.items():
        for name, kind in declared.items():
            if name in kept:
                log.warning("profile.field_clash", plugin=plugin, field=name, owner=kept[name][0])
                continue
            kept[name] = (plugin, kind)
    fields = tuple((name, plugin, kind) for name, (plugin, kind) in kept.items())
    try:
        hash(fields)
    except TypeError:  # a declared type that cannot be hashed: built, not remembered
        return _build_profile_model(fields)
    return _remembered_profile_model(fields)


def _build_profile_model(fields: tuple[tuple[str, str, Any], ...]) -> tuple[type[BaseModel],
                                                                          dict[str, Declared]]:
    """The model of these (field, plugin, type), and each field's declaring plugin and validator."""
    owned: dict[str, Declared] = {}
    model_fields: dict[str, Any] = {}
    for name, plugin, kind in fields:
        nullable = _nullable(kind)
        owned[name] = (plugin, TypeAdapter(nullable))
        model_fields[name] = (nullable, Field(None, description=f"contributed by the {plugin} plugin"))
    model = create_model("UserProfile", __base__=KernelProfile,
                         __doc__="A user's profile: the kernel's fields and those plugins contribute.",
                         **model_fields)
    return model, owned


#: The same declarations give the same (immutable) model and validators:
#: built once per process rather than per host.
_remembered_profile_model = functools.lru_cache(maxsize=32)(_build_profile_model)


def profile_routes(kernel: Kernel, accounts: Accounts) -> list[Route]:
    """`/users/me` and `/users/{user_id}`, `me` first: it is no user id."""
    declarations = {name: plugin.info.profile_fields for name, plugin in kernel.plugins.items()
                    if plugin.info is not None and plugin.info.profile_fields}
    model, owned = profile_model(declarations)

    async def answer(caller: User, user_id: str, query: ProfileQuery) -> BaseModel:
        # Another user's profile is "not found": existence is not revealed.
        user = await accounts.get_user(user_id) if caller.is_admin or caller.id == user_id else None
        if user is None:
            raise ProblemError(404, f"no user {user_id}")
        person = {"user_id": user.id, "username": user.username, "tier": user.tier, "role": user.role}
        contributions = await kernel.call_each("lukhas_profile_fields", user=person,
                                               options=query.model_dump())
        fields = _fitting(contributions, owned)
        return model.model_validate({**fields, **{k: person[k] for k in KERNEL_PROFILE_FIELDS}})

    async def mine(request: web.Request, query: ProfileQuery) -> BaseModel:
        caller = current_user(request)
        return await answer(caller, caller.id, query)

    async def anyone(request: web.Request, query: ProfileQuery) -> BaseModel:
        return await answer(current_user(request), request.match_info["user_id"], query)

    return [
        Route("GET", "/api/v1/users/me", mine, query=ProfileQuery, response=model,
              summary="Your own profile, with fields plugins contribute"),
        Route("GET", "/api/v1/users/{user_id}", anyone, query=ProfileQuery, response=model,
              summary="A user's profile (self or admin), with fields plugins contribute",
              errors={404: "no such user"}),
    ]


def _fitting(contributions: Mapping[str, Any], owned: Mapping[str, Declared]) -> dict[str, Any]:
    """Every plugin's fields merged (the kernel's own left out), each declared
    field validated against its type; a value that does not fit is dropped."""
    fields: dict[str, Any] = {}
    for plugin, contribution in contributions.items():
        if not isinstance(contribution, Mapping):
            continue
        for name, value in contribution.items():
            if name in KERNEL_PROFILE_FIELDS:
                continue
            if name in owned:
                try:
                    value = owned[name][1].validate_python(value)
                except ValidationError as exc:
                    log.warning("plugin.profile_field_invalid", plugin=plugin, field=name,
                                reason=describe(exc))
                    continue
            fields[name] = value
    return fields
