"""Hostile input against the glyphs plugin, through the real host: a validation
flood is rate-limited per caller and audited in bounded space with every
failure counted; the signing key file is refused when short, kept 0600."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from lukhas_glyphs import clock
from lukhas_glyphs.audit import audit as audit_table
from lukhas_glyphs.failures import windows
from lukhas_kernel.testing import KERNEL_KEY
from support.answers import plugin_states, problem
from support.database import on_database
from support.glyphs import GLYPHS, KEY_A, audit, audit_verify, bind, validate

pytestmark = pytest.mark.both_databases
HEALTHY = "sample_plugins.healthy"  # another plugin, to show a partial start-up


class Clock:
    """The glyphs clock, moved by the test."""

    def __init__(self) -> None:
        self.at = clock.now()

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def moved(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    now = Clock()
    monkeypatch.setattr(clock, "now", now)
    yield now


def bad_signature(token: str) -> str:
    """`token` with a well-formed signature that is not its own."""
    header, payload, _ = token.split(".")
    return f"{header}.{payload}." + base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()


async def rows(database_url: str) -> int:
    return await on_database(database_url, lambda db: db.scalar(
        sa.select(sa.func.count()).select_from(audit_table)))


def failed_counts(entries: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Sum of `count` over the failed-validation entries, by (actor, reason)."""
    sums: dict[tuple[str, str], int] = {}
    for entry in entries:
        if entry["action"] == "validate_failed":
            key = (entry["actor"], entry["details"]["reason"])
            sums[key] = sums.get(key, 0) + entry["count"]
    return sums


async def test_validate_is_rate_limited_per_caller(lukhas_host, monkeypatch):
    monkeypatch.setenv("GLYPHS_VALIDATE_RATE_LIMIT", "5/minute")
    client = await lukhas_host([GLYPHS])
    _, token = await client.app[KERNEL_KEY].services.accounts.create_user("ada")
    ada = {"Authorization": f"Bearer {token}"}
    for _ in range(5):
        await validate(client, "not-a-token")
    limited = await client.post("/api/v1/glyphs/validate", json={"token": "not-a-token"})
    body = await problem(limited, 429)
    assert body["type"] == "urn:lukhas:problem:rate-limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Limit"] == "5" and limited.headers["RateLimit-Remaining"] == "0"
    for _ in range(5):  # another caller has a budget of its own
        response = await client.post("/api/v1/glyphs/validate", json={"token": "x"}, headers=ada)
        assert response.status == 200
    # The refused validation was never checked, so never audited: 5 failures each.
    assert sorted(failed_counts(await audit(client)).values()) == [5, 5]


async def test_default_validate_limit_is_documented(lukhas_host):
    client = await lukhas_host([GLYPHS])
    document = await (await client.get("/openapi.json")).json()
    refused = document["paths"]["/api/v1/glyphs/validate"]["post"]["responses"]["429"]
    assert "600/minute per caller" in refused["description"]


async def test_a_flood_of_failures_is_a_few_entries_counting_each(lukhas_host, moved, tmp_path,
                                                                 database_url, database_env):
    client = await lukhas_host([GLYPHS])
    user, token = await client.app[KERNEL_KEY].services.accounts.create_user("ada")
    ada = {"Authorization": f"Bearer {token}"}
    made = await bind(client)
    assert (await client.delete(f"/api/v1/glyphs/{made['glyph_id']}")).status == 204
    before = await rows(database_url)  # create, delete

    for _ in range(150):
        await validate(client, "garbage")
        moved.advance(0.1)  # the whole flood lies within one 60 s window
    for _ in range(50):
        await validate(client, bad_signature(made["token"]))
    for _ in range(30):
        assert (await validate(client, made["token"]))["reason"] == "revoked"
    for _ in range(20):
        response = await client.post("/api/v1/glyphs/validate", json={"token": "x"}, headers=ada)
        assert response.status == 200
    # While the windows are open: one entry for the first failure of each.
    assert await rows(database_url) == before + 4

    entries = await audit(client)  # the listing seals every count so far, in one entry each
    assert await rows(database_url) == before + 8
    me = made["created_by"]
    assert failed_counts(entries) == {(me, "malformed"): 150, (me, "bad_signature"): 50,
                                      (me, "revoked"): 30, (user.id, "malformed"): 20}
    [sealed] = [e for e in entries if e["details"].get("reason") == "malformed" and e["count"] > 1
                and e["actor"] == me]
    assert sealed["count"] == 149 and sealed["details"]["count"] == 149 and sealed["actor"] == me
    since, until = (datetime.fromisoformat(sealed["details"][k]) for k in ("since", "until"))
    assert until - since == timedelta(seconds=14.8)  # the 2nd to the 150th failure
    # The revoked glyph's failures stay findable by its id, every one counted.
    mine = await audit(client, glyph_id=made["glyph_id"])
    assert sum(e["count"] for e in mine if e["action"] == "validate_failed") == 30
    assert all(e["count"] == 1 for e in entries if e["action"] != "validate_failed")

    for _ in range(10):  # the window is still open: counted in it, no entry yet
        await validate(client, "garbage")
    assert await rows(database_url) == before + 8
    moved.advance(60)
    await client.app[KERNEL_KEY].check_health()  # seals the windows closed by now
    assert await rows(database_url) == before + 9
    assert failed_counts(await audit(client))[(me, "malformed")] == 160

    result = audit_verify(tmp_path / "data", database_env)
    assert result.returncode == 0 and f"intact: {before + 9} entries" in result.stdout, result.stderr


