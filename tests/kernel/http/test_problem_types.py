"""Every problem names its kind with a `urn:lukhas:problem:<slug>` type, the
kernel's and plugins' alike, never `about:blank`; a plugin's own validation
errors (`validation_error`) have the shape of the kernel's."""

from __future__ import annotations

import re

import pytest
from lukhas_kernel import ProblemError, problem_type, validation_error
from support.answers import problem
from support.net import free_port

SLUG = re.compile(r"^urn:lukhas:problem:[a-z0-9-]+$")
KINDS = "sample_plugins.problem_kinds"


async def kind(response, status: int) -> str:
    """The slug of a problem answer with `status`."""
    body = await problem(response, status)
    assert SLUG.match(body["type"]), body
    return body["type"].removeprefix("urn:lukhas:problem:")


async def test_every_kind_of_kernel_answer_names_its_kind(lukhas_host, lukhas_user, lukhas_chaos):
    plugins = ["healthy", "notes", "setup_raises", "needs_setup_raises"]
    admin = await lukhas_host([f"sample_plugins.{name}" for name in plugins],
                              plugin_retries=0, max_body_bytes=256, request_timeout_s=1)
    ada = await lukhas_user(admin, "ada")
    echo = "/api/v1/healthy/echo"
    answers = [
        (admin.post(echo, data=b"{"), 400, "bad-request"),
        (admin.get("/api/v1/plugins", headers={"Authorization": ""}), 401, "unauthorized"),
        (admin.get("/api/v1/plugins", headers={"Authorization": "Bearer lk_unknown"}), 401, "unauthorized"),
        (ada.get("/api/v1/admin/flags"), 403, "forbidden"),
        (admin.get("/nowhere"), 404, "not-found"),
        (admin.get("/api/v1/users/usr_nobody"), 404, "not-found"),
        (admin.get("/api/v1/greetings/42"), 404, "not-found"),
        (admin.get("/docs/static/nothing.js"), 404, "not-found"),
        (admin.delete("/healthz"), 405, "method-not-allowed"),
        (admin.post(echo, json={"text": "x" * 300}), 413, "payload-too-large"),
        (admin.get("/healthz?q=" + "x" * 9000), 414, "uri-too-long"),
        # aiohttp answers an Expect header itself, before any middleware.
        (admin.get("/healthz", headers={"Expect": "teapot"}), 417, "bad-request"),
        (admin.post(echo, json={"text": ""}), 422, "validation"),
        (admin.get("/api/v1/healthy/greet", params={"name": "x" * 11}), 422, "validation"),
        (admin.get("/api/v1/setup_raises/ping"), 503, "failed"),
        (admin.get("/api/v1/needs_setup_raises/ping"), 503, "skipped"),
    ]
    for request, status, slug in answers:
        assert await kind(await request, status) == slug, (status, slug)

    for _ in range(3):
        assert (await ada.post("/api/v1/notes", json={"text": "hi"})).status == 201
    assert await kind(await ada.post("/api/v1/notes", json={"text": "hi"}), 429) == "rate-limited"

    await lukhas_chaos(admin, ["healthy:request:hang"])
    assert await kind(await admin.get("/api/v1/healthy/greet"), 503) == "timeout"
    await lukhas_chaos(admin, [])
    await admin.patch("/api/v1/admin/flags", json={"HEALTHY_ENABLED": False})
    assert await kind(await admin.get("/api/v1/healthy/greet"), 403) == "disabled"


async def test_resilience_answers_name_their_kind(lukhas_host):
    client = await lukhas_host(
        ["sample_plugins.setup_raises", "sample_plugins.handler_raises", "sample_plugins.notes"],
        plugin_retries=1, plugin_retry_base_s=300, breaker_min_requests=2, breaker_cooldown_s=300,
        rate_limit_storage=f"redis://127.0.0.1:{free_port()}")  # nothing listens there
    assert await kind(await client.get("/api/v1/setup_raises/ping"), 503) == "retrying"
    for _ in range(2):
        assert await kind(await client.get("/api/v1/handler_raises/broken"), 500) == "internal"
    assert await kind(await client.get("/api/v1/handler_raises/broken"), 503) == "circuit-open"
    notes = await client.post("/api/v1/notes", json={"text": "hi"})
    assert await kind(notes, 503) == "storage-unavailable"


@pytest.mark.parametrize(("status", "slug"), [
    (404, "not-found"), (409, "conflict"), (418, "bad-request"), (429, "rate-limited"), (502, "internal"),
])
async def test_a_plugins_problem_without_a_type_gets_its_statuss_kind(lukhas_host, status, slug):
    client = await lukhas_host([KINDS])
    assert await kind(await client.get(f"/api/v1/problem_kinds/untyped/{status}"), status) == slug


async def test_a_plugins_own_kinds_and_aiohttp_exceptions(lukhas_host):
    client = await lukhas_host([KINDS])
    assert await kind(await client.get("/api/v1/problem_kinds/own-kind"), 409) == "teapot-busy"
    # A type that is no problem URN is the plugin's bug: refused where it is raised.
    blank = await client.get("/api/v1/problem_kinds/blank", headers={"X-Request-ID": "blank-1"})
    assert await kind(blank, 500) == "internal"
    answer = await client.get("/api/v1/problem_kinds/aiohttp")
    assert await kind(answer, 415) == "bad-request"
    assert "lk_secret" not in await answer.text()


async def test_a_settings_dependent_check_answers_like_the_kernels_validation(lukhas_host, monkeypatch):
    monkeypatch.setenv("PROBLEM_KINDS_MAX_NOTE", "4")
    client = await lukhas_host([KINDS])
    assert (await client.post("/api/v1/problem_kinds/note", json={"text": "four"})).status == 200
    own = await problem(await client.post("/api/v1/problem_kinds/note", json={"text": "fives"}), 422)
    kernels = await problem(await client.post("/api/v1/problem_kinds/note", json={"text": "x" * 201}), 422)
    assert own.keys() == kernels.keys() == {"type", "title", "status", "detail", "errors"}
    for field in ("type", "title", "status", "detail"):
        assert own[field] == kernels[field]
    assert own["errors"] == [{"loc": ["body", "text"], "msg": "String should have at most 4 characters",
                              "type": "string_too_long"}]
    assert kernels["errors"][0]["loc"] == ["body", "text"]
    assert kernels["errors"][0]["type"] == "string_too_long"


def test_validation_error_and_problem_types_refuse_what_no_answer_may_carry():
    error = validation_error(("query", "days"), "at most 30 days")
    assert (error.status, error.type, error.errors) == (
        422, "urn:lukhas:problem:validation", [{"loc": ["query", "days"], "msg": "at most 30 days",
                                                "type": "value_error"}])
    for loc in ((), ("path", "id"), ("headers",)):
        with pytest.raises(ValueError, match="starts with 'body' or 'query'"):
            validation_error(loc, "no")
    for bad in ("about:blank", "https://example.com/problem", "urn:lukhas:problem:Not_Slug",
                "urn:lukhas:problem:", "urn:lukhas:problem:x\n"):
        with pytest.raises(ValueError, match="urn:lukhas:problem:<slug>"):
            ProblemError(400, "bad type", type=bad)
    with pytest.raises(ValueError, match="a problem slug"):
        problem_type("Teapot Busy")
    assert problem_type("teapot-busy") == "urn:lukhas:problem:teapot-busy"
