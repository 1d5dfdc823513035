"""Partial start-up with the first-party plugins: every fault stage × mode × plugin.

Each case starts the real host with every installed plugin, one of them
faulted through `LUKHAS_CHAOS`, and `LUKHAS_REQUIRED_PLUGINS` naming all four.
The faulted plugin reports the stage and reason and answers `503` (or keeps
serving, degraded, for a health fault); the other three answer every request
as if nothing happened; `/readyz` is `503` exactly when a required plugin is
not serving. Real broken modules (tests/sample_plugins) next to the real
plugins, and a health check that hangs while the host serves, close the set.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from support.answers import plugin_states, problem
from support.cli import cli, data_dir, ok
from support.polling import eventually_async

pytestmark = pytest.mark.chaos

REAL = ("dreams", "vivox", "glyphs", "observability")
TIMEOUT_S = 0.5
# Only plugin stages get the short limit: a request limit this short would also
# cut off healthy plugins' answers on a loaded machine. The limit is one setting
# for every plugin, so a healthy plugin can miss it on such a machine too: its
# checks run again every half second, and a start stage it missed is retried
# once, soon, as the host does in production. Each case reads the states once
# no plugin is retrying (`settled`); the faulted plugin fails both attempts.
FAST = {"plugin_timeout_s": TIMEOUT_S, "health_interval_s": TIMEOUT_S,
        "plugin_retries": 1, "plugin_retry_base_s": 0.05}
BIND = {"source": "user:ada", "target": "doc:q3-report", "symbol": "LINK"}

# The reason each mode leaves, by stage kind (health faults degrade, the others fail).
STAGE_REASONS = {
    "raise": "ChaosError: injected raise",
    "fail": "ChaosError: injected fail",
    "hang": f"timed out after {TIMEOUT_S}s",
    "delay_ms=1000": f"timed out after {TIMEOUT_S}s",
}
HEALTH_REASONS = {
    "raise": "health: check 'injected' failed: ChaosError: injected raise",
    "fail": "health: check 'injected' failed",
    "hang": f"health: check 'injected' failed: timed out after {TIMEOUT_S}s",
    "delay_ms=1000": f"health: check 'injected' failed: timed out after {TIMEOUT_S}s",
}


async def serves(client: Any, plugin: str) -> None:
    """Assert `plugin` answers a read and, where it has one, a write, normally."""
    if plugin == "dreams":
        assert (await client.get("/api/v1/dreams/list")).status == 200
        created = await client.post("/api/v1/dreams/parallel", json={"fragments": ["a tide"], "seed": 1})
        assert created.status == 202, await created.text()
    elif plugin == "vivox":
        assert (await client.get("/api/v1/drift/analysis")).status == 200
    elif plugin == "glyphs":
        assert (await client.post("/api/v1/glyphs/bind", json=BIND)).status == 201
        assert (await client.get("/api/v1/glyphs/bindings/list")).status == 200
    else:
        response = await client.get("/metrics")
        assert response.status == 200
        assert "lukhas_plugin_state" in await response.text()


async def refuses(client: Any, plugin: str, reason: str) -> None:
    """Assert every route of failed `plugin` answers 503 naming the reason."""
    paths = {"dreams": ["/api/v1/dreams/list"], "vivox": ["/api/v1/drift/analysis"],
             "glyphs": ["/api/v1/glyphs/bindings/list"], "observability": ["/metrics", "/status"]}
    for path in paths[plugin]:
        assert reason in (await problem(await client.get(path), 503))["detail"]


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose database has every installed plugin's tables at head,
    made once by `lukhas db upgrade`: each test starts on a copy, so no
    migration runs under the short plugin timeout (a loaded machine could
    take longer than it for a first-start migration)."""
    made = tmp_path_factory.mktemp("migrated")
    ok(cli(made, "db", "upgrade"))
    return data_dir(made)


@pytest.fixture
def host(lukhas_host: Any, migrated: Path, tmp_path: Path) -> Callable[..., Awaitable[Any]]:
    """`lukhas_host` with every installed plugin, on a copy of the migrated database."""

    async def start(plugins: list[str] | tuple[str, ...] = (), **settings: Any) -> Any:
        copy = shutil.copytree(migrated, tmp_path / "data")
        return await lukhas_host(plugins, installed=True, data_dir=copy, **settings)

    return start