async def test_the_next_failure_after_a_window_seals_it(lukhas_host, moved, tmp_path, database_url,
                                                        database_env):
    client = await lukhas_host([GLYPHS])
    for _ in range(10):
        await validate(client, "garbage")
    moved.advance(60)
    await validate(client, "garbage")  # closes the first window, opens the next
    assert await rows(database_url) == 3  # first, its sealed repeats, the next window's first
    entries = await audit(client)
    assert [e["count"] for e in entries] == [1, 9, 1]
    for _ in range(5):
        await validate(client, "garbage")
    open_count = await on_database(database_url, lambda db: db.scalar(sa.select(windows.c.count)))
    assert open_count == 5  # counted, not yet an entry
    result = audit_verify(tmp_path / "data", database_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("audit chain intact: 3 entries; 5 failed validations "
                                     "counted in 1 open windows, not yet in an entry")


async def test_the_health_check_seals_closed_windows(lukhas_host, moved, database_url):
    client = await lukhas_host([GLYPHS])
    for _ in range(4):
        await validate(client, "garbage")
    await client.app[KERNEL_KEY].check_health()  # the periodic check, run now
    assert await rows(database_url) == 1  # still open
    moved.advance(61)
    await client.app[KERNEL_KEY].check_health()
    assert await rows(database_url) == 2
    assert await on_database(database_url, lambda db: db.scalar(
        sa.select(sa.func.count()).select_from(windows))) == 0
    assert (await plugin_states(client))["glyphs"]["state"] == "active"


async def test_window_zero_audits_every_failure(lukhas_host, monkeypatch, database_url):
    monkeypatch.setenv("GLYPHS_AUDIT_WINDOW_S", "0")
    client = await lukhas_host([GLYPHS])
    for _ in range(7):
        await validate(client, "garbage")
    assert await rows(database_url) == 7
    assert [e["count"] for e in await audit(client)] == [1] * 7


async def test_two_hosts_flooding_at_once_count_every_failure(lukhas_host, moved, tmp_path,
                                                               database_url, database_env):
    data = tmp_path / "data"
    hosts = [await lukhas_host([GLYPHS], data_dir=data) for _ in range(2)]
    await asyncio.gather(*(validate(host, "garbage") for _ in range(40) for host in hosts))
    moved.advance(60)
    await asyncio.gather(*(validate(host, "garbage") for _ in range(10) for host in hosts))
    moved.advance(60)
    entries = await audit(hosts[1])
    # Each host's admin is a caller of its own: per caller, 2 windows of 2 entries.
    assert sorted(failed_counts(entries).values()) == [50, 50]
    assert len(entries) == await rows(database_url) == 8
    result = audit_verify(data, database_env)
    assert result.returncode == 0 and "intact: 8 entries" in result.stdout, result.stdout + result.stderr


def key_file(data: Path) -> Path:
    return data / "plugins" / "glyphs" / "signing.key"


async def test_generated_key_file_is_0600_whatever_the_umask(lukhas_host, monkeypatch, tmp_path):
    data = tmp_path / "data"
    monkeypatch.setenv("LUKHAS_GLYPH_SIGNING_KEY", KEY_A)
    await lukhas_host([GLYPHS], data_dir=data)  # makes the data dir and database writable
    assert not key_file(data).exists()
    monkeypatch.delenv("LUKHAS_GLYPH_SIGNING_KEY")
    previous = os.umask(0o277)  # would leave a new file 0400
    try:
        generated = await lukhas_host([GLYPHS], data_dir=data)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(key_file(data).stat().st_mode) == 0o600
    assert len(key_file(data).read_bytes()) >= 32
    assert [p.name for p in key_file(data).parent.iterdir()] == ["signing.key"]  # no temporary left
    token = (await bind(generated))["token"]
    assert (await validate(await lukhas_host([GLYPHS], data_dir=data), token))["valid"] is True


@pytest.mark.parametrize("content", [b"", b"short", b"x" * 31, b"  " + b"y" * 31 + b"\n"])
async def test_short_key_file_fails_the_plugin_naming_it(lukhas_host, tmp_path, content):
    path = key_file(tmp_path / "data")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    path.chmod(0o600)
    with structlog.testing.capture_logs() as events:
        client = await lukhas_host([HEALTHY, GLYPHS], plugin_retries=0)  # the outcome of one attempt
    states = await plugin_states(client)
    glyphs = states["glyphs"]
    assert glyphs["state"] == "failed"
    assert glyphs["reason"].startswith("setup: ") and str(path) in glyphs["reason"]
    assert "fewer than 32" in glyphs["reason"]
    [started] = [e for e in events if e["event"] == "lukhas.startup"]
    assert started["status"] == "partial" and started["initialized_systems"] == ["healthy"]
    body = await problem(await client.post("/api/v1/glyphs/validate", json={"token": "x"}), 503)
    assert str(path) in body["detail"]
    assert states["healthy"]["state"] == "active"  # partial start-up: the host still serves
    assert path.read_bytes() == content  # never replaced: tokens signed with it are the owner's call


async def test_key_file_of_exactly_32_bytes_is_accepted(lukhas_host, tmp_path):
    path = key_file(tmp_path / "data")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"k" * 32)
    path.chmod(0o600)
    client = await lukhas_host([GLYPHS])
    assert (await validate(client, (await bind(client))["token"]))["valid"] is True


