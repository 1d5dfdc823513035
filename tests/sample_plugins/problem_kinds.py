"""Raises problems of its own: without a type, with a type that is no problem
URN, an aiohttp exception, and a validation error against a setting."""

from __future__ import annotations

from aiohttp import web
from lukhas_kernel import PluginSettings, ProblemError, Route, hookimpl, problem_type, validation_error
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from sample_plugins._kit import lukhas_plugin_info  # noqa: F401

PREFIX = "/api/v1/problem_kinds"


class ProblemKindsSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="PROBLEM_KINDS_")

    max_note: int = Field(5, ge=1, le=200)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=200)


class NoteOut(BaseModel):
    text: str


@hookimpl
def lukhas_settings_model() -> type[PluginSettings]:
    return ProblemKindsSettings


@hookimpl
def lukhas_routes(context) -> list[Route]:
    async def note(request: web.Request, body: NoteIn) -> NoteOut:
        limit = context.settings.max_note
        if len(body.text) > limit:
            raise validation_error(("body", "text"), f"String should have at most {limit} characters",
                                   "string_too_long")
        return NoteOut(text=body.text)

    async def untyped(request: web.Request) -> None:
        raise ProblemError(int(request.match_info["status"]), "refused without naming a type")

    async def own_kind(request: web.Request) -> None:
        raise ProblemError(409, "the teapot is busy", type=problem_type("teapot-busy"))

    async def blank(request: web.Request) -> None:
        raise ProblemError(400, "a type that is no problem URN", type="about:blank")

    async def aiohttp_own(request: web.Request) -> None:
        raise web.HTTPUnsupportedMediaType(text="echoes the request: Bearer lk_secret")

    return [
        Route("POST", f"{PREFIX}/note", note, body=NoteIn, response=NoteOut),
        Route("GET", f"{PREFIX}/untyped/{{status}}", untyped),
        Route("GET", f"{PREFIX}/own-kind", own_kind),
        Route("GET", f"{PREFIX}/blank", blank),
        Route("GET", f"{PREFIX}/aiohttp", aiohttp_own),
    ]
