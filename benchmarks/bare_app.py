"""The reference for Lukhas: a bare aiohttp app with two small JSON routes.

``python benchmarks/bare_app.py PORT`` serves, on 127.0.0.1:PORT until
SIGTERM, ``GET /readyz`` → 200 (the start-up reference) and
``GET /api/v1/plugins`` → 200 with the body Lukhas gives when no plugin is
installed (the throughput reference; no authentication, no middleware), and
``GET /api/v1/dreams/list`` → a constant full page of 20 dreams, and
``GET /api/v1/drift/{user_id}`` → constant drift metrics, and ``POST
/api/v1/glyphs/bind`` and ``/validate`` → constant answers after reading the
body. It
shows what Python and aiohttp cost by themselves, before any Lukhas code runs.
"""

from __future__ import annotations

import functools
import json
import sys

from aiohttp import web

PLUGINS_BODY = {"status": "ok", "items": [], "count": 0}
# A full page of `GET /api/v1/dreams/list`, the shape and size Lukhas sends.
DREAMS_PAGE = {
    "items": [{"dream_id": f"drm_{i:016d}", "status": "completed", "mode": "sequential",
               "branches": 1, "depth": 1, "seed": i, "fragment_count": 1,
               "created_at": "2026-11-24T09:00:00.000000Z", "started_at": "2026-11-24T09:00:00.100000Z",
               "finished_at": "2026-11-24T09:00:00.200000Z"} for i in range(20)],
    "count": 20,
    "next_cursor": "WyIyMDI2LTExLTI0VDA5OjAwOjAwKzAwOjAwIiwiZHJtXzAwMDAwMDAwMDAwMDAwMTkiXQ==",
}
# Serialised per request and byte for byte as Lukhas does (pydantic: no spaces).
_compact = functools.partial(json.dumps, separators=(",", ":"))


async def readyz(request: web.Request) -> web.Response:
    """Always ready."""
    return web.json_response({"status": "ready"})


async def plugins(request: web.Request) -> web.Response:
    """A small constant JSON document, like Lukhas's `/api/v1/plugins`."""
    return web.json_response(PLUGINS_BODY, dumps=_compact)


DRIFT = {
    "user_id": "usr_0123456789abcdef01234567", "coherence_score": 0.0841527,
    "emotional_stability": 0.4471258, "behavioral_consistency": 0.9993317,
    "drift_velocity": 0.0000412, "overall_drift": 0.4897966, "interactions": 100000,
    "last_updated": "2026-11-24T09:00:00.000000Z",
}


async def drift(request: web.Request) -> web.Response:
    """Constant drift metrics, like Lukhas's cached `/api/v1/drift/{user_id}`."""
    return web.json_response(DRIFT, dumps=_compact)


GLYPH = {
    "glyph_id": "gly_0123456789abcdef", "source": "user:bench", "target": "doc:q3-report",
    "symbol": "LINK", "priority": "NORMAL", "context": {}, "created_by": "usr_0123456789abcdef01234567",
    "created_at": "2026-11-24T09:00:00.000000Z", "expires_at": "2026-11-25T09:00:00.000000Z",
    "active": True, "revoked_at": None,
}


async def glyph_bind(request: web.Request) -> web.Response:
    """Reads the body, answers 201 with a constant binding, like Lukhas's bind."""
    await request.read()
    return web.json_response({**GLYPH, "token": "x" * 300}, status=201, dumps=_compact)


async def glyph_validate(request: web.Request) -> web.Response:
    """Reads the body, answers a constant valid result, like Lukhas's validate."""
    await request.read()
    return web.json_response({"valid": True, "reason": None, "glyph": GLYPH}, dumps=_compact)


async def dreams_page(request: web.Request) -> web.Response:
    """A constant page of 20 dreams, like Lukhas's `/api/v1/dreams/list`."""
    return web.json_response(DREAMS_PAGE, dumps=_compact)


def main() -> None:
    """Serve until terminated."""
    app = web.Application()
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/plugins", plugins)
    app.router.add_get("/api/v1/dreams/list", dreams_page)
    app.router.add_get("/api/v1/drift/{user_id}", drift)
    app.router.add_post("/api/v1/glyphs/bind", glyph_bind)
    app.router.add_post("/api/v1/glyphs/validate", glyph_validate)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
