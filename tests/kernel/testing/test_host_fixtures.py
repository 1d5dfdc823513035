"""The pytest plugin's `lukhas_user` and `lukhas_cli` fixtures, as a plugin's
test suite uses them (this suite's own hosts come from the same plugin)."""

from __future__ import annotations

import json
import tomllib

import pytest
from lukhas_kernel._core.settings import load_kernel_settings
from lukhas_kernel.testing import KERNEL_KEY
from lukhas_kernel.testing.cli_runner import environment_of, toml_text
from support.answers import problem

HEALTHY = "sample_plugins.healthy"


async def test_users_act_as_themselves_on_the_same_host(lukhas_host, lukhas_user):
    admin = await lukhas_host([HEALTHY])
    ada = await lukhas_user(admin, "ada", tier="premium")
    boss = await lukhas_user(ada, admin=True)  # any client of the host will do

    assert (ada.user.username, ada.user.tier, ada.user.role) == ("ada", "premium", "user")
    assert boss.user.username.startswith("user-") and boss.user.is_admin
    assert ada.token.startswith("lk_") and ada.headers == {"Authorization": f"Bearer {ada.token}"}
    assert (await (await ada.get("/api/v1/users/me")).json())["user_id"] == ada.user.id
    assert (await (await boss.get("/api/v1/users/me")).json())["user_id"] == boss.user.id
    await problem(await ada.get("/api/v1/admin/flags"), 403)
    assert (await boss.get("/api/v1/admin/flags")).status == 200
    assert (await admin.get("/api/v1/admin/flags")).status == 200  # the host's client is still the admin
    assert (await ada.post("/api/v1/healthy/echo", json={"text": "hi"})).status == 201
    async with ada.get("/api/v1/users/me", headers={"Authorization": "Bearer lk_nobody"}) as refused:
        await problem(refused, 401)
    await problem(await ada.get(f"/api/v1/users/{boss.user.id}"), 404)


async def test_the_cli_works_on_the_hosts_database(lukhas_host, lukhas_user, lukhas_cli):
    admin = await lukhas_host([HEALTHY], auth_cache_ttl_s=0)
    ada = await lukhas_user(admin, "ada")

    listed = await lukhas_cli("users", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert {"admin", "ada"} <= {item["username"] for item in json.loads(listed.output)["items"]}

    added = await lukhas_cli("users", "add", "bob")
    assert added.exit_code == 0, added.stderr
    token = added.output.split("token:", 1)[1].strip()
    bob = await admin.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert (await bob.json())["username"] == "bob"

    revoked = await lukhas_cli("tokens", "revoke", ada.token[:12])
    assert revoked.exit_code == 0, revoked.stderr
    await problem(await ada.get("/api/v1/users/me"), 401)

    again = await lukhas_cli("users", "add", "bob")
    assert again.exit_code == 1 and again.stderr.startswith("lukhas: "), again


async def test_plugins_loaded_by_module_path_bring_their_commands(lukhas_host, lukhas_cli):
    await lukhas_host([HEALTHY])
    shouted = await lukhas_cli("healthy", "shout", "hello")
    assert (shouted.exit_code, shouted.output) == (0, "HELLO\n"), shouted.stderr


async def test_the_cli_runs_on_the_chosen_host(lukhas_host, lukhas_cli, tmp_path):
    first = await lukhas_host(data_dir=tmp_path / "first")
    await lukhas_host(data_dir=tmp_path / "second")
    await first.app[KERNEL_KEY].services.accounts.create_user("only-on-first")
    on_first = await lukhas_cli("users", "list", host=first)
    on_latest = await lukhas_cli("users", "list")
    assert "only-on-first" in on_first.output and "only-on-first" not in on_latest.output


async def test_the_cli_needs_a_host(lukhas_cli):
    with pytest.raises(RuntimeError, match="start a lukhas_host first"):
        await lukhas_cli("users", "list")


async def test_the_cli_gets_the_hosts_settings_and_config(lukhas_host, tmp_path, monkeypatch):
    config = {"kernel": {"plugin_timeout_s": 2.5},
              "plugins": {"healthy": {"greeting": "hé \"quoted\"", "repeat": 2, "tags": [1, "x", True]}}}
    client = await lukhas_host([HEALTHY], config=config, request_timeout_s=7, chaos="healthy:health:raise")
    kernel = client.app[KERNEL_KEY]
    env = environment_of(kernel, tmp_path, {"EXTRA": "1"})
    assert env["EXTRA"] == "1" and env["LUKHAS_LOG_FORMAT"] == "json"
    for name in [n for n in env if n.startswith("LUKHAS_")]:
        monkeypatch.setenv(name, env[name])
    from_env = load_kernel_settings(env_file=None)  # reads the environment and LUKHAS_CONFIG as the CLI does
    assert from_env.model_dump() == {**kernel.settings.model_dump(), "log_format": "json"}
    assert from_env.request_timeout_s == 7 and from_env.chaos == "healthy:health:raise"


def test_config_tables_are_written_as_toml_that_reads_back_equal():
    config = {"plugins": {"x": {"s": "tab\t, DEL \x7f, é", "n": -3, "f": 1e-05, "nested": {"b": False}}}}
    assert tomllib.loads(toml_text(config)) == config
    for unrepresentable in ({"plugins": {"x": None}}, {"plugins": {"x": (1, 2)}}, {1: "x"}):
        with pytest.raises(TypeError):
            toml_text(unrepresentable)
