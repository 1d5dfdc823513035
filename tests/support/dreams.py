"""Calls on the dreams plugin, in process (`client`: a `lukhas_host`) or on a real host (`url`)."""

from __future__ import annotations

import json
from typing import Any

from lukhas_kernel.testing import KERNEL_KEY

from support.dream_inputs import FRAGMENTS
from support.polling import eventually, eventually_async
from support.urls import get, send

DREAMS = "dreams=lukhas_dreams.plugin"


# -- in process ----------------------------------------------------------------


async def dream(client: Any, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/dreams/parallel", json={"fragments": FRAGMENTS, **body})
    assert response.status == 202, await response.text()
    return await response.json()


async def settled(client: Any, dream_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """Poll the job until it is no longer queued or running."""

    async def done() -> dict[str, Any] | None:
        job = await (await client.get(f"/api/v1/dreams/{dream_id}")).json()
        return job if job["status"] not in ("queued", "running") else None

    return await eventually_async(done, timeout_s, what=f"dream {dream_id} settled")


async def running(client: Any, dream_id: str, timeout_s: float = 12) -> None:
    """Wait for the job to run; it may only be queued meanwhile."""

    async def started() -> bool:
        job = await (await client.get(f"/api/v1/dreams/{dream_id}")).json()
        if job["status"] == "running":
            return True
        assert job["status"] == "queued", job
        return False

    await eventually_async(started, timeout_s, interval=0.02, what="the dream started")


async def set_parallel(client: Any, on: bool) -> None:
    response = await client.patch("/api/v1/admin/flags", json={"PARALLEL_DREAMS_ENABLED": on})
    assert response.status == 200, await response.text()


async def other_user(client: Any, name: str = "ada") -> dict[str, str]:
    _, token = await client.app[KERNEL_KEY].services.accounts.create_user(name)
    return {"Authorization": f"Bearer {token}"}


# -- on a real host ------------------------------------------------------------


def job(url: str, token: str, dream_id: str) -> dict[str, Any]:
    status, _, body = get(f"{url}/api/v1/dreams/{dream_id}", token)
    assert status == 200, body
    return json.loads(body)


def wait_job(url: str, token: str, dream_id: str, done: Any, timeout_s: float = 120) -> dict[str, Any]:
    """Poll the job until `done(job)`; bounded."""

    def there() -> dict[str, Any] | None:
        found = job(url, token, dream_id)
        return found if done(found) else None

    return eventually(there, timeout_s, what=f"{dream_id} there")


def submit(url: str, token: str, body: dict[str, Any]) -> str:
    status, answer = send(f"{url}/api/v1/dreams/parallel", token, body)
    assert status == 202, answer
    return json.loads(answer)["dream_id"]
