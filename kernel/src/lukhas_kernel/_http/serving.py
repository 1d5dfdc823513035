"""Serving an app on a socket, with the host's limits on every connection.

aiohttp's connection handler waits for a request's headers and body as long
as the client likes, and accepts any number of connections: a handful of
slow clients (slowloris) can hold a process's connections for good. And the
answer its HTTP parser gives to a malformed request echoes the offending
bytes, which may hold a bearer token or a cookie. The handler here adds:

- a deadline for a request's headers (`LUKHAS_HEADER_TIMEOUT_S`), from the
  connection's start or from a later request's first byte, and one for its
  body (`LUKHAS_BODY_TIMEOUT_S`) from the end of its headers. A connection
  past the first is closed; one past the second is answered `408` and
  closed. Each is one `http.slow_client` log line.
- at most `LUKHAS_MAX_CONNECTIONS` open connections per process; one more is
  closed at once, and each run of refusals is logged once (`http.connection_limit`).
- parser rejections answered with a problem whose detail names the kind of
  error only: no byte of the request is ever echoed or logged.
- a graceful stop: on SIGINT or SIGTERM the listening socket is closed at
  once (new connections are refused by the OS, not accepted and dropped),
  every answer from then on says `Connection: close`, an idle keep-alive
  connection stays open up to 1 s (at most the grace) for one more request,
  so a client that sends on it is answered, not dropped; requests being
  answered get up to the grace (`LUKHAS_SHUTDOWN_GRACE_S`) to finish, the
  rest are cancelled and their connections closed; then the app's cleanup tears the plugins down. One
  `host.stopping` and one `host.stopped` log line.

It relies on aiohttp's `RequestHandler` internals (`_messages`,
`_request_in_progress`, and `Server.pre_shutdown` closing idle
connections), which the system tests (hostile input, slow clients, graceful
stop, reload) exercise against the installed aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.helpers import calculate_timeout_when
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from .._core.logging import parser_reason
from .._core.problems import ProblemError, problem_response
from .._core.settings import KernelSettings

__all__ = ["ANSWER_HEADERS", "ConnectionLimits", "serve_app"]

log = structlog.get_logger("lukhas.http")
host_log = structlog.get_logger("lukhas.host")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: aiohttp takes a shutdown timeout of 0 as "no limit"; a grace of 0 means
#: "cancel at once", so it becomes this instead.
_NO_GRACE_S = 0.001
#: How long a stopping process keeps an idle keep-alive connection open for
#: one more request (at most the grace).
_LINGER_S = 1.0
_LINGER_POLL_S = 0.02
#: aiohttp rounds a timeout above this many seconds up to a whole second of
#: the loop's clock (its `ceil_threshold`); counting the cut requests follows it.
_CEIL_THRESHOLD_S = 5.0

#: On every answer, the host's own and aiohttp's alike. `Server` names no
#: versions: they only help someone looking for a known hole.
ANSWER_HEADERS = {"Server": "lukhas", "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int

    @classmethod
    def of(cls, settings: KernelSettings) -> ConnectionLimits:
        return cls(settings.header_timeout_s, settings.body_timeout_s, settings.max_connections)


class _GuardedServer(web.Server):
    """aiohttp's server, making guarded connection handlers."""

    def __init__(self, plain: web.Server, limits: ConnectionLimits) -> None:
        super().__init__(plain.request_handler, request_factory=plain.request_factory,
                         handler_cancellation=plain.handler_cancellation,
                         loop=plain._loop, **plain._kwargs)
        self.limits = limits
        self.refusing = False  # within a run of refused connections (logged at its start)
        self.cut = 0  # requests still running when the shutdown grace ended
        self.linger_s = _LINGER_S

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)

    @property
    def in_flight(self) -> int:
        """Requests whose handler is running now."""
        return sum(1 for conn in self.connections if conn._request_in_progress)

    def pre_shutdown(self) -> None:
        # aiohttp closes every idle keep-alive connection here, at once: a
        # client that has just sent its next request on one sees it dropped
        # unanswered. An idle connection lingers instead (see `shutdown`);
        # every answer from now on says `Connection: close`.
        for conn in self.connections:
            assert isinstance(conn, _GuardedHandler)
            conn.stopping = True
            if conn._request_in_progress or conn._messages:
                conn.close()  # after this answer
            else:
                conn.lingering = True

    async def shutdown(self, timeout: float | None = None) -> None:
        # aiohttp's own shutdown stops reading from every connection: first
        # give each lingering one up to the linger for one more request,
        # answered, after which it closes itself. The linger is part of the grace.
        started = self._loop.time()
        while any(isinstance(c, _GuardedHandler) and c.lingering for c in self.connections) \
                and self._loop.time() - started < self.linger_s:
            await asyncio.sleep(_LINGER_POLL_S)
        for conn in self.connections:
            conn.close()
        if timeout is not None and timeout > 0:
            timeout = max(timeout - (self._loop.time() - started), _NO_GRACE_S)
        # aiohttp cancels what still runs when its timeout ends: count those
        # at that same instant of the loop's clock.
        timer = None
        if timeout is not None and timeout > 0:
            when = calculate_timeout_when(self._loop.time(), timeout, _CEIL_THRESHOLD_S)
            timer = self._loop.call_at(when, self._count_cut)
        try:
            await super().shutdown(timeout)
        finally:
            if timer is not None:
                timer.cancel()

    def _count_cut(self) -> None:
        self.cut = self.in_flight


