"""`GET`/`PUT /api/v1/admin/chaos`: the injected faults of a running host, and
the `lukhas_chaos` fixture that changes them from a test."""

from __future__ import annotations

import pytest
from lukhas_kernel._lifecycle.chaos import ChaosSpecError
from lukhas_kernel.testing import KERNEL_KEY
from support.answers import plugin_states, problem

HEALTHY = ["sample_plugins.healthy"]
CHAOS = "/api/v1/admin/chaos"
GREET = "/api/v1/healthy/greet"


async def test_get_lists_the_faults_the_host_started_with(lukhas_host):
    client = await lukhas_host(HEALTHY, chaos="healthy:startup:delay_ms=01")
    response = await client.get(CHAOS)
    assert response.status == 200
    assert await response.json() == {"faults": ["healthy:startup:delay_ms=1"]}


async def test_put_replaces_every_fault_and_get_reads_them_back(lukhas_host):
    client = await lukhas_host(HEALTHY, chaos_enabled=True)
    assert await (await client.get(CHAOS)).json() == {"faults": []}
    faults = ["healthy:request:delay_ms=0", "healthy:setup:fail_times=2", "healthy:import:crash"]
    response = await client.put(CHAOS, json={"faults": faults})
    assert response.status == 200
    assert await response.json() == {"faults": faults}
    assert await (await client.get(CHAOS)).json() == {"faults": faults}

    response = await client.put(CHAOS, json={"faults": ["healthy:health:fail"]})
    assert await response.json() == {"faults": ["healthy:health:fail"]}
    assert await (await client.get(CHAOS)).json() == {"faults": ["healthy:health:fail"]}


async def test_a_request_fault_applies_from_the_next_request_and_clearing_it_restores(lukhas_host):
    client = await lukhas_host(HEALTHY, chaos_enabled=True)
    assert (await client.get(GREET)).status == 200

    await client.put(CHAOS, json={"faults": ["healthy:request:raise"]})
    await problem(await client.get(GREET), 500)
    await problem(await client.get(GREET), 500)
    # The kernel's own routes are never faulted.
    assert (await client.get(CHAOS)).status == 200

    assert await (await client.put(CHAOS, json={"faults": []})).json() == {"faults": []}
    assert (await client.get(GREET)).status == 200


async def test_fail_times_counts_requests_and_restarts_when_put_again(lukhas_host):
    client = await lukhas_host(HEALTHY, chaos_enabled=True)
    body = {"faults": ["healthy:request:fail_times=2"]}
    await client.put(CHAOS, json=body)
    statuses = [(await client.get(GREET)).status for _ in range(4)]
    assert statuses == [500, 500, 200, 200]

    await client.put(CHAOS, json=body)  # the same fault again: counted afresh
    assert [(await client.get(GREET)).status for _ in range(3)] == [500, 500, 200]


async def test_a_setup_fault_applies_at_the_next_attempt(lukhas_host):
    # No retries: the restart's one attempt is the one the fault counts.
    client = await lukhas_host(HEALTHY, chaos_enabled=True, plugin_retries=0)
    await client.put(CHAOS, json={"faults": ["healthy:setup:fail_times=1"]})
    assert (await plugin_states(client))["healthy"]["state"] == "active"  # nothing until then

    kernel = client.app[KERNEL_KEY]
    record = await kernel.restart("healthy")
    assert record.state == "failed"
    assert record.reason.startswith("setup: ChaosError: injected fail_times=1 (call 1 of 1)")
    assert (await kernel.restart("healthy")).state == "active"


