"""Vivox: uncached drift metrics of a user with 100,000 interactions, and updates.

- A real `lukhas serve` on 127.0.0.1 with a fresh data dir (SQLite) and
  `VIVOX_CACHE_TTL_S=0`. The first admin adds a user (`lukhas users add`)
  and posts 100 batches of 1,000 interactions for it through
  `POST /api/v1/drift/update`, timestamps spread over 365 days, decisions
  from 12, valence and arousal uniform, from a fixed RNG: 100,000
  interactions. Each post is timed (client side, loopback): *update of
  1,000* is the median and the p95 of the 100 (target ≤ 100 ms; each
  includes the recomputed metrics it answers).
- Uncached reads: with no cache, every `GET /api/v1/drift/{user_id}`
  computes the metrics (7 daily values over the user's last week, as
  plugins/vivox/README.md defines them). 90 sequential requests (under the contract's 100/min per caller); p50
  and p95 (target p95 ≤ 20 ms).
- The cached read under load, at 1, 64 and 100 connections against bare
  aiohttp, is in the routes module.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ._common import BenchError, Figure, http_json, median, percentile, progress
from ._servers import add_user, server_dir, start_lukhas

__all__ = ["batches", "run"]

BATCHES = 100
BATCH = 1000
UNCACHED_READS = 90
TARGET_UNCACHED_P95_MS = 20.0
TARGET_UPDATE_MS = 100.0
DECISIONS = [f"choice-{i}" for i in range(12)]
START = datetime(2025, 11, 24, tzinfo=UTC)


def _timed_ms(port: int, headers: dict[str, str], path: str,
              body: dict[str, Any] | None = None) -> float:
    """GET `path` (or POST `body` as JSON); milliseconds until the whole 200 answer."""
    method = "GET" if body is None else "POST"
    started = time.perf_counter()
    status, answer = http_json(port, method, path, headers, body)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if status != 200:
        raise BenchError(f"{method} {path} answered {status}: {answer[:200]!r}")
    return elapsed_ms


def batches(user_id: str, count: int = BATCHES) -> list[dict[str, Any]]:
    """`count` bodies of `POST /api/v1/drift/update`, BATCH interactions each,
    the same on every call (a fixed RNG)."""
    rng = random.Random(2026)
    seconds = 365 * 24 * 3600
    return [{"user_id": user_id, "interactions": [
        {"timestamp": (START + timedelta(seconds=rng.randrange(seconds))).isoformat(),
         "valence": round(rng.uniform(-1, 1), 3), "arousal": round(rng.random(), 3),
         "decision": rng.choice(DECISIONS)} for _ in range(BATCH)]} for _ in range(count)]


def run() -> list[Figure]:
    """Measure; see the module docstring for exactly what."""
    with server_dir() as (tmp, servers):
        servers.append(lukhas := start_lukhas(tmp, {"VIVOX_CACHE_TTL_S": "0"}))
        user_id = add_user(lukhas.workdir / "data", "subject")
        updates = [_timed_ms(lukhas.port, lukhas.headers, "/api/v1/drift/update", batch)
                   for batch in batches(user_id)]
        progress(f"{BATCHES * BATCH} interactions posted: update median {median(updates):.1f} ms, "
                 f"p95 {percentile(updates, 95):.1f} ms")
        path = f"/api/v1/drift/{user_id}"
        reads = [_timed_ms(lukhas.port, lukhas.headers, path) for _ in range(UNCACHED_READS)]
        progress(f"uncached GET: p50 {median(reads):.1f} ms, p95 {percentile(reads, 95):.1f} ms")

    return [
        Figure("uncached GET drift (100,000 interactions), p95", percentile(reads, 95), "ms",
               target=TARGET_UNCACHED_P95_MS),
        Figure("uncached GET drift, p50", median(reads), "ms"),
        Figure("POST update of 1,000 interactions, median", median(updates), "ms",
               target=TARGET_UPDATE_MS),
        Figure("POST update of 1,000 interactions, p95", percentile(updates, 95), "ms"),
    ]
