"""structlog set-up: JSON lines, or a console renderer on a TTY."""

from __future__ import annotations

import logging
import sys

import structlog

from ._settings import KernelSettings

__all__ = ["configure_logging"]


def configure_logging(settings: KernelSettings) -> None:
    """Configure structlog once for the process; logs go to stderr."""
    fmt = settings.log_format or ("console" if sys.stderr.isatty() else "json")
    renderer = (
        structlog.dev.ConsoleRenderer()
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
