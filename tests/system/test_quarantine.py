"""Crash-loop quarantine through real `lukhas serve` processes: a plugin whose
import or setup kills the process is left out after LUKHAS_QUARANTINE_AFTER
starts in a row, and released by the CLI or the API (docs/plugin-states.md)."""

from __future__ import annotations

import http.client
import json
import sqlite3
import subprocess
import sys

import pytest
from support.cli import add_user, clean_env, cli, data_dir, ok, one_line_error
from support.host import kill_9, serving
from support.net import free_port
from support.polling import eventually
from support.urls import get, send

pytestmark = pytest.mark.chaos

PLUGINS = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy,sample_plugins.setup_raises"}
CRASH = {**PLUGINS, "LUKHAS_CHAOS_ENABLED": "true", "LUKHAS_CHAOS": "healthy:import:crash"}


def crashed_start(tmp_path, env: dict[str, str]) -> None:
    """One `lukhas serve` that the plugin's crash ends with exit code 70."""
    result = cli(tmp_path, "serve", env={"LUKHAS_PORT": str(free_port()), **env}, timeout=60)
    assert result.returncode == 70, (result.returncode, result.stderr[-2000:])


def states(url: str, token: str) -> dict[str, dict]:
    status, _, body = get(url + "/api/v1/plugins", token)
    assert status == 200
    return {item["name"]: item for item in json.loads(body)["items"]}


def test_a_plugin_that_crashes_three_starts_in_a_row_is_quarantined(tmp_path):
    for _ in range(3):
        crashed_start(tmp_path, CRASH)
    _, token = add_user(tmp_path, "root", "--admin")
    # The fourth start serves without it, even with the crash still armed.
    with serving(tmp_path, CRASH) as host:
        items = states(host.url, token)
        item = items["healthy"]
        assert item["state"] == "quarantined"
        assert item["reason"] == ("failed 3 consecutive starts, last: import: "
                                  "process exited during import")
        status, _, body = get(host.url + "/api/v1/healthy/greet", token)
        answer = json.loads(body)
        assert (status, answer["type"]) == (503, "urn:lukhas:problem:quarantined")
        assert answer["detail"] == f"healthy subsystem quarantined: {item['reason']}"
        assert send(host.url + "/api/v1/admin/plugins/healthy/restart", token, {})[0] == 409
    listed = json.loads(ok(cli(tmp_path, "plugins", "list", "--json", env=PLUGINS)))["items"]
    healthy = next(p for p in listed if p["name"] == "healthy")
    assert healthy["quarantined"] == {"failures": 3, "stage": "import",
                                      "reason": "process exited during import"}
    assert "failed 3 consecutive starts" in ok(cli(tmp_path, "plugins", "list", env=PLUGINS))

    # Released by the CLI: the next start tries it again (no crash now) and
    # a start in which it came up resets the count.
    assert "released healthy" in ok(cli(tmp_path, "plugins", "release", "healthy"))
    again = one_line_error(cli(tmp_path, "plugins", "release", "healthy"), 1)
    assert again == "lukhas: healthy is not quarantined"
    with serving(tmp_path, PLUGINS) as host:
        assert states(host.url, token)["healthy"]["state"] == "active"
    crashed_start(tmp_path, CRASH)
    with serving(tmp_path, PLUGINS) as host:  # one failed start, then one that came up
        assert states(host.url, token)["healthy"]["state"] == "active"


def test_release_through_the_api_then_restart_imports_it_at_once(tmp_path):
    env = {**CRASH, "LUKHAS_QUARANTINE_AFTER": "1"}
    crashed_start(tmp_path, env)
    _, token = add_user(tmp_path, "root", "--admin")
    with serving(tmp_path, PLUGINS | {"LUKHAS_QUARANTINE_AFTER": "1"}) as host:
        assert states(host.url, token)["healthy"]["state"] == "quarantined"
        release = host.url + "/api/v1/admin/plugins/healthy/quarantine"
        assert send(release, token, {}, method="DELETE")[0] == 204
        assert send(release, token, {}, method="DELETE")[0] == 404
        status, body = send(host.url + "/api/v1/admin/plugins/healthy/restart", token, {})
        assert status == 200, body
        assert json.loads(body)["state"] == "active"
        assert get(host.url + "/api/v1/healthy/greet", token)[0] == 200