async def test_key_file_others_can_read_is_warned_about(lukhas_host, tmp_path):
    path = key_file(tmp_path / "data")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"k" * 40)
    path.chmod(0o644)
    with structlog.testing.capture_logs() as events:
        client = await lukhas_host([GLYPHS])
    [warning] = [e for e in events if e["event"] == "storage.insecure_permissions"
                 and e["path"] == str(path)]  # (the kernel names the directories too)
    assert (warning["log_level"], warning["mode"]) == ("warning", "0644")
    assert (await plugin_states(client))["glyphs"]["state"] == "active"  # a warning, not a refusal
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the owner's file is left as it is

    path.chmod(0o600)
    with structlog.testing.capture_logs() as events:
        await lukhas_host([GLYPHS])
    assert not [e for e in events if e["event"] == "storage.insecure_permissions"
                and e["path"] == str(path)]


async def test_short_signing_key_variable_is_refused_naming_it(lukhas_host, monkeypatch, tmp_path):
    monkeypatch.setenv("LUKHAS_GLYPH_SIGNING_KEY", "k" * 31)
    with structlog.testing.capture_logs() as events:
        client = await lukhas_host([HEALTHY, GLYPHS], plugin_retries=0)  # the outcome of one attempt
    states = await plugin_states(client)
    glyphs = states["glyphs"]
    assert glyphs["state"] == "failed"
    assert glyphs["reason"].startswith("setup: ") and "LUKHAS_GLYPH_SIGNING_KEY" in glyphs["reason"]
    assert "fewer than 32" in glyphs["reason"]
    assert "k" * 31 not in repr(events) + glyphs["reason"]  # the secret is never shown
    assert not key_file(tmp_path / "data").exists()  # no key generated in its place
    assert states["healthy"]["state"] == "active"
    await problem(await client.post("/api/v1/glyphs/bind", json={}), 503)
