"""What every answer carries, the host's own and aiohttp's alike.

Stamped as an answer is prepared (the app's `on_response_prepare`), so that
answers made outside the middlewares get it too: X-Request-ID, the answering
process (X-Lukhas-Worker), the host's own headers, and for an HTML page the
headers that keep a browser to the host's own files. aiohttp's own error
answers become problems here.
"""

from __future__ import annotations

import os
from http import HTTPStatus

from aiohttp import hdrs, web
from multidict import CIMultiDict

from .._core.problems import problem_response
from .request_ids import REQUEST_ID_KEY, request_id_of
from .serving import ANSWER_HEADERS

__all__ = ["PAGE_HEADERS", "WORKER_HEADER", "http_problem", "stamp_answer"]

#: On every HTML page any route serves (`/docs`, `/status`, a plugin's own),
#: unless the page sets its own: a browser loads nothing but the host's own
#: files for it (no inline script or style, no other origin), never shows it
#: inside another site's frame, and sends no Referer from it.
PAGE_HEADERS = {
    "Content-Security-Policy": "; ".join([
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        "font-src 'self'", "connect-src 'self'", "base-uri 'none'", "form-action 'none'",
        "frame-ancestors 'none'"]),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
#: On every answer: the pid of the host process that answered, so that an
#: operator (and a test) can tell the processes of `lukhas serve --workers N` apart.
WORKER_HEADER = "X-Lukhas-Worker"


def http_problem(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own error answer as a problem; its text (which may echo the
    request) is replaced, its headers (`Allow`) are kept."""
    keep = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    detail = {
        404: f"no resource at {request.path}",
        405: f"{request.method} is not allowed on {request.path}",
        413: "the request body is larger than LUKHAS_MAX_BODY_BYTES",
        417: "the only Expect header the host supports is 100-continue",
    }.get(exc.status, exc.reason or HTTPStatus(exc.status).phrase)
    return problem_response(exc.status, detail, headers=keep)


async def stamp_answer(request: web.Request, response: web.StreamResponse) -> None:
    """Give `response` the headers every answer carries (the app's `on_response_prepare`)."""
    headers = response.headers
    try:
        request_id = request[REQUEST_ID_KEY]
    except KeyError:  # answered before the middlewares ran
        request_id = request[REQUEST_ID_KEY] = request_id_of(request)
    headers["X-Request-ID"] = request_id
    if isinstance(response, web.HTTPException) and response.status >= 400:
        # aiohttp's own answer from outside the middlewares (an `Expect` header
        # other than 100-continue), or one a handler returned instead of raising.
        # aiohttp has sized its body already and writes the headers after this
        # hook: both are replaced by the problem's.
        problem = http_problem(request, response)
        response.body = problem.body
        headers.update({hdrs.CONTENT_TYPE: problem.headers[hdrs.CONTENT_TYPE],
                        hdrs.CONTENT_LENGTH: str(problem.content_length)})
    headers.update(_stamped_headers)
    # Parsing the content type is the dearer test; most answers are JSON.
    if "html" in headers.get(hdrs.CONTENT_TYPE, "").lower() and response.content_type == "text/html":
        for name, value in PAGE_HEADERS.items():
            headers.setdefault(name, value)


def _worker_headers() -> CIMultiDict[str]:
    """The headers every answer gets after its X-Request-ID: this process's
    id (X-Lukhas-Worker), then the host's own (`ANSWER_HEADERS`). A
    case-insensitive dict already: updating headers from it skips a
    conversion of every name on every answer."""
    return CIMultiDict({WORKER_HEADER: str(os.getpid()), **ANSWER_HEADERS})


def _note_pid() -> None:
    global _stamped_headers
    _stamped_headers = _worker_headers()


#: Made again in a forked child, whose pid differs.
_stamped_headers = _worker_headers()
os.register_at_fork(after_in_child=_note_pid)
