"""Glyphs: binds/s and validations/s at 64 connections on SQLite, against bare aiohttp.

- A real `lukhas serve` on 127.0.0.1 with a fresh data dir (the SQLite
  default) and `GLYPHS_BIND_RATE_LIMIT=` (empty: no limit; the contract's
  50/min per caller would answer 429 to a load test from one caller).
- Binds: `POST /api/v1/glyphs/bind` with the same small body on every request
  (`wrk -s`): each one a binding row plus its hash-chained audit entry in one
  write transaction, then a signed token.
- Validations: `POST /api/v1/glyphs/validate` with a valid token of a binding
  made beforehand: verifying the HS256 signature and reading the binding.
- Reference: `bare_app.py` answering the same paths with constant bodies
  after reading the request body. `wrk -t2 -c64 -d10s --latency` after a 2 s
  warm-up, 3 runs each alternating, medians (as auth_throughput). Targets on
  this 2-core machine: ≥ 500 binds/s and ≥ 2,000 validations/s.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from ._common import BenchError, Figure, progress
from .auth_throughput import load_test, measure, median_of, start_bare, start_lukhas

__all__ = ["run"]

BIND_BODY = {"source": "user:bench", "target": "doc:q3-report", "symbol": "LINK"}
TARGET_BINDS = 500.0
TARGET_VALIDATIONS = 2000.0


def _script(tmp: Path, name: str, body: dict[str, Any]) -> Path:
    path = tmp / f"{name}.lua"
    text = json.dumps(json.dumps(body))  # a Lua string literal of the JSON body
    path.write_text(f'wrk.method = "POST"\nwrk.body = {text}\n'
                    'wrk.headers["Content-Type"] = "application/json"\n')
    return path


def _token(port: int, headers: dict[str, str]) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/glyphs/bind", data=json.dumps(BIND_BODY).encode(),
        method="POST", headers={**headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 201:
            raise BenchError(f"bind answered {response.status}")
        return json.loads(response.read())["token"]


def run() -> list[Figure]:
    """Measure both; see the module docstring for exactly what."""
    with load_test() as (tmp, servers):
        servers.append(lukhas := start_lukhas(tmp, {"GLYPHS_BIND_RATE_LIMIT": ""}))
        servers.append(bare := start_bare(tmp, lukhas.headers))
        token = _token(lukhas.port, lukhas.headers)
        progress("binds")
        binds = measure(lukhas, bare, path="/api/v1/glyphs/bind", script=_script(tmp, "bind", BIND_BODY))
        progress("validations")
        validations = measure(lukhas, bare, path="/api/v1/glyphs/validate",
                              script=_script(tmp, "validate", {"token": token}))

    figures = []
    for label, (lukhas_runs, bare_runs), target in (("binds", binds, TARGET_BINDS),
                                                    ("validations", validations, TARGET_VALIDATIONS)):
        figures += [
            Figure(f"{label}/s", median_of(lukhas_runs, "rps"), "req/s", target=target,
                   reference=median_of(bare_runs, "rps"), higher_is_better=True),
            Figure(f"{label} p99 latency", median_of(lukhas_runs, "p99_ms"), "ms",
                   reference=median_of(bare_runs, "p99_ms")),
            Figure(f"{label} non-2xx answers, all measured runs", sum(r.non_2xx for r in lukhas_runs),
                   "answers", target=0, reference=sum(r.non_2xx for r in bare_runs)),
        ]
    return figures
