"""A plugin's lifecycle runs again: torn down and brought up alone while the
host serves, its dependents following (`Kernel.restart`)."""

from __future__ import annotations

import pytest
from lukhas_kernel.testing import KERNEL_KEY
from sample_plugins import healthy
from support.answers import plugin_states


async def test_restart_brings_a_plugin_and_its_dependents_down_and_up_again(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.needs_healthy"])
    kernel = client.app[KERNEL_KEY]
    healthy.events.clear()

    record = await kernel.restart("healthy")

    # Down in reverse dependency order (needs_healthy has no teardown hook),
    # then up in order: healthy's setup before its dependent's, then startup.
    assert healthy.events == ["teardown", "setup", "needs_healthy.setup", "startup"]
    assert record.state == "active"
    states = await plugin_states(client)
    assert states["healthy"]["state"] == states["needs_healthy"]["state"] == "active"
    assert states["healthy"]["health_checks"]["always"]["passed"] is True
    response = await client.get("/api/v1/healthy/greet", params={"name": "ada"})
    assert response.status == 200
    assert await response.json() == {"message": "hello, ada"}


async def test_a_restarted_plugin_can_be_restarted_again(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy"])
    kernel = client.app[KERNEL_KEY]
    for _ in range(3):
        await kernel.restart("healthy")
    assert (await client.get("/api/v1/healthy/greet", params={"name": "x"})).status == 200
    healthy.events.clear()
    await kernel.stop()
    assert healthy.events == ["teardown"]  # owed once, however often it came up


async def test_restart_of_a_failing_plugin_fails_again_and_its_dependent_stays_skipped(lukhas_host):
    client = await lukhas_host(["sample_plugins.setup_raises", "sample_plugins.needs_setup_raises"],
                               plugin_retries=0)
    record = await client.app[KERNEL_KEY].restart("setup_raises")
    assert record.state == "failed"
    assert record.reason.startswith("setup: ")
    states = await plugin_states(client)
    assert states["needs_setup_raises"]["state"] == "skipped"
    assert states["needs_setup_raises"]["reason"] == "setup: requires setup_raises, which is failed"


async def test_restart_refuses_plugins_that_cannot_come_up_here(lukhas_host, monkeypatch):
    monkeypatch.setenv("HEALTHY_ENABLED", "false")
    client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.import_raises"])
    kernel = client.app[KERNEL_KEY]
    with pytest.raises(ValueError, match="disabled"):
        await kernel.restart("healthy")
    with pytest.raises(ValueError, match="failed"):
        await kernel.restart("import_raises")
    with pytest.raises(KeyError):
        await kernel.restart("nonexistent")
