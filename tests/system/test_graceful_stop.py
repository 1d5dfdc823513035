"""A graceful stop of real `lukhas serve` processes, one or several workers.

On SIGTERM or SIGINT the host closes its listening socket at once (a new
connection is refused by the OS), lets a request in flight finish within
`LUKHAS_SHUTDOWN_GRACE_S`, cuts one that runs past it, and exits 0.

A slow request is one to the dreams plugin with a chaos `delay_ms` fault at
its `request` stage. It is in flight once the host's
`lukhas_http_requests_in_flight` gauge counts it. Every wait is bounded.
"""

from __future__ import annotations

import http.client
import signal
import socket
import time
import urllib.error
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.cli import first_admin_token
from support.host import Host, serving
from support.polling import eventually
from support.urls import get

DREAMS = "/api/v1/dreams/list"
#: Starting two workers on a shared machine may take longer than the default.
SLOW_START = {"LUKHAS_PLUGIN_TIMEOUT_S": "30"}
#: Bounds on the stopping host: draining, then the plugins' teardown.
EXIT_S = 10.0


def chaos(delay_ms: int) -> dict[str, str]:
    return {"LUKHAS_CHAOS_ENABLED": "true", "LUKHAS_CHAOS": f"dreams:request:delay_ms={delay_ms}"}


def in_flight(url: str) -> float:
    """The host's requests in flight, the scrape asking included when it counts itself."""
    status, _, body = get(url + "/metrics")
    assert status == 200, body[:300]
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "lukhas_http_requests_in_flight":
                return sample.value
    raise AssertionError("no lukhas_http_requests_in_flight in /metrics")


def refused(url: str) -> bool:
    """True once a new TCP connection to the host's port is refused."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


Answer = tuple[int, dict[str, str], bytes]


def slow_request(pool: ThreadPoolExecutor, host: Host, token: str) -> Future[Answer]:
    """GET the delayed dreams route in the background, returned once the host is answering it."""
    before = in_flight(host.url)
    request = pool.submit(get, host.url + DREAMS, token)
    eventually(lambda: request.done() or in_flight(host.url) > before, 10,
               what="the dreams request in flight")
    assert not request.done(), request.result()
    return request


def serving_pids(host: Host, workers: int) -> set[int]:
    """The pids of the host's processes once `workers` of them have answered."""
    pids: set[int] = set()

    def all_answered() -> bool:
        status, headers, _ = get(host.url + "/healthz")
        assert status == 200
        pids.add(int(headers["X-Lukhas-Worker"]))
        return len(pids) == workers

    eventually(all_answered, 30, interval=0.01, what=f"{workers} workers answering")
    return pids


def exited_within(host: Host, limit_s: float) -> float:
    """Seconds the host took to exit (it must within `limit_s`), with its code 0."""
    started = time.monotonic()
    code = host.process.wait(timeout=limit_s)
    assert code == 0
    return time.monotonic() - started


@pytest.mark.parametrize(("sig", "workers"), [
    (signal.SIGTERM, 1), (signal.SIGTERM, 2), (signal.SIGINT, 1),
], ids=["sigterm", "sigterm-2-workers", "sigint"])
def test_a_stop_refuses_new_connections_and_lets_a_request_in_flight_finish(tmp_path, sig, workers):
    env = {**chaos(3000), **SLOW_START, "LUKHAS_WORKERS": str(workers)}
    with serving(tmp_path, env) as host, ThreadPoolExecutor(1) as pool:
        token = first_admin_token(host.process)
        serving_pids(host, workers)  # every worker serves: none is stopped during its start-up
        request = slow_request(pool, host, token)
        host.process.send_signal(sig)

        assert eventually(lambda: refused(host.url), 2, interval=0.02, what="new connections refused")
        assert not request.done()  # refused while the request is still being answered
        status, _, body = request.result(timeout=10)
        assert status == 200, body[:300]
        exited_within(host, EXIT_S)

    stopping = host.events("host.stopping")
    stopped = host.events("host.stopped")
    assert len(stopping) == len(stopped) == workers  # one each, from every host process
    # The supervisor got `sig`; it stops each worker with SIGTERM.
    assert host.events("workers.stopping")[0]["signal"] == sig.name
    assert {e["signal"] for e in stopping} == {"SIGTERM"}
    assert sum(e["in_flight"] for e in stopping) == 1
    assert all(e["cut"] == 0 for e in stopped)


def test_a_request_running_past_the_grace_is_cut_and_the_host_still_exits_0(tmp_path):
    env = {**chaos(5000), "LUKHAS_SHUTDOWN_GRACE_S": "0.3"}
    with serving(tmp_path, env) as host, ThreadPoolExecutor(1) as pool:
        token = first_admin_token(host.process)
        request = slow_request(pool, host, token)
        host.process.send_signal(signal.SIGTERM)

        took = exited_within(host, EXIT_S)
        assert took < 4.0  # the grace, then the teardown: not the request's 5 s
        with pytest.raises((ConnectionError, http.client.HTTPException, urllib.error.URLError)):
            request.result(timeout=5)  # its connection was closed without an answer

    [stopping] = host.events("host.stopping")
    [stopped] = host.events("host.stopped")
    assert (stopping["signal"], stopping["in_flight"], stopping["grace_s"]) == ("SIGTERM", 1, 0.3)
    assert stopped["cut"] == 1
