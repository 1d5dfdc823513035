"""`lukhas serve --workers N`: one port, several host processes, as real processes.

Each test starts a real parent with two workers (`serving` of
`support.host`); every HTTP request opens a new connection, so the kernel
spreads them over the workers, and `X-Lukhas-Worker` tells which one answered.
Every loop is bounded in count, every wait in time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.cli import cli, first_admin_token, lukhas, one_line_error
from support.host import parent_of, serving
from support.net import free_port
from support.polling import eventually
from support.urls import get, send

# A generous plugin timeout: two workers start at once on a machine shared with other tests.
TWO = {"LUKHAS_WORKERS": "2", "LUKHAS_PLUGIN_TIMEOUT_S": "30"}
WORKER = "X-Lukhas-Worker"


def answers(url: str, token: str | None = None, *, until: Callable[[set[int]], bool],
            within_s: float = 30) -> tuple[int, set[int]]:
    """GET `url` (new connection each) until `until(pids seen)`; (requests sent, pids).

    Bounded in time, not count: the host serves once its first worker is
    ready, and the others may still be starting.
    """
    pids: set[int] = set()
    sent, deadline = 0, time.monotonic() + within_s
    while time.monotonic() < deadline:
        status, headers, _ = get(url, token)
        sent += 1
        assert status == 200, (url, status)
        pids.add(int(headers[WORKER]))
        if until(pids):
            return sent, pids
    raise AssertionError(f"{url}: only workers {pids} answered {sent} requests in {within_s} s")


def from_worker(url: str, pid: int, token: str | None = None, limit: int = 400) -> tuple[int, bytes]:
    """The answer of worker `pid` to GET `url` (other workers' answers are dropped)."""
    for _ in range(limit):
        status, headers, body = get(url, token)
        if int(headers[WORKER]) == pid:
            return status, body
    raise AssertionError(f"worker {pid} answered none of {limit} requests")


def counted(text: str, route: str) -> float:
    """lukhas_http_requests_total of GET `route` (200) in an exposition."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lukhas_http_requests_total" and sample.labels["route"] == route \
                    and sample.labels["status"] == "200":
                return sample.value
    return 0.0


def scrapes_by_worker(url: str, pids: set[int], limit: int = 400) -> dict[int, str]:
    """One `/metrics` exposition answered by each of `pids`."""
    texts: dict[int, str] = {}
    for _ in range(limit):
        status, headers, body = get(url + "/metrics")
        assert status == 200, body[:500]
        texts.setdefault(int(headers[WORKER]), body.decode())
        if pids <= set(texts):
            return texts
    raise AssertionError(f"/metrics answered only by {set(texts)} of {pids}")


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (`make test` installs Debian's prometheus package)")
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), \
        checked.stdout + checked.stderr


# -- one port, two processes, the one-time work once -----------------------------------


def test_two_workers_share_one_port_and_the_first_start_creates_one_admin(tmp_path):
    with serving(tmp_path, TWO) as host:
        token = first_admin_token(host.process)
        _, pids = answers(host.url + "/healthz", until=lambda seen: len(seen) == 2)
        assert all(parent_of(pid) == host.process.pid for pid in pids)
        # Every worker loaded the same plugins with the same settings: they agree.
        plugins = {pid: json.loads(from_worker(host.url + "/api/v1/plugins", pid, token)[1]) for pid in pids}
        readiness = [json.loads(from_worker(host.url + "/readyz", pid)[1]) for pid in pids]
        first, second = plugins.values()
        assert [(p["name"], p["state"]) for p in first["items"]] == \
            [(p["name"], p["state"]) for p in second["items"]]
        assert first["status"] == second["status"] == "ok"
        assert readiness[0] == readiness[1] and readiness[0]["status"] == "ready"

    assert "lk_" not in host.stdout  # the token was printed once, before the workers started
    assert {e["worker"] for e in host.events("lukhas.startup")} == pids
    users = cli(tmp_path, "users", "list", "--json")
    assert [u["role"] for u in json.loads(users.stdout)["items"]] == ["admin"]


def test_the_workers_option_and_its_errors(tmp_path):
    with serving(tmp_path, {"LUKHAS_WORKERS": "1"}) as host:  # one worker under the supervisor
        status, headers, _ = get(host.url + "/healthz")
        assert status == 200 and parent_of(int(headers[WORKER])) == host.process.pid

    assert one_line_error(cli(tmp_path, "serve", "--workers", "0"), 2).startswith(
        "lukhas: invalid setting LUKHAS_WORKERS")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        refused = cli(tmp_path, "serve", "--workers", "2", env={"LUKHAS_PORT": str(taken)})
    assert one_line_error(refused) == f"lukhas: cannot listen on 127.0.0.1:{taken}: Address already in use"
    unreachable = cli(tmp_path, "serve", "--workers", "2", env={
        "LUKHAS_DATABASE_URL": f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none",
        "LUKHAS_DB_TIMEOUT_S": "2"})
    assert one_line_error(unreachable).startswith("lukhas: cannot open database")


# -- metrics summed over the workers ----------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_metrics_are_summed_over_workers_whichever_answers(tmp_path, request, database):
    env = dict(TWO)
    if database == "postgres":
        cluster = request.getfixturevalue("postgres_cluster")
        name = cluster.create_database()
        request.addfinalizer(lambda: cluster.drop_database(name))
        env["LUKHAS_DATABASE_URL"] = cluster.url(name)
    with serving(tmp_path, env) as host:
        sent, pids = answers(host.url + "/readyz", until=lambda seen: len(seen) == 2)
        texts = scrapes_by_worker(host.url, pids)
        for text in texts.values():
            assert counted(text, "/readyz") == sent
        promtool_check(texts[min(pids)])
        assert "process_cpu_seconds_total" not in texts[min(pids)]  # one process's figure: left out

    assert not Path(host.events("lukhas.listening")[0]["metrics_dir"]).exists()  # removed at exit


# -- run-time flags ---------------------------------------------------------------------


def test_a_flag_changed_through_one_worker_applies_in_the_other(tmp_path):
    with serving(tmp_path, TWO) as host:
        token = first_admin_token(host.process)
        _, pids = answers(host.url + "/healthz", until=lambda seen: len(seen) == 2)
        dreams = host.url + "/api/v1/dreams/list"
        status, body = send(host.url + "/api/v1/admin/flags", token, {"DREAMS_ENABLED": False}, "PATCH")
        assert status == 200 and json.loads(body)["DREAMS_ENABLED"] is False
        # The PATCH's worker is whichever answered it; watch each worker in turn.
        for pid in pids:
            assert eventually(lambda pid=pid: from_worker(dreams, pid, token)[0] == 403)
            listed = json.loads(from_worker(host.url + "/api/v1/plugins", pid, token)[1])
            assert {p["name"]: p["state"] for p in listed["items"]}["dreams"] == "disabled"

        assert send(host.url + "/api/v1/admin/flags", token, {"DREAMS_ENABLED": True}, "PATCH")[0] == 200
        for pid in pids:
            assert eventually(lambda pid=pid: from_worker(dreams, pid, token)[0] == 200)
    assert host.events("flags.followed")  # at least one worker learnt it from the table


# -- supervision ------------------------------------------------------------------------


def test_a_killed_worker_is_replaced_and_counts_survive_it(tmp_path):
    with serving(tmp_path, TWO) as host:
        sent, pids = answers(host.url + "/readyz", until=lambda seen: len(seen) == 2)
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        # Every request is answered meanwhile (the socket stays open), until a new worker answers.
        more, seen = answers(host.url + "/readyz", until=lambda seen: bool(seen - pids))
        sent += more
        replacement = (seen - pids).pop()
        assert parent_of(replacement) == host.process.pid
        survivors = {replacement, *(pids - {victim})}
        for text in scrapes_by_worker(host.url, survivors).values():
            assert counted(text, "/readyz") == sent  # the dead worker's requests included
    exited = host.events("worker.exited")
    assert [(e["pid"], e["exited_with"]) for e in exited] == [(victim, "signal SIGKILL")]


def test_sigterm_stops_every_worker_and_the_parent_exits_0(tmp_path):
    with serving(tmp_path, TWO) as host:
        _, pids = answers(host.url + "/healthz", until=lambda seen: len(seen) == 2)
        host.process.send_signal(signal.SIGTERM)
        host.process.wait(30)
    assert host.process.returncode == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert host.events("workers.stopped")[0]["signal"] == "SIGTERM"
    assert sorted(e["worker"] for e in host.events("lukhas.startup")) == sorted(pids)


def test_serve_help_shows_workers_but_not_the_workers_own_options(tmp_path):
    shown = lukhas("serve", "--help", cwd=tmp_path, timeout=30)
    assert "--workers" in shown.stdout and "--worker-fd" not in shown.stdout