async def settled(client: Any, failing: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Plugin states by name once no attempt at bringing one up is due or
    running, and the plugins in `failing` have failed. (A plugin is
    `pending` while an attempt at it runs, `retrying` while one is due.)"""
    async def states_if_settled() -> dict[str, dict[str, Any]] | None:
        states = await plugin_states(client)
        if any(s["state"] in ("retrying", "pending") for s in states.values()):
            return None
        return states if all(states[name]["state"] == "failed" for name in failing) else None

    return await eventually_async(
        states_if_settled, what=f"no attempt due or running, and failed: {', '.join(failing) or '-'}")


def others(plugin: str) -> list[str]:
    return [name for name in REAL if name != plugin]


async def others_active(client: Any, plugin: str) -> bool:
    states = await plugin_states(client)
    return all(states[name]["state"] == "active" for name in others(plugin))


@pytest.mark.parametrize("mode", list(STAGE_REASONS))
@pytest.mark.parametrize("stage", ["import", "setup", "startup"])
@pytest.mark.parametrize("plugin", REAL)
async def test_stage_fault_fails_only_that_plugin(host, plugin, stage, mode):
    client = await host(chaos=f"{plugin}:{stage}:{mode}",
                               required_plugins=",".join(REAL), **FAST)
    reason = f"{stage}: {STAGE_REASONS[mode]}"
    states = await settled(client, failing=(plugin,))
    assert (states[plugin]["state"], states[plugin]["reason"]) == ("failed", reason)
    await eventually_async(lambda: others_active(client, plugin), what="the others active")
    await refuses(client, plugin, reason)
    for name in others(plugin):
        await serves(client, name)

    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["missing"] == [plugin]
    report = await (await client.get("/api/v1/plugins")).json()
    assert report["status"] == "partial"


@pytest.mark.parametrize("mode", list(HEALTH_REASONS))
@pytest.mark.parametrize("plugin", REAL)
async def test_health_fault_degrades_and_keeps_serving(host, plugin, mode):
    client = await host(chaos=f"{plugin}:health:{mode}",
                               required_plugins=",".join(REAL), **FAST)
    states = await settled(client)
    assert (states[plugin]["state"], states[plugin]["reason"]) == ("degraded", HEALTH_REASONS[mode])
    assert states[plugin]["health_checks"]["injected"]["passed"] is False
    for name in REAL:
        await serves(client, name)
    assert (await client.get("/readyz")).status == 200  # degraded still serves


@pytest.mark.parametrize(("mode", "status"), [("raise", 500), ("fail", 500), ("hang", 503)])
@pytest.mark.parametrize("plugin", ["dreams", "vivox", "glyphs"])
async def test_request_fault_hits_only_that_plugins_routes(host, plugin, mode, status):
    client = await host(chaos=f"{plugin}:request:{mode}",
                               required_plugins=",".join(REAL), request_timeout_s=1, **FAST)
    path = {"dreams": "/api/v1/dreams/list", "vivox": "/api/v1/drift/analysis",
            "glyphs": "/api/v1/glyphs/bindings/list"}[plugin]
    await settled(client)
    await problem(await client.get(path), status)
    for name in others(plugin):
        await serves(client, name)
    assert (await plugin_states(client))[plugin]["state"] == "active"
    assert (await client.get("/readyz")).status == 200


@pytest.mark.parametrize("plugin", REAL)
async def test_readyz_ignores_a_failed_plugin_that_is_not_required(host, plugin):
    client = await host(chaos=f"{plugin}:setup:raise",
                               required_plugins=",".join(others(plugin)), **FAST)
    await settled(client, failing=(plugin,))
    ready = await client.get("/readyz")
    assert ready.status == 200
    body = await ready.json()
    assert body["missing"] == []
    assert {p["name"]: p["state"] for p in body["plugins"]}[plugin] == "failed"


async def test_several_faults_at_once_leave_the_last_plugin_serving(host):
    chaos = "dreams:import:hang,vivox:setup:raise,glyphs:startup:delay_ms=1000"
    client = await host(chaos=chaos, required_plugins="observability", **FAST)
    states = await settled(client, failing=("dreams", "vivox", "glyphs"))
    assert {name: states[name]["state"] for name in REAL} == {
        "dreams": "failed", "vivox": "failed", "glyphs": "failed", "observability": "active"}
    await serves(client, "observability")
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/healthz")).status == 200


# -- real broken modules next to the real plugins -----------------------------------------

# Not `import_hangs`: its abandoned import thread finishes a minute later and
# leaves the module imported for every later test in the process
# (test_lifecycle covers it, and `import:hang` above covers the real plugins).

BROKEN = {
    "import_raises": ("failed", "import: "),
    "import_exits": ("failed", "import: "),
    "setup_raises": ("failed", "setup: ConnectionError: database refused the connection"),
    "setup_hangs": ("failed", f"setup: timed out after {TIMEOUT_S}s"),
    "startup_raises": ("failed", "startup: ValueError: worker pool would not start"),
    "needs_setup_raises": ("skipped", "setup_raises"),
    "health_raises": ("degraded", "health: check 'database' failed: OSError: disk full"),
    "health_hangs": ("degraded", f"health: check 'queue' failed: timed out after {TIMEOUT_S}s"),
    "handler_raises": ("active", None),
}


async def test_broken_modules_beside_the_real_plugins(host):
    client = await host([f"sample_plugins.{name}" for name in BROKEN],
                      required_plugins=",".join(REAL), **FAST)
    states = await settled(client, failing=tuple(n for n, (state, _) in BROKEN.items() if state == "failed"))
    for name, (state, reason) in BROKEN.items():
        assert states[name]["state"] == state, (name, states[name])
        if reason is not None:
            assert reason in states[name]["reason"], (name, states[name]["reason"])
    for name in REAL:
        assert states[name]["state"] == "active", states[name]
        await serves(client, name)
    await problem(await client.get("/api/v1/handler_raises/broken"), 500)
    await problem(await client.get("/api/v1/setup_raises/ping"), 503)
    assert (await client.get("/readyz")).status == 200


# -- a health check that hangs while the host serves --------------------------------------


async def test_hung_health_check_does_not_hang_readyz(host):
    from sample_plugins import health_hangs_later as plugin

    plugin.calls.update(started=0, finished=0)
    client = await host(["sample_plugins.health_hangs_later"],
                      required_plugins="health_hangs_later,dreams",
                               plugin_timeout_s=30, health_interval_s=0.05)
    # The periodic check after the first one hangs.
    await eventually_async(lambda: plugin.calls["started"] > plugin.calls["finished"], 10,
                           what="a health check pending")
    assert plugin.calls["started"] > plugin.calls["finished"], plugin.calls

    ready = await client.get("/readyz", timeout=5)
    assert ready.status == 200
    assert (await client.get("/api/v1/dreams/list", timeout=5)).status == 200
    # Answered while the check was still pending: /readyz reads states, it runs no check.
    assert plugin.calls["started"] > plugin.calls["finished"], plugin.calls


# -- the database goes away while the host serves -------------------------------------------


async def test_storage_outage_is_503_for_every_plugins_writes_then_recovers(lukhas_host, tmp_path):
    """Another process holds SQLite's write lock past the busy timeout, then lets go."""
    from lukhas_kernel.testing import KERNEL_KEY

    client = await lukhas_host(installed=True, data_dir=tmp_path / "d", db_busy_timeout_ms=50)
    user_id = (await client.app[KERNEL_KEY].services.accounts.create_user("ada"))[0].id
    drift = {"user_id": user_id, "interactions": [
        {"timestamp": "2026-11-01T09:00:00Z", "valence": 0.2, "arousal": 0.4, "decision": "a"}]}
    writes = [("/api/v1/glyphs/bind", BIND, 201),
              ("/api/v1/dreams/parallel", {"fragments": ["a tide"], "seed": 1}, 202),
              ("/api/v1/drift/update", drift, 200)]

    blocker = sqlite3.connect(tmp_path / "d" / "lukhas.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        for path, body, _ in writes:
            response = await client.post(path, json=body)
            assert (await problem(response, 503))["detail"] == "storage unavailable; retry shortly"
            assert response.headers["Retry-After"] == "1"
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/metrics")).status == 200
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    for path, body, status in writes:
        response = await client.post(path, json=body)
        assert response.status == status, await response.text()
    # Only the writes after the outage were stored.
    assert (await (await client.get("/api/v1/glyphs/bindings/list")).json())["count"] == 1
    assert (await (await client.get("/api/v1/dreams/list")).json())["count"] == 1
    assert (await (await client.get(f"/api/v1/drift/{user_id}")).json())["interactions"] == 1
