"""Slow clients cannot hold a host's connections: headers and bodies have
deadlines, and a process takes a bounded number of connections.

Real `lukhas serve` processes on loopback, with deadlines of a second or two
so that the tests stay short; every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import socket
import time
from contextlib import ExitStack
from pathlib import Path

from support.answers import PROBLEM
from support.cli import add_user
from support.host import serving
from support.polling import eventually
from support.urls import get

LIMITS = {"LUKHAS_HEADER_TIMEOUT_S": "1", "LUKHAS_BODY_TIMEOUT_S": "2", "LUKHAS_LOG_LEVEL": "warning"}
#: Far past every deadline above: a connection still open then was never closed.
GIVE_UP_S = 15


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def closed_by_host(sock: socket.socket, trickle: bytes = b"", every_s: float = 0.25) -> float:
    """Send `trickle` one byte at a time, every `every_s`, until the host closes
    the connection; the seconds that took. Fails after GIVE_UP_S."""
    started = time.monotonic()
    sock.settimeout(every_s)
    sent = 0
    while time.monotonic() - started < GIVE_UP_S:
        try:
            if sent < len(trickle):
                sock.sendall(trickle[sent:sent + 1])
                sent += 1
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    raise AssertionError(f"the host kept the connection open for {GIVE_UP_S} s")


def served_again(url: str) -> bool:
    """Whether `url`/healthz answers within GIVE_UP_S (the host may still be
    closing connections a test just closed)."""

    def answers() -> bool:
        try:
            return get(url + "/healthz")[0] == 200
        except OSError:  # closed at once: still at the limit
            return False

    return eventually(answers, GIVE_UP_S, interval=0.1, what=f"{url}/healthz answering")


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    sock.settimeout(GIVE_UP_S)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status.split()[1]), headers, body


def test_slowloris_connections_are_closed_at_the_header_deadline_and_others_are_served(tmp_path: Path):
    add_user(tmp_path, "ada")
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 200
    with serving(tmp_path, LIMITS) as served, ExitStack() as stack:
        port = port_of(served.url)
        slow = [stack.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(5)]
        silent = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        # Meanwhile the host answers everyone else.
        assert get(served.url + "/healthz")[0] == 200
        held = [closed_by_host(sock, head) for sock in slow] + [closed_by_host(silent)]
        assert all(seconds < GIVE_UP_S for seconds in held)
        assert get(served.url + "/healthz")[0] == 200
    logged = served.events("http.slow_client")
    assert len(logged) == 6, served.stderr  # one line per closed connection
    assert {event["waiting_for"] for event in logged} == {"headers"}
    assert all(event["timeout_s"] == 1.0 for event in logged)


def test_a_later_request_on_a_kept_alive_connection_has_the_deadline_too(tmp_path: Path):
    add_user(tmp_path, "ada")
    with serving(tmp_path, LIMITS) as served, \
            socket.create_connection(("127.0.0.1", port_of(served.url))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        closed_by_host(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100)
    assert [e["waiting_for"] for e in served.events("http.slow_client")] == ["headers"]


def test_a_body_that_does_not_arrive_in_time_is_408_and_stores_nothing(tmp_path: Path):
    _, token = add_user(tmp_path, "ada")
    body = json.dumps({"source": "user:ada", "target": "doc:q3", "symbol": "LINK"}).encode()
    with serving(tmp_path, LIMITS) as served:
        with socket.create_connection(("127.0.0.1", port_of(served.url))) as sock:
            sock.sendall(b"POST /api/v1/glyphs/bind HTTP/1.1\r\nHost: x\r\n"
                         b"Authorization: Bearer " + token.encode() + b"\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
            status, headers, answer = read_answer(sock)  # read to the end: the host closed it
        assert status == 408 and headers["content-type"].startswith(PROBLEM)
        problem = json.loads(answer)
        assert problem["type"] == "urn:lukhas:problem:timeout"
        assert problem["detail"] == "the request body did not arrive within 2 s"
        listing = json.loads(get(served.url + "/api/v1/glyphs/bindings/list?active_only=false", token)[2])
        assert listing["count"] == 0  # the half-sent bind stored nothing
    assert [e["waiting_for"] for e in served.events("http.slow_client")] == ["body"]


def kept_alive_answer(sock: socket.socket) -> bytes:
    """One `GET /healthz` on `sock`, which stays open; the answer's status line."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(GIVE_UP_S)
    answer = b""
    while b'{"status":"alive"}' not in answer:
        chunk = sock.recv(65536)
        assert chunk, answer
        answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_connections_past_the_limit_are_closed_at_once_and_logged_once(tmp_path: Path):
    add_user(tmp_path, "ada")
    env = {**LIMITS, "LUKHAS_HEADER_TIMEOUT_S": "60", "LUKHAS_MAX_CONNECTIONS": "4"}
    with serving(tmp_path, env) as served, ExitStack() as stack:
        port = port_of(served.url)
        held = [stack.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(4)]
        # Answered, so accepted: the host holds all four open now.
        assert [kept_alive_answer(sock) for sock in held] == [b"HTTP/1.1 200 OK"] * 4
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as extra:
                # Closed at once, though the header deadline is a minute away.
                assert closed_by_host(extra) < GIVE_UP_S
        # The held ones are still open and served.
        assert [kept_alive_answer(sock) for sock in held] == [b"HTTP/1.1 200 OK"] * 4
        for sock in held:
            sock.close()
        assert served_again(served.url)  # room again once they are gone
    logged = served.events("http.connection_limit")
    assert len(logged) == 1 and logged[0]["limit"] == 4, served.stderr
