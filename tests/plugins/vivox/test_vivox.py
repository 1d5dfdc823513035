"""The vivox plugin through the real host: metrics as its README defines them, cache,
rate limit, permissions, all-or-nothing updates, analysis and profiles."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from lukhas_kernel.testing import KERNEL_KEY
from prometheus_client import CollectorRegistry, generate_latest
from support.answers import problem
from support.vivox import VIVOX, interaction, update, user

pytestmark = pytest.mark.both_databases

DAY0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


# -- an independent reference: the README's formulas read literally, by brute force ----------


def _pstd(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _entropy(counts: Counter) -> float:
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def _jsd(p: Counter, q: Counter) -> float:
    sp, sq = sum(p.values()), sum(q.values())
    out = 0.0
    for k in set(p) | set(q):
        a, b = p[k] / sp, q[k] / sq
        m = (a + b) / 2
        out += (a / 2 * math.log2(a / m) if a else 0) + (b / 2 * math.log2(b / m) if b else 0)
    return out


def reference(items: list[dict]) -> dict[str, float]:
    """The four metrics over `items` (sorted by time, then sending order)."""
    ordered = sorted(enumerate(items), key=lambda p: (datetime.fromisoformat(p[1]["timestamp"]), p[0]))
    ordered = [item for _, item in ordered]
    window, history = ordered[-50:], ordered[:-50]
    w = Counter(i["decision"] for i in window)
    h = Counter(i["decision"] for i in history)
    k = len(set(i["decision"] for i in ordered))
    stability = 1.0 if len(window) < 2 else min(1, max(0, 1 - (
        _pstd([i["valence"] for i in window]) + 2 * _pstd([i["arousal"] for i in window])) / 2))
    coherence = 1.0 if k <= 1 else 1 - _entropy(w) / math.log2(k)
    consistency = 1.0 if not history else 1 - _jsd(w, h)
    return {"coherence_score": coherence, "emotional_stability": stability,
            "behavioral_consistency": consistency,
            "overall_drift": 1 - (coherence + stability + consistency) / 3}


def reference_series(items: list[dict], days: int, until: date) -> list[tuple[date, float]]:
    first = min(datetime.fromisoformat(i["timestamp"]).astimezone(UTC).date() for i in items)
    out = []
    for offset in range(days - 1, -1, -1):
        day = until - timedelta(days=offset)
        if day < first:
            continue
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        upto = [i for i in items if datetime.fromisoformat(i["timestamp"]) < end]
        out.append((day, reference(upto)["overall_drift"]))
    return out


def reference_slope(series: list[tuple[date, float]]) -> float:
    if len(series) < 2:
        return 0.0
    xs, ys = [d.toordinal() for d, _ in series], [v for _, v in series]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def random_interactions(rng: random.Random, count: int, days: int) -> list[dict]:
    return [interaction(DAY0 + timedelta(minutes=rng.randrange(days * 24 * 60)),
                        rng.choice("abcde"[: rng.randint(1, 5)]), rng.uniform(-1, 1), rng.random())
            for _ in range(count)]


# -- metrics ----------------------------------------------------------------------


async def test_metrics_match_the_contract_for_random_histories(lukhas_host):
    client = await lukhas_host([VIVOX])
    rng = random.Random(4)
    for name, count in (("one", 1), ("few", 30), ("many", 180)):
        user_id, _ = await user(client, name)
        items = random_interactions(rng, count, days=10)
        # Sent in two batches, out of time order: order is by timestamp.
        await update(client, user_id, items[: count // 2 + 1])
        got = await update(client, user_id, items[count // 2 + 1:] or [items[0]])
        items = items + ([] if items[count // 2 + 1:] else [items[0]])
        expected = reference(items)
        for field, value in expected.items():
            assert got[field] == pytest.approx(value, abs=1e-9), (name, field)
        last = max(datetime.fromisoformat(i["timestamp"]) for i in items).date()
        assert got["drift_velocity"] == pytest.approx(
            reference_slope(reference_series(items, 7, last)), abs=1e-9)
        assert got["interactions"] == len(items)
        assert await (await client.get(f"/api/v1/drift/{user_id}")).json() == got


async def test_window_and_history_by_hand(lukhas_host):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    items = [interaction(DAY0 + timedelta(seconds=i), "x" if i < 10 else "y", 0.5, 0.5)
             for i in range(60)]
    got = await update(client, user_id, items)
    # Window: 50 × y (H = 0, k = 2 → coherence 1); history 10 × x → JSD 1 → consistency 0.
    assert got["coherence_score"] == 1.0 and got["emotional_stability"] == 1.0
    assert got["behavioral_consistency"] == pytest.approx(0.0)
    assert got["overall_drift"] == pytest.approx(1 / 3)


async def test_velocity_by_hand(lukhas_host):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    # Day 1: a, a → drift 0. Day 2 adds b, b: window {a:2, b:2}, k = 2 → coherence 0,
    # drift 1/3. Two days: slope 1/3 per day.
    await update(client, user_id, [interaction(DAY0, "a"), interaction(DAY0, "a")])
    got = await update(client, user_id, [interaction(DAY0 + timedelta(days=1), "b")] * 2)
    assert got["overall_drift"] == pytest.approx(1 / 3)
    assert got["drift_velocity"] == pytest.approx(1 / 3)
    # A day without interactions repeats the day before: day 4 → points (0, 1/3, 1/3, x).
    got = await update(client, user_id, [interaction(DAY0 + timedelta(days=3), "b")] * 2)
    series = [(DAY0.date() + timedelta(days=i), v) for i, v in
              enumerate([0.0, 1 / 3, 1 / 3, got["overall_drift"]])]
    assert got["drift_velocity"] == pytest.approx(reference_slope(series))


async def test_fewer_than_two_interactions_and_none(lukhas_host):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    empty = await (await client.get(f"/api/v1/drift/{user_id}")).json()
    assert empty["interactions"] == 0 and empty["overall_drift"] == 0.0
    assert empty["last_updated"] is None
    got = await update(client, user_id, [interaction(DAY0, "a", 0.9, 0.1)])
    assert (got["emotional_stability"], got["coherence_score"], got["behavioral_consistency"],
            got["drift_velocity"], got["overall_drift"]) == (1.0, 1.0, 1.0, 0.0, 0.0)
    assert got["last_updated"] is not None


# -- cache, rate limit, permissions --------------------------------------------------


def lookups(client: Any) -> dict[str, float]:
    kernel = client.app[KERNEL_KEY]
    registry = CollectorRegistry()
    for collector in kernel.implementation("lukhas_metrics", "vivox")(context=kernel.contexts["vivox"]):
        registry.register(collector)
    text = generate_latest(registry).decode()
    return {result: float(line.rsplit(" ", 1)[1]) for result in ("hit", "miss")
            for line in text.splitlines()
            if line.startswith(f'lukhas_drift_cache_lookups_total{{result="{result}"}}')}


async def test_cache_hit_and_invalidation_on_update(lukhas_host):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    await update(client, user_id, [interaction(DAY0, "a")] * 3)
    before = lookups(client)
    first = await (await client.get(f"/api/v1/drift/{user_id}")).json()
    second = await (await client.get(f"/api/v1/drift/{user_id}")).json()
    assert first == second
    after = lookups(client)
    assert after["hit"] == before.get("hit", 0) + 2  # the update computed and cached it
    changed = await update(client, user_id, [interaction(DAY0, "b")] * 3)
    fresh = await (await client.get(f"/api/v1/drift/{user_id}")).json()
    assert fresh == changed and fresh["interactions"] == 6 and fresh != first


async def test_reads_answer_each_users_current_metrics_past_the_cache_size(lukhas_host):
    """One user's worth of cache: reading two users in turn evicts each in turn,
    and every read answers that user's metrics as they are now."""
    client = await lukhas_host([VIVOX], config={"plugins": {"vivox": {"cache_size": 1}}})
    ada, _ = await user(client, "ada")
    bob, _ = await user(client, "bob")
    answered = {ada: await update(client, ada, [interaction(DAY0, "a")] * 3),
                bob: await update(client, bob, [interaction(DAY0, "a"), interaction(DAY0, "b")])}
    for user_id in (ada, bob, ada, bob, bob):
        assert await (await client.get(f"/api/v1/drift/{user_id}")).json() == answered[user_id]
    answered[ada] = await update(client, ada, [interaction(DAY0, "c")] * 3)
    for user_id in (ada, bob, ada):
        assert await (await client.get(f"/api/v1/drift/{user_id}")).json() == answered[user_id]


