"""The hand-written reference of `make bench` answers what Lukhas answers, on Lukhas's own data.

`benchmarks/db_routes.py` measures Lukhas against it only after the same
check over HTTP; these tests catch a change on either side (a field, a time
format, the token bytes) before a benchmark run does, and keep the edge
cases of the reference's token handling in step with the plugin's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from lukhas_glyphs.tokens import Signer as LukhasSigner
from pydantic import BaseModel
from support.polling import eventually_async

from benchmarks import reference_app
from benchmarks._reference_db import json_time, stored
from benchmarks._reference_glyphs import Signer, key_file

DREAM = {"fragments": ["a short dream of rivers"], "branches": 1, "depth": 1}
BIND = {"source": "user:bench", "target": "doc:q3-report", "symbol": "LINK", "context": {"k": "é", "n": 1.5}}
KEY = b"k" * 48


def interactions(user_id: str) -> dict[str, Any]:
    """60 interactions over three days, four decisions: a window, a history and a velocity."""
    start = datetime(2026, 3, 1, 8, tzinfo=UTC)
    return {"user_id": user_id, "interactions": [
        {"timestamp": (start + timedelta(hours=i * 1.2)).isoformat(), "valence": round((i % 7) / 7 - 0.4, 3),
         "arousal": round((i % 5) / 5, 3), "decision": f"choice-{i % 4 if i < 40 else i % 2}"}
        for i in range(60)]}


async def _same(lukhas: Any, reference: Any, method: str, path: str, body: Any = None) -> bytes:
    want = await lukhas.request(method, path, json=body)
    got = await reference.request(method, path, json=body)
    assert (got.status, await got.read()) == (want.status, await want.read())
    return await want.read()


async def test_reference_answers_the_bytes_lukhas_answers(lukhas_host: Any, aiohttp_client: Any,
                                                        tmp_path: Path, lukhas_cli: Any) -> None:
    lukhas = await lukhas_host(installed=True)
    for _ in range(3):
        assert (await lukhas.post("/api/v1/dreams/parallel", json=DREAM)).status == 202

    async def completed() -> bool:
        page = await (await lukhas.get("/api/v1/dreams/list")).json()
        return page["count"] == 3 and all(d["status"] == "completed" for d in page["items"])

    await eventually_async(completed, what="the dreams completed")
    me = await (await lukhas.get("/api/v1/users/me")).json()
    assert (await lukhas.post("/api/v1/drift/update", json=interactions(me["user_id"]))).status == 200
    lukhas_bind = await (await lukhas.post("/api/v1/glyphs/bind", json=BIND)).json()
    reference = await aiohttp_client(reference_app.app(tmp_path / "data"),
                                     headers={"Authorization": lukhas.session.headers["Authorization"]})

    page = await _same(lukhas, reference, "GET", "/api/v1/dreams/list?limit=2")
    cursor = (await (await lukhas.get("/api/v1/dreams/list?limit=2")).json())["next_cursor"]
    assert cursor is not None and page
    await _same(lukhas, reference, "GET", f"/api/v1/dreams/list?limit=2&cursor={cursor}")
    await _same(lukhas, reference, "GET", f"/api/v1/drift/{me['user_id']}")
    await _same(lukhas, reference, "POST", "/api/v1/glyphs/validate", {"token": lukhas_bind["token"]})

    made = await reference.post("/api/v1/glyphs/bind", json=BIND)
    assert made.status == 201
    glyph = await made.json()
    assert list(glyph) == list(lukhas_bind)
    verdict = await (await lukhas.post("/api/v1/glyphs/validate", json={"token": glyph.pop("token")})).json()
    assert verdict == {"valid": True, "reason": None, "glyph": glyph}
    signer = Signer(key_file(tmp_path / "data").read_bytes().strip())
    claims = jwt.decode(lukhas_bind["token"], options={"verify_signature": False})
    assert signer.sign(claims) == lukhas_bind["token"]
    assert (await lukhas_cli("glyphs", "audit-verify")).exit_code == 0

    refused = await reference.get("/api/v1/dreams/list", headers={"Authorization": "Bearer lk_" + "A" * 43})
    assert refused.status == 401 and refused.headers["WWW-Authenticate"] == "Bearer"


def _tampered(token: str) -> list[str]:
    """Tokens each verdict has: one character changed, a signature cut short,
    non-canonical or missing segments, claims missing, a foreign key."""
    head, payload, signature = token.split(".")
    flipped = payload[:5] + ("A" if payload[5] != "A" else "B") + payload[6:]
    return [f"{head}.{flipped}.{signature}", f"{head}.{payload}.{signature[:-1]}", f"{head}.{payload}",
            "not a token", f"{head}.{payload}.{signature}=",
            jwt.encode({"jti": "gly_x"}, KEY, algorithm="HS256", headers={"kid": Signer(KEY).kid}),
            jwt.encode({"jti": "gly_x"}, b"o" * 48, algorithm="HS256")]


@pytest.mark.parametrize("expires_in", [3600, -1])
def test_reference_tokens_are_the_plugins_bytes_and_verdicts(expires_in: int) -> None:
    now = datetime.now(UTC)
    claims = {"jti": "gly_abc", "source": "user:a", "target": "doc:b", "symbol": "LINK",
              "priority": "NORMAL", "iat": int(now.timestamp()), "exp": int(now.timestamp()) + expires_in}
    reference, plugin = Signer(KEY), LukhasSigner(KEY)
    token = reference.sign(claims)
    assert token == plugin.sign(claims)
    for candidate in [token, *_tampered(token)]:
        assert reference.verify(candidate, datetime.now(UTC)) == plugin.verify(candidate), candidate


class _Moment(BaseModel):
    at: datetime


@pytest.mark.parametrize("microsecond", [0, 1, 120000, 999999])
def test_reference_times_are_written_as_pydantic_writes_them(microsecond: int) -> None:
    moment = datetime(2026, 11, 24, 9, 5, 7, microsecond, tzinfo=UTC)
    assert f'{{"at":"{json_time(stored(moment))}"}}' == _Moment(at=moment).model_dump_json()