async def test_every_bad_entry_is_422_and_nothing_changes(lukhas_host):
    client = await lukhas_host(HEALTHY, chaos_enabled=True)
    before = {"faults": ["healthy:health:fail"]}
    await client.put(CHAOS, json=before)
    entries = [
        "healthy:request",           # 0: malformed
        "nobody:request:raise",      # 1: unknown plugin
        "healthy:request:raise",     # 2: valid
        "healthy:boot:raise",        # 3: unknown stage
        "healthy:setup:explode",     # 4: unknown mode
        "healthy:request:crash",     # 5: crash at request
        "healthy:health:crash",      # 6: crash at health
        "healthy:setup:fail_times=0",  # 7: fail_times below 1
    ]
    body = await problem(await client.put(CHAOS, json={"faults": entries}), 422)
    assert body["type"] == "urn:lukhas:problem:validation"
    errors = body["errors"]
    assert [e["loc"] for e in errors] == [["body", "faults", i] for i in (0, 1, 3, 4, 5, 6, 7)]
    assert {e["type"] for e in errors} == {"value_error"}
    messages = [e["msg"] for e in errors]
    assert messages[0] == "'healthy:request' is not plugin:stage:mode"
    assert messages[1] == "'nobody:request:raise': no plugin 'nobody'"
    assert "stage must be one of" in messages[2]
    assert "mode must be" in messages[3]
    assert all("crash applies to the import, setup and startup stages only" in m
               for m in messages[4:6])
    assert "fail_times must be at least 1" in messages[6]

    assert await (await client.get(CHAOS)).json() == before
    assert (await client.get(GREET)).status == 200  # the valid entry did not apply either


@pytest.mark.parametrize("payload", [{"faults": "healthy:request:raise"}, {"faults": [1]}, {},
                                     {"faults": [], "extra": True}])
async def test_a_body_of_the_wrong_shape_is_422(lukhas_host, payload):
    client = await lukhas_host(HEALTHY, chaos_enabled=True)
    body = await problem(await client.put(CHAOS, json=payload), 422)
    assert body["type"] == "urn:lukhas:problem:validation"
    assert body["errors"]
    assert await (await client.get(CHAOS)).json() == {"faults": []}


async def test_a_non_admin_is_refused(lukhas_host):
    client = await lukhas_host(HEALTHY, chaos="healthy:health:fail", as_admin=False)
    _, token = await client.app[KERNEL_KEY].services.accounts.create_user("ada")
    headers = {"Authorization": f"Bearer {token}"}
    body = await problem(await client.get(CHAOS, headers=headers), 403)
    assert body["detail"] == "this operation needs the admin role"
    await problem(await client.put(CHAOS, json={"faults": []}, headers=headers), 403)
    await problem(await client.get(CHAOS), 401)
    assert client.app[KERNEL_KEY].chaos.entries() == ["healthy:health:fail"]


async def test_without_chaos_enabled_the_routes_are_not_there(lukhas_host):
    client = await lukhas_host(HEALTHY)
    body = await problem(await client.get(CHAOS), 404)
    assert body["detail"] == f"no resource at {CHAOS}"
    await problem(await client.put(CHAOS, json={"faults": ["healthy:request:raise"]}), 404)
    assert (await client.get(GREET)).status == 200
    document = await (await client.get("/openapi.json")).json()
    assert CHAOS not in document["paths"]


async def test_with_chaos_enabled_the_routes_are_documented(lukhas_host):
    client = await lukhas_host(HEALTHY, chaos_enabled=True)
    document = await (await client.get("/openapi.json")).json()
    assert {"get", "put"} <= document["paths"][CHAOS].keys()


async def test_the_fixture_replaces_the_faults_of_a_running_host(lukhas_host, lukhas_chaos):
    client = await lukhas_host(HEALTHY)  # the fixture needs no chaos enabled
    assert await lukhas_chaos(client, ["healthy:request:fail_times=1"]) == [
        "healthy:request:fail_times=1"]
    assert [(await client.get(GREET)).status for _ in range(2)] == [500, 200]
    with pytest.raises(ChaosSpecError) as caught:
        await lukhas_chaos(client, ["healthy:request:raise", "nobody:setup:raise"])
    assert caught.value.errors == [(1, "'nobody:setup:raise': no plugin 'nobody'")]
    assert client.app[KERNEL_KEY].chaos.entries() == ["healthy:request:fail_times=1"]
    assert await lukhas_chaos(client, []) == []