async def test_concurrent_misses_compute_once(lukhas_host):
    import asyncio

    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    await update(client, user_id, [interaction(DAY0, "a")] * 3)
    engine = client.app[KERNEL_KEY].contexts["vivox"].runtime.engine
    engine.invalidate(user_id)
    calls = 0
    compute = engine.compute

    async def counted(uid):
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return await compute(uid)

    engine.compute = counted
    answers = await asyncio.gather(*(client.get(f"/api/v1/drift/{user_id}") for _ in range(10)))
    assert {a.status for a in answers} == {200} and calls == 1


async def test_reads_are_rate_limited_per_caller(lukhas_host):
    client = await lukhas_host([VIVOX])
    user_id, headers = await user(client)
    for _ in range(100):
        assert (await client.get(f"/api/v1/drift/{user_id}", headers=headers)).status == 200
    limited = await client.get(f"/api/v1/drift/{user_id}", headers=headers)
    await problem(limited, 429)
    assert limited.headers["RateLimit-Limit"] == "100" and "Retry-After" in limited.headers
    # Another caller has a budget of their own.
    assert (await client.get(f"/api/v1/drift/{user_id}")).status == 200


async def test_permissions(lukhas_host):
    client = await lukhas_host([VIVOX])
    ada, ada_headers = await user(client, "ada")
    bob, _ = await user(client, "bob")
    assert (await client.get(f"/api/v1/drift/{ada}", headers=ada_headers)).status == 200
    await problem(await client.get(f"/api/v1/drift/{bob}", headers=ada_headers), 404)
    await problem(await client.get("/api/v1/drift/usr_nobody"), 404)
    body = {"user_id": ada, "interactions": [interaction(DAY0, "a")]}
    await problem(await client.post("/api/v1/drift/update", json=body, headers=ada_headers), 403)
    await problem(await client.get("/api/v1/drift/analysis", headers=ada_headers), 403)
    await problem(await client.get("/api/v1/drift/analysis", params={"user_id": bob},
                                   headers=ada_headers), 404)
    assert (await client.get("/api/v1/drift/analysis", params={"user_id": ada},
                             headers=ada_headers)).status == 200


