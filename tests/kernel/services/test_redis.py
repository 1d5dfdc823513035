"""Redis: rate limits shared by host processes, the plugins' shared cache (vivox's
drift metrics), what happens while Redis is unavailable, and bad settings.

Real `lukhas serve` processes share one SQLite file and the session's
redis-server; each test gets a Redis database number of its own, emptied first.
In-process hosts (`lukhas_host`) on one data dir stand in for processes where a
test needs to reach inside (two hosts never share anything but the database
and Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from lukhas_kernel.testing import KERNEL_KEY
from prometheus_client.parser import text_string_to_metric_families
from support.answers import PROBLEM, problem
from support.cli import add_user, lukhas, one_line_error
from support.host import serving
from support.net import free_port
from support.paths import TESTS
from support.polling import eventually_async
from support.urls import get, post
from support.vivox import VIVOX

NOTES = "sample_plugins.notes"  # POST /api/v1/notes: 3/minute per caller
DAY0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a Redis that hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def interactions(decisions: str, start: datetime = DAY0) -> list[dict[str, Any]]:
    return [{"timestamp": (start + timedelta(hours=i)).isoformat(), "valence": 0.1 * (i % 3),
             "arousal": 0.2, "decision": d} for i, d in enumerate(decisions)]


def cache_lookups(url: str) -> dict[str, float]:
    """`lukhas_drift_cache_lookups_total` by result, from a real host's /metrics."""
    status, _, body = get(url + "/metrics")
    assert status == 200
    return {s.labels["result"]: s.value for f in text_string_to_metric_families(body.decode())
            for s in f.samples if s.name == "lukhas_drift_cache_lookups_total"}


# -- rate limits shared by three processes -------------------------------------------


def test_three_processes_allow_exactly_the_limit_together(tmp_path, redis_url):
    limit, sent = 7, 16
    ops_id, token = add_user(tmp_path, "ops", "--admin")
    env = {"LUKHAS_RATE_LIMIT_STORAGE": redis_url, "VIVOX_READ_RATE_LIMIT": f"{limit}/minute"}
    with ExitStack() as stack:
        hosts = [stack.enter_context(serving(tmp_path, env)) for _ in range(3)]
        answers = [get(f"{hosts[i % 3].url}/api/v1/drift/{ops_id}", token) for i in range(sent)]
    statuses = [status for status, _, _ in answers]
    assert statuses.count(200) == limit and statuses.count(429) == sent - limit, statuses
    assert statuses[:limit] == [200] * limit  # the first ones, whichever process served them
    for _, headers, body in answers[limit:]:
        assert headers["Content-Type"].startswith(PROBLEM)
        assert json.loads(body)["status"] == 429
        assert int(headers["Retry-After"]) >= 1
        assert headers["RateLimit-Limit"] == str(limit) and headers["RateLimit-Remaining"] == "0"
        assert int(headers["RateLimit-Reset"]) >= 1


# -- the shared cache ----------------------------------------------------------------


def test_an_update_through_one_process_is_read_through_the_other(tmp_path, redis_url):
    ops_id, token = add_user(tmp_path, "ops", "--admin")
    drift = f"/api/v1/drift/{ops_id}"
    with serving(tmp_path, {"LUKHAS_CACHE_URL": redis_url}) as a, \
            serving(tmp_path, {"LUKHAS_CACHE_URL": redis_url}) as b:
        first = post(a.url + "/api/v1/drift/update", token,
                     {"user_id": ops_id, "interactions": interactions("aab" * 10)}, 200)
        # A computed and cached it on update; B's first read is a hit on A's value.
        assert json.loads(get(b.url + drift, token)[2]) == first
        assert cache_lookups(b.url) == {"hit": 1.0, "miss": 0.0}
        second = post(b.url + "/api/v1/drift/update", token,
                      {"user_id": ops_id, "interactions": interactions("ccd" * 10, DAY0 + timedelta(days=2))},
                      200)
        assert second["interactions"] == 60 and second != first
        assert json.loads(get(a.url + drift, token)[2]) == second
        assert cache_lookups(a.url).get("hit") == 1.0  # B's value, read from Redis


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "redis"])
async def test_a_computation_that_started_before_an_update_is_never_served_after_it(
        lukhas_host, redis_url, shared):
    settings = {"cache_url": redis_url} if shared else {}
    client = await lukhas_host([VIVOX], **settings)
    kernel = client.app[KERNEL_KEY]
    person, _ = await kernel.services.accounts.create_user("ada")
    user_id = person.id
    await client.post("/api/v1/drift/update",
                      json={"user_id": user_id, "interactions": interactions("ab" * 5)})
    engine = kernel.contexts["vivox"].runtime.engine
    engine.invalidate(user_id)  # the next read computes
    computing, release = asyncio.Event(), asyncio.Event()
    compute = engine.compute

    async def held_once(uid: str) -> Any:
        result = await compute(uid)
        if not computing.is_set():  # the first computation: old data, held back
            computing.set()
            await release.wait()
        return result

    engine.compute = held_once
    slow = asyncio.ensure_future(client.get(f"/api/v1/drift/{user_id}"))
    await computing.wait()
    updated = await client.post("/api/v1/drift/update",
                                json={"user_id": user_id, "interactions": interactions("cc" * 5)})
    fresh = await updated.json()
    release.set()
    old = await (await slow).json()
    assert old["interactions"] == 10 and fresh["interactions"] == 20
    for _ in range(2):  # the old result was not kept: every read is the update's
        assert await (await client.get(f"/api/v1/drift/{user_id}")).json() == fresh


