"""The glyphs plugin through the real host: bindings, tokens, revocation, rotation, audit."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from lukhas_glyphs import clock
from lukhas_glyphs.audit import audit as audit_table
from lukhas_kernel.testing import KERNEL_KEY
from support.answers import problem
from support.database import on_database
from support.glyphs import BIND, GLYPHS, KEY_A, KEY_B, audit, audit_verify, bind, validate

pytestmark = pytest.mark.both_databases


async def test_bind_get_list_validate_delete(lukhas_host):
    client = await lukhas_host([GLYPHS])
    made = await bind(client, priority="HIGH", context={"why": "review"}, ttl_seconds=3600)
    assert made["glyph_id"].startswith("gly_") and made["active"] is True
    assert made["priority"] == "HIGH" and made["context"] == {"why": "review"}
    assert made["expires_at"] > made["created_at"]
    token = made.pop("token")
    assert await (await client.get(f"/api/v1/glyphs/{made['glyph_id']}")).json() == made

    listed = await (await client.get("/api/v1/glyphs/bindings/list")).json()
    assert [g["glyph_id"] for g in listed["items"]] == [made["glyph_id"]]
    assert (await (await client.get("/api/v1/glyphs/bindings/list",
                                    params={"source": "user:bob"})).json())["count"] == 0

    checked = await validate(client, token)
    assert checked == {"valid": True, "reason": None, "glyph": made}

    assert (await client.delete(f"/api/v1/glyphs/{made['glyph_id']}")).status == 204
    after = await (await client.get(f"/api/v1/glyphs/{made['glyph_id']}")).json()
    assert after["active"] is False and after["revoked_at"] is not None
    revoked = await validate(client, token)
    assert (revoked["valid"], revoked["reason"]) == (False, "revoked")
    await problem(await client.delete(f"/api/v1/glyphs/{made['glyph_id']}"), 404)
    assert (await (await client.get("/api/v1/glyphs/bindings/list")).json())["count"] == 0
    listed = await client.get("/api/v1/glyphs/bindings/list", params={"active_only": "false"})
    assert (await listed.json())["count"] == 1

    actions = [(e["action"], e["glyph_id"]) for e in await audit(client)]
    assert actions == [("validate_failed", made["glyph_id"]), ("delete", made["glyph_id"]),
                       ("create", made["glyph_id"])]  # newest first; the good validation is not audited


def _bad_binds() -> list[tuple[dict[str, Any], str]]:
    return [
        ({**BIND, "source": "User:ada"}, "source"),
        ({**BIND, "source": "user"}, "source"),
        ({**BIND, "source": "u" * 33 + ":x"}, "source"),
        ({**BIND, "source": "user:" + "x" * 129}, "source"),
        ({**BIND, "target": "doc:has space"}, "target"),
        ({**BIND, "target": "9doc:x"}, "target"),
        ({**BIND, "symbol": "KNOT"}, "symbol"),
        ({**BIND, "symbol": "link"}, "symbol"),
        ({**BIND, "priority": "URGENT"}, "priority"),
        ({**BIND, "context": [1, 2]}, "context"),
        ({**BIND, "context": {"blob": "x" * 4090}}, "context"),
        ({**BIND, "ttl_seconds": 59}, "ttl_seconds"),
        ({**BIND, "ttl_seconds": 31_536_001}, "ttl_seconds"),
        ({**BIND, "ttl_seconds": "3600"}, "ttl_seconds"),
        ({**BIND, "colour": "red"}, "colour"),
        ({k: v for k, v in BIND.items() if k != "symbol"}, "symbol"),
    ]


@pytest.mark.parametrize(("body", "field"), _bad_binds())
async def test_invalid_bind_is_422_and_stores_nothing(lukhas_host, body, field):
    client = await lukhas_host([GLYPHS])
    found = await problem(await client.post("/api/v1/glyphs/bind", json=body), 422)
    assert any(error["loc"][:2] == ["body", field] for error in found["errors"]), found["errors"]
    listed = await client.get("/api/v1/glyphs/bindings/list", params={"active_only": "false"})
    assert (await listed.json())["count"] == 0
    assert await audit(client) == []


async def test_bounds_are_inclusive(lukhas_host):
    client = await lukhas_host([GLYPHS])
    edge = {"source": "a:" + "x" * 128, "target": "a" * 32 + ":Z.9:_-",
            "context": {"k": "v" * (4096 - len('{"k":""}'))}}
    for ttl in (60, 31_536_000):
        await bind(client, **edge, ttl_seconds=ttl)
    for symbol in ("LINK", "TRUST", "GUARD", "FLOW", "SEAL", "ECHO"):
        for priority in ("LOW", "NORMAL", "HIGH", "CRITICAL"):
            assert (await bind(client, symbol=symbol, priority=priority))["symbol"] == symbol


async def test_any_single_character_changed_invalidates_the_token(lukhas_host, monkeypatch):
    monkeypatch.setenv("GLYPHS_VALIDATE_RATE_LIMIT", "")  # about 700 validations, all by one caller
    client = await lukhas_host([GLYPHS])
    token = (await bind(client))["token"]
    reasons = set()
    for i, char in enumerate(token):
        for replacement in ("A" if char != "A" else "B", "." if char != "." else "x"):
            tampered = token[:i] + replacement + token[i + 1:]
            checked = await validate(client, tampered)
            assert checked["valid"] is False, (i, tampered)
            reasons.add(checked["reason"])
    assert reasons <= {"malformed", "bad_signature"}
    # Non-canonical base64: the last signature character with its unused bits set.
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert (await validate(client, token[:-1] + twin))["valid"] is False
    for garbage in ("", "x", "a.b.c", "..", "ey.ey.ey", "🙂.🙂.🙂", token + ".", token * 2):
        assert (await validate(client, garbage))["reason"] == "malformed", garbage
    assert (await validate(client, token))["valid"] is True


async def test_expiry_follows_the_controlled_clock(lukhas_host, monkeypatch):
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start)
    client = await lukhas_host([GLYPHS])
    made = await bind(client, ttl_seconds=60)
    assert (await validate(client, made["token"]))["valid"] is True
    monkeypatch.setattr(clock, "now", lambda: start + timedelta(seconds=61))
    checked = await validate(client, made["token"])
    assert (checked["valid"], checked["reason"]) == (False, "expired")
    assert checked["glyph"]["active"] is False
    assert (await (await client.get("/api/v1/glyphs/bindings/list")).json())["count"] == 0


async def test_key_rotation_and_generated_key(lukhas_host, monkeypatch, tmp_path):
    data = tmp_path / "shared"
    monkeypatch.setenv("LUKHAS_GLYPH_SIGNING_KEY", KEY_A)
    first = await lukhas_host([GLYPHS], data_dir=data)
    token = (await bind(first))["token"]

    monkeypatch.setenv("LUKHAS_GLYPH_SIGNING_KEY", KEY_B)
    monkeypatch.setenv("GLYPHS_PREVIOUS_KEYS", KEY_A)
    rotated = await lukhas_host([GLYPHS], data_dir=data)
    assert (await validate(rotated, token))["valid"] is True
    assert (await validate(rotated, (await bind(rotated))["token"]))["valid"] is True

    monkeypatch.delenv("GLYPHS_PREVIOUS_KEYS")
    dropped = await lukhas_host([GLYPHS], data_dir=data)
    assert (await validate(dropped, token))["reason"] == "bad_signature"

    # Without a configured key: one is generated into the data dir, 0600, and kept.
    monkeypatch.delenv("LUKHAS_GLYPH_SIGNING_KEY")
    generated = await lukhas_host([GLYPHS], data_dir=data)
    token = (await bind(generated))["token"]
    key_file = data / "plugins" / "glyphs" / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = await lukhas_host([GLYPHS], data_dir=data)
    assert (await validate(again, token))["valid"] is True


async def test_audit_is_admin_only_filterable_and_chained(lukhas_host, tmp_path, database_url,
                                                          database_env):
    client = await lukhas_host([GLYPHS])
    _, token = await client.app[KERNEL_KEY].services.accounts.create_user("ada")
    ada = {"Authorization": f"Bearer {token}"}
    mine = await bind(client)
    response = await client.post("/api/v1/glyphs/bind", json=BIND, headers=ada)
    hers = await response.json()
    await validate(client, "not-a-token")
    await problem(await client.get("/api/v1/glyphs/audit", headers=ada), 403)
    assert [e["glyph_id"] for e in await audit(client, glyph_id=hers["glyph_id"])] == [hers["glyph_id"]]
    assert [e["action"] for e in await audit(client, actor=hers["created_by"])] == ["create"]
    entries = await audit(client)
    assert [e["action"] for e in entries] == ["validate_failed", "create", "create"]
    assert entries[0]["details"] == {"reason": "malformed"} and entries[0]["glyph_id"] is None
    pairs = zip(entries, entries[1:], strict=False)
    assert all(newer["prev_hash"] == older["hash"] for newer, older in pairs)
    await problem(await client.get(f"/api/v1/glyphs/{mine['glyph_id']}", headers=ada), 404)
    await problem(await client.delete(f"/api/v1/glyphs/{mine['glyph_id']}", headers=ada), 404)

    data_dir = tmp_path / "data"
    intact = audit_verify(data_dir, database_env)
    assert intact.returncode == 0 and "intact: 3 entries" in intact.stdout, intact.stderr
    await on_database(database_url, lambda db: db.execute(
        audit_table.update().where(audit_table.c.seq == 2).values(actor="someone-else")), write=True)
    broken = audit_verify(data_dir, database_env)
    assert broken.returncode == 1
    assert broken.stdout.startswith("audit chain broken at entry 2: its contents do not match")

    def drop_first(db: sa.Connection) -> None:
        db.execute(audit_table.update().where(audit_table.c.seq == 2).values(actor=hers["created_by"]))
        db.execute(audit_table.delete().where(audit_table.c.seq == 1))

    await on_database(database_url, drop_first, write=True)
    assert "entry 2: its prev_hash" in audit_verify(data_dir, database_env).stdout


async def test_binds_are_rate_limited_per_caller(lukhas_host):
    client = await lukhas_host([GLYPHS])
    for _ in range(50):
        await bind(client)
    limited = await client.post("/api/v1/glyphs/bind", json=BIND)
    await problem(limited, 429)
    assert "Retry-After" in limited.headers
    assert len(await audit(client)) == 50  # the refused bind stored nothing


async def test_validate_rejects_non_string_tokens(lukhas_host):
    client = await lukhas_host([GLYPHS])
    for body in ({}, {"token": 7}, {"token": None}, {"token": "x" * 8193}):
        await problem(await client.post("/api/v1/glyphs/validate", json=body), 422)


async def test_openapi_documents_the_glyph_routes(lukhas_host):
    from openapi_spec_validator import validate as validate_spec

    client = await lukhas_host([GLYPHS])
    document = await (await client.get("/openapi.json")).json()
    validate_spec(document)
    assert {"/api/v1/glyphs/bind", "/api/v1/glyphs/validate", "/api/v1/glyphs/bindings/list",
            "/api/v1/glyphs/audit", "/api/v1/glyphs/{glyph_id}"} <= set(document["paths"])


async def test_two_hosts_on_one_database_keep_one_chain(lukhas_host, tmp_path, database_env):
    data = tmp_path / "shared"
    first = await lukhas_host([GLYPHS], data_dir=data)
    second = await lukhas_host([GLYPHS], data_dir=data)
    for _ in range(3):  # each host's remembered head is stale every other time
        await bind(first)
        await bind(second)
    await validate(first, "garbage")
    entries = await audit(second)
    assert len(entries) == 7
    result = audit_verify(data, database_env)
    assert result.returncode == 0 and "intact: 7 entries" in result.stdout, result.stdout


async def test_concurrent_binds_on_two_hosts_keep_one_chain(lukhas_host, tmp_path, database_env):
    # Binds racing on one database, from two hosts at once: every one is
    # answered 201, and each lands exactly once, on one unbroken chain.
    data = tmp_path / "shared"
    hosts = [await lukhas_host([GLYPHS], data_dir=data) for _ in range(2)]
    made = await asyncio.gather(*(bind(host, target=f"doc:{n}") for n in range(15) for host in hosts))
    entries = await audit(hosts[0])
    assert sorted(e["glyph_id"] for e in entries) == sorted(g["glyph_id"] for g in made)
    result = audit_verify(data, database_env)
    assert result.returncode == 0 and "intact: 30 entries" in result.stdout, result.stdout + result.stderr


async def test_audit_log_line_carries_the_request_id(lukhas_host):
    # The audit entry is written on the storage thread: the request's context must follow it there.
    client = await lukhas_host([GLYPHS])
    capture = structlog.testing.LogCapture()
    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        response = await client.post("/api/v1/glyphs/bind", json=BIND, headers={"X-Request-ID": "audit-1"})
        assert response.status == 201
    finally:
        structlog.configure(processors=processors)
    [entry] = [e for e in capture.entries if e["event"] == "glyphs.audit"]
    assert (entry["request_id"], entry["plugin"], entry["action"]) == ("audit-1", "glyphs", "create")


def cursor_of(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


async def test_values_no_database_can_compare_are_client_errors(lukhas_host):
    # Never a 503 ("storage unavailable") for what the client sent, on either database.
    client = await lukhas_host([GLYPHS])
    await bind(client)
    for path, cursor in [("/api/v1/glyphs/bindings/list", cursor_of("2026-01-01T00:00:00", "gly_x")),
                         ("/api/v1/glyphs/bindings/list", cursor_of("2026-01-01T00:00:00+00:00", "gly_\0")),
                         ("/api/v1/glyphs/audit", cursor_of(2**40))]:
        await problem(await client.get(path, params={"cursor": cursor}), 422)
    # A NUL in a string: PostgreSQL cannot store or compare it, so no database is asked.
    await problem(await client.get("/api/v1/glyphs/audit", params={"actor": "usr_\0"}), 422)
