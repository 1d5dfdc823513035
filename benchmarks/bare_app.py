"""The reference for process start-up: a bare aiohttp app with one route.

``python benchmarks/bare_app.py PORT`` serves ``GET /readyz`` → 200 on
127.0.0.1:PORT until SIGTERM. It shows what Python and aiohttp cost by
themselves, before any Lukhas code runs.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def readyz(request: web.Request) -> web.Response:
    """Always ready."""
    return web.json_response({"status": "ready"})


def main() -> None:
    """Serve until terminated."""
    app = web.Application()
    app.router.add_get("/readyz", readyz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