# -- all or nothing -------------------------------------------------------------------


GOOD = interaction(DAY0, "a", 0.1, 0.2)


@pytest.mark.parametrize(("bad", "where"), [
    ({**GOOD, "valence": 1.5}, "valence"),
    ({**GOOD, "valence": -1.01}, "valence"),
    ({**GOOD, "arousal": -0.1}, "arousal"),
    ({**GOOD, "arousal": 1.2}, "arousal"),
    ({**GOOD, "decision": ""}, "decision"),
    ({**GOOD, "decision": "d" * 65}, "decision"),
    ({**GOOD, "timestamp": "yesterday"}, "timestamp"),
    ({**GOOD, "timestamp": "2026-11-01T09:00:00"}, "timestamp"),  # no offset: not RFC 3339
    ({**GOOD, "mood": "odd"}, "mood"),
    ({k: v for k, v in GOOD.items() if k != "decision"}, "decision"),
])
async def test_one_bad_interaction_stores_none(lukhas_host, bad, where):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    body = {"user_id": user_id, "interactions": [GOOD, GOOD, bad]}
    found = await problem(await client.post("/api/v1/drift/update", json=body), 422)
    assert any(e["loc"][:3] == ["body", "interactions", 2] and where in e["loc"] for e in found["errors"])
    assert (await (await client.get(f"/api/v1/drift/{user_id}")).json())["interactions"] == 0


@pytest.mark.parametrize("items", [[], [GOOD] * 1001])
async def test_batch_size_bounds(lukhas_host, items):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    await problem(await client.post("/api/v1/drift/update",
                                    json={"user_id": user_id, "interactions": items}), 422)
    assert (await update(client, user_id, [GOOD] * 1000))["interactions"] == 1000


async def test_unknown_user_and_bad_json_store_nothing(lukhas_host):
    client = await lukhas_host([VIVOX])
    await problem(await client.post("/api/v1/drift/update",
                                    json={"user_id": "usr_nobody", "interactions": [GOOD]}), 404)
    await problem(await client.post("/api/v1/drift/update", data=b'{"user_id": ',
                                    headers={"Content-Type": "application/json"}), 400)
    raw = b'{"user_id": "x", "interactions": [{"timestamp": "2026-11-01T09:00:00Z", ' \
          b'"valence": NaN, "arousal": 0, "decision": "a"}]}'
    response = await client.post("/api/v1/drift/update", data=raw,
                                 headers={"Content-Type": "application/json"})
    assert response.status in (400, 422)
    summary = await (await client.get("/api/v1/drift/analysis")).json()
    assert summary["users"] == 0


# -- analysis ---------------------------------------------------------------------------


