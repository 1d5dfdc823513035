"""Dreams: one 8-branch depth-8 dream on both engines, and `GET /api/v1/dreams/list` under load.

- Engines: the dream a job runs, timed the way a job runs it, through the
  plugin's `Engines.run` (the fragments analysed on a worker thread, then the
  branches, then the merge), in this process's event loop. Input: 64
  fragments of 300–2000 characters drawn from a fixed RNG, words from a
  4000-word made-up vocabulary with Zipf frequencies mixed with English stop
  words. Sequential: branches one after another on a worker thread.
  Parallel: the default pool (`process_pool(None)`: spawned processes, one
  per CPU), started and warmed before timing (`ping()` reaches every worker),
  so process start-up is not measured. 5 runs of each, alternating; medians.
  The results of the two engines must be identical, else the run fails. The
  target (parallel ≤ 0.6 × sequential) is stated for 2 cores.
- List throughput: a real `lukhas serve` on 127.0.0.1 with a fresh data dir,
  its first admin owning 25 completed tiny dreams, so the measured page is
  full (20 items, a next cursor); each request passes authentication and
  reads the page from SQLite. Reference: `bare_app.py` answering the same
  path with a constant page of the same shape. `wrk -t2 -c64 -d10s --latency`
  after a 2 s warm-up, 3 runs each alternating, medians (as auth_throughput).
  No target ratio is set: the bare handler neither authenticates nor queries
  a database.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lukhas_dreams.engine import DreamSpec, Engines, ParallelEngine, SequentialEngine, process_pool

from ._common import BenchError, Figure, median, progress
from .auth_throughput import (
    CONNECTIONS,
    DURATION_S,
    RUNS,
    load_test,
    measure,
    median_of,
    require_wrk,
    start_bare,
    start_lukhas,
)

__all__ = ["run"]

ENGINE_RUNS = 5
TARGET_PARALLEL_RATIO = 0.6
LIST_PATH = "/api/v1/dreams/list"
SEEDED_DREAMS = 25
SEED_LIMIT_S = 60.0
_STOP_WORDS = "the a of and to in was with on at as for from by it".split()


def fragments(seed: int = 1, count: int = 64) -> tuple[str, ...]:
    """Deterministic English-like fragments of 300..2000 characters."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou")
                          for _ in range(rng.randint(1, 4))) for _ in range(4000)]
    zipf = list(range(1, len(vocabulary) + 1))
    weights = [1 / rank for rank in zipf]
    out = []
    for _ in range(count):
        size, words = rng.randint(300, 2000), []
        while sum(len(w) + 1 for w in words) < size - 12:
            words.append(rng.choice(_STOP_WORDS) if rng.random() < 0.35
                         else rng.choices(vocabulary, weights)[0])
        out.append(" ".join(words).capitalize() + ".")
    return tuple(out)


async def _engines() -> tuple[list[float], list[float], dict[str, Any]]:
    def no_fallback(reason: str | None) -> None:
        if reason is not None:
            raise BenchError(f"the parallel engine fell back: {reason}")

    threads = ThreadPoolExecutor(2)
    engines = Engines(SequentialEngine(threads), ParallelEngine(lambda: process_pool(None)),
                      no_fallback)
    spec = DreamSpec(fragments(), branches=8, depth=8, seed=2026)
    try:
        await engines.parallel.ping()
        times: dict[str, list[float]] = {"sequential": [], "parallel": []}
        results: dict[str, Any] = {}
        for i in range(ENGINE_RUNS):
            for mode in ("sequential", "parallel"):
                started = time.perf_counter()
                used, result = await engines.run(spec, mode)
                times[mode].append((time.perf_counter() - started) * 1000)
                if used != mode:
                    raise BenchError(f"asked for {mode}, ran {used}")
                if results.setdefault(mode, result) != result:
                    raise BenchError(f"{mode} gave a different dream on run {i + 1}")
            progress(f"engines run {i + 1}/{ENGINE_RUNS}: sequential {times['sequential'][-1]:.0f} ms, "
                     f"parallel {times['parallel'][-1]:.0f} ms")
        if results["sequential"] != results["parallel"]:
            raise BenchError("the two engines dreamt different dreams")
        return times["sequential"], times["parallel"], results["sequential"]
    finally:
        engines.parallel.shutdown()
        threads.shutdown()


def _seed_dreams(port: int, headers: dict[str, str]) -> None:
    """POST tiny dreams, then wait until all are completed."""
    body = json.dumps({"fragments": ["a short dream of rivers"], "branches": 1, "depth": 1}).encode()
    for _ in range(SEEDED_DREAMS):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/dreams/parallel", data=body, method="POST",
            headers={**headers, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 202:
                raise BenchError(f"POST a dream answered {response.status}")
    deadline = time.monotonic() + SEED_LIMIT_S
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{LIST_PATH}?limit=100",
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            page = json.loads(response.read())
        if page["count"] == SEEDED_DREAMS and all(d["status"] == "completed" for d in page["items"]):
            return
        time.sleep(0.1)
    raise BenchError(f"seeded dreams not completed within {SEED_LIMIT_S:g}s")


def _list_throughput() -> tuple[list[Any], list[Any]]:
    with load_test() as (tmp, servers):
        servers.append(lukhas := start_lukhas(tmp, {"DREAMS_MAX_PENDING_PER_USER": "1000"}))
        _seed_dreams(lukhas.port, lukhas.headers)
        servers.append(bare := start_bare(tmp, lukhas.headers))
        progress(f"{SEEDED_DREAMS} dreams seeded; wrk -c{CONNECTIONS} -d{DURATION_S}s on {LIST_PATH}, "
                 f"{RUNS} runs each")
        return measure(lukhas, bare, path=f"{LIST_PATH}")


def run() -> list[Figure]:
    """Measure both; see the module docstring for exactly what."""
    require_wrk()  # before the engines' part, not after it
    sequential, parallel, result = asyncio.run(_engines())
    progress(f"dream coherence {result['coherence']}, themes {result['themes'][:4]}")
    lukhas_runs, bare_runs = _list_throughput()
    seq_ms, par_ms = median(sequential), median(parallel)

    lukhas_rps, bare_rps = median_of(lukhas_runs, "rps"), median_of(bare_runs, "rps")
    return [
        Figure("dream 8×8 on 64 fragments, sequential", seq_ms, "ms"),
        Figure("dream 8×8 on 64 fragments, parallel", par_ms, "ms", reference=seq_ms),
        Figure("parallel / sequential wall time", par_ms / seq_ms, "×", target=TARGET_PARALLEL_RATIO),
        Figure(f"GET {LIST_PATH} (20 items), requests/s", lukhas_rps, "req/s", reference=bare_rps,
               higher_is_better=True),
        Figure("list p99 latency", median_of(lukhas_runs, "p99_ms"), "ms",
               reference=median_of(bare_runs, "p99_ms")),
        Figure("list non-2xx answers, all measured runs", sum(r.non_2xx for r in lukhas_runs), "answers",
               target=0, reference=sum(r.non_2xx for r in bare_runs)),
    ]
