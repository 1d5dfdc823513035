"""A bind answered 201 is on disk: kill -9 under concurrent binds, restart, all there.

Real `lukhas serve` processes on 127.0.0.1; the test kills only the PID it started.
"""

from __future__ import annotations

import json
import threading
import urllib.error

import pytest
from support.cli import add_user, data_dir
from support.glyphs import BIND, audit_verify
from support.host import kill_9, serving
from support.polling import eventually
from support.urls import get, send

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.both_databases]

# Warnings only: not a log line per request to write while under load.
ENV = {"GLYPHS_BIND_RATE_LIMIT": "100000/minute", "LUKHAS_LOG_LEVEL": "warning"}
CLIENTS = 8
MAX_BINDS = 2000  # per client: bounds the test if the host never dies


def bind_until_refused(url: str, token: str, acknowledged: list[str], stop: threading.Event) -> None:
    for _ in range(MAX_BINDS):
        if stop.is_set():
            return
        try:
            status, answer = send(f"{url}/api/v1/glyphs/bind", token, BIND, timeout=5)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return  # the host is gone: whatever was not answered 201 may be lost
        if status >= 400:
            raise AssertionError(f"bind answered {status}: {answer[:200]!r}")
        if status == 201:
            acknowledged.append(json.loads(answer)["glyph_id"])


def test_acknowledged_binds_survive_kill_9(tmp_path, database_env):
    env = {**ENV, **database_env}
    _, token = add_user(tmp_path, "ada", env=database_env)
    acknowledged: list[str] = []
    stop = threading.Event()
    with serving(tmp_path, env, expect_exit=None) as host:
        clients = [threading.Thread(target=bind_until_refused, args=(host.url, token, acknowledged, stop))
                   for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        eventually(lambda: len(acknowledged) >= 200, 30, interval=0.01, what="200 binds acknowledged")
        kill_9(host.process)  # SIGKILL mid-traffic, no shutdown
        host.process.wait(timeout=15)
        stop.set()
        for client in clients:
            client.join(timeout=30)
    assert len(acknowledged) >= 200, "too few binds before the kill"

    with serving(tmp_path, env) as host:
        for glyph_id in acknowledged:
            status, _, body = get(f"{host.url}/api/v1/glyphs/{glyph_id}", token)
            assert status == 200, (glyph_id, body)
    verified = audit_verify(data_dir(tmp_path), database_env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
