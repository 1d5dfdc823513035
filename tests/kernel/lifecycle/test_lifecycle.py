"""Every plugin state (README.md, Plugin states), through /api/v1/plugins, /readyz and the routes."""

from __future__ import annotations

import shutil
import time

import pytest
import structlog
from lukhas_kernel._lifecycle.discovery import discover
from sample_plugins import healthy, startup_raises
from support.answers import plugin_states, problem
from support.polling import eventually_async

# One start's outcome, with no retry after it (tests/kernel/lifecycle/test_retry.py has those).
ONCE = {"plugin_retries": 0}
FAST = {"plugin_timeout_s": 0.5, **ONCE}


async def test_active_plugin_serves_and_reports(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy"])
    response = await client.get("/api/v1/healthy/greet", params={"name": "ada"})
    assert response.status == 200
    assert await response.json() == {"message": "hello, ada"}

    item = (await plugin_states(client))["healthy"]
    assert item["state"] == "active"
    assert item["reason"] is None
    assert item["version"] == "2.3"
    assert item["requires"] == []
    assert item["startup_ms"] > 0
    assert "GET /api/v1/healthy/greet" in item["routes"]
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["status"] == "ready"


async def test_plugin_list_has_overall_status(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.setup_raises"])
    body = await (await client.get("/api/v1/plugins")).json()
    assert body["status"] == "partial"
    assert body["count"] == 2 == len(body["items"])
    assert {"name", "version", "distribution", "state", "reason", "requires", "startup_ms",
            "routes"} <= body["items"][0].keys()


async def test_disabled_plugin_is_never_imported_and_answers_403(lukhas_host, monkeypatch):
    monkeypatch.setenv("IMPORT_RAISES_ENABLED", "false")
    client = await lukhas_host(["sample_plugins.import_raises", "sample_plugins.healthy"])
    item = (await plugin_states(client))["import_raises"]
    assert item["state"] == "disabled"
    assert item["reason"] == "IMPORT_RAISES_ENABLED is false"
    body = await problem(await client.get("/api/v1/import_raises/anything"), 403)
    assert body["detail"] == "import_raises subsystem is not enabled"
    assert (await client.get("/api/v1/healthy/greet")).status == 200


def _distribution(site, monkeypatch, name: str, module: str, prefixes: list[str]) -> None:
    """An installed distribution's metadata on sys.path: plugin `name` = `module`
    in `lukhas.plugins`, with `prefixes` in `lukhas.route_prefixes`."""
    _install(site, name, module, prefixes)
    monkeypatch.syspath_prepend(str(site))


def _install(site, name: str, module: str, prefixes: list[str]) -> None:
    """A distribution's metadata written into `site` (see `_distribution`)."""
    info = site / f"lukhas_{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lukhas-{name}\nVersion: 1.0\n")
    lines = ["[lukhas.plugins]", f"{name} = {module}", "", "[lukhas.route_prefixes]",
             *(f"{prefix} = {module}" for prefix in prefixes)]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


async def test_prefixes_from_metadata_answer_403_while_disabled(lukhas_host, monkeypatch, tmp_path):
    _distribution(tmp_path / "site", monkeypatch, "healthy", "sample_plugins.healthy", ["/api/v1/greetings"])
    monkeypatch.setenv("HEALTHY_ENABLED", "false")
    client = await lukhas_host([], installed=True)
    assert (await plugin_states(client))["healthy"]["state"] == "disabled"
    for path in ("/api/v1/greetings/x", "/api/v1/healthy/greet"):
        body = await problem(await client.get(path), 403)
        assert body["detail"] == "healthy subsystem is not enabled"

    # Enabled, the same prefix (declared in its plugin info too) is simply its own.
    monkeypatch.setenv("HEALTHY_ENABLED", "true")
    client = await lukhas_host([], installed=True)
    item = (await plugin_states(client))["healthy"]
    assert (item["state"], item["distribution"]) == ("active", "lukhas-healthy")
    body = await problem(await client.get("/api/v1/greetings/x"), 404)
    assert body["detail"] == "no item x"


def test_discovery_sees_a_distribution_installed_or_removed_since_the_last_scan(monkeypatch, tmp_path):
    """Scans are reused while sys.path is unchanged: installing or removing a
    distribution in a directory already on it must still show."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert "late" not in {record.name for record in discover([])}
    _install(site, "late", "sample_plugins.healthy", [])
    [late] = [record for record in discover([]) if record.name == "late"]
    assert (late.module, late.distribution, late.version) == ("sample_plugins.healthy", "lukhas-late", "1.0")
    shutil.rmtree(site / "lukhas_late-1.0.dist-info")
    assert "late" not in {record.name for record in discover([])}


async def test_invalid_prefix_in_metadata_fails_discovery(lukhas_host, monkeypatch, tmp_path):
    _distribution(tmp_path / "site", monkeypatch, "meta_bad", "sample_plugins.healthy", ["/greetings/"])
    client = await lukhas_host([], installed=True)
    item = (await plugin_states(client))["meta_bad"]
    assert (item["state"], item["reason"]) == (
        "failed", "discovery: invalid route prefix '/greetings/' in lukhas.route_prefixes")


async def test_flag_from_config_file_table(lukhas_host):
    config = {"plugins": {"healthy": {"enabled": False}}}
    client = await lukhas_host(["sample_plugins.healthy"], config=config)
    assert (await plugin_states(client))["healthy"]["state"] == "disabled"


async def test_environment_flag_wins_over_config_file(lukhas_host, monkeypatch):
    monkeypatch.setenv("HEALTHY_ENABLED", "1")
    config = {"plugins": {"healthy": {"enabled": False}}}
    client = await lukhas_host(["sample_plugins.healthy"], config=config)
    assert (await plugin_states(client))["healthy"]["state"] == "active"


@pytest.mark.parametrize(
    ("module", "stage", "reason"),
    [
        ("import_raises", "import", "import: RuntimeError: cannot import: missing native library"),
        ("import_exits", "import", "import: StageError: SystemExit: 3"),
        ("setup_raises", "setup", "setup: ConnectionError: database refused the connection"),
        ("setup_hangs", "setup", "setup: timed out after 0.5s"),
        ("startup_raises", "startup", "startup: ValueError: worker pool would not start"),
        ("incompatible", "register", "register: incompatible: needs >=2,<3, kernel has 1.0"),
    ],
)
async def test_failing_plugin_is_isolated(lukhas_host, module, stage, reason):
    client = await lukhas_host([f"sample_plugins.{module}", "sample_plugins.healthy"], **FAST)
    states = await plugin_states(client)
    assert states[module]["state"] == "failed"
    assert states[module]["stage"] == stage
    assert states[module]["reason"].startswith(reason)
    assert states["healthy"]["state"] == "active"

    body = await problem(await client.get(f"/api/v1/{module}/ping"), 503)
    assert body["detail"] == f"{module} subsystem failed: {states[module]['reason']}"
    assert (await client.get("/api/v1/healthy/greet")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_import_that_hangs_fails_within_the_timeout(lukhas_host):
    started = time.monotonic()
    client = await lukhas_host(["sample_plugins.import_hangs", "sample_plugins.healthy"], **FAST)
    # The module sleeps 60 s; the host must not wait for it.
    assert time.monotonic() - started < 30
    states = await plugin_states(client)
    assert states["import_hangs"]["state"] == "failed"
    assert states["import_hangs"]["reason"] == "import: timed out after 0.5s"
    assert states["healthy"]["state"] == "active"


async def test_failed_startup_still_tears_down(lukhas_host):
    startup_raises.torn_down.clear()
    client = await lukhas_host(["sample_plugins.startup_raises"], **ONCE)
    assert (await plugin_states(client))["startup_raises"]["state"] == "failed"
    await client.close()
    assert startup_raises.torn_down == ["startup_raises"]


async def test_unknown_hook_fails_registration(lukhas_host):
    client = await lukhas_host(["sample_plugins.unknown_hook"])
    item = (await plugin_states(client))["unknown_hook"]
    assert item["state"] == "failed"
    assert item["stage"] == "register"
    assert "lukhas_set_up" in item["reason"]


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("health_raises", "health: check 'database' failed: OSError: disk full"),
        ("health_hangs", "health: check 'queue' failed: timed out after 0.5s"),
        ("fallback", "fallback: process pool unavailable, running sequentially"),
    ],
)
async def test_degraded_plugin_keeps_serving(lukhas_host, module, reason):
    client = await lukhas_host([f"sample_plugins.{module}"], required_plugins=module, **FAST)
    item = (await plugin_states(client))[module]
    assert item["state"] == "degraded"
    assert item["reason"] == reason
    assert (await client.get(f"/api/v1/{module}/ping")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_dependency_cycle_fails_both_and_names_it(lukhas_host):
    client = await lukhas_host(["sample_plugins.cycle_a", "sample_plugins.cycle_b", "sample_plugins.healthy"])
    states = await plugin_states(client)
    for name in ("cycle_a", "cycle_b"):
        assert states[name]["state"] == "failed"
        assert states[name]["reason"].startswith("setup: dependency cycle: ")
        assert {"cycle_a", "cycle_b"} <= set(states[name]["reason"].split(": ")[-1].split(" -> "))
    assert states["healthy"]["state"] == "active"


async def test_missing_requirement_skips(lukhas_host):
    client = await lukhas_host(["sample_plugins.needs_missing"])
    item = (await plugin_states(client))["needs_missing"]
    assert item["state"] == "skipped"
    assert item["reason"] == "setup: requires nonexistent, which is not installed"
    body = await problem(await client.get("/api/v1/needs_missing/ping"), 503)
    assert "nonexistent" in body["detail"]


async def test_failed_requirement_skips_dependent(lukhas_host):
    client = await lukhas_host(["sample_plugins.setup_raises", "sample_plugins.needs_setup_raises"])
    item = (await plugin_states(client))["needs_setup_raises"]
    assert item["state"] == "skipped"
    assert item["reason"] == "setup: requires setup_raises, which is failed"


async def test_disabled_requirement_skips_dependent(lukhas_host, monkeypatch):
    monkeypatch.setenv("HEALTHY_ENABLED", "off")
    client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.needs_healthy"])
    assert (await plugin_states(client))["needs_healthy"]["reason"] == (
        "setup: requires healthy, which is disabled"
    )


async def test_requirements_order_setup(lukhas_host):
    healthy.events.clear()
    # Listed dependent-first: order must come from `requires`, not the list.
    client = await lukhas_host(["sample_plugins.needs_healthy", "sample_plugins.healthy"])
    assert (await plugin_states(client))["needs_healthy"]["state"] == "active"
    assert healthy.events.index("setup") < healthy.events.index("needs_healthy.setup")


async def test_prefix_clash_fails_the_later_plugin(lukhas_host):
    client = await lukhas_host(["sample_plugins.clash_b", "sample_plugins.clash_a"])
    states = await plugin_states(client)
    assert states["clash_a"]["state"] == "active"
    assert states["clash_b"]["state"] == "failed"
    assert states["clash_b"]["reason"] == (
        "routes: route prefix /api/v1/shared clashes with /api/v1/shared, claimed by plugin clash_a"
    )
    assert (await client.get("/api/v1/clash_a/ping")).status == 200


async def test_plugin_cannot_claim_kernel_paths(lukhas_host):
    client = await lukhas_host(["sample_plugins.kernel_clash"])
    item = (await plugin_states(client))["kernel_clash"]
    assert item["state"] == "failed"
    assert "claimed by the kernel" in item["reason"]


async def test_readyz_follows_required_plugins(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.setup_raises"],
                               required_plugins="healthy,setup_raises,absent", **ONCE)
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["missing"] == ["setup_raises", "absent"]
    assert {p["name"]: p["state"] for p in body["plugins"]} == {
        "healthy": "active", "setup_raises": "failed"}


async def test_startup_result_is_one_structured_event(lukhas_host, monkeypatch):
    monkeypatch.setenv("HEALTH_RAISES_ENABLED", "no")
    with structlog.testing.capture_logs() as events:
        await lukhas_host(["sample_plugins.healthy", "sample_plugins.setup_raises",
                           "sample_plugins.health_raises"])
    [event] = [e for e in events if e["event"] == "lukhas.startup"]
    assert event["status"] == "partial"
    assert event["initialized_systems"] == ["healthy"]
    assert event["disabled"] == ["health_raises"]
    assert event["failed"] == {"setup_raises": "setup: ConnectionError: database refused the connection"}


async def test_status_ok_when_every_enabled_plugin_is_active(lukhas_host, monkeypatch):
    monkeypatch.setenv("SETUP_RAISES_ENABLED", "false")
    client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.setup_raises"])
    assert (await (await client.get("/api/v1/plugins")).json())["status"] == "ok"


async def test_status_failed_when_no_enabled_plugin_serves(lukhas_host):
    client = await lukhas_host(["sample_plugins.setup_raises"])
    assert (await (await client.get("/api/v1/plugins")).json())["status"] == "failed"
    assert (await client.get("/healthz")).status == 200


async def test_profile_fields_isolated_per_plugin(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.profile_faults"], **FAST)
    from lukhas_kernel.testing import KERNEL_KEY

    kernel = client.app[KERNEL_KEY]
    user = {"username": "ada"}
    started = time.monotonic()
    for mode in ("raise", "hang"):
        fields = await kernel.call_each("lukhas_profile_fields", user=user, options={"mode": mode})
        assert fields == {"healthy": {"greeting": "hello ada"}}
    assert time.monotonic() - started < 30


async def test_teardown_in_reverse_setup_order(lukhas_host):
    healthy.events.clear()
    client = await lukhas_host(["sample_plugins.healthy"])
    await client.close()
    assert healthy.events == ["setup", "startup", "teardown"]


async def test_health_is_rechecked_while_serving(lukhas_host):

    from sample_plugins import flaky_health

    flaky_health.healthy["now"] = False
    client = await lukhas_host(["sample_plugins.flaky_health"], health_interval_s=0.05)
    item = (await plugin_states(client))["flaky_health"]
    assert (item["state"], item["reason"]) == ("degraded", "health: check 'upstream' failed")
    flaky_health.healthy["now"] = True

    async def active() -> bool:
        return (await plugin_states(client))["flaky_health"]["state"] == "active"

    await eventually_async(active, 5, what="flaky_health active again")
    item = (await plugin_states(client))["flaky_health"]
    assert (item["state"], item["reason"]) == ("active", None)


async def test_duplicate_plugin_name_fails_the_second(lukhas_host):
    client = await lukhas_host(["healthy=sample_plugins.healthy", "healthy=sample_plugins.fallback"])
    items = (await (await client.get("/api/v1/plugins")).json())["items"]
    assert [(i["name"], i["state"]) for i in items] == [("healthy", "active"), ("healthy#1", "failed")]
    assert items[1]["reason"] == "discovery: duplicate plugin name, already provided by LUKHAS_EXTRA_PLUGINS"


async def test_shutdown_tears_down_in_reverse_order_past_a_hang(lukhas_host):
    healthy.events.clear()
    client = await lukhas_host(["sample_plugins.teardown_hangs", "sample_plugins.healthy"], **FAST)
    await client.close()
    # teardown_hangs requires healthy, so it goes first; its hang costs one timeout.
    assert healthy.events == ["setup", "startup", "teardown_hangs.teardown", "teardown"]
