"""Shared helpers for the suite; fixtures for hosts come from lukhas_kernel.pytest_plugin."""

from __future__ import annotations

from typing import Any

import pytest

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


@pytest.fixture(autouse=True)
def _no_ambient_lukhas_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from a clean environment: no flags or settings leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("LUKHAS_") or name.endswith("_ENABLED") or name.startswith("HEALTHY_"):
            monkeypatch.delenv(name)