async def test_analysis_series_slope_and_trend(lukhas_host):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    items = random_interactions(random.Random(8), 120, days=12)
    await update(client, user_id, items)
    last = max(datetime.fromisoformat(i["timestamp"]) for i in items).date()
    for query, until in (({"days": "30"}, last), ({"days": "5", "until": "2026-11-06"}, date(2026, 11, 6))):
        got = await (await client.get("/api/v1/drift/analysis",
                                      params={"user_id": user_id, **query})).json()
        expected = reference_series(items, int(query["days"]), until)
        assert [p["date"] for p in got["series"]] == [d.isoformat() for d, _ in expected]
        for point, (_, value) in zip(got["series"], expected, strict=True):
            assert point["overall_drift"] == pytest.approx(value, abs=1e-9)
        slope = reference_slope(expected)
        assert got["slope_per_day"] == pytest.approx(slope, abs=1e-9)
        assert got["trend"] == ("stable" if abs(slope) < 0.005 else "rising" if slope > 0 else "falling")
        assert got["days"] == int(query["days"])


@pytest.mark.parametrize("query", [{"days": "0"}, {"days": "366"}, {"until": "someday"},
                                   {"days": "many"}])
async def test_analysis_bounds(lukhas_host, query):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    await problem(await client.get("/api/v1/drift/analysis", params={"user_id": user_id, **query}), 422)


async def test_population_summary(lukhas_host):
    client = await lukhas_host([VIVOX])
    drifts = {}
    for name, decisions in (("calm", "aaaa"), ("torn", "abab"), ("new", "")):
        user_id, _ = await user(client, name)
        if decisions:
            drifts[user_id] = (await update(client, user_id, [
                interaction(DAY0 + timedelta(hours=i), d) for i, d in enumerate(decisions)]))["overall_drift"]
    summary = await (await client.get("/api/v1/drift/analysis")).json()
    assert summary["users"] == 2
    assert summary["mean_drift"] == pytest.approx(sum(drifts.values()) / 2)
    assert [u["user_id"] for u in summary["top_drifting"]] == sorted(drifts, key=drifts.get, reverse=True)


# -- profiles ----------------------------------------------------------------------------


async def test_profile_includes_drift_only_when_asked(lukhas_host):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    metrics = await update(client, user_id, [GOOD, GOOD])
    profile = await (await client.get(f"/api/v1/users/{user_id}", params={"include_drift": "true"})).json()
    assert profile["drift_metrics"] == metrics
    plain = await (await client.get(f"/api/v1/users/{user_id}")).json()
    assert plain["drift_metrics"] is None


@pytest.mark.chaos
@pytest.mark.parametrize("how", ["disabled", "failed", "raises"])
async def test_profile_without_working_vivox_is_null_and_200(lukhas_host, monkeypatch, how):
    if how == "disabled":
        monkeypatch.setenv("VIVOX_ENABLED", "false")
    chaos = {"failed": "vivox:setup:raise", "raises": "vivox:request:raise"}.get(how, "")
    client = await lukhas_host([VIVOX], chaos=chaos)
    user_id, _ = await user(client)
    response = await client.get(f"/api/v1/users/{user_id}", params={"include_drift": "true"})
    assert response.status == 200
    assert (await response.json())["drift_metrics"] is None


async def test_openapi_documents_the_drift_routes(lukhas_host):
    from openapi_spec_validator import validate

    client = await lukhas_host([VIVOX])
    document = await (await client.get("/openapi.json")).json()
    validate(document)
    assert {"/api/v1/drift/{user_id}", "/api/v1/drift/update", "/api/v1/drift/analysis"} <= set(
        document["paths"])


async def test_analysis_over_many_active_days(lukhas_host):
    # More days with interactions than one windows query holds (100).
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    rng = random.Random(3)
    items = [interaction(DAY0 + timedelta(days=d, hours=rng.randrange(24)), rng.choice("abc"),
                         rng.uniform(-1, 1), rng.random()) for d in range(150) for _ in range(2)]
    await update(client, user_id, items)
    got = await (await client.get("/api/v1/drift/analysis",
                                  params={"user_id": user_id, "days": "365"})).json()
    last = max(datetime.fromisoformat(i["timestamp"]) for i in items).date()
    expected = reference_series(items, 365, last)
    assert len(got["series"]) == len(expected) == 150
    for point, (_, value) in zip(got["series"], expected, strict=True):
        assert point["overall_drift"] == pytest.approx(value, abs=1e-9)


async def test_disabled_vivox_drift_routes_answer_403(lukhas_host, monkeypatch):
    # Installed, so its /api/v1/drift prefix is known from metadata without importing it.
    monkeypatch.setenv("VIVOX_ENABLED", "false")
    client = await lukhas_host([], installed=True)
    for path in ("/api/v1/drift/usr_x", "/api/v1/drift/analysis", "/api/v1/vivox/anything"):
        body = await problem(await client.get(path), 403)
        assert body["detail"] == "vivox subsystem is not enabled"
