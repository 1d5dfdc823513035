"""Vivox: uncached drift metrics of a user with 100,000 interactions, updates, cached reads.

- A real `lukhas serve` on 127.0.0.1 with a fresh data dir (SQLite). The first
  admin adds a user (`lukhas users add`, before the start) and posts 100
  batches of 1,000 interactions for it through `POST /api/v1/drift/update`,
  timestamps spread over 365 days, decisions from 12, valence and arousal
  uniform, from a fixed RNG: 100,000 interactions. Each post is timed
  (client side, loopback): *update of 1,000* is the median and the p95 of
  the 100 (target ≤ 100 ms; each includes the recomputed metrics it answers).
- Uncached reads: the host runs with `VIVOX_CACHE_TTL_S=0`, so every
  `GET /api/v1/drift/{user_id}` computes the metrics (7 daily values over the
  user's last week, CONTRACT §8). 90 sequential requests (under the contract's
  100/min per caller); p50 and p95 (target p95 ≤ 20 ms).
- Cached reads: a second host on the same database with the default cache
  and `VIVOX_READ_RATE_LIMIT=` (empty: no limit; the contract's 100/min per
  caller would answer 429 to a load test from one caller), `wrk -t2 -c64 -d10s` after a 2 s warm-up, 3 runs
  alternating with the reference, medians. Reference: `bare_app.py` answering
  the same path with a constant metrics document.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._common import BenchError, Figure, median, percentile, progress, stop
from .auth_throughput import load_test, measure, median_of, start_bare, start_lukhas

__all__ = ["run"]

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
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method="GET" if body is None else "POST",
        headers={**headers, "Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        if response.status != 200:
            raise BenchError(f"{request.method} {path} answered {response.status}")
    return (time.perf_counter() - started) * 1000


def _batches(user_id: str) -> list[dict[str, Any]]:
    rng = random.Random(2026)
    seconds = 365 * 24 * 3600
    return [{"user_id": user_id, "interactions": [
        {"timestamp": (START + timedelta(seconds=rng.randrange(seconds))).isoformat(),
         "valence": round(rng.uniform(-1, 1), 3), "arousal": round(rng.random(), 3),
         "decision": rng.choice(DECISIONS)} for _ in range(BATCH)]} for _ in range(BATCHES)]


def _add_user(data_dir: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "lukhas_kernel", "users", "add", "subject"],
                          env={**os.environ, "LUKHAS_DATA_DIR": str(data_dir)},
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"lukhas users add: {done.stderr.strip()}")
    return done.stdout.split()[1]  # "user_id: usr_…"


def run() -> list[Figure]:
    """Measure; see the module docstring for exactly what."""
    with load_test() as (tmp, servers):
        uncached = start_lukhas(tmp, {"VIVOX_CACHE_TTL_S": "0"})
        servers.append(uncached)
        data_dir = tmp / "lukhas-1" / "data"
        user_id = _add_user(data_dir)
        updates = [_timed_ms(uncached.port, uncached.headers, "/api/v1/drift/update", batch)
                   for batch in _batches(user_id)]
        progress(f"{BATCHES * BATCH} interactions posted: update median {median(updates):.1f} ms, "
                 f"p95 {percentile(updates, 95):.1f} ms")
        path = f"/api/v1/drift/{user_id}"
        reads = [_timed_ms(uncached.port, uncached.headers, path) for _ in range(UNCACHED_READS)]
        progress(f"uncached GET: p50 {median(reads):.1f} ms, p95 {percentile(reads, 95):.1f} ms")
        stop(uncached.process)
        servers.remove(uncached)

        cached = start_lukhas(tmp / "cached", {"LUKHAS_DATA_DIR": str(data_dir),
                                               "VIVOX_READ_RATE_LIMIT": ""},
                              headers=uncached.headers)  # the same database and admin
        servers.append(cached)
        servers.append(bare := start_bare(tmp, cached.headers))
        lukhas_runs, bare_runs = measure(cached, bare, path=path)

    return [
        Figure("uncached GET drift (100,000 interactions), p95", percentile(reads, 95), "ms",
               target=TARGET_UNCACHED_P95_MS),
        Figure("uncached GET drift, p50", median(reads), "ms"),
        Figure("POST update of 1,000 interactions, median", median(updates), "ms",
               target=TARGET_UPDATE_MS),
        Figure("POST update of 1,000 interactions, p95", percentile(updates, 95), "ms"),
        Figure("cached GET drift, requests/s", median_of(lukhas_runs, "rps"), "req/s",
               reference=median_of(bare_runs, "rps"), higher_is_better=True),
        Figure("cached GET drift, p99 latency", median_of(lukhas_runs, "p99_ms"), "ms",
               reference=median_of(bare_runs, "p99_ms")),
        Figure("cached GET non-2xx answers, all measured runs", sum(r.non_2xx for r in lukhas_runs),
               "answers", target=0, reference=sum(r.non_2xx for r in bare_runs)),
    ]
