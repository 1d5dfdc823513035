"""The `lukhas` CLI and start-up settings errors, as real processes."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
from support.cli import first_admin_token, lukhas
from support.host import serving
from support.urls import authorized


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"HEALTHY_ENABLED": "maybe"}, "HEALTHY_ENABLED"),
        ({"LUKHAS_PORT": "-1"}, "LUKHAS_PORT"),
        ({"LUKHAS_PLUGIN_TIMEOUT_S": "soon"}, "LUKHAS_PLUGIN_TIMEOUT_S"),
        ({"LUKHAS_LOG_FORMAT": "xml"}, "LUKHAS_LOG_FORMAT"),
        ({"LUKHAS_CHAOS_ENABLED": "true", "LUKHAS_CHAOS": "healthy:nap:raise"}, "LUKHAS_CHAOS"),
        ({"LUKHAS_CONFIG": "missing.toml"}, "LUKHAS_CONFIG"),
        # Run-time resilience
        ({"LUKHAS_PLUGIN_RETRIES": "-1"}, "LUKHAS_PLUGIN_RETRIES"),
        ({"LUKHAS_PLUGIN_RETRY_BASE_S": "abc"}, "LUKHAS_PLUGIN_RETRY_BASE_S"),
        ({"LUKHAS_PLUGIN_RETRY_MAX_S": "-5"}, "LUKHAS_PLUGIN_RETRY_MAX_S"),
        ({"LUKHAS_BREAKER_ENABLED": "maybe"}, "LUKHAS_BREAKER_ENABLED"),
        ({"LUKHAS_BREAKER_WINDOW_S": "0"}, "LUKHAS_BREAKER_WINDOW_S"),
        ({"LUKHAS_BREAKER_MIN_REQUESTS": "0"}, "LUKHAS_BREAKER_MIN_REQUESTS"),
        ({"LUKHAS_BREAKER_FAILURE_RATIO": "1.5"}, "LUKHAS_BREAKER_FAILURE_RATIO"),
        ({"LUKHAS_BREAKER_COOLDOWN_S": "-1"}, "LUKHAS_BREAKER_COOLDOWN_S"),
        ({"LUKHAS_QUARANTINE_AFTER": "-1"}, "LUKHAS_QUARANTINE_AFTER"),
        ({"LUKHAS_SHUTDOWN_GRACE_S": "later"}, "LUKHAS_SHUTDOWN_GRACE_S"),
        ({"LUKHAS_CHAOS_ENABLED": "true", "LUKHAS_CHAOS": "healthy:setup:fail_times=0"}, "LUKHAS_CHAOS"),
        ({"LUKHAS_CHAOS_ENABLED": "true", "LUKHAS_CHAOS": "healthy:request:crash"}, "LUKHAS_CHAOS"),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["doctor"]])
def test_bad_setting_exits_2_with_one_line(tmp_path, env, variable, command):
    if command == ["doctor"]:
        lukhas("db", "upgrade", cwd=tmp_path)  # doctor works on an existing database
    result = lukhas(*command, cwd=tmp_path,
                    env={"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy", **env})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"lukhas: invalid setting {variable}: ")
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_value_in_config_file_and_dotenv(tmp_path):
    lukhas("db", "upgrade", cwd=tmp_path)  # doctor works on an existing database
    (tmp_path / "lukhas.toml").write_text("[kernel]\nport = 'eighty'\n")
    result = lukhas("doctor", cwd=tmp_path, env={"LUKHAS_CONFIG": "lukhas.toml"})
    assert result.returncode == 2
    assert result.stderr.startswith("lukhas: invalid setting LUKHAS_PORT:")
    (tmp_path / ".env").write_text("HEALTHY_ENABLED=perhaps\n")
    result = lukhas("doctor", cwd=tmp_path, env={"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy"})
    assert result.returncode == 2
    assert result.stderr.startswith("lukhas: invalid setting HEALTHY_ENABLED:")


def test_plugins_list_table_and_json(tmp_path):
    env = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy,sample_plugins.import_raises",
           "IMPORT_RAISES_ENABLED": "false"}
    table = lukhas("plugins", "list", cwd=tmp_path, env=env)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "DISTRIBUTION", "VERSION", "ENABLED", "MODULE"]
    # Installed plugins (the first-party ones) are listed too.
    enabled = {row.split()[0]: row.split()[3] for row in rows}
    assert enabled["healthy"] == "True" and enabled["import_raises"] == "False"

    listing = json.loads(lukhas("plugins", "list", "--json", cwd=tmp_path, env=env).stdout)
    assert listing["count"] == len(rows)
    items = {item["name"]: item for item in listing["items"]}
    assert items["healthy"]["module"] == "sample_plugins.healthy"
    assert items["import_raises"]["flag"] == "IMPORT_RAISES_ENABLED"


def test_doctor_reports_every_state_and_gates_on_required(tmp_path):
    env = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy,sample_plugins.setup_raises,"
                                   "sample_plugins.import_hangs",
           "LUKHAS_PLUGIN_TIMEOUT_S": "0.5", "LUKHAS_LOG_FORMAT": "json"}
    lukhas("db", "upgrade", cwd=tmp_path)  # doctor works on an existing database
    ok = lukhas("doctor", cwd=tmp_path, env={**env, "LUKHAS_REQUIRED_PLUGINS": "healthy"})
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    states = {p["name"]: (p["state"], p["reason"]) for p in report["plugins"]
              if p["name"] in ("healthy", "import_hangs", "setup_raises")}
    assert states == {
        "healthy": ("active", None),
        "import_hangs": ("failed", "import: timed out after 0.5s"),
        "setup_raises": ("failed", "setup: ConnectionError: database refused the connection"),
    }
    assert report["status"] == "partial"
    # Events a plugin emits carry its name; the start-up result is one event.
    events = [json.loads(line) for line in ok.stderr.splitlines()]
    assert {"event": "healthy.setup_done", "plugin": "healthy"}.items() <= next(
        e for e in events if e["event"] == "healthy.setup_done").items()
    [startup] = [e for e in events if e["event"] == "lukhas.startup"]
    assert startup["failed"]["setup_raises"].startswith("setup: ")

    gated = lukhas("doctor", cwd=tmp_path, env={**env, "LUKHAS_REQUIRED_PLUGINS": "healthy,setup_raises"})
    assert gated.returncode == 1
    assert json.loads(gated.stdout)["missing_required"] == ["setup_raises"]


def test_serve_partial_startup_with_a_hanging_import(tmp_path):
    """A real host with a plugin whose import sleeps 60 s is ready within the timeout."""
    env = {"LUKHAS_PLUGIN_TIMEOUT_S": "1",
           "LUKHAS_EXTRA_PLUGINS": "sample_plugins.import_hangs,sample_plugins.healthy",
           "LUKHAS_REQUIRED_PLUGINS": "healthy"}
    # `serving` asserts /readyz answered 200 within 30 s (the import sleeps 60 s)
    # and, once it is stopped with SIGINT, that the host exited 0.
    with serving(tmp_path, env, ready="/readyz") as host:
        token = first_admin_token(host.process)
        with urllib.request.urlopen(authorized(f"{host.url}/api/v1/healthy/greet", token),
                                    timeout=5) as reply:
            assert json.loads(reply.read()) == {"message": "hello, world"}
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(authorized(f"{host.url}/api/v1/import_hangs/ping", token),
                                   timeout=5)
        assert failed.value.code == 503
        assert json.loads(failed.value.read())["detail"] == (
            "import_hangs subsystem failed: import: timed out after 1s")


def test_serve_port_taken_exits_1_with_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = lukhas("serve", cwd=tmp_path, env={"LUKHAS_PORT": str(port)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"lukhas: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_plugin_cli_commands_are_added(tmp_path):
    result = lukhas("healthy", "shout", "hi", cwd=tmp_path,
                    env={"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HI"
    disabled = lukhas("healthy", "shout", "hi", cwd=tmp_path,
                      env={"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy", "HEALTHY_ENABLED": "0"})
    assert disabled.returncode == 2
    assert "No such command 'healthy'" in disabled.stderr