def test_failed_starts_count_and_disabled_ones_do_not(tmp_path):
    env = {**PLUGINS, "LUKHAS_PLUGIN_RETRIES": "0", "LUKHAS_QUARANTINE_AFTER": "2"}
    with serving(tmp_path, env):  # the first failed start
        pass
    _, token = add_user(tmp_path, "root", "--admin")
    with serving(tmp_path, {**env, "SETUP_RAISES_ENABLED": "false"}) as host:
        assert states(host.url, token)["setup_raises"]["state"] == "disabled"
    with serving(tmp_path, env) as host:  # the second failed start
        assert states(host.url, token)["setup_raises"]["state"] == "failed"
    with serving(tmp_path, env) as host:
        item = states(host.url, token)["setup_raises"]
        assert item["state"] == "quarantined"
        assert item["reason"] == ("failed 2 consecutive starts, last: setup: "
                                  "ConnectionError: database refused the connection")
        assert states(host.url, token)["healthy"]["state"] == "active"


def test_kill_9_during_setup_counts_as_a_failed_start(tmp_path):
    env = {**PLUGINS, "LUKHAS_QUARANTINE_AFTER": "1", "LUKHAS_CHAOS_ENABLED": "true",
           "LUKHAS_CHAOS": "healthy:setup:hang", "LUKHAS_PLUGIN_TIMEOUT_S": "60"}
    full = clean_env({"LUKHAS_PORT": str(free_port()), "LUKHAS_LOG_FORMAT": "json",
                      "LUKHAS_DATA_DIR": str(data_dir(tmp_path)), **env})
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "lukhas_kernel", "serve"], cwd=tmp_path,
                                   env=full, stdout=subprocess.DEVNULL, stderr=sink, text=True)
    try:
        # The marker is durable before setup runs; the hang keeps it there.
        eventually(lambda: ("healthy", "setup") in _marker(tmp_path), 30,
                   what="healthy's setup marker")
    finally:
        kill_9(process)
    _, token = add_user(tmp_path, "root", "--admin")
    with serving(tmp_path, PLUGINS | {"LUKHAS_QUARANTINE_AFTER": "1"}) as host:
        item = states(host.url, token)["healthy"]
        assert item["state"] == "quarantined"
        assert item["reason"] == "failed 1 consecutive starts, last: setup: process exited during setup"


def _marker(tmp_path) -> list[tuple[str, str]]:
    path = data_dir(tmp_path) / "lukhas.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT plugin, stage FROM lukhas_plugin_markers").fetchall()
    except sqlite3.OperationalError:  # not migrated yet
        return []


def test_with_workers_a_crash_loop_is_quarantined_too(tmp_path):
    workers = {**CRASH, "LUKHAS_WORKERS": "2"}
    for _ in range(3):  # the supervisor imports every plugin first: it is the one that dies
        crashed_start(tmp_path, workers)
    _, token = add_user(tmp_path, "root", "--admin")
    with serving(tmp_path, workers) as host:
        assert states(host.url, token)["healthy"]["state"] == "quarantined"


def test_a_worker_replaced_after_a_crash_counts_as_a_new_start(tmp_path):
    env = {**PLUGINS, "LUKHAS_WORKERS": "2", "LUKHAS_QUARANTINE_AFTER": "1",
           "LUKHAS_CHAOS_ENABLED": "true"}
    _, token = add_user(tmp_path, "root", "--admin")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with serving(tmp_path, env) as host:
        # One connection, so one worker: it gets a crashing setup, is told to
        # restart the plugin, and dies.
        one = http.client.HTTPConnection("127.0.0.1", int(host.url.rpartition(":")[2]), timeout=30)
        one.request("PUT", "/api/v1/admin/chaos", json.dumps({"faults": ["healthy:setup:crash"]}),
                    headers)
        answer = one.getresponse()
        answer.read()
        assert answer.status == 200
        crashed = answer.headers["X-Lukhas-Worker"]
        one.request("POST", "/api/v1/admin/plugins/healthy/restart", "{}", headers)
        with pytest.raises((http.client.HTTPException, OSError)):  # it dies with the worker
            one.getresponse()
        one.close()

        def replacement_quarantined() -> bool:
            status, answer_headers, body = get(host.url + "/api/v1/plugins", token)
            items = {item["name"]: item for item in json.loads(body)["items"]} if status == 200 else {}
            return answer_headers.get("X-Lukhas-Worker") != crashed and \
                items.get("healthy", {}).get("state") == "quarantined"

        eventually(replacement_quarantined, 60, what="a replacement worker with healthy quarantined")
