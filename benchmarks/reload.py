"""Reload: requests/s through a zero-downtime reload, and requests lost (target 0).

- One `lukhas serve` (all first-party plugins, one worker) on a fresh data dir.
- ROUNDS rounds; each round two wrk runs of DURATION_S on the authenticated
  `GET /api/v1/plugins`, interleaved: one plain, one during which `lukhas
  reload` is run (it starts SIGNAL_AT_S in, and waits until the new worker
  serves and the old one has stopped accepting).
- Figures (medians over the rounds): requests/s with a reload against the
  same load without one (the ratio is what a reload costs: for a while two
  processes share two cores, and the new one starts cold), and the failed
  requests over all reload runs: wrk's socket errors (connect, read, write,
  timeout) plus non-2xx answers. Target 0.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from ._common import BenchError, Figure, median, progress, stop
from ._servers import start_lukhas
from ._wrk import wrk

__all__ = ["run"]

ROUNDS = 3
DURATION_S = 8
SIGNAL_AT_S = 2.0
CONNECTIONS = 32
PATH = "/api/v1/plugins"


def _reload(data_dir: Path, outcome: list[str]) -> None:
    time.sleep(SIGNAL_AT_S)
    done = subprocess.run([sys.executable, "-m", "lukhas_kernel", "reload"], capture_output=True,
                          text=True, timeout=120, env={"LUKHAS_DATA_DIR": str(data_dir), "PATH": ""})
    outcome.append(done.stdout.strip() if done.returncode == 0 else f"exit {done.returncode}: {done.stderr}")


def run() -> list[Figure]:
    with TemporaryDirectory(prefix="lukhas-bench-reload-") as tmp:
        # Not pinned: a reload runs two generations of workers at once, on both cores.
        server = start_lukhas(Path(tmp), pinned=False)
        data_dir = server.workdir / "data"
        plain: list[float] = []
        reloading: list[float] = []
        failed = 0
        try:
            for round_ in range(1, ROUNDS + 1):
                progress(f"reload: round {round_}/{ROUNDS}")
                plain.append(wrk(server, DURATION_S, PATH, connections=CONNECTIONS).rps)
                outcome: list[str] = []
                signaller = threading.Thread(target=_reload, args=(data_dir, outcome))
                signaller.start()
                load = wrk(server, DURATION_S, PATH, connections=CONNECTIONS)
                signaller.join(timeout=120)
                if not outcome or not outcome[0].startswith("reload completed"):
                    raise BenchError(f"the reload did not complete: {outcome}{server.stderr_tail()}")
                reloading.append(load.rps)
                failed += load.socket_errors + load.non_2xx
        finally:
            stop(server.process, timeout_s=60)
    without = median(plain)
    return [
        Figure(f"{PATH}, {CONNECTIONS} conn., during a reload", median(reloading), "req/s",
               reference=without, higher_is_better=True),
        Figure(f"{PATH}, {CONNECTIONS} conn., without a reload", without, "req/s", higher_is_better=True),
        Figure(f"failed requests over {ROUNDS} reloads", failed, "requests", target=0),
    ]
