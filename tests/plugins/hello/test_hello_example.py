"""The example plugin examples/hello, loaded in-process by module path (not installed)."""

from __future__ import annotations

import pytest
from support.answers import plugin_states, problem
from support.paths import ROOT

HELLO_SRC = ROOT / "examples" / "hello" / "src"


@pytest.fixture
def hello_host(lukhas_host, monkeypatch):
    """`lukhas_host` with examples/hello/src importable; call it to start the host."""
    monkeypatch.syspath_prepend(str(HELLO_SRC))
    for name in ("HELLO_GREETING", "HELLO_ENABLED"):
        monkeypatch.delenv(name, raising=False)

    def start(**settings):
        return lukhas_host(["hello=lukhas_hello.plugin"], **settings)

    return start


async def test_greet_and_echo(hello_host):
    client = await hello_host(required_plugins="hello")

    item = (await plugin_states(client))["hello"]
    assert item["state"] == "active", item
    assert item["version"] == "0.1.0"
    assert item["distribution"] is None  # loaded by module path, not installed
    assert set(item["routes"]) == {"GET /api/v1/hello/greet", "POST /api/v1/hello/echo"}
    assert (await client.get("/readyz")).status == 200

    response = await client.get("/api/v1/hello/greet", params={"name": "Ada"})
    assert response.status == 200
    assert await response.json() == {"message": "Hello, Ada!"}
    response = await client.get("/api/v1/hello/greet")
    assert await response.json() == {"message": "Hello, world!"}

    response = await client.post("/api/v1/hello/echo", json={"text": "ping"})
    assert response.status == 200
    assert await response.json() == {"text": "ping", "length": 4}


async def test_bad_input_is_a_problem(hello_host):
    client = await hello_host()

    body = await problem(await client.post("/api/v1/hello/echo", json={"text": ""}), 422)
    assert [e["loc"] for e in body["errors"]] == [["body", "text"]]
    body = await problem(await client.post("/api/v1/hello/echo", json={}), 422)
    assert body["errors"][0]["type"] == "missing"
    await problem(await client.post("/api/v1/hello/echo", data=b"{not json"), 400)
    body = await problem(await client.get("/api/v1/hello/greet", params={"name": "x" * 41}), 422)
    assert body["errors"][0]["loc"] == ["query", "name"]


async def test_greeting_setting(hello_host, monkeypatch):
    monkeypatch.setenv("HELLO_GREETING", "Hi")
    client = await hello_host()
    response = await client.get("/api/v1/hello/greet", params={"name": "Ada"})
    assert await response.json() == {"message": "Hi, Ada!"}


async def test_greeting_from_config_file_table(hello_host):
    client = await hello_host(config={"plugins": {"hello": {"greeting": "Howdy"}}})
    response = await client.get("/api/v1/hello/greet", params={"name": "Ada"})
    assert await response.json() == {"message": "Howdy, Ada!"}


async def test_invalid_setting_fails_only_the_plugin(hello_host, monkeypatch):
    monkeypatch.setenv("HELLO_GREETING", "")
    client = await hello_host()
    item = (await plugin_states(client))["hello"]
    assert item["state"] == "failed"
    assert "HELLO_GREETING" in item["reason"]
    body = await problem(await client.get("/api/v1/hello/greet"), 503)
    assert "HELLO_GREETING" in body["detail"]
    assert (await client.get("/healthz")).status == 200


async def test_disabled_by_flag(hello_host, monkeypatch):
    monkeypatch.setenv("HELLO_ENABLED", "false")
    client = await hello_host()
    assert (await plugin_states(client))["hello"]["state"] == "disabled"
    body = await problem(await client.get("/api/v1/hello/greet"), 403)
    assert body["detail"] == "hello subsystem is not enabled"


async def test_routes_are_in_openapi(hello_host):
    client = await hello_host()
    document = await (await client.get("/openapi.json")).json()
    assert {"get"} <= document["paths"]["/api/v1/hello/greet"].keys()
    assert {"post"} <= document["paths"]["/api/v1/hello/echo"].keys()


@pytest.mark.parametrize("path", ["pyproject.toml", "src/lukhas_hello/plugin.py"])
def test_readme_shows_the_example_verbatim(path):
    """The top-level README inlines these files; they must not drift apart."""
    source = (ROOT / "examples" / "hello" / path).read_text()
    assert source in (ROOT / "README.md").read_text(), f"README.md lags behind examples/hello/{path}"
