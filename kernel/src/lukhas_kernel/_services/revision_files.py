"""An owner's revision files, read without Alembic, and the one naming a failure.

Alembic reports a failed migration by the exception alone (`no such table`,
or a bare `KeyError: 'notes_001'` for a `down_revision` that names no
revision); the reason a person needs names the revision file at fault.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

from .._core.isolation import describe

__all__ = ["MigrationError", "declared_head", "failed_revision"]

_REVISION = re.compile(r"""^revision\s*(?::[^=]*)?=\s*["']([^"']+)["']""", re.MULTILINE)
_DOWN = re.compile(r"""^down_revision\s*(?::[^=]*)?=\s*(?:None|["']([^"']+)["'])\s*$""", re.MULTILINE)


class MigrationError(Exception):
    """A revision file could not be applied; the message names it."""


def declared_head(versions: Path) -> str | None:
    """The head of the linear history in `versions`, read without Alembic.

    None when it cannot be told this way (a merge, an unusual file): then
    Alembic itself is asked. Importing Alembic costs a fifth of a start-up.
    """
    revisions, parents = set(), set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN.search(text)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def failed_revision(exc: BaseException, versions: Path) -> MigrationError:
    """`exc`, raised while Alembic read or ran the revisions in `versions`,
    as a MigrationError naming the revision file at fault when it can be told."""
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        # Alembic's revision map: a revision points down to one that is not there.
        missing = exc.args[0]
        for path in sorted(versions.glob("*.py")):
            if re.search(rf"""^(down_revision|depends_on)\b.*["']{re.escape(missing)}["']""",
                         path.read_text(encoding="utf-8"), re.MULTILINE):
                return MigrationError(f"{_named(path)}: down_revision {missing!r} names no "
                                      f"revision in {versions}")
    at_fault = _file_at_fault(exc, versions.resolve())
    return MigrationError(f"{_named(at_fault)}: {describe(exc)}" if at_fault else describe(exc))


def _file_at_fault(exc: BaseException, versions: Path) -> Path | None:
    """The revision file whose code raised `exc` (its innermost frame there),
    or the one a SyntaxError is in."""
    candidates = [getattr(exc, "filename", None),
                  *(frame.filename for frame in traceback.extract_tb(exc.__traceback__))]
    inside = [Path(name) for name in candidates
              if isinstance(name, str) and Path(name).resolve().parent == versions]
    return inside[-1] if inside else None


def _named(path: Path) -> str:
    """`0001_notes.py (revision notes_0001)`, or the file name alone."""
    try:
        found = _REVISION.search(path.read_text(encoding="utf-8"))
    except OSError:
        found = None
    return f"{path.name} (revision {found.group(1)})" if found else path.name
