"""Zero-downtime reload: `lukhas serve` on SIGHUP, `lukhas reload`, the pid file.

Real `lukhas serve` processes on 127.0.0.1 under a paced, bounded load; the
install test puts the `hello` example into a throwaway venv layered over the
suite's, so `pip install` and `pip uninstall` change only that venv.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lukhas_kernel.testing import layered_venv
from support.cli import add_user, clean_env, cli, data_dir, first_admin_token, one_line_error
from support.dream_inputs import LONG
from support.dreams import wait_job
from support.host import serving
from support.load import Load
from support.paths import ROOT
from support.polling import eventually
from support.urls import get, post, send

LEFTOVERS = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
GREET = "/api/v1/hello/greet"
NO_HOST = "lukhas: no host is running on data dir {}"


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python, hello wheel): a venv that sees the suite's packages through a
    .pth file and installs its own on top, and the example plugin built once."""
    root = tmp_path_factory.mktemp("overlay")
    python = layered_venv(root / "venv")
    shutil.copytree(ROOT / "examples" / "hello", root / "hello", ignore=LEFTOVERS)
    subprocess.run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", root / "dist",
                    root / "hello"], check=True, capture_output=True, timeout=240)
    [wheel] = (root / "dist").glob("lukhas_hello-*.whl")
    return python, wheel