# -- Redis unavailable -----------------------------------------------------------------


class Relay:
    """A TCP relay to Redis on loopback that can be cut (every connection dropped,
    new ones refused) and restored on the same port: one process losing Redis."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_an_undelivered_invalidation_is_delivered_when_redis_answers_again(
        lukhas_host, redis_url, redis_server):
    relay = Relay(redis_server.port)
    await relay.restore()
    a = await lukhas_host([VIVOX], cache_url=redis_url.replace(str(redis_server.port), str(relay.port)))
    b = await lukhas_host([VIVOX], cache_url=redis_url)  # same database, Redis directly
    person, _ = await a.app[KERNEL_KEY].services.accounts.create_user("ada")
    drift = f"/api/v1/drift/{person.id}"
    before = await (await a.post("/api/v1/drift/update", json={
        "user_id": person.id, "interactions": interactions("ab" * 5)})).json()
    assert await (await b.get(drift)).json() == before

    await relay.cut()  # A loses Redis: its update cannot invalidate B's cached value
    after = await (await a.post("/api/v1/drift/update", json={
        "user_id": person.id, "interactions": interactions("cc" * 5)})).json()
    assert after["interactions"] == 20
    assert await (await a.get(drift)).json() == after  # A never serves what it invalidated
    assert await (await b.get(drift)).json() == before  # the bounded staleness: until delivered

    await relay.restore()

    async def delivered() -> bool:  # A retries Redis at most once a second; each read tries to deliver
        assert await (await a.get(drift)).json() == after
        return await (await b.get(drift)).json() == after

    await eventually_async(delivered, 10, interval=0.1, what="B serving the update")
    assert await (await b.get(drift)).json() == after
    await relay.cut()


@pytest.mark.parametrize("dead", ["refused", "silent"])
async def test_without_redis_limited_routes_are_503_and_drift_is_computed(
        lukhas_host, monkeypatch, silent_port, dead):
    port = silent_port if dead == "silent" else free_port()
    url = f"redis://127.0.0.1:{port}/0"
    monkeypatch.setenv("VIVOX_READ_RATE_LIMIT", "")  # drift reads: the cache only
    client = await lukhas_host([VIVOX, NOTES], rate_limit_storage=url, cache_url=url, db_timeout_s=0.5)
    kernel = client.app[KERNEL_KEY]
    with structlog.testing.capture_logs() as events:
        answers = [await problem(await client.post("/api/v1/notes", json={"text": "hi"}), 503)
                   for _ in range(4)]
    # Asked once, then refused at once for a second instead of each request
    # waiting out the timeout again; the outage is logged once.
    assert answers[0]["detail"].startswith("rate-limit storage unavailable: ")
    assert any("failed less than 1 s ago" in a["detail"] for a in answers[1:]), answers
    assert [e["event"] for e in events if e["event"].startswith("ratelimit.")] == ["ratelimit.unavailable"]

    person, _ = await kernel.services.accounts.create_user("ada")
    with structlog.testing.capture_logs() as events:
        updated = await client.post("/api/v1/drift/update",
                                    json={"user_id": person.id, "interactions": interactions("ab" * 5)})
        assert updated.status == 200, await updated.text()
        expected = await updated.json()
        for _ in range(3):
            response = await client.get(f"/api/v1/drift/{person.id}")
            assert response.status == 200 and await response.json() == expected
    outages = [e for e in events if e["event"] == "cache.unavailable"]
    assert len(outages) == 1 and outages[0]["log_level"] == "warning", events


# -- bad settings ----------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("LUKHAS_RATE_LIMIT_STORAGE", "nosuch://x", "unknown storage scheme"),
    ("LUKHAS_RATE_LIMIT_STORAGE", "redis://127.0.0.1:port/0", "not a Redis URL"),
    ("LUKHAS_CACHE_URL", "nosuch://x", "unknown cache"),
    ("LUKHAS_CACHE_URL", "redis://127.0.0.1:port/0", "not a Redis URL"),
])
def test_an_unusable_storage_uri_stops_start_up(tmp_path, variable, value, reason):
    line = one_line_error(lukhas("serve", cwd=tmp_path, env={variable: value}), 2)
    assert line.startswith(f"lukhas: invalid setting {variable}: ") and reason in line


@pytest.mark.parametrize("variable", ["LUKHAS_RATE_LIMIT_STORAGE", "LUKHAS_CACHE_URL"])
def test_redis_without_redis_py_stops_start_up(tmp_path, variable):
    # A `redis` package that cannot be imported, first on the path: redis-py "not installed".
    (tmp_path / "shadow" / "redis").mkdir(parents=True)
    (tmp_path / "shadow" / "redis" / "__init__.py").write_text("raise ImportError('redis')\n")
    env = {variable: "redis://127.0.0.1:6379/0",
           "PYTHONPATH": f"{tmp_path / 'shadow'}:{TESTS}"}
    line = one_line_error(lukhas("serve", cwd=tmp_path, env=env), 2)
    assert line == (f"lukhas: invalid setting {variable}: "
                    "redis:// needs redis-py: pip install 'lukhas-kernel[redis]'")
