"""The hand-written reference: aiohttp and stdlib `sqlite3` on the Lukhas host's database file.

``python -m benchmarks.reference_app PORT DATA_DIR`` serves on 127.0.0.1:PORT,
until SIGTERM, what a competent developer writes by hand for the routes the
benchmark measures, on `DATA_DIR/lukhas.db` and with the glyphs plugin's
signing key (those of the Lukhas host under test on DATA_DIR), answering the
same JSON bytes as Lukhas (`_reference_db.py`, `_reference_glyphs.py`):

- `GET /api/v1/dreams/list` (`?limit=`, `?cursor=`), `GET /api/v1/drift/{user_id}`,
  `POST /api/v1/glyphs/bind`, `POST /api/v1/glyphs/validate`, each behind the
  same bearer token check; `GET /readyz` for the benchmark to wait on.
- Reads run on the event loop's thread, on one connection: each is a few
  indexed rows, less work than the hop to a thread would cost.
- Writes run on one writer thread with a connection of its own, one
  transaction per request (`synchronous=FULL`: one fsync per bind), so a
  commit's fsync never holds up the loop, and the loop awaits the commit
  before it answers (an answered write is durable).
- No middleware, no per-request validation models; errors are problem
  details with Lukhas's status and type (not its exact wording).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from ._reference_db import (
    DRIFT_TTL_S,
    Caller,
    Expiring,
    Invalid,
    Tokens,
    compact,
    connect,
    dreams_page,
    drift_metrics,
    json_time,
    page_limit,
)
from ._reference_glyphs import Bindings, Signer, bind, checked_bind, key_file, record_failure, verdict

T = TypeVar("T")
Handler = Callable[[web.Request, Caller], Awaitable[web.Response]]


def problem(status: int, slug: str, detail: str) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"type": f"urn:lukhas:problem:{slug}", "title": slug.replace("-", " "), "status": status,
            "detail": detail}
    return web.Response(status=status, text=compact(body), content_type="application/problem+json",
                        headers=headers)


def answer(document: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=compact(document), content_type="application/json")


class Reference:
    """The app's state: a reader connection (loop thread), a writer thread with
    its own connection, the signer and the caches."""

    def __init__(self, data_dir: Path) -> None:
        database = str(data_dir / "lukhas.db")
        self.reader = connect(database)
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="writer")
        # Opened on the writer thread, used only there.
        self.writes = self.writer.submit(connect, database).result()
        self.signer = Signer(key_file(data_dir).read_bytes().strip())
        self.tokens = Tokens()
        self.bindings = Bindings()
        self.drift: Expiring[str, dict[str, Any]] = Expiring(DRIFT_TTL_S)

    async def write(self, work: Callable[[Any], T]) -> T:
        """`work(connection)` on the writer thread; returns once it committed."""
        return await asyncio.get_running_loop().run_in_executor(self.writer, work, self.writes)

    def authenticated(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def checked(request: web.Request) -> web.Response:
            caller = self.tokens.caller(self.reader, request.headers.get("Authorization"))
            if caller is None:
                return problem(401, "unauthorized", "the token is missing, unknown or revoked")
            try:
                return await handler(request, caller)
            except Invalid as exc:
                return problem(422, "validation", str(exc))

        return checked

    async def dreams(self, request: web.Request, caller: Caller) -> web.Response:
        items, next_cursor = dreams_page(self.reader, caller.id, page_limit(request.query.get("limit")),
                                         request.query.get("cursor"))
        for item in items:
            for name in ("created_at", "started_at", "finished_at"):
                item[name] = json_time(item[name])
        return answer({"items": items, "count": len(items), "next_cursor": next_cursor})

    async def drift_read(self, request: web.Request, caller: Caller) -> web.Response:
        user_id = request.match_info["user_id"]
        if caller.id != user_id and not caller.is_admin:
            return problem(404, "not-found", f"no user {user_id}")
        hit, metrics = self.drift.get(user_id)
        if not hit:
            metrics = drift_metrics(self.reader, user_id)
            if metrics is None:
                return problem(404, "not-found", f"no user {user_id}")
            self.drift.put(user_id, metrics)
        return answer(metrics)

    async def glyph_bind(self, request: web.Request, caller: Caller) -> web.Response:
        body = checked_bind(await self._json(request))
        return answer(await self.write(lambda conn: bind(conn, caller.id, body, self.signer)), 201)

    async def glyph_validate(self, request: web.Request, caller: Caller) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, dict) or set(body) != {"token"} or not isinstance(body["token"], str):
            raise Invalid('the body is {"token": "<a GLYPH token>"}')
        document, reason, glyph_id = verdict(self.reader, self.bindings, self.signer, body["token"])
        if reason is not None:
            await self.write(lambda conn: record_failure(conn, glyph_id, caller.id, reason))
        return answer(document)

    @staticmethod
    async def _json(request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except ValueError:
            raise Invalid("the request body is not valid JSON") from None


async def readyz(request: web.Request) -> web.Response:
    return answer({"status": "ready"})


def app(data_dir: Path) -> web.Application:
    reference = Reference(data_dir)
    application = web.Application()
    routes = application.router
    routes.add_get("/readyz", readyz)
    routes.add_get("/api/v1/dreams/list", reference.authenticated(reference.dreams))
    routes.add_get("/api/v1/drift/{user_id}", reference.authenticated(reference.drift_read))
    routes.add_post("/api/v1/glyphs/bind", reference.authenticated(reference.glyph_bind))
    routes.add_post("/api/v1/glyphs/validate", reference.authenticated(reference.glyph_validate))
    return application


def main() -> None:
    """Serve until terminated."""
    port, data_dir = int(sys.argv[1]), Path(sys.argv[2])
    web.run_app(app(data_dir), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
