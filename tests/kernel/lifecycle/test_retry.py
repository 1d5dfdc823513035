"""Retry with backoff of failed migrate, setup and startup stages, and restart on
demand (docs/plugin-states.md, Run-time resilience), through a test host."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import pytest
import structlog
from lukhas_kernel.testing import KERNEL_KEY
from sample_plugins import healthy
from support.answers import plugin_states, problem
from support.polling import eventually_async

pytestmark = pytest.mark.both_databases

QUICK = {"plugin_retry_base_s": 0.2, "plugin_timeout_s": 0.5}
PAIR = ["sample_plugins.healthy", "sample_plugins.needs_healthy"]


async def state_of(client, name: str) -> str:
    return (await plugin_states(client))[name]["state"]


async def test_setup_failing_twice_is_retried_until_active_and_its_dependent_follows(lukhas_host):
    with structlog.testing.capture_logs() as logs:
        # A first retry two seconds later: time enough, even on a loaded
        # machine, to see the plugin retrying before it.
        client = await lukhas_host(PAIR, chaos="healthy:setup:fail_times=2",
                                   **{**QUICK, "plugin_retry_base_s": 2.0})
        states = await plugin_states(client)
        item = states["healthy"]
        assert item["state"] == "retrying"
        assert item["reason"].startswith("setup: ChaosError: injected fail_times=2")
        assert item["attempts"] == 1
        assert datetime.fromisoformat(item["next_attempt_at"]).tzinfo is not None
        assert states["needs_healthy"]["state"] == "skipped"

        response = await client.get("/api/v1/healthy/greet")
        body = await problem(response, 503)
        assert body["type"] == "urn:lukhas:problem:retrying"
        assert int(response.headers["Retry-After"]) >= 1
        assert re.fullmatch(r"healthy subsystem retrying: setup: ChaosError: injected fail_times=2.*; "
                            r"attempt 1 of 6 failed, next in [12] s", body["detail"]), body["detail"]
        assert "/api/v1/healthy/greet" not in (await (await client.get("/openapi.json")).json())["paths"]

        await eventually_async(lambda: _active(client, "healthy", "needs_healthy"), 30)
        # The recovery is logged once the attempt is settled, a moment after
        # the routes are mounted (a durable start marker, health checks).
        await eventually_async(lambda: _logged(logs, "plugin.recovered"), 30)
        # Its routes were mounted after the app was built: served all the same.
        greet = await client.get("/api/v1/healthy/greet", params={"name": "ada"})
        assert greet.status == 200, await greet.text()
        assert (await client.get("/api/v1/needs_healthy/ping")).status == 200
        assert "/api/v1/healthy/greet" in (await (await client.get("/openapi.json")).json())["paths"]
        item = (await plugin_states(client))["healthy"]
        assert (item["attempts"], item["next_attempt_at"], item["reason"]) == (0, None, None)
    scheduled = [e for e in logs if e["event"] == "plugin.retry_scheduled"]
    assert [(e["plugin"], e["stage"], e["attempt"]) for e in scheduled] == [
        ("healthy", "setup", 1), ("healthy", "setup", 2)]
    assert [e["delay_s"] for e in scheduled] == [2.0, 4.0]
    recovered = [e for e in logs if e["event"] == "plugin.recovered"]
    assert [(e["plugin"], e["attempts"]) for e in recovered] == [("healthy", 3)]


def _logged(logs: list[dict], event: str) -> bool:
    return any(entry["event"] == event for entry in logs)


async def _active(client, *names: str) -> bool:
    states = await plugin_states(client)
    return all(states[name]["state"] == "active" for name in names)


async def test_attempts_exhausted_leave_it_failed(lukhas_host):
    client = await lukhas_host(["sample_plugins.setup_raises"], plugin_retries=2, **QUICK)

    async def failed() -> bool:
        return await state_of(client, "setup_raises") == "failed"

    await eventually_async(failed, 15)
    item = (await plugin_states(client))["setup_raises"]
    assert item["attempts"] == 3
    assert item["next_attempt_at"] is None
    assert item["reason"] == "setup: ConnectionError: database refused the connection"
    body = await problem(await client.get("/api/v1/setup_raises/ping"), 503)
    assert body["type"] == "urn:lukhas:problem:failed"


async def test_a_hung_setup_is_cancelled_at_the_timeout_and_retried(lukhas_host):
    client = await lukhas_host(["sample_plugins.setup_hangs"], plugin_retries=1,
                               plugin_retry_base_s=2.0, plugin_timeout_s=0.3)
    assert (await plugin_states(client))["setup_hangs"]["state"] == "retrying"

    async def failed() -> bool:
        return await state_of(client, "setup_hangs") == "failed"

    await eventually_async(failed, 15)
    item = (await plugin_states(client))["setup_hangs"]
    assert (item["attempts"], item["reason"]) == (2, "setup: timed out after 0.3s")


async def test_without_retries_a_failed_setup_is_failed_at_once(lukhas_host):
    client = await lukhas_host(["sample_plugins.setup_raises"], plugin_retries=0)
    item = (await plugin_states(client))["setup_raises"]
    assert (item["state"], item["attempts"], item["next_attempt_at"]) == ("failed", 1, None)
    report = await (await client.get("/api/v1/plugins")).json()
    assert report["status"] == "failed"


async def test_a_retrying_required_plugin_keeps_readyz_503(lukhas_host):
    client = await lukhas_host(["sample_plugins.setup_raises", "sample_plugins.healthy"],
                               required_plugins="setup_raises", **QUICK)
    assert (await client.get("/readyz")).status == 503
    report = await (await client.get("/api/v1/plugins")).json()
    assert report["status"] == "partial"


async def test_import_failures_are_never_retried(lukhas_host):
    client = await lukhas_host(["sample_plugins.import_raises"], **QUICK)
    item = (await plugin_states(client))["import_raises"]
    assert (item["state"], item["attempts"]) == ("failed", 0)


# -- restart on demand ----------------------------------------------------


async def test_restart_brings_a_plugin_up_again_with_its_dependents(lukhas_host):
    client = await lukhas_host(PAIR)
    healthy.events.clear()
    response = await client.post("/api/v1/admin/plugins/healthy/restart")
    assert response.status == 200, await response.text()
    item = await response.json()
    assert (item["name"], item["state"], item["attempts"], item["breaker"]) == (
        "healthy", "active", 0, "closed")
    assert healthy.events == ["teardown", "setup", "needs_healthy.setup", "startup"]
    assert (await client.get("/api/v1/healthy/greet")).status == 200


async def test_restart_of_a_retrying_plugin_runs_at_once(lukhas_host):
    client = await lukhas_host(PAIR, chaos="healthy:setup:fail_times=1",
                               plugin_retry_base_s=60)
    assert await state_of(client, "healthy") == "retrying"
    response = await client.post("/api/v1/admin/plugins/healthy/restart")
    assert response.status == 200
    assert (await response.json())["state"] == "active"
    assert await _active(client, "healthy", "needs_healthy")


async def test_restart_refusals(lukhas_host, monkeypatch):
    monkeypatch.setenv("HEALTHY_ENABLED", "false")
    client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.import_raises"])
    missing = await problem(await client.post("/api/v1/admin/plugins/nothing/restart"), 404)
    assert missing["type"] == "urn:lukhas:problem:not-found"
    for name in ("healthy", "import_raises"):
        body = await problem(await client.post(f"/api/v1/admin/plugins/{name}/restart"), 409)
        assert body["type"] == "urn:lukhas:problem:conflict"


async def test_a_restart_while_one_runs_is_409(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy"], chaos="healthy:setup:delay_ms=300")
    first = asyncio.create_task(client.post("/api/v1/admin/plugins/healthy/restart"))

    async def restarting() -> bool:  # the first restart is inside its 300 ms setup
        return await state_of(client, "healthy") == "pending"

    await eventually_async(restarting, 5, interval=0.02)
    second = await client.post("/api/v1/admin/plugins/healthy/restart")
    await problem(second, 409)
    assert (await first).status == 200


async def test_a_restarting_plugin_is_not_active_until_its_startup_stage_passes(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy"], chaos="healthy:startup:delay_ms=400")
    healthy.events.clear()
    restart = asyncio.create_task(client.post("/api/v1/admin/plugins/healthy/restart"))
    await eventually_async(_set_up_again, 5, interval=0.01)
    assert await state_of(client, "healthy") == "pending"
    gated = await problem(await client.get("/api/v1/healthy/greet"), 503)
    assert gated["type"] == "urn:lukhas:problem:retrying"
    assert (await restart).status == 200
    assert await state_of(client, "healthy") == "active"
    assert (await client.get("/api/v1/healthy/greet")).status == 200


async def test_a_plugin_disabled_while_it_starts_stays_disabled_then_comes_back_up(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy"], chaos="healthy:startup:delay_ms=400")
    healthy.events.clear()
    restart = asyncio.create_task(client.post("/api/v1/admin/plugins/healthy/restart"))
    await eventually_async(_set_up_again, 5, interval=0.01)
    assert (await client.patch("/api/v1/admin/flags", json={"HEALTHY_ENABLED": False})).status == 200
    assert (await restart).status == 200
    assert healthy.events == ["teardown", "setup", "startup"]
    assert await state_of(client, "healthy") == "disabled"
    await problem(await client.get("/api/v1/healthy/greet"), 403)
    assert (await client.patch("/api/v1/admin/flags", json={"HEALTHY_ENABLED": True})).status == 200
    assert await state_of(client, "healthy") == "active"
    assert (await client.get("/api/v1/healthy/greet")).status == 200


def _set_up_again() -> bool:
    """The restart's setup has returned (its startup stage is delayed)."""
    return healthy.events == ["teardown", "setup"]


async def test_restart_needs_an_admin(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy"])
    kernel = client.app[KERNEL_KEY]
    _, token = await kernel.services.accounts.create_user("ada")
    response = await client.post("/api/v1/admin/plugins/healthy/restart",
                                 headers={"Authorization": f"Bearer {token}"})
    await problem(response, 403)


async def test_a_teardown_that_hangs_during_a_restart_is_abandoned(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.teardown_hangs"],
                               plugin_timeout_s=0.3)
    response = await client.post("/api/v1/admin/plugins/teardown_hangs/restart")
    assert response.status == 200
    assert (await response.json())["state"] == "active"
