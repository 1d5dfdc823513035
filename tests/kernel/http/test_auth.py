"""Bearer authentication, roles, ownership and profiles."""

from __future__ import annotations

import pytest
import structlog
from lukhas_kernel.testing import KERNEL_KEY
from support.answers import problem

pytestmark = pytest.mark.both_databases

PLUGINS = ["sample_plugins.healthy", "sample_plugins.notes", "sample_plugins.profile_faults"]

# Every /api/v1 route the host mounts here, with a body where it needs one.
USER_ROUTES = [
    ("GET", "/api/v1/plugins", None),
    ("GET", "/api/v1/users/{self}", None),
    ("GET", "/api/v1/healthy/greet", None),
    ("POST", "/api/v1/healthy/echo", {"text": "hi"}),
    ("POST", "/api/v1/notes", {"text": "a note"}),
]
ADMIN_ROUTES = [
    ("GET", "/api/v1/admin/flags", None),
    ("PATCH", "/api/v1/admin/flags", {}),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def host(lukhas_host):
    """(anonymous client, accounts, users) with an admin and two plain users."""
    client = await lukhas_host(PLUGINS, as_admin=False)
    accounts = client.app[KERNEL_KEY].services.accounts
    users = {}
    for name, admin in (("root", True), ("ada", False), ("bob", False)):
        users[name] = await accounts.create_user(name, "premium", admin=admin)
    return client, accounts, users


async def unauthorized(response) -> dict:
    body = await problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES + ADMIN_ROUTES)
async def test_every_api_route_needs_a_valid_token(host, method, path, body):
    client, accounts, users = host
    user, token = users["ada"]
    path = path.format(self=user.id)
    revoked_user, revoked = users["bob"]
    await accounts.revoke(revoked[:12])
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                    bearer("lk_" + "x" * 43), bearer("not-a-token"), bearer(revoked),
                    bearer(token + "x"), bearer(token[:-1])):
        await unauthorized(await client.request(method, path, json=body, headers=headers))


@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES)
async def test_user_routes_answer_users_and_admins(host, method, path, body):
    client, _, users = host
    for name in ("ada", "root"):
        user, token = users[name]
        response = await client.request(method, path.format(self=user.id), json=body, headers=bearer(token))
        assert response.status in (200, 201), await response.text()


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_refuse_plain_users(host, method, path, body):
    client, _, users = host
    refused = await client.request(method, path, json=body, headers=bearer(users["ada"][1]))
    body403 = await problem(refused, 403)
    assert body403["detail"] == "this operation needs the admin role"
    ok = await client.request(method, path, json=body, headers=bearer(users["root"][1]))
    assert ok.status == 200


async def test_unknown_api_path_needs_a_token_before_404(host):
    client, _, users = host
    await unauthorized(await client.get("/api/v1/nothing"))
    await problem(await client.get("/api/v1/nothing", headers=bearer(users["ada"][1])), 404)


async def test_disabled_plugin_state_is_not_revealed_without_a_token(lukhas_host, monkeypatch):
    monkeypatch.setenv("NOTES_ENABLED", "false")
    client = await lukhas_host(PLUGINS, as_admin=False)
    await unauthorized(await client.get("/api/v1/notes/x"))


async def test_public_kernel_routes_need_no_token(host):
    client, _, _ = host
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert (await client.get(path)).status == 200


async def test_profile_of_self_and_by_admin(host):
    client, _, users = host
    ada, token = users["ada"]
    response = await client.get(f"/api/v1/users/{ada.id}", headers=bearer(token))
    body = await response.json()
    assert body["user_id"] == ada.id and body["username"] == "ada" and body["tier"] == "premium"
    assert body["drift_metrics"] is None  # no plugin contributes drift here
    assert body["greeting"] == "hello ada"  # contributed by the healthy plugin
    by_admin = await client.get(f"/api/v1/users/{ada.id}?include_drift=true",
                                headers=bearer(users["root"][1]))
    assert (await by_admin.json())["username"] == "ada"


async def test_another_users_profile_is_not_found(host):
    client, _, users = host
    bob, _ = users["bob"]
    ada = bearer(users["ada"][1])
    body = await problem(await client.get(f"/api/v1/users/{bob.id}", headers=ada), 404)
    # The same answer as for an id that does not exist: existence is not revealed.
    missing = await problem(await client.get("/api/v1/users/usr_nobody", headers=ada), 404)
    assert body["title"] == missing["title"]
    assert (await problem(await client.get("/api/v1/users/usr_nobody",
                                           headers=bearer(users["root"][1])), 404))


