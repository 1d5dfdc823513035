"""structlog set-up: JSON lines, or a console renderer on a TTY."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import structlog

from .redaction import redact_event
from .settings import KernelSettings

if TYPE_CHECKING:
    from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["configure_logging", "parser_reason", "server_logger"]


def configure_logging(settings: KernelSettings, worker: int | None = None) -> None:
    """Configure structlog for the process; logs go to stderr.

    Each event is written whole, in one write: the processes of `lukhas serve
    --workers N` share one stderr, and a line written in two parts could be
    split by another process's. A worker's events carry `worker: <pid>`,
    added by a processor rather than a context variable so that events
    logged from threads (imports, storage, executors) carry it too.
    """
    fmt = settings.log_format or ("console" if sys.stderr.isatty() else "json")
    renderer = (
        structlog.dev.ConsoleRenderer()
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    tag = [] if worker is None else [_tag_worker(worker)]
    structlog.configure(
        processors=[
            *tag,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,  # last before rendering: tracebacks are text by now
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def _tag_worker(worker: int) -> structlog.types.Processor:
    def tag(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("worker", worker)
        return event

    return tag


# The leading words of aiohttp's parser messages ("Invalid header value char",
# "Got more than 8190 bytes when reading"). Whatever of the request a message
# quotes comes after them, as a repr (quotes) or after a colon: this pattern
# can match no such part.
_PARSER_WORDS = re.compile(r"[A-Za-z0-9 ]*")


def parser_reason(exc: HttpProcessingError) -> str:
    """What aiohttp's HTTP parser refused, without any byte of the request.

    Its messages quote the offending line, which may be an `Authorization`
    or `Cookie` header: only the describing words are kept.
    """
    words = _PARSER_WORDS.match(exc.message or "")
    return (words.group().strip() if words else "") or "malformed request"


class _ToStructlog(logging.Handler):
    """aiohttp's own server log as structlog events, so the log stays one JSON
    object a line.

    aiohttp answers a request its HTTP parser rejects (a request line or a
    header over 8190 bytes, a control character in a header) with a `400`
    before any middleware runs, and logs it with a traceback. That is the
    client's doing: one warning line with the reason (never the request's
    bytes: see `parser_reason`), no traceback.
    """

    def emit(self, record: logging.LogRecord) -> None:
        # Imported here: only aiohttp logs here, so it is loaded by now, and
        # a process that logs without serving (the supervisor) never loads it.
        from aiohttp.http_exceptions import HttpProcessingError

        log = structlog.get_logger("lukhas.http")
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            log.warning("http.malformed_request", status=exc.code,
                        reason=f"{type(exc).__name__}: {parser_reason(exc)}")
            return
        log.log(record.levelno, record.getMessage(), exc_info=record.exc_info)


def server_logger() -> logging.Logger:
    """The logger for aiohttp's request handler (`handler_args={"logger": ...}`)."""
    logger = logging.getLogger("lukhas.http.server")
    if not any(isinstance(handler, _ToStructlog) for handler in logger.handlers):
        logger.addHandler(_ToStructlog())
    logger.propagate = False  # not again through the root logger's last-resort handler
    return logger