class _GuardedHandler(RequestHandler):
    """One connection; see the module's docstring for what it adds."""

    _manager: _GuardedServer

    def __init__(self, manager: _GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = manager.limits
        self._deadline: asyncio.TimerHandle | None = None
        self._payload: Any = None  # the body being received while the body deadline runs
        self.stopping = False  # the process stops: this connection ends after its next answer
        self.lingering = False  # it was idle then: it may still bring one more request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        manager = self._manager
        if len(manager.connections) > self._limits.max_connections:
            if not manager.refusing:
                manager.refusing = True
                log.warning("http.connection_limit", limit=self._limits.max_connections,
                            detail="new connections are closed until others end")
            self.force_close()
            return
        manager.refusing = False
        self._arm("headers")

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # On every read of every connection: the usual case (a whole request
        # without a body, nothing armed) costs two length checks and one test.
        messages = self._messages
        queued = len(messages)
        super().data_received(data)
        if len(messages) > queued:  # a request's headers are complete
            payload = messages[-1][1]
            if not payload.is_eof():
                self._arm("body", payload)
            elif self._deadline is not None:
                self._disarm()
        elif self._payload is not None:
            if self._payload.is_eof():
                self._disarm()
        elif self._deadline is None and data and not self._request_in_progress:
            self._arm("headers")  # the first bytes of a later request on this connection

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        # Answered: a body still arriving is aiohttp's to drain or drop now.
        if self._deadline is not None:
            self._disarm()
        if self.stopping:  # so the client opens its next request elsewhere
            resp.force_close()
        return await super().finish_response(request, resp, start_time)

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            response = super().handle_error(request, status, exc, message)
        else:  # aiohttp's own would echo the offending bytes
            self.log_exception("Error handling request", exc_info=exc)
            response = problem_response(status, f"the request cannot be parsed: {parser_reason(exc)}",
                                        type="urn:lukhas:problem:bad-request")
            response.force_close()
        response.headers.update(ANSWER_HEADERS)
        return response

    def _arm(self, waiting_for: str, payload: Any = None) -> None:
        self._disarm()
        limit = self._limits.header_timeout_s if payload is None else self._limits.body_timeout_s
        self._payload = payload
        self._deadline = self._loop.call_later(limit, self._expired, waiting_for, limit)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._payload = None, None

    def _expired(self, waiting_for: str, limit: float) -> None:
        payload = self._payload
        self._deadline, self._payload = None, None
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        log.warning("http.slow_client", waiting_for=waiting_for, timeout_s=limit,
                    peer=f"{peer[0]}:{peer[1]}" if peer else None)
        if payload is None:
            self.force_close()
            return
        # The handler reading the body gets this instead, and answers it;
        # then the connection closes. Ended, so that aiohttp does not wait
        # for the rest after the answer ("lingering").
        payload.set_exception(ProblemError(
            408, f"the request body did not arrive within {limit:g} s",
            type="urn:lukhas:problem:timeout"))
        payload.feed_eof()
        self.close()


class _GuardedRunner(web.AppRunner):
    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        return _GuardedServer(await super()._make_server(), self._limits)


def serve_app(app: Awaitable[web.Application], sock: socket.socket, limits: ConnectionLimits,
              grace_s: float = 30.0, on_stopping: Callable[[], None] | None = None) -> None:
    """Serve `app` on the listening `sock` until SIGINT or SIGTERM, then stop
    gracefully: requests being answered get up to `grace_s` seconds.
    `on_stopping` is called once this process no longer accepts connections.

    As `aiohttp.web.run_app(app, sock=sock)`, with guarded connections; the
    app's start-up errors propagate to the caller. Returns once stopped.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        runner = _GuardedRunner(await app, limits, access_log=None,
                                shutdown_timeout=max(grace_s, _NO_GRACE_S))
        # During the start-up a signal interrupts it, as aiohttp's own handler does.
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, _interrupt)
        try:
            await runner.setup()  # runs the app's start-up
            assert isinstance(runner.server, _GuardedServer)
            runner.server.linger_s = min(_LINGER_S, grace_s)
            try:
                await web.SockSite(runner, sock).start()
                received: asyncio.Future[signal.Signals] = loop.create_future()
                for sig in _STOP_SIGNALS:
                    loop.add_signal_handler(sig, _stop, received, sig)
                stop_signal = await received
            except BaseException:
                await runner.cleanup()
                raise
            # Not in a `finally`: the app's cleanup must run once only.
            await _stopped(runner, stop_signal, grace_s, on_stopping)
        finally:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(main())


def _interrupt() -> None:
    raise web.GracefulExit()


def _stop(received: asyncio.Future[signal.Signals], sig: signal.Signals) -> None:
    # A second signal while draining changes nothing: the grace bounds the wait.
    if not received.done():
        received.set_result(sig)


async def _stopped(runner: _GuardedRunner, sig: signal.Signals, grace_s: float,
                   on_stopping: Callable[[], None] | None) -> None:
    """The graceful stop, logged: close the listening socket, then aiohttp's
    runner cleanup drains for the grace and cleans the app up."""
    server = runner.server
    assert isinstance(server, _GuardedServer)
    started = time.monotonic()
    host_log.info("host.stopping", signal=sig.name, in_flight=server.in_flight, grace_s=grace_s)
    for site in list(runner.sites):
        await site.stop()  # the cleanup would stop it first too; here we learn when
    if on_stopping is not None:
        on_stopping()
    await runner.cleanup()
    host_log.info("host.stopped", signal=sig.name, cut=server.cut,
                  duration_s=round(time.monotonic() - started, 3))
