"""Calls on the glyphs plugin, in process (`client`: a `lukhas_host`) and as `lukhas glyphs ...`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.paths import TESTS

GLYPHS = "glyphs=lukhas_glyphs.plugin"
BIND = {"source": "user:ada", "target": "doc:q3-report", "symbol": "LINK"}
KEY_A = "a" * 40
KEY_B = "b" * 40


async def bind(client: Any, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/glyphs/bind", json={**BIND, **body})
    assert response.status == 201, await response.text()
    return await response.json()


async def validate(client: Any, token: str) -> dict[str, Any]:
    response = await client.post("/api/v1/glyphs/validate", json={"token": token})
    assert response.status == 200, await response.text()
    return await response.json()


async def audit(client: Any, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/glyphs/audit", params={"limit": "100", **query})
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


def audit_verify(data_dir: Path, database_env: dict[str, str] | None = None,
                 ) -> subprocess.CompletedProcess[str]:
    """`lukhas glyphs audit-verify` on the data dir's database (or `database_env`'s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUKHAS_")}
    env.update(LUKHAS_DATA_DIR=str(data_dir), PYTHONPATH=str(TESTS), **(database_env or {}))
    return subprocess.run([sys.executable, "-m", "lukhas_kernel", "glyphs", "audit-verify"],
                          env=env, capture_output=True, text=True, timeout=60)
