"""Hostile input through the real host with every first-party plugin.

Oversized and deeply nested bodies, invalid UTF-8, huge request targets, path
traversal in ids and header injection through `X-Request-ID`. Each one gets a
clear 4xx (a problem+json wherever the host, not aiohttp's HTTP parser,
answers), stores nothing, and leaves the host serving. test_http.py covers
the basics on a sample plugin (413, malformed JSON, request ids); this file
sends the worst of it to the real routes.

Requests that must reach the server byte for byte (dot segments, CR/LF in a
header) go over a raw socket to the same in-process host.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
from typing import Any

import pytest
from lukhas_kernel.testing import KERNEL_KEY
from support.answers import PROBLEM, problem
from support.cli import add_user
from support.host import serving
from support.polling import eventually_async

LIMIT = 1024 * 1024  # LUKHAS_MAX_BODY_BYTES' default
MAX_TARGET = 8192  # the longest request target the host serves
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
NOW = "2024-05-01T12:00:00Z"
BIND = {"source": "user:ada", "target": "doc:q3", "symbol": "LINK"}
JSON = {"Content-Type": "application/json"}

# Every operation that takes a JSON body, with a valid body for it (the drift
# update's user id is filled in per host).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/dreams/parallel"): {"fragments": ["a quiet harbour at dawn"], "seed": 1},
    ("POST", "/api/v1/glyphs/bind"): BIND,
    ("POST", "/api/v1/glyphs/validate"): {"token": "not.a.token"},
    ("POST", "/api/v1/drift/update"): {"user_id": "", "interactions": [
        {"timestamp": NOW, "valence": 0.1, "arousal": 0.2, "decision": "walk"}]},
    ("PATCH", "/api/v1/admin/flags"): {"DREAMS_ENABLED": False},
}


# -- helpers ---------------------------------------------------------------


class Host:
    """The in-process host, its admin client and a plain user with some data."""

    def __init__(self, client: Any, user_id: str, glyph_id: str, dream_id: str) -> None:
        self.client, self.user_id, self.glyph_id, self.dream_id = client, user_id, glyph_id, dream_id

    def body(self, method: str, path: str) -> dict[str, Any]:
        body = dict(BODIES[(method, path)])
        if "user_id" in body:
            body["user_id"] = self.user_id
        return body

    async def json(self, path: str) -> Any:
        response = await self.client.get(path)
        assert response.status == 200, await response.text()
        return await response.json()

    async def stored(self) -> dict[str, Any]:
        """Everything a bad request could have written, as the API shows it."""
        return {
            "dreams": await self.json("/api/v1/dreams/list?limit=100"),
            "glyphs": await self.json("/api/v1/glyphs/bindings/list?limit=100&active_only=false"),
            "audit": await self.json("/api/v1/glyphs/audit?limit=100"),
            "drift": await self.json(f"/api/v1/drift/{self.user_id}"),
            "flags": await self.json("/api/v1/admin/flags"),
        }

    async def still_serves(self) -> None:
        """A read and a write both work: the host took no harm."""
        assert (await self.client.get("/healthz")).status == 200
        response = await self.client.post("/api/v1/glyphs/validate", json={"token": "x"})
        assert response.status == 200, await response.text()
        assert (await response.json())["reason"] == "malformed"

    async def raw(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send `request` as is on a new connection; the status, headers
        (lower-case names) and body of the answer."""
        reader, writer = await asyncio.open_connection(self.client.server.host, self.client.server.port)
        try:
            writer.write(request)
            try:
                await writer.drain()
            except ConnectionError:  # refused mid-request: the answer is still there to read
                pass
            answer = await asyncio.wait_for(reader.read(), timeout=30)  # the host closes the connection
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers, body

    def get_line(self, target: str, *headers: str, auth: bool = True) -> bytes:
        """A raw `GET target` with `Connection: close`."""
        lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
        if auth:
            lines.append(f"Authorization: {self.client.session.headers['Authorization']}")
        return ("\r\n".join([*lines, *headers, "Connection: close", "", ""])).encode("latin-1")


