"""Running plugin code so that its failure stays its own.

Every call into a plugin goes through here: it gets a deadline, the plugin's
name bound into structlog's context, and its exception turned into one
reason string. Nothing here knows about plugin states.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import structlog

__all__ = ["StageError", "describe", "import_in_thread", "run_isolated"]

_MAX_REASON = 300


class StageError(Exception):
    """A plugin call failed; `str()` is the one-line reason.

    Raised ``from`` the exception that made the call fail, kept as `cause`
    for the log's traceback. A timeout has no cause: its traceback would
    show only the kernel waiting, never the plugin's code.
    """

    @property
    def cause(self) -> BaseException | None:
        return self.__cause__


def describe(exc: BaseException) -> str:
    """One line: the exception type and message, shortened."""
    # SQLAlchemy wraps the driver's error with the statement and a link: the
    # driver's own message is the reason.
    original = getattr(exc, "orig", None)
    message = " ".join(str(original if original is not None else exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


async def run_isolated(
    plugin: str,
    timeout_s: float | None,
    call: Callable[[], Any],
    before: Callable[[], Awaitable[Any]] | None = None,
) -> tuple[Any, float]:
    """Run `call()` (sync or async) for `plugin`; return (result, elapsed ms).

    `before` (fault injection) runs first, inside the same deadline.
    Raises :class:`StageError` on any exception or when the deadline passes.
    """
    started = time.perf_counter()
    deadline = asyncio.timeout(timeout_s)
    with structlog.contextvars.bound_contextvars(plugin=plugin):
        try:
            async with deadline:
                if before is not None:
                    await before()
                result = call()
                if inspect.isawaitable(result):
                    result = await result
        except TimeoutError as exc:
            if deadline.expired():
                raise StageError(f"timed out after {timeout_s:g}s") from None
            raise StageError(describe(exc)) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise StageError(describe(exc)) from exc
    return result, (time.perf_counter() - started) * 1000


def import_in_thread(module: str, before: Callable[[], None]) -> Awaitable[ModuleType]:
    """Import `module` on a daemon thread; await the result with a deadline.

    A daemon thread, not an executor: a module that hangs at import can be
    abandoned, and it neither blocks the event loop nor the process's exit.
    """
    future: concurrent.futures.Future[ModuleType] = concurrent.futures.Future()
    future.set_running_or_notify_cancel()  # so cancelling the awaiter cannot cancel it

    def run() -> None:
        try:
            before()
            for attempt in range(3):
                try:
                    future.set_result(importlib.import_module(module))
                    break
                except RuntimeError as exc:
                    # Plugins import concurrently; two threads importing modules
                    # that import each other (prometheus_client's) get Python's
                    # _DeadlockError instead of a deadlock. Not the plugin's
                    # fault: the other thread finishes, then this import works.
                    if type(exc).__name__ != "_DeadlockError" or attempt == 2:
                        raise
                    time.sleep(0.01 * (attempt + 1))
        except Exception as exc:
            future.set_exception(exc)
        except BaseException as exc:  # SystemExit at import must not end the host
            error = StageError(describe(exc))
            error.__cause__ = exc
            future.set_exception(error)

    threading.Thread(target=run, name=f"lukhas-import-{module}", daemon=True).start()
    return asyncio.wrap_future(future)
