"""Dream jobs across host processes and machines: claims, leases, Dask.

Real `lukhas serve` processes on one database (a SQLite file or a real
PostgreSQL), killed only by the PIDs this test started; a Dask LocalCluster
on 127.0.0.1 started and closed by the test.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from lukhas_dreams import compute
from lukhas_dreams.models import DreamRequest
from lukhas_dreams.store import DreamStore, jobs
from lukhas_kernel import Database
from lukhas_kernel.testing import KERNEL_KEY
from support.answers import plugin_states
from support.cli import first_admin_token
from support.database import on_database
from support.dream_inputs import FRAGMENTS, LONG
from support.dreams import DREAMS, dream, job, set_parallel, settled, submit, wait_job
from support.host import Host, kill_9, serving
from support.net import free_port
from support.urls import get, send

pytestmark = pytest.mark.both_databases

MIGRATIONS = Path(compute.__file__).parent / "migrations"
#: Short polls and leases, so takeovers happen within a test's patience; LONG
#: (64 × 16 × 8) is over the default DREAMS_MAX_JOB_COST.
FAST = {"DREAMS_POLL_INTERVAL_S": "0.2", "DREAMS_MAX_PENDING_PER_USER": "100",
        "DREAMS_MAX_JOB_COST": str(64 * 16 * 8)}


def host_env(database_env: dict[str, str], **settings: str) -> dict[str, str]:
    return {**FAST, **database_env, **settings}


def rows(database_url: str) -> dict[str, dict[str, Any]]:
    """Every job's status, attempts and runner, read straight from the table."""
    found = asyncio.run(on_database(database_url, lambda conn: conn.execute(
        sa.select(jobs.c.id, jobs.c.status, jobs.c.attempts, jobs.c.runner)).all()))
    return {row.id: dict(row._mapping) for row in found}


@contextmanager
def host_running_long(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[Host, str, dict[str, Any]]]:
    """The first host (it makes the admin: its token) running the LONG dream: (host, token, job)."""
    with serving(tmp_path, env, expect_exit=None) as host:
        token = first_admin_token(host.process)
        dream_id = submit(host.url, token, LONG)
        yield host, token, wait_job(host.url, token, dream_id, lambda j: j["status"] == "running")


def kill(host: Host) -> None:
    """SIGKILL a host this test started, by its PID: no teardown, its jobs stay `running`."""
    kill_9(host.process)


# -- claims ------------------------------------------------------------------


async def test_concurrent_claimers_take_each_job_once(database_url):
    """Two engines (as two processes would have), eight claimers, 40 jobs of four
    owners (the claim's fair order joins every owner's running jobs)."""
    first, second = Database(database_url, timeout_s=30), Database(database_url, timeout_s=30)
    try:
        await first.migrate("dreams", MIGRATIONS)
        await second.migrate("dreams", MIGRATIONS)
        stores = [DreamStore(first), DreamStore(second)]
        request = DreamRequest(fragments=FRAGMENTS, branches=1, depth=1)
        made = [await stores[i % 2].create(f"usr_{i % 4}", request, "sequential", i, 1000)
                for i in range(40)]

        async def claimer(store: DreamStore, name: str) -> list[str]:
            taken = []
            while (claim := await store.claim_next(name, lease_s=60)).job is not None:
                taken.append(claim.job[0])
                assert claim.job[1]["attempts"] == 1
            return taken

        names = [f"claimer-{i}" for i in range(8)]
        taken = await asyncio.gather(*(claimer(stores[i % 2], name) for i, name in enumerate(names)))
        everything = [dream_id for claimed in taken for dream_id in claimed]
        assert sorted(everything) == sorted(made)  # none lost, none twice
        table = await first.read(lambda conn: conn.execute(
            sa.select(jobs.c.id, jobs.c.status, jobs.c.attempts, jobs.c.runner)).all())
        by_claimer = {dream_id: name for name, claimed in zip(names, taken, strict=True)
                      for dream_id in claimed}
        assert {row.id: (row.status, row.attempts, row.runner) for row in table} == {
            dream_id: ("running", 1, by_claimer[dream_id]) for dream_id in made}
        assert not await stores[1].has_work()
    finally:
        await first.dispose()
        await second.dispose()


def test_two_hosts_run_each_job_exactly_once(tmp_path, database_url, database_env):
    env = host_env(database_env, DREAMS_MAX_RUNNING="1")
    seeds = range(12)
    with serving(tmp_path, env) as a:
        token = first_admin_token(a.process)
        with serving(tmp_path, env) as b:
            made = {submit((a, b)[seed % 2].url, token,
                           {"fragments": FRAGMENTS, "branches": 4, "depth": 4, "seed": seed}): seed
                    for seed in seeds}
            for dream_id, seed in made.items():
                done = wait_job(b.url, token, dream_id, lambda j: j["status"] not in ("queued", "running"))
                assert done["status"] == "completed", done
                assert done["result"] == compute.dream(FRAGMENTS, branches=4, depth=4, seed=seed)
    claims = Counter(line["dream_id"] for host in (a, b) for line in host.events("dreams.claimed"))
    assert claims == Counter(set(made))  # each job claimed once, over both hosts
    runners = {line["runner"] for host in (a, b) for line in host.events("dreams.claimed")}
    table = rows(database_url)
    assert {dream_id: (table[dream_id]["status"], table[dream_id]["attempts"]) for dream_id in made} \
        == dict.fromkeys(made, ("completed", 1))
    assert {table[dream_id]["runner"] for dream_id in made} <= runners


# -- leases: a killed host, a deleted job ------------------------------------