@pytest.fixture
async def host(lukhas_host: Any) -> Host:
    """Every installed plugin; a user `ada` with drift history, a binding and a dream."""
    client = await lukhas_host(installed=True)
    user, _ = await client.app[KERNEL_KEY].services.accounts.create_user("ada")
    update = await client.post("/api/v1/drift/update", json={**BODIES[("POST", "/api/v1/drift/update")],
                                                             "user_id": user.id})
    assert update.status == 200, await update.text()
    bound = await client.post("/api/v1/glyphs/bind", json=BIND)
    assert bound.status == 201, await bound.text()
    dreamt = await client.post("/api/v1/dreams/parallel", json=BODIES[("POST", "/api/v1/dreams/parallel")])
    assert dreamt.status == 202, await dreamt.text()
    made = Host(client, user.id, (await bound.json())["glyph_id"], (await dreamt.json())["dream_id"])
    # Done dreaming before any test compares what is stored before and after.

    async def completed() -> bool:
        return (await made.json(f"/api/v1/dreams/{made.dream_id}"))["status"] == "completed"

    await eventually_async(completed, 30, what="the fixture's dream completed")
    return made


async def documented(host: Host, method: str, path: str, status: int) -> None:
    """`status` is among the answers /openapi.json lists for the operation."""
    document = await host.json("/openapi.json")
    responses = document["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, (method, path, status, sorted(responses))


# -- bodies ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), list(BODIES))
async def test_oversized_body_is_413_and_stores_nothing(host, method, path):
    before = await host.stored()
    # A valid body padded with whitespace: still valid JSON, refused for its size alone.
    valid = json.dumps(host.body(method, path)).encode()
    padded = valid + b" " * (LIMIT + 1 - len(valid))

    async def chunks():  # no Content-Length: the size shows only while reading
        for start in range(0, len(padded), 64 * 1024):
            yield padded[start:start + 64 * 1024]

    for data in (padded, chunks()):
        response = await host.client.request(method, path, data=data, headers=JSON)
        body = await problem(response, 413)
        assert body["detail"] == "the request body is larger than LUKHAS_MAX_BODY_BYTES"
        assert REQUEST_ID.match(response.headers["X-Request-ID"])
    await documented(host, method, path, 413)
    assert await host.stored() == before
    await host.still_serves()


def nested(depth: int, inner: bytes = b"") -> bytes:
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize(("method", "path"), list(BODIES))
async def test_deeply_nested_json_is_400_not_a_crash(host, method, path):
    before = await host.stored()
    bodies = [
        b"[" * 100_000,  # never closed
        nested(100_000),
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    ]
    # The same depth inside a field that takes any JSON (a binding's context,
    # a flag's value), where nothing but the parser bounds it.
    field = "context" if path.endswith("/bind") else next(iter(host.body(method, path)))
    prefix = json.dumps({**host.body(method, path), field: None}).encode()
    bodies.append(prefix.replace(b"null", nested(100_000, b"1"), 1))
    for raw in bodies:
        body = await problem(await host.client.request(method, path, data=raw, headers=JSON), 400)
        assert body["detail"] == "the request body is not valid JSON"
    assert await host.stored() == before
    await host.still_serves()


@pytest.mark.parametrize(("method", "path"), list(BODIES))
async def test_invalid_utf8_is_400_and_stores_nothing(host, method, path):
    before = await host.stored()
    valid = json.dumps(host.body(method, path)).encode()
    at = valid.index(b'"') + 1  # inside the first key: any string of the body would do
    for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80", b"\\ud800"):
        raw = valid[:at] + bad + valid[at:]
        body = await problem(await host.client.request(method, path, data=raw, headers=JSON), 400)
        assert body["detail"] == "the request body is not valid JSON"
    assert await host.stored() == before
    await host.still_serves()


async def test_deeply_nested_cursor_is_422(host):
    # A cursor is base64 of JSON: a hostile one nests as deep as its 1024
    # characters allow.
    cursor = base64.urlsafe_b64encode(nested(380)).decode()
    assert len(cursor) <= 1024
    for path in ("/api/v1/dreams/list", "/api/v1/glyphs/bindings/list", "/api/v1/glyphs/audit"):
        body = await problem(await host.client.get(path, params={"cursor": cursor}), 422)
        assert body["errors"][0]["loc"] == ["query", "cursor"]
    await host.still_serves()


def with_nul(value: Any) -> Any:
    """`value` with a NUL character in its first string (a key counts)."""
    if isinstance(value, str):
        return value[:1] + "\0" + value[1:]
    if isinstance(value, list):
        return [with_nul(value[0]), *value[1:]]
    key, item = next(iter(value.items()))
    if isinstance(item, bool):  # the flags map: its key is the only string
        return {with_nul(key): item}
    return {**value, key: with_nul(item)}


@pytest.mark.both_databases
@pytest.mark.parametrize(("method", "path"), list(BODIES))
async def test_nul_in_a_body_string_is_422_on_either_database(host, method, path):
    # PostgreSQL cannot store a NUL and SQLite can: the host refuses it first.
    before = await host.stored()
    body = with_nul(host.body(method, path))
    answer = await problem(await host.client.request(method, path, json=body), 422)
    assert answer["errors"][0]["type"] == "string_nul"
    assert answer["errors"][0]["loc"][0] == "body"
    # Nested past the parser's depth as well: still the parser's 400, never a crash.
    deep = b'{"a":' * 100_000 + b'"\\u0000"' + b"}" * 100_000
    await problem(await host.client.request(method, path, data=deep, headers=JSON), 400)
    assert await host.stored() == before
    await host.still_serves()


@pytest.mark.both_databases
async def test_nul_in_a_query_value_or_an_id_is_refused_on_either_database(host):
    for path, params in [("/api/v1/glyphs/audit", {"actor": "usr_\0"}),
                         ("/api/v1/glyphs/bindings/list", {"source": "user:\0"}),
                         ("/api/v1/drift/analysis", {"user_id": host.user_id + "\0"})]:
        answer = await problem(await host.client.get(path, params=params), 422)
        assert answer["errors"] == [{"loc": ["query", next(iter(params))], "msg": "must not contain the NUL "
                                     "character", "type": "string_nul"}]
    for method, prefix in ID_ROUTES:
        await problem(await host.client.request(method, prefix + "gly_%00x"), 404)
    await host.still_serves()


# -- request targets -------------------------------------------------------


async def test_target_over_8_kib_is_414_problem(host):
    before = await host.stored()
    cases = [
        "/api/v1/dreams/list?cursor=" + "a" * MAX_TARGET,
        "/api/v1/glyphs/bindings/list?" + "&".join(f"p{i}=1" for i in range(2000)),
        "/api/v1/glyphs/" + "g" * MAX_TARGET,
        "/api/v1/drift/" + "d" * 9000,
    ]
    for target in cases:
        assert MAX_TARGET < len(target) < 64 * 1024
        response = await host.client.get(target, headers={"X-Request-ID": "long-target"})
        body = await problem(response, 414)
        assert body["detail"] == f"the request target is longer than {MAX_TARGET} bytes"
        assert response.headers["X-Request-ID"] == "long-target"
    await documented(host, "GET", "/api/v1/dreams/list", 414)
    # Just under the limit, the route itself answers (here: the cursor is too long).
    target = "/api/v1/dreams/list?cursor=" + "a" * (MAX_TARGET - len("/api/v1/dreams/list?cursor="))
    await problem(await host.client.get(target), 422)
    assert await host.stored() == before
    await host.still_serves()


async def test_request_line_past_the_parser_limit_is_400_and_the_host_carries_on(host):
    # Over 64 KiB aiohttp's HTTP parser refuses the request line before the
    # host sees it (plain text, no X-Request-ID); the connection closes, the host serves on.
    status, headers, body = await host.raw(host.get_line("/api/v1/dreams/list?x=" + "a" * 70_000))
    assert status == 400
    assert len(body) < 1024  # not the whole request echoed back
    await host.still_serves()


# -- path traversal ---------------------------------------------------------

TRAVERSALS = [
    "../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2E%2E/%2E%2E/etc/passwd",
    "%252e%252e%252fetc%252fpasswd",
    "..%5C..%5Cwindows%5Cwin.ini",
    "....//....//etc/passwd",
    "..;/..;/etc/passwd",
    "%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
    "passwd%00.json",
    "%FF%FE",
    "..",
    ".",
]
ID_ROUTES = [("GET", "/api/v1/dreams/"), ("DELETE", "/api/v1/dreams/"), ("GET", "/api/v1/glyphs/"),
             ("DELETE", "/api/v1/glyphs/"), ("GET", "/api/v1/drift/"), ("GET", "/api/v1/users/")]


@pytest.mark.parametrize("traversal", TRAVERSALS)
async def test_path_traversal_in_ids_is_404_never_a_file(host, traversal):
    before = await host.stored()
    for method, prefix in ID_ROUTES:
        request = host.get_line(prefix + traversal).replace(b"GET ", method.encode() + b" ", 1)
        status, headers, body = await host.raw(request)
        assert status in (404, 422), (method, prefix + traversal, status, body[:300])
        assert headers["content-type"].startswith(PROBLEM)
        assert REQUEST_ID.match(headers["x-request-id"])
        assert b"root:" not in body and b"[fonts]" not in body
    # Swagger UI's assets are the one place the host serves files.
    status, headers, body = await host.raw(host.get_line("/docs/static/" + traversal, auth=False))
    assert status == 404, (traversal, status, body[:300])
    assert headers["content-type"].startswith(PROBLEM)
    assert b"root:" not in body
    assert await host.stored() == before  # nothing deleted either
    assert (await host.json(f"/api/v1/glyphs/{host.glyph_id}"))["active"] is True
    await host.still_serves()


# -- X-Request-ID -------------------------------------------------------------


async def test_request_id_that_does_not_match_is_replaced(host):
    # test_http.py covers spaces, 129 characters, ";" and "". The rest of the hostile set:
    given = ["<script>alert(1)</script>", "a\tb", "x/../y", "%0d%0aX-Injected:%20yes",
             "id,other", "\u00e9t\u00e9".encode().decode("latin-1")]
    seen = set()
    for value in given:
        response = await host.client.get("/api/v1/plugins", headers={"X-Request-ID": value})
        assert response.status == 200
        answered = response.headers["X-Request-ID"]
        assert answered != value and REQUEST_ID.match(answered)
        assert "X-Injected" not in response.headers
        seen.add(answered)
    assert len(seen) == len(given)  # a fresh id each time


async def test_crlf_in_request_id_injects_no_header(host):
    # CR LF ends the header: what follows is a header of the request, never of the answer.
    status, headers, _ = await host.raw(host.get_line(
        "/api/v1/plugins", "X-Request-ID: not valid\r\nX-Injected: yes", "Set-Cookie: stolen=1"))
    assert status == 200
    assert "x-injected" not in headers and "set-cookie" not in headers
    assert REQUEST_ID.match(headers["x-request-id"]) and headers["x-request-id"] != "not valid"
    # A bare CR or LF, NUL, a folded line or a header over 8 KiB: aiohttp's
    # parser refuses the request (400, plain text, no X-Request-ID) and
    # closes the connection; nothing injected, and the host serves on.
    for header in ("X-Request-ID: abc\nX-Injected: yes", "X-Request-ID: abc\rX-Injected: yes",
                   "X-Request-ID: a\x00b", "X-Request-ID: abc\r\n X-Injected: yes",
                   "X-Request-ID: " + "a" * 9000):
        status, headers, body = await host.raw(host.get_line("/api/v1/plugins", header))
        assert status == 400, (header[:40], status, body[:200])
        assert "x-injected" not in headers
    await host.still_serves()


# -- the log ------------------------------------------------------------------


def test_malformed_requests_leave_one_json_line_each_in_the_log(tmp_path):
    """A hostile client cannot fill the log with tracebacks or break its format."""
    add_user(tmp_path, "root", "--admin")
    with serving(tmp_path, {"LUKHAS_LOG_LEVEL": "warning"}) as served:
        port = int(served.url.rsplit(":", 1)[1])
        bad = [b"GET /healthz?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
               b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\nb: c\r\n\r\n",
               b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\x00b\r\n\r\n"]
        for request in bad:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(65536):  # the host closes the connection
                    answer += chunk
            assert answer.split(b" ", 2)[1] == b"400", answer[:200]
    events = [json.loads(line) for line in served.stderr.splitlines()]  # each line is JSON
    malformed = [event for event in events if event["event"] == "http.malformed_request"]
    assert len(malformed) == len(bad), served.stderr
    assert all(event["level"] == "warning" and len(event["reason"]) <= 300 for event in malformed)
    assert "Traceback" not in served.stderr
