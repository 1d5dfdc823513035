"""The `hello` plugin: settings, set-up, two routes and a health check."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from lukhas_kernel import HealthCheck, PluginContext, PluginInfo, PluginSettings, Route, hookimpl
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict


class HelloSettings(PluginSettings):
    """`HELLO_GREETING=Hi`, or `greeting = "Hi"` in `[plugins.hello]` of the config file."""

    model_config = SettingsConfigDict(env_prefix="HELLO_")

    greeting: str = Field("Hello", min_length=1, max_length=40)


class GreetQuery(BaseModel):
    name: str = Field("world", min_length=1, max_length=40)


class Greeting(BaseModel):
    message: str


class EchoIn(BaseModel):
    text: str = Field(min_length=1, max_length=200)


class EchoOut(BaseModel):
    text: str
    length: int


@dataclass
class HelloRuntime:
    """What setup makes, for the routes and the health check."""

    greeting: str


#: The plugin's context: its settings and runtime typed for every hook.
HelloContext = PluginContext[HelloSettings, HelloRuntime]


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(api=">=1,<2", version="0.1.0", description="Says hello")


@hookimpl
def lukhas_settings_model() -> type[PluginSettings]:
    return HelloSettings


@hookimpl
async def lukhas_setup(context: HelloContext) -> None:
    context.runtime = HelloRuntime(greeting=context.settings.greeting)


@hookimpl
def lukhas_routes(context: HelloContext) -> list[Route]:
    async def greet(request: web.Request, query: GreetQuery) -> Greeting:
        return Greeting(message=f"{context.runtime.greeting}, {query.name}!")

    async def echo(request: web.Request, body: EchoIn) -> EchoOut:
        return EchoOut(text=body.text, length=len(body.text))

    return [
        Route("GET", "/api/v1/hello/greet", greet, query=GreetQuery, response=Greeting,
              summary="Greet someone"),
        Route("POST", "/api/v1/hello/echo", echo, body=EchoIn, response=EchoOut,
              summary="Echo a text back"),
    ]


@hookimpl
def lukhas_health_checks(context: HelloContext) -> dict[str, HealthCheck]:
    async def greeting_loaded() -> bool:
        return bool(context.runtime.greeting)

    return {"greeting_loaded": greeting_loaded}
