"""A well-behaved plugin exercising most hooks."""

from __future__ import annotations

import structlog
from aiohttp import web
from lukhas_kernel import PluginInfo, PluginSettings, ProblemError, Route, hookimpl
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

events: list[str] = []


class HealthySettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTHY_")

    greeting: str = "hello"
    repeat: int = Field(1, ge=1, le=5)


class EchoIn(BaseModel):
    text: str = Field(min_length=1, max_length=20)
    times: int = Field(1, ge=1, le=3)


class EchoOut(BaseModel):
    text: str


class GreetQuery(BaseModel):
    name: str = Field("world", max_length=10)


class Greeting(BaseModel):
    message: str


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="2.3", route_prefixes=("/api/v1/greetings",))


@hookimpl
def lukhas_settings_model() -> type[PluginSettings]:
    return HealthySettings


@hookimpl
async def lukhas_setup(context) -> None:
    context.state["greeting"] = context.settings.greeting * context.settings.repeat
    events.append("setup")
    structlog.get_logger().info("healthy.setup_done")


@hookimpl
async def lukhas_startup(context) -> None:
    events.append("startup")


@hookimpl
async def lukhas_teardown(context) -> None:
    events.append("teardown")


@hookimpl
def lukhas_health_checks(context):
    async def always() -> bool:
        return True

    return {"always": always}


@hookimpl
def lukhas_routes(context) -> list[Route]:
    async def greet(request: web.Request, query: GreetQuery) -> Greeting:
        return Greeting(message=f"{context.state['greeting']}, {query.name}")

    async def echo(request: web.Request, body: EchoIn) -> EchoOut:
        return EchoOut(text=" ".join([body.text] * body.times))

    async def missing(request: web.Request) -> None:
        raise ProblemError(404, f"no item {request.match_info['item_id']}")

    return [
        Route("GET", "/api/v1/healthy/greet", greet, query=GreetQuery, response=Greeting),
        Route("POST", "/api/v1/healthy/echo", echo, body=EchoIn, response=EchoOut, status=201),
        Route("GET", "/api/v1/greetings/{item_id}", missing, errors={404: "no such item"}),
    ]


@hookimpl
async def lukhas_profile_fields(user, options):
    return {"greeting": f"hello {user['username']}"}


@hookimpl
def lukhas_cli_commands():
    import click

    @click.group("healthy")
    def group() -> None:
        """Commands of the healthy sample plugin."""

    @group.command()
    @click.argument("text")
    def shout(text: str) -> None:
        click.echo(text.upper())

    return [group]
