"""Per-plugin circuit breakers on a test host: faults set through the chaos API
open one plugin's breaker; the kernel and other plugins are unaffected."""

from __future__ import annotations

import structlog
from sample_plugins import handler_raises
from support.answers import plugin_states, problem
from support.polling import eventually_async

BREAKER = {"breaker_min_requests": 4, "breaker_window_s": 10, "breaker_failure_ratio": 0.5,
           "breaker_cooldown_s": 2, "chaos_enabled": True}
PLUGINS = ["sample_plugins.healthy", "sample_plugins.needs_healthy"]
GREET = "/api/v1/healthy/greet"


async def set_faults(client, *faults: str) -> None:
    response = await client.put("/api/v1/admin/chaos", json={"faults": list(faults)})
    assert response.status == 200, await response.text()


async def test_request_faults_open_the_breaker_then_it_closes_after_the_cooldown(lukhas_host):
    with structlog.testing.capture_logs() as logs:
        client = await lukhas_host(PLUGINS, **BREAKER)
        await set_faults(client, "healthy:request:raise")
        for _ in range(4):
            await problem(await client.get(GREET), 500)

        refused = await client.get(GREET)
        body = await problem(refused, 503)
        assert body["type"] == "urn:lukhas:problem:circuit-open"
        opened = "healthy circuit open: 4 of 4 requests failed in the last 10 s; retry in 2 s"
        # The seconds count down from the whole cooldown (a loaded machine may be a second on).
        assert body["detail"] in (opened, opened.replace("in 2 s", "in 1 s"))
        assert refused.headers["Retry-After"] in ("1", "2")
        item = (await plugin_states(client))["healthy"]
        assert (item["state"], item["breaker"]) == ("degraded", "open")
        assert item["reason"] == opened
        # The kernel's routes and another plugin's are unaffected.
        assert (await client.get("/api/v1/needs_healthy/ping")).status == 200
        assert (await client.get("/api/v1/plugins")).status == 200

        await set_faults(client)

        async def closed() -> bool:
            return (await client.get(GREET)).status == 200

        await eventually_async(closed, 10)
        item = (await plugin_states(client))["healthy"]
        assert (item["state"], item["breaker"], item["reason"]) == ("active", "closed", None)
    events = [e["event"] for e in logs if e["event"].startswith("plugin.breaker_")]
    assert events == ["plugin.breaker_opened", "plugin.breaker_closed"]


async def test_a_failing_probe_opens_it_again(lukhas_host):
    client = await lukhas_host(["sample_plugins.handler_raises"], **BREAKER)
    broken = "/api/v1/handler_raises/broken"
    for _ in range(4):
        await problem(await client.get(broken), 500)
    calls = len(handler_raises.calls)
    await problem(await client.get(broken), 503)
    assert len(handler_raises.calls) == calls  # refused without calling the handler

    async def probed() -> bool:  # after the cooldown the probe reaches the handler: 500
        return (await client.get(broken)).status == 500

    await eventually_async(probed, 10)
    body = await problem(await client.get(broken), 503)
    assert body["type"] == "urn:lukhas:problem:circuit-open"
    assert (await plugin_states(client))["handler_raises"]["breaker"] == "open"


async def test_client_errors_never_open_it(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy"], **BREAKER)
    for _ in range(10):
        await problem(await client.get(GREET, params={"name": "x" * 50}), 422)
    assert (await client.get(GREET)).status == 200
    assert (await plugin_states(client))["healthy"]["breaker"] == "closed"


async def test_hung_handlers_count_as_failures(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy"], request_timeout_s=0.2, **BREAKER)
    await set_faults(client, "healthy:request:hang")
    for _ in range(4):
        await problem(await client.get(GREET), 503)
    body = await problem(await client.get(GREET), 503)
    assert body["type"] == "urn:lukhas:problem:circuit-open"


async def test_without_breakers_failures_keep_reaching_the_handler(lukhas_host):
    client = await lukhas_host(["sample_plugins.handler_raises"], **{**BREAKER, "breaker_enabled": False})
    for _ in range(8):
        await problem(await client.get("/api/v1/handler_raises/broken"), 500)
    assert (await plugin_states(client))["handler_raises"]["breaker"] == "closed"


async def test_a_restart_closes_the_breaker(lukhas_host):
    client = await lukhas_host(["sample_plugins.handler_raises"], **BREAKER)
    for _ in range(4):
        await problem(await client.get("/api/v1/handler_raises/broken"), 500)
    assert (await plugin_states(client))["handler_raises"]["breaker"] == "open"
    response = await client.post("/api/v1/admin/plugins/handler_raises/restart")
    assert (await response.json())["breaker"] == "closed"
    await problem(await client.get("/api/v1/handler_raises/broken"), 500)
