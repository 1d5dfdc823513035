"""Answers of an in-process host (the `lukhas_host` fixture's aiohttp test client)."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


async def plugin_states(client: Any) -> dict[str, dict[str, Any]]:
    """`/api/v1/plugins` items by name."""
    response = await client.get("/api/v1/plugins")
    assert response.status == 200
    return {item["name"]: item for item in (await response.json())["items"]}


async def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert `response` is a problem+json with `status`; return its body."""
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body = await response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body
