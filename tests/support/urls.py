"""Blocking HTTP to a real host (a `serving` process): answers of every status."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def authorized(url: str, token: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})


def get(url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = authorized(url, token) if token else urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def send(url: str, token: str, body: Any, method: str = "POST", timeout: float = 10) -> tuple[int, bytes]:
    """`body` as JSON with the bearer token; the status and body, error answers included.
    Connection errors (the host is gone) are raised."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(url: str, token: str, body: Any, status: int) -> Any:
    """POST `body` as JSON; assert the answer is `status`; its JSON."""
    got, answer = send(url, token, body)
    assert got == status, f"{url} answered {got}: {answer[:300]!r}"
    return json.loads(answer)
