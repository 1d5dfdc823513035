"""`lukhas serve` pre-starts its first worker: real processes.

The entry point starts one worker (`python -m lukhas_kernel._cli.prestarted`)
before the supervisor imports its CLI; the supervisor hands it the socket, or
dismisses it. Whatever happens, no pre-started process outlives its command.

Each test knows every process its command started: a `sitecustomize` on their
PYTHONPATH (written by the test) records each interpreter's pid and command
line as it starts, so a child that lived for a few milliseconds is seen too.
Only processes the test started are signalled, by pid; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.cli import clean_env, cli, data_dir, one_line_error
from support.host import serving
from support.net import free_port
from support.paths import TESTS
from support.polling import eventually
from support.urls import get

CHILD = "lukhas_kernel._cli.prestarted"
#: The console script (`lukhas`), beside this interpreter.
LUKHAS = str(Path(sys.executable).parent / "lukhas")
RECORD_ENV = "PRESTART_TEST_RECORDS"
#: Records each interpreter's command line, at its start, into RECORD_ENV/<pid>.
SITECUSTOMIZE = f"""
import os, sys

if os.environ.get("{RECORD_ENV}"):
    with open(os.path.join(os.environ["{RECORD_ENV}"], str(os.getpid())), "w") as out:
        out.write("\\0".join(sys.orig_argv))
"""


def recording(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment under which every interpreter records its start; the records' directory."""
    hook, records = tmp_path / "hook", tmp_path / "records"
    hook.mkdir()
    records.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": os.pathsep.join([str(hook), str(TESTS)]), RECORD_ENV: str(records)}, records


def started(records: Path) -> dict[int, list[str]]:
    """Every interpreter started under `records`: pid -> command line."""
    return {int(p.name): p.read_text().split("\0") for p in records.iterdir()}


def pre_started(records: Path) -> list[int]:
    return sorted(pid for pid, argv in started(records).items() if CHILD in argv)


def alive(pid: int, argv: list[str]) -> bool:
    """Whether `pid` still runs `argv` (a pid reused by another process is not ours)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1] == [a.encode() for a in argv]
    except OSError:
        return False


def none_left(records: Path) -> None:
    left = {pid: argv for pid, argv in started(records).items() if alive(pid, argv)}
    assert not left, f"still running: {left}"


def taken_port() -> socket.socket:
    """A socket listening on 127.0.0.1 (close it after use)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@contextmanager
