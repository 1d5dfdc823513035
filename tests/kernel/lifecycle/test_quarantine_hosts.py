"""Quarantine through test hosts sharing one database, on SQLite and PostgreSQL
(tests/system/test_quarantine.py crashes real processes)."""

from __future__ import annotations

import pytest
from support.answers import plugin_states, problem

pytestmark = pytest.mark.both_databases


async def test_a_host_start_that_failed_quarantines_at_the_next(lukhas_host, tmp_path):
    limits = {"plugin_retries": 0, "quarantine_after": 1, "data_dir": tmp_path / "shared"}
    first = await lukhas_host(["sample_plugins.healthy"], chaos="healthy:setup:raise", **limits)
    assert (await plugin_states(first))["healthy"]["state"] == "failed"

    client = await lukhas_host(["sample_plugins.healthy"], **limits)
    item = (await plugin_states(client))["healthy"]
    assert item["state"] == "quarantined"
    assert item["reason"] == "failed 1 consecutive starts, last: setup: ChaosError: injected raise"
    body = await problem(await client.get("/api/v1/healthy/greet"), 503)
    assert body["type"] == "urn:lukhas:problem:quarantined"
    assert body["detail"] == f"healthy subsystem quarantined: {item['reason']}"
    await problem(await client.post("/api/v1/admin/plugins/healthy/restart"), 409)

    release = "/api/v1/admin/plugins/healthy/quarantine"
    assert (await client.delete(release)).status == 204
    await problem(await client.delete(release), 404)
    await problem(await client.delete("/api/v1/admin/plugins/nothing/quarantine"), 404)
    # Released: this process imports it now, at the restart.
    restarted = await client.post("/api/v1/admin/plugins/healthy/restart")
    assert restarted.status == 200, await restarted.text()
    assert (await restarted.json())["state"] == "active"
    assert (await client.get("/api/v1/healthy/greet")).status == 200


async def test_a_start_in_which_it_came_up_resets_the_count(lukhas_host, tmp_path):
    limits = {"plugin_retries": 0, "quarantine_after": 2, "data_dir": tmp_path / "shared"}
    for chaos in ("healthy:setup:raise", "", "healthy:setup:raise"):
        client = await lukhas_host(["sample_plugins.healthy"], chaos=chaos, **limits)
    assert (await plugin_states(client))["healthy"]["state"] == "failed"  # 1 in a row, not 2
    client = await lukhas_host(["sample_plugins.healthy"], **limits)
    assert (await plugin_states(client))["healthy"]["state"] == "active"
