"""No token, cookie or Authorization value ever reaches a log line, an error
body, a metric or a page.

A real `lukhas serve` gets a live bearer token in every shape of request its
HTTP parser refuses (an oversized header, a control character in a header,
an oversized request line, a bad path, a bad method, too many headers), in a
cookie, in a path and in the query; then its log, every answer, `/metrics`
and `/status` are searched for the token and for any part of it 12
characters long.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from lukhas_kernel import PluginSettings
from lukhas_kernel._core.settings import SettingsError, load_settings
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict
from support.cli import add_user
from support.host import serving
from support.urls import get

COOKIE = "session=c00kie-s3cret-value-0123456789abcdef"
#: Headers of one more request than aiohttp's limit of 128.
MANY_HEADERS = "".join(f"X-Filler-{n}: {n}\r\n" for n in range(130))


def malformed_requests(token: str) -> dict[str, bytes]:
    """Requests aiohttp's parser refuses, each carrying `token` (and a cookie)."""
    auth = f"Authorization: Bearer {token}\r\n"
    cookie = f"Cookie: {COOKIE}\r\n"
    plugins = f"GET /api/v1/plugins HTTP/1.1\r\nHost: x\r\n{auth[:-2]}"
    shapes = {
        "oversized Authorization": f"{plugins}{'A' * 9000}\r\n\r\n",
        "control character in Authorization": f"{plugins}\x01\r\n\r\n",
        "NUL in Authorization": f"{plugins}\x00x\r\n\r\n",
        "control character in Cookie": f"GET / HTTP/1.1\r\nHost: x\r\n{auth}{cookie[:-2]}\x7f\r\n\r\n",
        "bare LF after Authorization": f"GET / HTTP/1.1\r\nHost: x\r\n{auth[:-2]}\nX: y\r\n\r\n",
        "oversized request line": f"GET /healthz?t={token}&{'a' * 70_000} HTTP/1.1\r\nHost: x\r\n{auth}\r\n",
        "control character in the path": f"GET /{token}\x01 HTTP/1.1\r\nHost: x\r\n{auth}\r\n",
        "bad method": f"G\x01T /{token} HTTP/1.1\r\nHost: x\r\n{auth}\r\n",
        "too many headers": f"GET / HTTP/1.1\r\nHost: x\r\n{auth}{cookie}{MANY_HEADERS}\r\n",
        "oversized Cookie": f"GET / HTTP/1.1\r\nHost: x\r\n{auth}{cookie[:-2]}{'c' * 9000}\r\n\r\n",
    }
    return {name: request.encode("latin-1") for name, request in shapes.items()}


def send_raw(port: int, request: bytes) -> bytes:
    """`request` on a new connection; the whole answer (the host closes it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def leaks(secret: str, text: str) -> list[str]:
    """Every 12-character part of `secret` found in `text`."""
    return sorted({secret[i:i + 12] for i in range(len(secret) - 11) if secret[i:i + 12] in text})


def test_no_token_or_cookie_in_any_log_line_answer_metric_or_page(tmp_path: Path):
    _, token = add_user(tmp_path, "ada", "--admin")
    answers: dict[str, bytes] = {}
    with serving(tmp_path, {"LUKHAS_LOG_LEVEL": "debug"}) as served:
        port = int(served.url.rsplit(":", 1)[1])
        for shape, request in malformed_requests(token).items():
            answer = send_raw(port, request)
            assert answer.split(b" ", 2)[1] == b"400", (shape, answer[:300])
            assert b"application/problem+json" in answer.split(b"\r\n\r\n")[0], (shape, answer[:300])
            answers[shape] = answer
        # Requests the host itself answers, with the token where it does not belong.
        answers["token in a path"] = send_raw(port, (
            f"GET /api/v1/glyphs/{token} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Cookie: {COOKIE}\r\nConnection: close\r\n\r\n").encode())
        answers["unknown path"] = send_raw(port, (
            f"GET /{token}?access_token={token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode())
        answers["a revoked-looking token"] = send_raw(port, (
            f"GET /api/v1/plugins HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}x\r\n"
            "Connection: close\r\n\r\n").encode())
        assert answers["a revoked-looking token"].split(b" ", 2)[1] == b"401"
        for page in ("/metrics", "/status", "/readyz"):
            status, _, body = get(served.url + page)
            assert status == 200, page
            answers[page] = body
        status, _, body = get(served.url + "/api/v1/plugins", token)
        assert status == 200
        answers["/api/v1/plugins"] = body
    everything = {**{k: v.decode("latin-1") for k, v in answers.items()},
                  "the log": served.stderr, "stdout": served.stdout}
    for where, text in everything.items():
        assert not leaks(token, text), f"the token is in {where}"
        assert not leaks(COOKIE, text), f"the cookie is in {where}"
    # Each refusal is still one line saying what was wrong, without the bytes.
    refused = [event for event in served.events("http.malformed_request")]
    assert len(refused) == len(malformed_requests(token))
    assert all(event["reason"].split(": ", 1)[1] for event in refused), refused


def test_a_refused_secret_setting_is_named_but_never_shown(monkeypatch):
    class Keys(PluginSettings):
        model_config = SettingsConfigDict(env_prefix="KEYS_")
        signing_key: SecretStr = Field(validation_alias=AliasChoices("LUKHAS_KEYS_SECRET", "signing_key"),
                                       min_length=32)
        rounds: int = 1

    monkeypatch.setenv("LUKHAS_KEYS_SECRET", "hunter2-short-secret")
    with pytest.raises(SettingsError) as refused:
        load_settings(Keys, {}, ("plugins", "keys"), env_file=None)
    assert refused.value.variable == "LUKHAS_KEYS_SECRET"  # the alias as it is, not KEYS_LUKHAS_…
    assert "hunter2" not in str(refused.value)
    # A setting that is no secret still shows what was refused.
    monkeypatch.setenv("LUKHAS_KEYS_SECRET", "k" * 32)
    monkeypatch.setenv("KEYS_ROUNDS", "many")
    with pytest.raises(SettingsError) as refused:
        load_settings(Keys, {}, ("plugins", "keys"), env_file=None)
    assert refused.value.variable == "KEYS_ROUNDS" and "(got 'many')" in str(refused.value)
