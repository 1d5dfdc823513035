"""A bind answered 201 is on disk: kill -9 under concurrent binds, restart, all there.

Concurrent writes are committed in batches (group commit), so the kill lands
while a batch is under way: its writes were not answered yet, and every
write that was is there after the restart. Real `lukhas serve` processes on
127.0.0.1; the test kills only the PID it started.
"""

from __future__ import annotations

import json
import threading
import urllib.error
from dataclasses import dataclass, field

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


@dataclass
class Answered:
    """What the client threads sent and were answered."""

    bound: list[str] = field(default_factory=list)  # glyph ids answered 201
    revoking: list[str] = field(default_factory=list)  # revocations sent
    revoked: list[str] = field(default_factory=list)  # revocations answered 204


def bind_until_refused(url: str, token: str, answered: Answered, stop: threading.Event,
                       revoke: bool = False) -> None:
    """Bind (and with `revoke`, revoke each binding) until the host is gone."""
    for _ in range(MAX_BINDS):
        if stop.is_set():
            return
        try:
            status, answer = send(f"{url}/api/v1/glyphs/bind", token, BIND, timeout=5)
            if status != 201:
                raise AssertionError(f"bind answered {status}: {answer[:200]!r}")
            glyph_id = json.loads(answer)["glyph_id"]
            answered.bound.append(glyph_id)
            if revoke:
                answered.revoking.append(glyph_id)
                status, answer = send(f"{url}/api/v1/glyphs/{glyph_id}", token, None, "DELETE", timeout=5)
                if status != 204:
                    raise AssertionError(f"revoke answered {status}: {answer[:200]!r}")
                answered.revoked.append(glyph_id)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return  # the host is gone: whatever was not answered may be lost


def test_acknowledged_binds_survive_kill_9(tmp_path, database_env):
    env = {**ENV, **database_env}
    _, token = add_user(tmp_path, "ada", env=database_env)
    answered = Answered()
    acknowledged = answered.bound
    stop = threading.Event()
    with serving(tmp_path, env, expect_exit=None) as host:
        clients = [threading.Thread(target=bind_until_refused, args=(host.url, token, answered, stop))
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


def test_acknowledged_binds_and_revocations_survive_kill_9_amid_batches(tmp_path, database_env):
    # Three times the clients: the writer's batches hold binds and revocations together.
    env = {**ENV, **database_env}
    _, token = add_user(tmp_path, "ada", env=database_env)
    answered = Answered()
    stop = threading.Event()
    with serving(tmp_path, env, expect_exit=None) as host:
        clients = [threading.Thread(target=bind_until_refused, args=(host.url, token, answered, stop, True))
                   for _ in range(3 * CLIENTS)]
        for client in clients:
            client.start()
        eventually(lambda: len(answered.revoked) >= 150, 60, interval=0.01,
                   what="150 revocations acknowledged")
        kill_9(host.process)
        stop.set()
        for client in clients:
            client.join(timeout=30)

    revoked, unsent = set(answered.revoked), set(answered.bound) - set(answered.revoking)
    with serving(tmp_path, env) as host:
        for glyph_id in answered.bound:  # a revocation sent but not answered may have landed or not
            status, _, body = get(f"{host.url}/api/v1/glyphs/{glyph_id}", token)
            assert status == 200, (glyph_id, body)
            if glyph_id in revoked or glyph_id in unsent:
                assert json.loads(body)["active"] is (glyph_id in unsent), (glyph_id, body)
    verified = audit_verify(data_dir(tmp_path), database_env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
