"""The one rule for reading a stored item by id: its owner or an admin sees it."""

from __future__ import annotations

from typing import TypeVar

from .._core.problems import ProblemError
from .._services.accounts import User

__all__ = ["owned_by"]

T = TypeVar("T")


def owned_by(caller: User, found: tuple[str, T] | None, detail: str) -> T:
    """The item of `found` (its owner's id, the item) if `caller` owns it or is
    an admin; else a 404 problem with `detail`.

    Another user's item is "not found", like a missing one: its existence
    is not revealed.
    """
    if found is None or (found[0] != caller.id and not caller.is_admin):
        raise ProblemError(404, detail)
    return found[1]
