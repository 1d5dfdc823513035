"""Every list and read route answers exactly what its response model says.

Some routes build their JSON without a model per item (`PagedSelect`, cached
answers): the model still defines the schema in /openapi.json. Each real
answer here must validate against the route's response model, and the model's
own serialisation of what it validated must give back the very same bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lukhas_dreams.models import DreamJob, DreamSummary
from lukhas_glyphs.models import AuditEntry, Glyph, Validation
from lukhas_kernel import Page
from lukhas_kernel.testing import KERNEL_KEY
from lukhas_vivox.models import AnalysisOrPopulation, DriftMetrics
from pydantic import BaseModel
from support.dreams import DREAMS, settled
from support.glyphs import GLYPHS, bind
from support.vivox import VIVOX, interaction, update

PLUGINS = [DREAMS, GLYPHS, VIVOX]
# PagedSelect runs its SQL on SQLite's driver, and through SQLAlchemy elsewhere.
pytestmark = pytest.mark.both_databases


async def exactly(client: Any, path: str, model: type[BaseModel], **request: Any) -> dict[str, Any]:
    """The JSON answer of `path`, checked against `model` byte for byte."""
    method = "POST" if "json" in request else "GET"
    response = await client.request(method, path, **request)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = await response.read()
    assert model.model_validate_json(body).model_dump_json().encode() == body, path
    answer: dict[str, Any] = json.loads(body)
    return answer


async def test_dream_pages_and_jobs(lukhas_host: Any) -> None:
    client = await lukhas_host(PLUGINS)
    # A unicode fragment, and jobs in every state a page can show.
    ids = []
    for seed in range(5):
        response = await client.post("/api/v1/dreams/parallel",
                                     json={"fragments": ["träume ✨ of \"rivers\""], "branches": 1,
                                           "depth": 1, "seed": seed})
        assert response.status == 202
        ids.append((await response.json())["dream_id"])
    await settled(client, ids[-1])
    cursor, seen = None, []
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await exactly(client, "/api/v1/dreams/list", Page[DreamSummary], params=params)
        seen += [item["dream_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    for dream_id in ids:
        await exactly(client, f"/api/v1/dreams/{dream_id}", DreamJob)


async def test_glyph_reads(lukhas_host: Any) -> None:
    client = await lukhas_host(PLUGINS)
    made = [await bind(client, context={"note": "ünïcode", "n": 1.5, "deep": {"list": [1, None]}}),
            await bind(client, source="user:bo", ttl_seconds=60)]
    assert (await client.delete(f"/api/v1/glyphs/{made[1]['glyph_id']}")).status == 204
    for glyph in made:
        await exactly(client, f"/api/v1/glyphs/{glyph['glyph_id']}", Glyph)
    listed = await exactly(client, "/api/v1/glyphs/bindings/list", Page[Glyph],
                           params={"active_only": "false"})
    assert [item["glyph_id"] for item in listed["items"]] == [g["glyph_id"] for g in made[::-1]]
    valid = await exactly(client, "/api/v1/glyphs/validate", Validation, json={"token": made[0]["token"]})
    assert valid["valid"] is True
    revoked = await exactly(client, "/api/v1/glyphs/validate", Validation, json={"token": made[1]["token"]})
    assert revoked["reason"] == "revoked"
    await exactly(client, "/api/v1/glyphs/audit", Page[AuditEntry])


async def test_drift_reads(lukhas_host: Any) -> None:
    client = await lukhas_host(PLUGINS)
    kernel = client.app[KERNEL_KEY]
    person, _ = await kernel.services.accounts.create_user("ada")
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    await update(client, person.id, [interaction(start + timedelta(hours=i), f"d{i % 3}", 0.1 * (i % 5),
                                                 0.2) for i in range(30)])
    for _ in range(2):  # computed, then cached
        await exactly(client, f"/api/v1/drift/{person.id}", DriftMetrics)
    await exactly(client, "/api/v1/drift/analysis", AnalysisOrPopulation,
                  params={"user_id": person.id, "days": "5"})
    await exactly(client, "/api/v1/drift/analysis", AnalysisOrPopulation)
