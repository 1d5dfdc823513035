"""Injected faults (LUKHAS_CHAOS) behave exactly like real ones, reason aside."""

from __future__ import annotations

import pytest
import structlog
from lukhas_kernel._lifecycle.chaos import ChaosPlan
from support.answers import plugin_states, problem

pytestmark = pytest.mark.chaos

PLUGINS = ["sample_plugins.healthy", "sample_plugins.fallback"]
# Short limits, and no retries: each case is about one attempt's outcome.
FAST = {"plugin_timeout_s": 0.3, "request_timeout_s": 0.3, "plugin_retries": 0}

FAILING = [
    ("import", "raise", "import: ChaosError: injected raise"),
    ("import", "fail", "import: ChaosError: injected fail"),
    ("import", "hang", "import: timed out after 0.3s"),
    ("import", "delay_ms=1000", "import: timed out after 0.3s"),
    ("setup", "raise", "setup: ChaosError: injected raise"),
    ("setup", "fail", "setup: ChaosError: injected fail"),
    ("setup", "hang", "setup: timed out after 0.3s"),
    ("setup", "delay_ms=1000", "setup: timed out after 0.3s"),
    ("startup", "raise", "startup: ChaosError: injected raise"),
    ("startup", "fail", "startup: ChaosError: injected fail"),
    ("startup", "hang", "startup: timed out after 0.3s"),
    ("startup", "delay_ms=1000", "startup: timed out after 0.3s"),
]


@pytest.mark.parametrize(("stage", "mode", "reason"), FAILING)
async def test_stage_fault_fails_only_the_target(lukhas_host, stage, mode, reason):
    client = await lukhas_host(PLUGINS, chaos=f"healthy:{stage}:{mode}", **FAST)
    states = await plugin_states(client)
    assert states["healthy"]["state"] == "failed"
    assert states["healthy"]["reason"] == reason
    assert states["fallback"]["state"] == "degraded"
    body = await problem(await client.get("/api/v1/healthy/greet"), 503)
    assert reason in body["detail"]
    assert (await client.get("/api/v1/fallback/ping")).status == 200


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("raise", "health: check 'injected' failed: ChaosError: injected raise"),
        ("fail", "health: check 'injected' failed"),
        ("hang", "health: check 'injected' failed: timed out after 0.3s"),
        ("delay_ms=1000", "health: check 'injected' failed: timed out after 0.3s"),
    ],
)
async def test_health_fault_degrades(lukhas_host, mode, reason):
    client = await lukhas_host(PLUGINS, chaos=f"healthy:health:{mode}", **FAST)
    item = (await plugin_states(client))["healthy"]
    assert (item["state"], item["reason"]) == ("degraded", reason)
    assert (await client.get("/api/v1/healthy/greet")).status == 200


async def test_short_delay_is_harmless(lukhas_host):
    client = await lukhas_host(PLUGINS, chaos="healthy:setup:delay_ms=10", plugin_timeout_s=5)
    item = (await plugin_states(client))["healthy"]
    assert item["state"] == "active"
    assert item["stages_ms"]["setup"] >= 10


@pytest.mark.parametrize(("mode", "status"), [("raise", 500), ("fail", 500), ("hang", 503)])
async def test_request_fault_hits_only_that_plugins_routes(lukhas_host, mode, status):
    client = await lukhas_host(PLUGINS, chaos=f"healthy:request:{mode}", **FAST)
    await problem(await client.get("/api/v1/healthy/greet"), status)
    assert (await client.get("/api/v1/fallback/ping")).status == 200
    assert (await plugin_states(client))["healthy"]["state"] == "active"


async def test_request_fault_drops_profile_contribution(lukhas_host):
    from lukhas_kernel.testing import KERNEL_KEY

    client = await lukhas_host(PLUGINS, chaos="healthy:request:raise", **FAST)
    fields = await client.app[KERNEL_KEY].call_each(
        "lukhas_profile_fields", user={"username": "a"}, options={})
    assert fields == {}


async def test_chaos_is_ignored_unless_enabled(lukhas_host):
    with structlog.testing.capture_logs() as events:
        client = await lukhas_host(PLUGINS, chaos="healthy:setup:raise", chaos_enabled=False)
    assert (await plugin_states(client))["healthy"]["state"] == "active"
    assert any(e["event"] == "chaos.ignored" for e in events)


@pytest.mark.parametrize(
    "spec",
    ["healthy:setup", "healthy:boot:raise", "healthy:setup:explode", "healthy:setup:delay_ms=x",
     "healthy:setup:delay_ms=-5"],
)
def test_bad_chaos_spec_is_rejected(spec):
    with pytest.raises(ValueError, match="healthy"):
        ChaosPlan.parse(spec)


def test_chaos_spec_parses_several_faults():
    plan = ChaosPlan.parse("glyphs:setup:raise, dreams:startup:hang,vivox:health:fail,x:import:delay_ms=5")
    assert [f.mode for f in plan._faults.values()] == ["raise", "hang", "fail", "delay_ms=5"]