def pip(python: Path, *args: str | Path) -> None:
    result = subprocess.run([python, "-m", "pip", *map(str, args)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def reload(tmp_path: Path, python: str | Path = sys.executable,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`lukhas reload` on the data dir `tmp_path/data`."""
    return subprocess.run([str(python), "-m", "lukhas_kernel", "reload"], cwd=tmp_path, timeout=180,
                          capture_output=True, text=True,
                          env=clean_env({"LUKHAS_DATA_DIR": str(data_dir(tmp_path)), **(env or {})}))


def completed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stdout.startswith("reload completed: generation "), result.stdout
    return result.stdout


def worker_of(url: str) -> str:
    return get(url + "/healthz")[1]["X-Lukhas-Worker"]


# -- install and uninstall under load --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_install_and_uninstall_reload_with_no_failed_request(tmp_path, overlay, workers):
    python, wheel = overlay
    with serving(tmp_path, {"LUKHAS_WORKERS": str(workers)}, python=python) as host:
        token = first_admin_token(host.process)
        port = int(host.url.rsplit(":", 1)[1])
        with Load(port, ["/healthz", "/api/v1/plugins", "/readyz"],
                  {"Authorization": f"Bearer {token}"}) as load:
            assert get(host.url + GREET, token)[0] == 404

            pip(python, "install", "--quiet", "--no-deps", wheel)
            completed(reload(tmp_path, python))
            status, _, body = get(host.url + GREET, token)
            assert status == 200 and json.loads(body) == {"message": "Hello, world!"}

            pip(python, "uninstall", "--yes", "--quiet", "lukhas-hello")
            completed(reload(tmp_path, python))
            assert get(host.url + GREET, token)[0] == 404

        report = load.report
        assert report.failures == [], report.failures[:10]
        assert set(report.answered) == {200}, report.answered
        assert report.rate >= 200, (report.rate, report.seconds)

    # Two reloads, each a whole new generation of `workers` workers.
    assert [e["generation"] for e in host.events("reload.completed")] == [2, 3]
    assert all(len(e["workers"]) == workers for e in host.events("reload.completed"))
    assert not host.events("reload.failed")


# -- failed reloads: the old generation serves on --------------------------------


def test_an_invalid_setting_fails_the_reload_and_the_old_workers_serve_on(tmp_path):
    config = tmp_path / "lukhas.toml"
    config.write_text("[kernel]\nplugin_timeout_s = 5\n")
    env = {"LUKHAS_CONFIG": str(config)}
    with serving(tmp_path, env) as host:
        before = worker_of(host.url)
        config.write_text("[kernel]\nplugin_timeout_s = -1\n")
        failed = reload(tmp_path, env=env)
        assert one_line_error(failed).startswith(
            "lukhas: reload failed: invalid setting LUKHAS_PLUGIN_TIMEOUT_S")
        assert worker_of(host.url) == before

        config.write_text("[kernel]\nplugin_timeout_s = 5\n")  # fixed: the next reload works
        completed(reload(tmp_path, env=env))
        assert worker_of(host.url) != before
    [event] = host.events("reload.failed")
    assert event["reason"].startswith("invalid setting LUKHAS_PLUGIN_TIMEOUT_S")


def test_a_generation_not_ready_in_time_is_stopped(tmp_path):
    config = tmp_path / "lukhas.toml"
    plugins = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy", "LUKHAS_CONFIG": str(config),
               "LUKHAS_CHAOS_ENABLED": "true"}
    config.write_text("[kernel]\nreload_timeout_s = 1\n")
    with serving(tmp_path, plugins) as host:
        before = worker_of(host.url)
        # The new generation's plugin hangs in setup, well past the reload's second.
        config.write_text('[kernel]\nreload_timeout_s = 1\nplugin_timeout_s = 60\n'
                          'chaos = "healthy:setup:hang"\n')
        assert one_line_error(reload(tmp_path, env=plugins)) == \
            "lukhas: reload failed: generation 2 not ready within 1 s"
        assert worker_of(host.url) == before
    [started] = host.events("worker.started")  # the reload's (the first start's is not logged)
    assert started["generation"] == 2
    [failed] = host.events("reload.failed")
    assert failed["reason"] == "generation 2 not ready within 1 s"


def test_a_plugin_failing_in_the_new_generation_does_not_fail_the_reload(tmp_path):
    config = tmp_path / "lukhas.toml"
    config.write_text("")
    env = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy", "LUKHAS_CONFIG": str(config),
           "LUKHAS_CHAOS_ENABLED": "true", "LUKHAS_PLUGIN_RETRIES": "0"}
    with serving(tmp_path, env) as host:
        _, token = add_user(tmp_path, "ops", "--admin")
        config.write_text('[kernel]\nchaos = "healthy:setup:raise"\n')
        completed(reload(tmp_path, env=env))
        status, _, body = get(host.url + "/api/v1/plugins", token)
        [healthy] = [p for p in json.loads(body)["items"] if p["name"] == "healthy"]
        assert (healthy["state"], healthy["stage"]) == ("failed", "setup")


# -- what lives in the database or Redis outlives a generation ------------------


def test_flags_rate_limit_counts_and_dream_jobs_live_through_a_reload(tmp_path, redis_url):
    env = {"LUKHAS_RATE_LIMIT_STORAGE": redis_url, "VIVOX_READ_RATE_LIMIT": "5/minute",
           "DREAMS_MAX_RUNNING": "1", "DREAMS_MAX_JOB_COST": str(64 * 16 * 8)}
    ops_id, token = add_user(tmp_path, "ops", "--admin")
    drift = f"/api/v1/drift/{ops_id}"
    with serving(tmp_path, env) as host:
        assert send(host.url + "/api/v1/admin/flags", token, {"GLYPHS_ENABLED": False}, "PATCH")[0] == 200
        dream_id = post(host.url + "/api/v1/dreams/parallel", token, LONG, 202)["dream_id"]
        assert [get(host.url + drift, token)[0] for _ in range(3)] == [200] * 3

        completed(reload(tmp_path))

        assert json.loads(get(host.url + "/api/v1/admin/flags", token)[2])["GLYPHS_ENABLED"] is False
        assert get(host.url + "/api/v1/glyphs/bindings/list", token)[0] == 403
        # The moving window counted the three reads of the old generation.
        assert [get(host.url + drift, token)[0] for _ in range(3)] == [200, 200, 429]
        # The job the old worker had taken is taken up by the new one and finishes.
        done = wait_job(host.url, token, dream_id, lambda j: j["status"] not in ("queued", "running"))
        assert done["status"] == "completed", done


# -- queued reloads, the pid file, no host ---------------------------------------


def test_a_second_sighup_during_a_reload_is_queued_not_interleaved(tmp_path):
    with serving(tmp_path) as host:
        host.process.send_signal(signal.SIGHUP)
        eventually(lambda: "reload.started" in _log_of(host), 10, what="the first reload started")
        host.process.send_signal(signal.SIGHUP)
        eventually(lambda: _log_of(host).count("reload.completed") == 2, 60, what="two reloads")
    events = [json.loads(line) for line in host.stderr.splitlines() if line.startswith("{")]
    order = [(e["event"], e.get("generation")) for e in events
             if e["event"] in {"reload.started", "reload.completed"}]
    assert order == [("reload.started", 2), ("reload.completed", 2),
                     ("reload.started", 3), ("reload.completed", 3)]


def _log_of(host) -> str:
    # The host logs to a file the fixture reads at the end; read it as it grows.
    return Path(f"/proc/{host.process.pid}/fd/2").read_text()


def test_the_pid_file_refuses_a_second_host_and_is_removed_at_exit(tmp_path):
    pid_file = data_dir(tmp_path) / "lukhas.pid"
    with serving(tmp_path) as host:
        assert pid_file.read_text().strip() == str(host.process.pid)
        second = cli(tmp_path, "serve", env={"LUKHAS_PORT": "0"})
        assert one_line_error(second) == (f"lukhas: a host is already running on data dir "
                                          f"{data_dir(tmp_path)} (pid {host.process.pid})")
    assert not pid_file.exists()


def test_a_stale_pid_file_is_replaced(tmp_path):
    pid_file = data_dir(tmp_path) / "lukhas.pid"
    data_dir(tmp_path).mkdir(mode=0o700)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    pid_file.write_text(f"{dead}\n")  # left by a host that died: nobody holds its lock
    assert one_line_error(reload(tmp_path), 2) == NO_HOST.format(data_dir(tmp_path))
    with serving(tmp_path) as host:
        assert pid_file.read_text().strip() == str(host.process.pid)
        completed(reload(tmp_path))


def test_reload_with_no_host_exits_2_with_one_line(tmp_path):
    assert one_line_error(reload(tmp_path), 2) == NO_HOST.format(data_dir(tmp_path))
    assert not data_dir(tmp_path).exists()  # asking created nothing
