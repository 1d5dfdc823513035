"""Time limits for many short waits at once: one timer per slice of time."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SLICES", "Deadlines"]

T = TypeVar("T", bound=Hashable)

#: A limit is enforced SLICES times more finely than itself.
SLICES = 64


class Deadlines(Generic[T]):
    """Calls `expire(item)` once an item has been watched for `timeout_s`.

    Items watched within the same slice of time (`timeout_s / SLICES`) share
    one timer, which expires those of them still watched at the end of the
    slice `timeout_s` later. So an item expires between `timeout_s` and
    `timeout_s` plus a slice after it was watched, at the cost of a set
    insert and removal each: a timer of its own (`asyncio.timeout`, or
    `call_at`) costs several times that, on every request.

    The timers run on the loop of the items being watched; items of a new
    loop start afresh (the old loop's timers went with it).
    """

    def __init__(self, timeout_s: float, expire: Callable[[T], object]) -> None:
        self.timeout_s = timeout_s
        self.slice_s = timeout_s / SLICES
        self._expire_one = expire
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: dict[int, set[T]] = {}

    def watch(self, item: T, loop: asyncio.AbstractEventLoop) -> set[T]:
        """Watch `item`, on `loop`; remove it from the returned set once it is done."""
        if loop is not self._loop:
            self._loop, self._due = loop, {}
        slot = math.ceil((loop.time() + self.timeout_s) / self.slice_s)
        watched = self._due.get(slot)
        if watched is None:
            watched = self._due[slot] = set()
            loop.call_at(slot * self.slice_s, self._expire, slot)
        watched.add(item)
        return watched

    def _expire(self, slot: int) -> None:
        for item in self._due.pop(slot, ()):
            self._expire_one(item)
