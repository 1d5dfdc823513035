"""The performance issue's targets at a glance: which module measures each, and whether it is met.

Each module prints and stores its own figures with their targets; this
table gathers the issue's figures from the result documents, so one look at
the end of `make bench` (and at the top of RESULTS.md) tells which are met.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TARGETS", "summary"]

#: (the issue's wording, module, figure name in that module's results).
TARGETS = (
    ("dreams list, 64 conn., Lukhas / hand-written ref", "db_routes",
     "GET /api/v1/dreams/list, 64 conn., Lukhas / hand-written ref"),
    ("dreams list, 64 conn., Lukhas / FastAPI", "db_routes",
     "GET /api/v1/dreams/list, 64 conn., Lukhas / FastAPI"),
    ("drift read, 64 conn., Lukhas / hand-written ref", "db_routes",
     "GET /api/v1/drift/{user_id}, 64 conn., Lukhas / hand-written ref"),
    ("bind, 64 conn., Lukhas / hand-written ref", "db_routes",
     "POST /api/v1/glyphs/bind, 64 conn., Lukhas / hand-written ref"),
    ("bind, 64 conn., binds/s on one core", "db_routes", "POST /api/v1/glyphs/bind, 64 conn., requests/s"),
    ("validate, 64 conn., Lukhas / hand-written ref", "db_routes",
     "POST /api/v1/glyphs/validate, 64 conn., Lukhas / hand-written ref"),
    ("binds on PostgreSQL, 2 workers / 1 worker", "scale",
     "POST /api/v1/glyphs/bind, scaling 2 workers / 1 worker"),
    ("authenticated GET /api/v1/plugins, Lukhas / bare aiohttp", "auth_throughput",
     "requests/s, lukhas / bare aiohttp"),
    ("process start → /readyz 200, all plugins, migrated database", "startup",
     "start to /readyz 200, median"),
    ("RSS at ready", "startup", "RSS at ready, median"),
    ("RSS after 10,000 requests", "routes", "RSS after ≥ 10,000 requests, every plugin on"),
    ("kernel init p95 in-process", "startup", "kernel init p95"),
)


def summary(documents: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Per target: its wording, its module, and its figure as stored (None when
    that module has no result document here, or no such figure)."""
    found = []
    for wording, module, name in TARGETS:
        figures = documents.get(module, {}).get("figures", [])
        found.append((wording, module, next((f for f in figures if f["name"] == name), None)))
    return found