def test_killed_hosts_job_is_taken_over_and_delete_reaches_the_running_host(
        tmp_path, database_url, database_env):
    env = host_env(database_env, DREAMS_MAX_RUNNING="1", DREAMS_LEASE_S="1.5")
    with host_running_long(tmp_path, env) as (a, token, first_run):
        kept = first_run["dream_id"]
        # B starts while A lives: it must not take A's job at start-up.
        with serving(tmp_path, env) as b:
            # A is busy, so B claims this one; deleting it through A stops it in B.
            deleted = submit(b.url, token, LONG)
            wait_job(b.url, token, deleted, lambda j: j["status"] == "running")
            assert job(b.url, token, kept)["started_at"] == first_run["started_at"]
            status, _ = send(f"{a.url}/api/v1/dreams/{deleted}", token, None, method="DELETE")
            assert status == 204
            kill(a)  # A dies mid-job
            # B takes A's job over once its lease has passed, and runs it to the end.
            done = wait_job(b.url, token, kept, lambda j: j["status"] not in ("queued", "running"))
            assert done["status"] == "completed" and len(done["result"]["branches"]) == 16, done
            assert done["started_at"] > first_run["started_at"]
            assert get(f"{b.url}/api/v1/dreams/{deleted}", token)[0] == 404
    assert [line["dream_id"] for line in a.events("dreams.claimed")] == [kept]
    assert [(line["dream_id"], line["attempt"]) for line in b.events("dreams.claimed")] == [
        (deleted, 1), (kept, 2)]
    # The deleted job was stopped in B and its end never recorded.
    assert deleted in {line["dream_id"] for line in b.events("dreams.cancelled")}
    assert [line["dream_id"] for line in b.events("dreams.finished")] == [kept]
    table = rows(database_url)
    assert set(table) == {kept} and table[kept]["attempts"] == 2
    assert table[kept]["runner"] == b.events("dreams.claimed")[0]["runner"]


def test_job_whose_hosts_die_twice_is_failed_interrupted_by_a_live_host(tmp_path, database_env):
    env = host_env(database_env, DREAMS_MAX_RUNNING="1", DREAMS_LEASE_S="1")
    with host_running_long(tmp_path, env) as (a, token, first_run):
        dream_id = first_run["dream_id"]
        with serving(tmp_path, env, expect_exit=None) as b:
            kill(a)
            # B's run (attempt 2) has begun when the start time changes.
            wait_job(b.url, token, dream_id, lambda j: j["started_at"] != first_run["started_at"])
            with serving(tmp_path, env) as c:
                kill(b)
                done = wait_job(c.url, token, dream_id, lambda j: j["status"] == "failed")
                assert done["error"] == "interrupted"
    assert c.events("dreams.claimed") == []


# -- Dask ----------------------------------------------------------------------


def _local_cluster(port: int) -> Any:
    from distributed import LocalCluster

    return LocalCluster(host="127.0.0.1", scheduler_port=port, n_workers=2, threads_per_worker=1,
                        processes=True, dashboard_address=None)


@pytest.mark.sqlite_only
@pytest.mark.chaos
async def test_dreams_on_a_dask_cluster_equal_sequential_and_fall_back(lukhas_host, monkeypatch):
    port = free_port()
    scheduler = f"tcp://127.0.0.1:{port}"
    monkeypatch.setenv("DREAMS_DASK_SCHEDULER", scheduler)
    monkeypatch.setenv("DREAMS_DASK_TIMEOUT_S", "1")
    client = await lukhas_host([DREAMS])
    kernel = client.app[KERNEL_KEY]
    await set_parallel(client, True)

    # No scheduler there yet: the dream runs sequentially, the plugin says why.
    job = await settled(client, (await dream(client, seed=5))["dream_id"])
    assert job["status"] == "completed" and job["mode"] == "sequential", job
    sequential = job["result"]
    assert sequential == compute.dream(FRAGMENTS, branches=4, depth=3, seed=5)
    dreams = (await plugin_states(client))["dreams"]
    assert dreams["state"] == "degraded" and scheduler in dreams["reason"], dreams

    cluster = await asyncio.to_thread(_local_cluster, port)
    try:
        await kernel.check_health()  # the periodic check, run now: it connects
        assert (await plugin_states(client))["dreams"]["state"] == "active"
        for seed in (5, 6):
            job = await settled(client, (await dream(client, seed=seed))["dream_id"])
            assert job["status"] == "completed" and job["mode"] == "parallel", job
            assert job["result"] == compute.dream(FRAGMENTS, branches=4, depth=3, seed=seed)
        assert job["result"] != sequential
        long = await settled(client, (await dream(client, **{**LONG, "branches": 4, "depth": 2}))["dream_id"])
        assert long["mode"] == "parallel"
        assert long["result"] == compute.dream(LONG["fragments"], branches=4, depth=2, seed=7)
    finally:
        await asyncio.to_thread(cluster.close)

    # The cluster is gone: sequential again, degraded, naming the scheduler.
    job = await settled(client, (await dream(client, seed=6))["dream_id"])
    assert job["status"] == "completed" and job["mode"] == "sequential", job
    dreams = (await plugin_states(client))["dreams"]
    assert dreams["state"] == "degraded" and scheduler in dreams["reason"], dreams


@pytest.mark.sqlite_only
async def test_dask_scheduler_without_distributed_is_a_reason_not_a_crash(lukhas_host, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    monkeypatch.setenv("DREAMS_DASK_SCHEDULER", "tcp://127.0.0.1:1")
    client = await lukhas_host([DREAMS])
    await set_parallel(client, True)
    job = await settled(client, (await dream(client, seed=3))["dream_id"])
    assert job["status"] == "completed" and job["mode"] == "sequential", job
    dreams = (await plugin_states(client))["dreams"]
    assert dreams["state"] == "degraded"
    assert "lukhas-dreams[distributed]" in dreams["reason"], dreams
