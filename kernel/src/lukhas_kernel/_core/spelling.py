"""Naming a likely misspelling: the one way the kernel says "did you mean …?"."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(word: str, names: Iterable[str]) -> str | None:
    """The name among `names` closest to `word` (case aside), or None when none is close."""
    candidates = {name.lower(): name for name in names}
    found = difflib.get_close_matches(word.lower(), list(candidates), n=1)
    return candidates[found[0]] if found else None