async def test_profile_survives_a_contributor_that_raises_or_hangs(lukhas_host):
    client = await lukhas_host(PLUGINS, plugin_timeout_s=0.3)
    accounts = client.app[KERNEL_KEY].services.accounts
    user, token = await accounts.create_user("cy")
    for mode in ("raise", "hang"):
        response = await client.get(f"/api/v1/users/{user.id}?mode={mode}", headers=bearer(token))
        assert response.status == 200
        assert (await response.json())["greeting"] == "hello cy"


async def test_profile_query_is_validated(host):
    client, _, users = host
    ada, token = users["ada"]
    body = await problem(await client.get(f"/api/v1/users/{ada.id}?include_drift=perhaps",
                                          headers=bearer(token)), 422)
    assert body["errors"][0]["loc"] == ["query", "include_drift"]


async def test_another_users_resource_is_not_found(host):
    client, _, users = host
    created = await client.post("/api/v1/notes", json={"text": "mine"}, headers=bearer(users["ada"][1]))
    note_id = (await created.json())["id"]
    assert (await client.get(f"/api/v1/notes/{note_id}", headers=bearer(users["ada"][1]))).status == 200
    await problem(await client.get(f"/api/v1/notes/{note_id}", headers=bearer(users["bob"][1])), 404)
    assert (await client.get(f"/api/v1/notes/{note_id}", headers=bearer(users["root"][1]))).status == 200


async def test_tokens_never_reach_the_logs(lukhas_host):
    with structlog.testing.capture_logs() as events:
        client = await lukhas_host(PLUGINS, as_admin=False)
        accounts = client.app[KERNEL_KEY].services.accounts
        _, token = await accounts.create_user("dee", admin=True)
        await client.get("/api/v1/plugins", headers=bearer(token))
        await client.get("/api/v1/plugins", headers=bearer(token + "zz"))
        await client.patch("/api/v1/admin/flags", json={"NOTES_SHOUT_ENABLED": True}, headers=bearer(token))
    assert events, "expected some log events"
    assert all(token[3:20] not in repr(event) for event in events)


async def test_token_format_and_storage(host):
    client, accounts, users = host
    _, token = users["ada"]
    assert token.startswith("lk_") and len(token) >= 3 + 43
    db = client.app[KERNEL_KEY].services.db
    async with db.connect() as conn:
        dump = [tuple(row) for row in (await conn.exec_driver_sql("SELECT * FROM lukhas_tokens")).all()]
    assert not any(token in str(value) for row in dump for value in row)
    assert any(token[:12] in row for row in dump)


async def test_rate_limit_is_exact_per_caller(host):
    client, _, users = host
    ada, bob = bearer(users["ada"][1]), bearer(users["bob"][1])
    for expected_remaining in (2, 1, 0):
        response = await client.post("/api/v1/notes", json={"text": "n"}, headers=ada)
        assert response.status == 201
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Remaining"] == str(expected_remaining)
        assert 0 <= int(response.headers["RateLimit-Reset"]) <= 60
    limited = await client.post("/api/v1/notes", json={"text": "n"}, headers=ada)
    body = await problem(limited, 429)
    assert "3 per 60 s" in body["detail"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["RateLimit-Remaining"] == "0"
    # A different caller has a window of its own.
    assert (await client.post("/api/v1/notes", json={"text": "n"}, headers=bob)).status == 201
    # The limited request stored nothing: ada has exactly three notes.
    db = client.app[KERNEL_KEY].services.db
    async with db.connect() as conn:
        count = (await conn.exec_driver_sql(
            f"SELECT count(*) FROM notes_items WHERE owner = '{users['ada'][0].id}'")).scalar()
    assert count == 3


async def test_invalid_rate_limit_fails_the_plugin_at_routes(lukhas_host):
    client = await lukhas_host(["sample_plugins.bad_limit"])
    item = {i["name"]: i for i in (await (await client.get("/api/v1/plugins")).json())["items"]}["bad_limit"]
    assert item["state"] == "failed"
    assert item["reason"] == "routes: GET /api/v1/bad_limit/x: invalid rate limit 'lots per hour'"
