"""`lukhas doctor` as a real process: tracebacks with --verbose, a status that
agrees with the exit code, failures logged with their traceback."""

from __future__ import annotations

import json

from support.cli import cli, create_database

EXTRAS = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy,sample_plugins.setup_raises,"
                                  "sample_plugins.setup_hangs",
          "LUKHAS_PLUGIN_TIMEOUT_S": "0.5"}


def items(stdout: str) -> dict[str, dict]:
    return {item["name"]: item for item in json.loads(stdout)["plugins"]}


def test_verbose_adds_each_failed_plugins_traceback(tmp_path):
    create_database(tmp_path)
    verbose = cli(tmp_path, "doctor", "--verbose", env=EXTRAS)
    assert verbose.returncode == 0, verbose.stderr
    plugins = items(verbose.stdout)
    traceback = plugins["setup_raises"]["traceback"]
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert "sample_plugins/setup_raises.py" in traceback  # the plugin's own line
    assert traceback.endswith("ConnectionError: database refused the connection\n")
    assert plugins["setup_hangs"]["traceback"] is None  # a timeout: no exception of its own
    assert "traceback" not in plugins["healthy"]

    plain = cli(tmp_path, "doctor", env=EXTRAS)
    assert plain.returncode == 0, plain.stderr
    assert all("traceback" not in item for item in items(plain.stdout).values())
    # The log has it too, once, as structlog renders an exception.
    logged = [json.loads(line) for line in plain.stderr.splitlines() if line.startswith("{")]
    [failed] = [e for e in logged if e["event"] == "plugin.failed" and e["plugin"] == "setup_raises"]
    assert failed["reason"] == "setup: ConnectionError: database refused the connection"
    assert failed["exception"].endswith("ConnectionError: database refused the connection")


def test_the_printed_status_agrees_with_the_exit_code(tmp_path):
    env = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy"}
    create_database(tmp_path)
    passing = cli(tmp_path, "doctor", env={**env, "LUKHAS_REQUIRED_PLUGINS": "healthy"})
    assert (passing.returncode, json.loads(passing.stdout)["status"]) == (0, "ok"), passing.stderr

    missing = cli(tmp_path, "doctor", env={**env, "LUKHAS_REQUIRED_PLUGINS": "healthy,absent"})
    report = json.loads(missing.stdout)
    assert (missing.returncode, report["status"], report["missing_required"]) == (
        1, "failed", ["absent"])
