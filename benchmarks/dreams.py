"""Dreams: one 8-branch depth-8 dream on the sequential and the parallel engine.

- The dream a job runs, timed the way a job runs it, through the plugin's
  `Engines.run` (the fragments analysed on a worker thread, then the
  branches, then the merge), in this process's event loop. Input: 64
  fragments of 300–2000 characters drawn from a fixed RNG, words from a
  4000-word made-up vocabulary with Zipf frequencies mixed with English stop
  words. Sequential: branches one after another on a worker thread.
  Parallel: the default pool (`process_pool(None)`: spawned processes, one
  per CPU), started and warmed before timing (`ping()` reaches every worker),
  so process start-up is not measured. 5 runs of each, alternating; medians.
  The results of the two engines must be identical, else the run fails. The
  target (parallel ≤ 0.6 × sequential) is stated for 2 cores.
- `GET /api/v1/dreams/list` under load is in the routes module.
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lukhas_dreams.engine import DreamSpec, Engines, ParallelEngine, SequentialEngine, process_pool

from ._common import BenchError, Figure, median, progress

__all__ = ["run"]

ENGINE_RUNS = 5
TARGET_PARALLEL_RATIO = 0.6
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


def run() -> list[Figure]:
    """Measure both engines; see the module docstring for exactly what."""
    sequential, parallel, result = asyncio.run(_engines())
    progress(f"dream coherence {result['coherence']}, themes {result['themes'][:4]}")
    seq_ms, par_ms = median(sequential), median(parallel)
    return [
        Figure("dream 8×8 on 64 fragments, sequential", seq_ms, "ms"),
        Figure("dream 8×8 on 64 fragments, parallel", par_ms, "ms", reference=seq_ms),
        Figure("parallel / sequential wall time", par_ms / seq_ms, "×", target=TARGET_PARALLEL_RATIO),
    ]
