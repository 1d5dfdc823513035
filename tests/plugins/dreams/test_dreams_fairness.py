"""Dreams under one user's heavy load, through the real host: claims are fair
across users, a runner keeps a slot for a user with nothing running, and a
job's cost (fragments × branches × depth) is bounded at the POST.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from lukhas_dreams.models import DreamRequest, DreamsSettings
from lukhas_dreams.store import jobs
from support.answers import plugin_states, problem
from support.cli import add_user, first_admin_token
from support.database import on_database
from support.dream_inputs import FRAGMENTS, large_fragments
from support.dreams import DREAMS, other_user, running, settled, submit, wait_job
from support.dreams import job as remote_job
from support.host import serving
from support.polling import eventually_async
from support.urls import send

pytestmark = pytest.mark.both_databases

#: The default limit on fragments × branches × depth.
DEFAULT_LIMIT = DreamsSettings.model_fields["max_job_cost"].default
#: The costliest dream the default limit allows at the greatest branches and
#: depth: 16 of the largest fragments, 16 branches, depth 8 (about 2 s on one core).
HEAVY = {"fragments": large_fragments(count=DEFAULT_LIMIT // (16 * 8)), "branches": 16, "depth": 8}
SMALL = {"fragments": FRAGMENTS, "branches": 1, "depth": 1}


async def post(client: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    response = await client.post("/api/v1/dreams/parallel", json=body, headers=headers)
    assert response.status == 202, await response.text()
    return (await response.json())["dream_id"]


async def job(client: Any, dream_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await client.get(f"/api/v1/dreams/{dream_id}", headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


def at(stamp: str | None) -> datetime | None:
    return None if stamp is None else datetime.fromisoformat(stamp)


async def stored_jobs(database_url: str) -> int:
    return await on_database(database_url, lambda conn: conn.scalar(
        sa.select(sa.func.count()).select_from(jobs)))


# -- fairness ------------------------------------------------------------------


async def test_one_users_full_queue_does_not_hold_up_another_users_small_dream(lukhas_host):
    """The defect of a first-in-first-out queue: ten of the heaviest dreams one
    user may queue held up another user's 1-branch, depth-1 dream until all ten
    had started. Now it starts in the slot kept for a user with nothing running,
    before any of the queued ten."""
    client = await lukhas_host([DREAMS])  # DREAMS_MAX_RUNNING 2, DREAMS_MAX_PENDING_PER_USER 10
    heavy = [await post(client, {**HEAVY, "seed": n}) for n in range(10)]
    ada = await other_user(client)
    small = await post(client, SMALL, ada)
    done = await settled(client, small)
    assert done["status"] == "completed", done
    first_heavy = await settled(client, heavy[0])
    assert first_heavy["status"] == "completed", first_heavy
    # The lone user had one slot of the two; the other was kept for another user.
    assert_started_first(done, [await job(client, dream_id) for dream_id in heavy], first_heavy,
                         running_at_arrival=1)
    for dream_id in heavy:
        assert (await client.delete(f"/api/v1/dreams/{dream_id}")).status == 204


def assert_started_first(small: dict[str, Any], heavy: list[dict[str, Any]],
                         completed: dict[str, Any], running_at_arrival: int) -> None:
    """The small dream started before every heavy one still queued when it came,
    within one heavy dream's run (`completed`'s), `running_at_arrival` heavy
    ones running then."""
    small_created, small_started = at(small["created_at"]), at(small["started_at"])
    started_after_it_came = [j for j in heavy if j["started_at"] and small_created < at(j["started_at"])]
    assert all(at(j["started_at"]) > small_started for j in started_after_it_came), heavy
    running = [j for j in heavy if j["started_at"] and at(j["started_at"]) < small_created
               and (j["finished_at"] is None or at(j["finished_at"]) > small_created)]
    assert len(running) == running_at_arrival, heavy
    # It did not wait for a heavy dream to end.
    heavy_run = at(completed["finished_at"]) - at(completed["started_at"])
    assert small_started - small_created < heavy_run, (small, completed)


def test_fairness_holds_across_host_processes(tmp_path, database_env):
    """Two `lukhas serve` processes on one database: each runs one of the heavy
    user's dreams and keeps its other slot; the other user's dream, sent to
    either, starts at once, and each dream is claimed once."""
    env = {**database_env, "DREAMS_POLL_INTERVAL_S": "0.2"}
    with serving(tmp_path, env) as a:
        admin = first_admin_token(a.process)
        _, ada = add_user(tmp_path, "ada", env=database_env)
        with serving(tmp_path, env) as b:
            heavy = [submit((a, b)[n % 2].url, admin, {**HEAVY, "seed": n}) for n in range(10)]
            small = submit(b.url, ada, SMALL)
            done = wait_job(a.url, ada, small, lambda j: j["status"] not in ("queued", "running"))
            assert done["status"] == "completed", done
            completed = wait_job(a.url, admin, heavy[0], lambda j: j["status"] == "completed")
            assert_started_first(done, [remote_job(b.url, admin, dream_id) for dream_id in heavy],
                                 completed, running_at_arrival=2)
            for dream_id in heavy:  # the hosts then stop without a dream left to hand over
                assert send(f"{a.url}/api/v1/dreams/{dream_id}", admin, None, method="DELETE")[0] == 204
    claims = Counter(line["dream_id"] for host in (a, b) for line in host.events("dreams.claimed"))
    assert claims[small] == 1 and max(claims.values()) == 1, claims


async def test_users_with_queued_dreams_take_turns(lukhas_host, monkeypatch):
    """Round-robin over owners, with one slot (so none is kept): each next job
    is the oldest of the owner served longest ago (never served: first)."""
    monkeypatch.setenv("DREAMS_MAX_RUNNING", "1")
    client = await lukhas_host([DREAMS])
    carla, bo = await other_user(client, "carla"), await other_user(client, "bo")
    first = await post(client, {**HEAVY, "seed": 0})  # the admin's; runs while the rest queue
    await running(client, first)
    admins = [await post(client, {**SMALL, "seed": n}) for n in range(3)]
    carlas = [await post(client, {**SMALL, "seed": n}, carla) for n in range(3)]
    bos = [await post(client, {**SMALL, "seed": 9}, bo)]
    owners = {first: None, **dict.fromkeys(admins), **dict.fromkeys(carlas, carla), bos[0]: bo}
    settled_jobs = {dream_id: await settled_as(client, dream_id, headers)
                    for dream_id, headers in owners.items()}
    assert {j["status"] for j in settled_jobs.values()} == {"completed"}
    order = sorted(settled_jobs, key=lambda dream_id: at(settled_jobs[dream_id]["started_at"]))
    # First in, first out would have been: first, admins, carlas, bos.
    assert order == [first, carlas[0], bos[0], admins[0], carlas[1], admins[1], carlas[2], admins[2]]


async def settled_as(client: Any, dream_id: str, headers: dict[str, str] | None) -> dict[str, Any]:
    """`settled` for the dream of the user `headers` authenticate (the admin's when None)."""

    async def done() -> dict[str, Any] | None:
        found = await job(client, dream_id, headers)
        return found if found["status"] not in ("queued", "running") else None

    return await eventually_async(done, 120, what=f"dream {dream_id} settled")


# -- the cost limit ------------------------------------------------------------


@pytest.mark.parametrize("body", [
    {"fragments": ["x"] * 64, "branches": 16, "depth": 8},
    {"fragments": ["x"] * 64, "branches": 5, "depth": 7},  # 2240
    {"fragments": ["x"] * 64, "branches": 16},  # depth 3 by default: 3072
    {"fragments": ["x"] * 33, "branches": 16, "depth": 4},  # 2112
], ids=["largest", "just-over", "default-depth", "33-fragments"])
async def test_dream_over_the_cost_limit_is_422_and_stores_nothing(lukhas_host, database_url, body):
    client = await lukhas_host([DREAMS])
    answer = await problem(await client.post("/api/v1/dreams/parallel", json=body), 422)
    assert answer["type"] == "urn:lukhas:problem:validation"
    [error] = answer["errors"]
    assert error["loc"] == ["body"] and error["type"] == "job_cost", error
    cost = len(body["fragments"]) * body.get("branches", 4) * body.get("depth", 3)
    assert f"is {cost} " in error["msg"] and f"limit of {DEFAULT_LIMIT}" in error["msg"], error
    assert (await (await client.get("/api/v1/dreams/list")).json())["count"] == 0
    assert await stored_jobs(database_url) == 0


async def test_cost_limit_is_inclusive_and_counts_the_defaults(lukhas_host, database_url):
    client = await lukhas_host([DREAMS])
    at_limit = [{"fragments": ["x"] * 64, "depth": 8},  # branches 4 by default: 2048
                {"fragments": ["x"] * 16, "branches": 16, "depth": 8},
                {"fragments": ["x"] * 64, "branches": 16, "depth": 2}]
    for body in at_limit:
        assert DreamRequest(**body).cost == DEFAULT_LIMIT
        await client.delete(f"/api/v1/dreams/{await post(client, body)}")
    await problem(await client.post("/api/v1/dreams/parallel",
                                    json={"fragments": ["x"] * 64, "depth": 8, "branches": 5}), 422)
    assert await stored_jobs(database_url) == 0


async def test_cost_limit_is_a_setting_and_the_schema_states_it(lukhas_host, monkeypatch):
    client = await lukhas_host([DREAMS])
    schema = (await (await client.get("/openapi.json")).json())["components"]["schemas"]["DreamRequest"]
    assert schema["x-max-job-cost"] == DEFAULT_LIMIT
    assert f"at most {DEFAULT_LIMIT}" in schema["description"]
    # The field bounds stay those of the body; only their combinations are limited.
    assert schema["properties"]["fragments"]["maxItems"] == 64
    assert schema["properties"]["branches"]["maximum"] == 16 and schema["properties"]["depth"]["maximum"] == 8

    monkeypatch.setenv("DREAMS_MAX_JOB_COST", "128")
    narrow = await lukhas_host([DREAMS])
    schema = (await (await narrow.get("/openapi.json")).json())["components"]["schemas"]["DreamRequest"]
    assert schema["x-max-job-cost"] == 128
    one_fragment = await post(narrow, {"fragments": ["x"], "branches": 16, "depth": 8})
    assert (await narrow.delete(f"/api/v1/dreams/{one_fragment}")).status == 204
    answer = await problem(await narrow.post("/api/v1/dreams/parallel",
                                             json={"fragments": ["x", "y"], "branches": 16, "depth": 8}), 422)
    assert "limit of 128" in answer["errors"][0]["msg"]

    monkeypatch.setenv("DREAMS_MAX_JOB_COST", "8192")  # the largest: no combination is refused
    wide = await lukhas_host([DREAMS])
    largest = await post(wide, {"fragments": ["x"] * 64, "branches": 16, "depth": 8})
    assert (await wide.delete(f"/api/v1/dreams/{largest}")).status == 204

    monkeypatch.setenv("DREAMS_MAX_JOB_COST", "100")  # below one fragment at 16 branches, depth 8
    refused = await lukhas_host([DREAMS])
    dreams = (await plugin_states(refused))["dreams"]
    assert dreams["state"] == "failed" and "DREAMS_MAX_JOB_COST" in dreams["reason"], dreams
