"""The dreams plugin through the real host: jobs, engines, fallback, cancellation, bounds."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from lukhas_dreams import compute, engine
from lukhas_kernel.testing import KERNEL_KEY
from prometheus_client import CollectorRegistry, generate_latest
from support.answers import plugin_states, problem
from support.dream_inputs import FRAGMENTS, LONG
from support.dreams import DREAMS, dream, other_user, running, set_parallel, settled
from support.polling import eventually_async

pytestmark = pytest.mark.both_databases


@pytest.fixture(autouse=True)
def _long_dreams_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """LONG (64 × 16 × 8) is over the default DREAMS_MAX_JOB_COST: these tests
    act on a job while it runs for seconds. The limit: test_dreams_fairness.py."""
    monkeypatch.setenv("DREAMS_MAX_JOB_COST", str(64 * 16 * 8))


async def test_dream_lifecycle_over_http(lukhas_host):
    client = await lukhas_host([DREAMS])
    accepted = await dream(client, branches=3, depth=2, seed=11)
    assert accepted["status"] == "queued" and accepted["mode"] == "sequential"
    assert accepted["dream_id"].startswith("drm_")

    job = await settled(client, accepted["dream_id"])
    assert job["status"] == "completed" and job["mode"] == "sequential", job
    assert job["started_at"] >= job["created_at"] and job["finished_at"] >= job["started_at"]
    assert (job["branches"], job["depth"], job["seed"], job["fragment_count"]) == (3, 2, 11, 5)
    result = job["result"]
    assert len(result["branches"]) == 3
    for branch in result["branches"]:
        assert branch["narrative"] and 0 <= branch["coherence"] <= 1
        # Themes are words of the fragments, not decoration.
        assert all(theme in " ".join(FRAGMENTS).lower() for theme in branch["themes"])
    assert result == compute.dream(FRAGMENTS, branches=3, depth=2, seed=11)

    listing = await (await client.get("/api/v1/dreams/list")).json()
    assert [item["dream_id"] for item in listing["items"]] == [accepted["dream_id"]]
    assert listing["count"] == 1 and listing["next_cursor"] is None
    assert "result" not in listing["items"][0]

    assert (await client.delete(f"/api/v1/dreams/{accepted['dream_id']}")).status == 204
    await problem(await client.get(f"/api/v1/dreams/{accepted['dream_id']}"), 404)
    await problem(await client.delete(f"/api/v1/dreams/{accepted['dream_id']}"), 404)


async def test_random_seed_is_drawn_once_and_kept(lukhas_host):
    client = await lukhas_host([DREAMS])
    job = await settled(client, (await dream(client, branches=1, depth=1))["dream_id"])
    assert isinstance(job["seed"], int)
    assert job["result"] == compute.dream(FRAGMENTS, branches=1, depth=1, seed=job["seed"])


async def test_parallel_and_sequential_dream_alike_and_flag_switches_at_run_time(lukhas_host):
    client = await lukhas_host([DREAMS])
    results: dict[str, dict[int, Any]] = {}
    for parallel in (False, True, False):  # switched back and forth, no restart
        await set_parallel(client, parallel)
        ids = {seed: (await dream(client, branches=4, depth=3, seed=seed)) for seed in (1, 2, 99)}
        mode = "parallel" if parallel else "sequential"
        assert {accepted["mode"] for accepted in ids.values()} == {mode}
        for seed, accepted in ids.items():
            job = await settled(client, accepted["dream_id"])
            assert job["status"] == "completed" and job["mode"] == mode, job
            results.setdefault(mode, {})[seed] = job["result"]
    assert results["parallel"] == results["sequential"]
    assert results["sequential"][1] != results["sequential"][2]
    assert (await plugin_states(client))["dreams"]["state"] == "active"


class _NoPool:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, workers: int | None) -> Any:
        self.calls += 1
        raise OSError("no processes may be started here")


@pytest.mark.chaos
async def test_pool_that_cannot_start_falls_back_then_recovers(lukhas_host, monkeypatch):
    no_pool = _NoPool()
    monkeypatch.setattr(engine, "process_pool", no_pool)
    client = await lukhas_host([DREAMS])
    await set_parallel(client, True)

    accepted = await dream(client, seed=5)
    assert accepted["mode"] == "parallel"  # what was asked for
    job = await settled(client, accepted["dream_id"])
    assert job["status"] == "completed" and job["mode"] == "sequential"  # what ran it
    assert job["result"] == compute.dream(FRAGMENTS, branches=4, depth=3, seed=5)
    dreams = (await plugin_states(client))["dreams"]
    assert dreams["state"] == "degraded"
    assert "parallel engine cannot start: OSError: no processes may be started here" in dreams["reason"]
    assert no_pool.calls >= 1

    monkeypatch.undo()
    await client.app[KERNEL_KEY].check_health()  # the periodic check, run now
    assert (await plugin_states(client))["dreams"]["state"] == "active"
    job = await settled(client, (await dream(client, seed=5))["dream_id"])
    assert job["mode"] == "parallel" and job["result"]["coherence"] >= 0


@pytest.mark.chaos
async def test_pool_whose_workers_die_falls_back_mid_job(lukhas_host):
    client = await lukhas_host([DREAMS])
    await set_parallel(client, True)
    kernel = client.app[KERNEL_KEY]
    await kernel.check_health()  # starts the pool
    engines = kernel.contexts["dreams"].runtime.engines
    accepted = await dream(client, **LONG)
    await running(client, accepted["dream_id"])
    # Only the worker processes this test's host started, by PID.
    for pid in list(engines.parallel._executor._processes):
        os.kill(pid, signal.SIGKILL)
    job = await settled(client, accepted["dream_id"])
    assert job["status"] == "completed" and job["mode"] == "sequential", job
    assert job["result"] == compute.dream(LONG["fragments"], branches=16, depth=8, seed=7)
    assert "parallel engine broken" in (await plugin_states(client))["dreams"]["reason"]
    await kernel.check_health()  # a new pool answers
    assert (await plugin_states(client))["dreams"]["state"] == "active"


async def _threads_drained(threads: ThreadPoolExecutor) -> None:
    """Every call handed to `threads` before now has returned: one call per
    thread of the pool, each waiting for all the others, can only run once
    every thread is free of what was queued ahead of them (the queue is FIFO).
    Bounded: a barrier that does not fill within 30 s breaks and fails the test."""
    workers = threads._max_workers
    barrier = threading.Barrier(workers)
    await asyncio.gather(*(asyncio.wrap_future(threads.submit(barrier.wait, 30))
                           for _ in range(workers)))


async def test_cancelling_a_running_dream_stops_its_branches(lukhas_host, monkeypatch):
    started: list[int] = []

    def counted(corpus, depth, seed, branch):
        started.append(branch)
        return original(corpus, depth, seed, branch)

    original = compute.dream_branch
    monkeypatch.setattr(compute, "dream_branch", counted)
    client = await lukhas_host([DREAMS])
    accepted = await dream(client, **LONG)
    await running(client, accepted["dream_id"])
    await eventually_async(lambda: started, 30, interval=0.01, what="a branch started")
    assert (await client.delete(f"/api/v1/dreams/{accepted['dream_id']}")).status == 204
    await problem(await client.get(f"/api/v1/dreams/{accepted['dream_id']}"), 404)
    runtime = client.app[KERNEL_KEY].contexts["dreams"].runtime
    runner = runtime.runner
    await eventually_async(lambda: not runner.running, 30, interval=0.01, what="the runner idle")
    begun = len(started)
    # No clock: the job's task has ended, so nothing submits another branch; and
    # once the engine's threads have drained, no branch handed to them before
    # can start later either (the sequential engine runs every branch there).
    await _threads_drained(runtime.engines.sequential.threads)
    assert len(started) == begun < LONG["branches"]  # no branch started after the cancel
    assert (await client.get("/api/v1/dreams/list")).status == 200
    assert (await (await client.get("/api/v1/dreams/list")).json())["count"] == 0


async def test_cancelling_a_queued_dream(lukhas_host, monkeypatch):
    monkeypatch.setenv("DREAMS_MAX_RUNNING", "1")
    client = await lukhas_host([DREAMS])
    first = await dream(client, **LONG)
    queued = await dream(client, branches=1, depth=1, seed=1)
    assert (await client.delete(f"/api/v1/dreams/{queued['dream_id']}")).status == 204
    assert (await client.delete(f"/api/v1/dreams/{first['dream_id']}")).status == 204
    listing = await (await client.get("/api/v1/dreams/list")).json()
    assert listing["items"] == []


async def test_event_loop_answers_while_a_sequential_dream_runs(lukhas_host):
    client = await lukhas_host([DREAMS])
    accepted = await dream(client, **LONG)
    await running(client, accepted["dream_id"])
    for _ in range(20):
        assert (await client.get("/healthz")).status == 200
    # All twenty answered while the dream was still computing: nothing blocks the loop.
    job = await (await client.get(f"/api/v1/dreams/{accepted['dream_id']}")).json()
    assert job["status"] == "running"
    await client.delete(f"/api/v1/dreams/{accepted['dream_id']}")


async def test_another_users_dream_is_not_found(lukhas_host):
    client = await lukhas_host([DREAMS])
    ada = await other_user(client)
    response = await client.post("/api/v1/dreams/parallel", json={"fragments": FRAGMENTS},
                                 headers=ada)
    adas = (await response.json())["dream_id"]
    mine = (await dream(client))["dream_id"]
    # Ada does not see the admin's dream; the admin may read hers but lists only its own.
    await problem(await client.get(f"/api/v1/dreams/{mine}", headers=ada), 404)
    await problem(await client.delete(f"/api/v1/dreams/{mine}", headers=ada), 404)
    assert (await client.get(f"/api/v1/dreams/{mine}")).status == 200
    listed = await (await client.get("/api/v1/dreams/list", headers=ada)).json()
    assert [item["dream_id"] for item in listed["items"]] == [adas]
    await problem(await client.get("/api/v1/dreams/drm_doesnotexist", headers=ada), 404)


async def test_list_is_paginated_newest_first(lukhas_host, monkeypatch):
    monkeypatch.setenv("DREAMS_MAX_PENDING_PER_USER", "100")
    client = await lukhas_host([DREAMS])
    made = [(await dream(client, branches=1, depth=1, seed=i))["dream_id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/v1/dreams/list", params=query)).json()
        assert page["count"] == len(page["items"]) <= 2
        seen += [item["dream_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


async def test_pending_dreams_per_user_are_capped(lukhas_host, monkeypatch):
    monkeypatch.setenv("DREAMS_MAX_PENDING_PER_USER", "2")
    monkeypatch.setenv("DREAMS_MAX_RUNNING", "1")
    client = await lukhas_host([DREAMS])
    first = await dream(client, **LONG)
    await dream(client, **LONG)
    body = await problem(await client.post("/api/v1/dreams/parallel", json=LONG), 429)
    assert "at most 2" in body["detail"]
    listing = await (await client.get("/api/v1/dreams/list")).json()
    assert listing["count"] == 2  # the refused one was not stored
    # Another user has a cap of their own.
    response = await client.post("/api/v1/dreams/parallel", json=LONG,
                                 headers=await other_user(client))
    assert response.status == 202
    for item in [*listing["items"], first, await response.json()]:
        await client.delete(f"/api/v1/dreams/{item['dream_id']}")


def _bad_bodies() -> list[tuple[Any, str]]:
    ok = {"fragments": ["a dream"]}
    return [
        ({}, "fragments"),
        ({"fragments": []}, "fragments"),
        ({"fragments": ["x"] * 65}, "fragments"),
        ({"fragments": [""]}, "fragments.0"),
        ({"fragments": ["x" * 2001]}, "fragments.0"),
        ({"fragments": [7]}, "fragments.0"),
        ({"fragments": "a dream"}, "fragments"),
        ({**ok, "branches": 0}, "branches"),
        ({**ok, "branches": 17}, "branches"),
        ({**ok, "branches": "4"}, "branches"),
        ({**ok, "branches": 2.5}, "branches"),
        ({**ok, "depth": 0}, "depth"),
        ({**ok, "depth": 9}, "depth"),
        ({**ok, "depth": True}, "depth"),
        ({**ok, "seed": "7"}, "seed"),
        ({**ok, "seed": 1.5}, "seed"),
        ({**ok, "seed": 2**63}, "seed"),
        ({**ok, "seed": -(2**63) - 1}, "seed"),
        ({**ok, "colour": "blue"}, "colour"),
        ([], ""),
    ]


@pytest.mark.parametrize(("body", "field"), _bad_bodies())
async def test_invalid_dream_is_422_and_stores_nothing(lukhas_host, body, field):
    client = await lukhas_host([DREAMS])
    problem_body = await problem(await client.post("/api/v1/dreams/parallel", json=body), 422)
    locations = [".".join(map(str, error["loc"][1:])) for error in problem_body["errors"]]
    assert field in locations, problem_body["errors"]
    assert (await (await client.get("/api/v1/dreams/list")).json())["count"] == 0


async def test_bounds_are_inclusive(lukhas_host, monkeypatch):
    monkeypatch.setenv("DREAMS_MAX_PENDING_PER_USER", "100")
    client = await lukhas_host([DREAMS])
    for body in ({"fragments": ["x" * 2000] * 64, "branches": 1, "depth": 1},
                 {"fragments": ["y"], "branches": 16, "depth": 8, "seed": 2**63 - 1},
                 {"fragments": ["z"], "seed": -(2**63)}):
        response = await client.post("/api/v1/dreams/parallel", json=body)
        assert response.status == 202, await response.text()
        await client.delete(f"/api/v1/dreams/{(await response.json())['dream_id']}")


async def test_malformed_json_and_bad_list_queries(lukhas_host):
    client = await lukhas_host([DREAMS])
    await problem(await client.post("/api/v1/dreams/parallel", data=b"{nope",
                                    headers={"Content-Type": "application/json"}), 400)
    for query in ({"limit": "0"}, {"limit": "101"}, {"limit": "many"}, {"cursor": "not-a-cursor"},
                  {"cursor": "WzFd"}):  # base64 of [1]: decodable, but not this list's
        body = await problem(await client.get("/api/v1/dreams/list", params=query), 422)
        assert body["errors"][0]["loc"][0] == "query"
    assert (await (await client.get("/api/v1/dreams/list")).json())["count"] == 0


async def test_disabled_dreams_answer_403(lukhas_host, monkeypatch):
    monkeypatch.setenv("DREAMS_ENABLED", "false")
    client = await lukhas_host([DREAMS])
    body = await problem(await client.get("/api/v1/dreams/list"), 403)
    assert body["detail"] == "dreams subsystem is not enabled"


async def test_metrics_count_jobs_by_status_and_mode(lukhas_host):
    client = await lukhas_host([DREAMS])
    await settled(client, (await dream(client, branches=1, depth=1, seed=3))["dream_id"])
    kernel = client.app[KERNEL_KEY]
    hook = kernel.implementation("lukhas_metrics", "dreams")
    registry = CollectorRegistry()
    for collector in hook(context=kernel.contexts["dreams"]):
        registry.register(collector)
    # The job counts are read again just after a job ends, a moment after its row.
    completed = 'lukhas_dream_jobs{mode="sequential",status="completed"} 1.0'

    def counted() -> str | None:
        text = generate_latest(registry).decode()
        return text if completed in text else None

    text = await eventually_async(counted, 10, what="the completed job counted")
    assert 'lukhas_dream_job_duration_seconds_count{mode="sequential",status="completed"} 1.0' in text


async def test_openapi_documents_the_dream_routes(lukhas_host):
    from openapi_spec_validator import validate

    client = await lukhas_host([DREAMS])
    document = await (await client.get("/openapi.json")).json()
    validate(document)
    paths = document["paths"]
    create = paths["/api/v1/dreams/parallel"]["post"]
    assert {"202", "422", "429"} <= set(create["responses"])
    assert set(paths["/api/v1/dreams/{dream_id}"]) == {"get", "delete"}
    assert [p["name"] for p in paths["/api/v1/dreams/list"]["get"]["parameters"]] == ["limit", "cursor"]
    request = document["components"]["schemas"]["DreamRequest"]["properties"]
    assert request["fragments"]["maxItems"] == 64 and request["branches"]["maximum"] == 16
