"""The suite's one bounded poller: `eventually` (blocking) and `eventually_async`.

Both call `condition()` until it returns something truthy and return that
value; after `timeout` seconds they raise AssertionError. An exception the
condition raises (a failed assertion among them) ends the wait at once.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL_S = 0.05


def _timed_out(what: str | None, condition: object, timeout: float, last: object) -> AssertionError:
    return AssertionError(f"{what or getattr(condition, '__name__', condition)} not so within "
                          f"{timeout} s (last: {last!r})")


def eventually(condition: Callable[[], T], timeout: float = 10.0, *,
               interval: float = INTERVAL_S, what: str | None = None) -> T:
    """`condition()` once it is truthy, polled every `interval` s for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what, condition, timeout, value)
        time.sleep(interval)


async def eventually_async(condition: Callable[[], T | Awaitable[T]], timeout: float = 10.0, *,
                           interval: float = INTERVAL_S, what: str | None = None) -> T:
    """`eventually` on the event loop: `condition` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise _timed_out(what, condition, timeout, value)
        await asyncio.sleep(interval)
