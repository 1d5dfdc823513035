"""What the parallel engine runs inside its worker processes.

A branch task carries the job's fragments (tens of kB of text), not the
prepared corpus (hundreds of kB of tuples, which cost a pickle in the host
and an unpickle in the worker for every branch). Each worker prepares a
job's fragments once, on its first branch of that job, and keeps the corpus
for its later branches: the workers prepare side by side instead of the host
preparing before any branch can start, and the host does almost no work
while the workers compute (on a machine with as many cores as workers, any
host CPU is taken from them). The cache is keyed by the job's run, not by
its text: a job never reuses another job's work, so what a job costs does
not depend on what ran before it.

Standard library only, like `compute`: this module is what worker processes import.
"""

from __future__ import annotations

import gc
import os
import threading
from typing import Any

from . import compute

__all__ = ["CORPUS_CACHE", "corpus_for", "dream_branch", "ready", "start"]

CORPUS_CACHE = 4  # prepared inputs kept per process: a few jobs running at once share the pool

_corpora: dict[str, compute.Corpus] = {}
# Guards the cache when the executor is a thread pool (several branches in one process at once).
_lock = threading.Lock()


def corpus_for(run: str, fragments: tuple[str, ...]) -> compute.Corpus:
    """`compute.prepare(fragments)`, remembered in this process for the last `CORPUS_CACHE` runs.

    `run` names one run of one job (unique per run); all its branches carry the same fragments.
    """
    with _lock:
        corpus = _corpora.get(run)
    if corpus is None:
        # Outside the lock: two threads preparing the same run at once get equal corpora.
        corpus = compute.prepare(fragments)
    with _lock:
        _corpora.pop(run, None)
        _corpora[run] = corpus  # most recently used last
        while len(_corpora) > CORPUS_CACHE:
            del _corpora[next(iter(_corpora))]
    return corpus


def dream_branch(run: str, fragments: tuple[str, ...], depth: int, seed: int,
                 branch: int) -> dict[str, Any]:
    """`compute.dream_branch` of branch `branch`, on the corpus of `fragments` prepared for `run`."""
    return compute.dream_branch(corpus_for(run, fragments), depth, seed, branch)


def ready() -> int:
    """The no-op of a health check: this worker's process id."""
    return os.getpid()


def start() -> None:
    """Process-pool initializer: warm the worker up before its first task.

    A small dream compiles and touches everything a branch uses. Then the
    objects alive so far (modules, the warm-up's leftovers) are frozen out of
    the collector: otherwise the first large `prepare` of a fresh process
    runs repeated full collections while its heap grows from nothing (measured
    about 75 ms instead of 30 ms on 64 fragments). The dream computation
    makes no reference cycles, so freezing keeps nothing alive that would be freed.
    """
    compute.dream(("warm the dream worker up before its first job",
                   "a worker that dreamt once dreams faster"), branches=1, depth=1, seed=0)
    gc.freeze()
