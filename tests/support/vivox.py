"""Calls on the vivox plugin, in process (`client`: a `lukhas_host`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lukhas_kernel.testing import KERNEL_KEY

VIVOX = "vivox=lukhas_vivox.plugin"


def interaction(when: datetime, decision: str, valence: float = 0.0, arousal: float = 0.0) -> dict:
    return {"timestamp": when.isoformat(), "valence": valence, "arousal": arousal, "decision": decision}


async def user(client: Any, name: str = "ada") -> tuple[str, dict[str, str]]:
    person, token = await client.app[KERNEL_KEY].services.accounts.create_user(name)
    return person.id, {"Authorization": f"Bearer {token}"}


async def update(client: Any, user_id: str, items: list[dict]) -> dict[str, Any]:
    response = await client.post("/api/v1/drift/update", json={"user_id": user_id, "interactions": items})
    assert response.status == 200, await response.text()
    return await response.json()
