"""Dream jobs survive a host killed mid-job: run again once, then `interrupted`.

Real `lukhas serve` processes on 127.0.0.1, killed by the PID this test started.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import add_user
from support.dream_inputs import LONG
from support.dreams import job, wait_job
from support.host import kill_9, serving
from support.urls import get, post

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.both_databases]

#: LONG (64 × 16 × 8) is over the default DREAMS_MAX_JOB_COST: a job that runs for seconds.
ENV = {"DREAMS_MAX_RUNNING": "1", "DREAMS_MAX_JOB_COST": str(64 * 16 * 8)}


def kill_mid_job(tmp_path: Path, env: dict[str, str], token: str,
                 dream: tuple[str, str] | None = None) -> tuple[str, str]:
    """Start a host, (submit and) wait for the dream to run on it, then SIGKILL
    the host; returns the dream's id and the start time of that run.

    A dream killed before shows `running` from the start: this host's own run
    is the one with another start time."""
    with serving(tmp_path, env, expect_exit=None) as host:
        if dream is None:
            dream_id, before = post(f"{host.url}/api/v1/dreams/parallel", token, LONG, 202)["dream_id"], None
        else:
            dream_id, before = dream
        started = wait_job(host.url, token, dream_id,
                           lambda j: j["status"] == "running" and j["started_at"] != before)["started_at"]
        kill_9(host.process)  # no teardown: the job is left `running` in the table
        host.process.wait(timeout=15)
    return dream_id, started


def test_job_left_running_is_run_again_once(tmp_path, database_env):
    env = {**ENV, **database_env}
    _, token = add_user(tmp_path, "alice", env=database_env)
    dream_id, _ = kill_mid_job(tmp_path, env, token)
    with serving(tmp_path, env) as host:
        done = wait_job(host.url, token, dream_id, lambda j: j["status"] in {"completed", "failed"})
    assert done["status"] == "completed" and done["result"]["branches"], done


def test_job_interrupted_twice_is_failed_interrupted(tmp_path, database_env):
    env = {**ENV, **database_env}
    _, token = add_user(tmp_path, "alice", env=database_env)
    first = kill_mid_job(tmp_path, env, token)
    dream_id, _ = kill_mid_job(tmp_path, env, token, first)  # its second run is killed too
    with serving(tmp_path, env) as host:
        done = job(host.url, token, dream_id)
        assert (done["status"], done["error"]) == ("failed", "interrupted")
        status, _, body = get(f"{host.url}/api/v1/dreams/list", token)
        assert [item["status"] for item in json.loads(body)["items"]] == ["failed"]
