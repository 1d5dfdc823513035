"""Run-time flags: GET/PATCH /api/v1/admin/flags, persistence, the environment winning."""

from __future__ import annotations

import pytest
from lukhas_kernel.testing import KERNEL_KEY
from support.answers import plugin_states, problem

pytestmark = pytest.mark.both_databases

PLUGINS = ["sample_plugins.healthy", "sample_plugins.notes"]


async def flags(client) -> dict[str, bool]:
    response = await client.get("/api/v1/admin/flags")
    assert response.status == 200
    return await response.json()


async def test_flags_list_loaded_plugins_and_declared_flags(lukhas_host, monkeypatch):
    monkeypatch.setenv("SETUP_RAISES_ENABLED", "false")
    client = await lukhas_host([*PLUGINS, "sample_plugins.setup_raises"])
    assert await flags(client) == {
        "HEALTHY_ENABLED": True, "NOTES_ENABLED": True, "NOTES_SHOUT_ENABLED": False}


async def test_disabling_a_plugin_at_run_time(lukhas_host):
    client = await lukhas_host(PLUGINS)
    response = await client.patch("/api/v1/admin/flags", json={"HEALTHY_ENABLED": False})
    assert response.status == 200
    assert (await response.json())["HEALTHY_ENABLED"] is False
    body = await problem(await client.get("/api/v1/healthy/greet"), 403)
    assert body["detail"] == "healthy subsystem is not enabled"
    item = (await plugin_states(client))["healthy"]
    assert (item["state"], item["reason"]) == ("disabled", "HEALTHY_ENABLED set to false at run time")
    assert (await client.post("/api/v1/notes", json={"text": "x"})).status == 201

    await client.patch("/api/v1/admin/flags", json={"HEALTHY_ENABLED": True})
    assert (await client.get("/api/v1/healthy/greet")).status == 200
    assert (await plugin_states(client))["healthy"]["state"] == "active"


async def test_declared_flag_changes_plugin_behaviour(lukhas_host):
    client = await lukhas_host(PLUGINS)
    assert (await (await client.post("/api/v1/notes", json={"text": "hi"})).json())["text"] == "hi"
    await client.patch("/api/v1/admin/flags", json={"NOTES_SHOUT_ENABLED": True})
    assert (await (await client.post("/api/v1/notes", json={"text": "hi"})).json())["text"] == "HI"


async def test_bad_patches_change_nothing(lukhas_host):
    client = await lukhas_host(PLUGINS)
    before = await flags(client)
    cases = [
        ({"HEALTHY_ENABLED": False, "NO_SUCH_FLAG": True}, ["body", "NO_SUCH_FLAG"]),
        ({"HEALTHY_ENABLED": False, "NOTES_ENABLED": "false"}, ["body", "NOTES_ENABLED"]),
        ({"HEALTHY_ENABLED": 0}, ["body", "HEALTHY_ENABLED"]),
        ({"HEALTHY_ENABLED": None}, ["body", "HEALTHY_ENABLED"]),
    ]
    for patch, loc in cases:
        body = await problem(await client.patch("/api/v1/admin/flags", json=patch), 422)
        assert body["errors"][0]["loc"] == loc
    for raw in (b"[true]", b'"x"'):
        await problem(await client.patch("/api/v1/admin/flags", data=raw), 422)
    await problem(await client.patch("/api/v1/admin/flags", data=b"{oops"), 400)
    assert await flags(client) == before
    db = client.app[KERNEL_KEY].services.db
    async with db.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM lukhas_flags")).scalar() == 0


async def test_flags_persist_across_a_restart(lukhas_host, tmp_path):
    data = {"data_dir": tmp_path / "shared"}
    first = await lukhas_host(PLUGINS, **data)
    await first.patch("/api/v1/admin/flags", json={"HEALTHY_ENABLED": False, "NOTES_SHOUT_ENABLED": True})
    await first.close()

    second = await lukhas_host(PLUGINS, as_admin=False, **data)
    accounts = second.app[KERNEL_KEY].services.accounts
    _, token = await accounts.create_user("ops", admin=True)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await (await second.get("/api/v1/admin/flags", headers=headers)).json()) == {
        "HEALTHY_ENABLED": False, "NOTES_ENABLED": True, "NOTES_SHOUT_ENABLED": True}
    await problem(await second.get("/api/v1/healthy/greet", headers=headers), 403)
    # Disabled through the API, it was still loaded: enabling needs no restart.
    await second.patch("/api/v1/admin/flags", json={"HEALTHY_ENABLED": True}, headers=headers)
    assert (await second.get("/api/v1/healthy/greet", headers=headers)).status == 200


async def test_environment_wins_over_persisted_flags(lukhas_host, tmp_path, monkeypatch):
    data = {"data_dir": tmp_path / "shared"}
    first = await lukhas_host(PLUGINS, **data)
    await first.patch("/api/v1/admin/flags", json={"HEALTHY_ENABLED": False, "NOTES_SHOUT_ENABLED": True})
    await first.close()

    monkeypatch.setenv("HEALTHY_ENABLED", "true")
    monkeypatch.setenv("NOTES_SHOUT_ENABLED", "false")
    second = await lukhas_host(PLUGINS, as_admin=False, **data)
    _, token = await second.app[KERNEL_KEY].services.accounts.create_user("ops", admin=True)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await second.get("/api/v1/healthy/greet", headers=headers)).status == 200
    assert (await (await second.get("/api/v1/admin/flags", headers=headers)).json())[
        "NOTES_SHOUT_ENABLED"] is False


async def test_flag_changes_are_audited_in_the_log(lukhas_host):
    import structlog

    client = await lukhas_host(PLUGINS)
    with structlog.testing.capture_logs() as events:
        await client.patch("/api/v1/admin/flags", json={"NOTES_SHOUT_ENABLED": True})
    [event] = [e for e in events if e["event"] == "flags.changed"]
    assert event["changes"] == {"NOTES_SHOUT_ENABLED": True}
    assert event["actor"].startswith("usr_") and event["audit"] is True