def serve(tmp_path: Path, *args: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`lukhas serve ARGS` on a free port until /readyz answers 200; SIGTERM
    afterwards, and it must exit 0 within its bound."""
    port = free_port()
    log = tmp_path / "host.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [LUKHAS, "serve", *args], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr, text=True,
            env=clean_env({"LUKHAS_DATA_DIR": str(data_dir(tmp_path)), "LUKHAS_HOST": "127.0.0.1",
                           "LUKHAS_PORT": str(port), "LUKHAS_LOG_FORMAT": "json",
                           "LUKHAS_PLUGIN_TIMEOUT_S": "30", **env}))
        url = f"http://127.0.0.1:{port}"
        try:
            def ready() -> bool:
                assert process.poll() is None, log.read_text()
                try:
                    return get(url + "/readyz")[0] == 200
                except OSError:
                    return False

            eventually(ready, 60, what=f"{url}/readyz answering 200")
            yield process, url
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(15)
    assert process.returncode == 0, log.read_text()


def test_a_taken_port_exits_1_and_leaves_no_pre_started_worker(tmp_path):
    env, records = recording(tmp_path)
    with taken_port() as sock:
        port = sock.getsockname()[1]
        result = subprocess.run([LUKHAS, "serve"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                env=clean_env({"LUKHAS_DATA_DIR": str(data_dir(tmp_path)), **env,
                                               "LUKHAS_HOST": "127.0.0.1", "LUKHAS_PORT": str(port)}))
    line = one_line_error(result, 1)
    assert line == f"lukhas: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert result.stdout == ""
    assert len(pre_started(records)) == 1, started(records)
    none_left(records)


def test_a_second_host_on_the_same_data_dir_exits_1_and_leaves_no_pre_started_worker(tmp_path):
    with serving(tmp_path) as first:
        env, records = recording(tmp_path)
        second = cli(tmp_path, "serve", env={**env, "LUKHAS_PORT": str(free_port())}, timeout=60)
        assert "already" in one_line_error(second, 1)
        assert len(pre_started(records)) == 1, started(records)
        none_left(records)
        assert get(first.url + "/readyz")[0] == 200, "the first host serves on"


def test_help_and_a_usage_error_leave_no_pre_started_worker(tmp_path):
    env, records = recording(tmp_path)
    shown = subprocess.run([LUKHAS, "serve", "--help"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, env=clean_env(env))
    assert shown.returncode == 0 and "Usage: lukhas serve" in shown.stdout, shown.stderr
    assert pre_started(records) == [], "help starts no worker"
    wrong = subprocess.run([LUKHAS, "serve", "--no-such-option"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, env=clean_env(env))
    assert wrong.returncode == 2 and "No such option" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert len(pre_started(records)) == 1, started(records)  # started before click parsed
    none_left(records)


def test_the_pre_started_worker_serves_and_sigterm_stops_everything(tmp_path):
    env, records = recording(tmp_path)
    with serve(tmp_path, env=env) as (host, _):
        (child,) = pre_started(records)
        assert set(started(records)) == {host.pid, child}, "no worker spawned besides it"
        assert alive(child, started(records)[child])
    events = [line for line in (tmp_path / "host.log").read_text().splitlines() if "lukhas.listening" in line]
    assert len(events) == 1 and f'"pids": [{child}]' in events[0], events
    none_left(records)


def test_a_reload_spawns_its_worker_as_usual_and_stops_the_pre_started_one(tmp_path):
    env, records = recording(tmp_path)
    with serve(tmp_path, env=env) as (host, url):
        (child,) = pre_started(records)
        reloaded = cli(tmp_path, "reload", timeout=120)
        assert reloaded.returncode == 0 and reloaded.stdout.startswith("reload completed"), reloaded.stderr
        (worker,) = set(started(records)) - {host.pid, child}
        argv = started(records)[worker]
        assert argv[1:4] == ["-m", "lukhas_kernel", "serve"] and "--worker-fd" in argv, argv
        assert argv[-1] == "--prepare", argv
        # Done once the old worker stopped accepting; it exits after draining.
        eventually(lambda: not alive(child, started(records)[child]), 60, what="the old worker exited")
        assert get(url + "/readyz")[0] == 200
    none_left(records)


def test_with_two_workers_the_pre_started_one_is_dismissed(tmp_path):
    env, records = recording(tmp_path)
    with serve(tmp_path, "--workers", "2", env=env) as (host, url):
        (child,) = pre_started(records)
        assert not alive(child, started(records)[child]), "dismissed once the first worker was spawned"
        eventually(lambda: len(started(records)) == 4, 60, what="the second worker started")
        workers = set(started(records)) - {host.pid, child}
        assert all("--worker-fd" in started(records)[pid] for pid in workers)
        assert get(url + "/readyz")[0] == 200
    none_left(records)


def child_with_control() -> tuple[subprocess.Popen[bytes], socket.socket]:
    """The pre-started worker's process alone, and our end of its control socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with theirs:
        process = subprocess.Popen([sys.executable, "-m", CHILD, str(theirs.fileno())],
                                   pass_fds=(theirs.fileno(),), env=clean_env(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return process, ours


def test_the_pre_started_process_exits_0_quietly_when_its_supervisor_is_gone():
    # At once (during its imports), and once it waits for go.
    for wait_s in (0.0, 5.0):
        process, ours = child_with_control()
        time.sleep(wait_s)
        assert process.poll() is None
        ours.close()
        out, err = process.communicate(timeout=30)
        assert (process.returncode, out, err) == (0, b"", b""), wait_s
