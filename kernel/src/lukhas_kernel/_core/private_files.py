"""The data dir and the files in it are the owner's alone.

The data dir holds the database (user records, token hashes, plugin data)
and signing keys. Whatever the process's umask, a directory the host creates
there is `0700` and a file `0600`. An existing one that others can read or
enter is left as it is, but each start names it once in the log as
`storage.insecure_permissions`, so an operator can tighten it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import structlog

__all__ = ["check_private", "private_directory", "private_file"]

log = structlog.get_logger("lukhas.storage")
# Any permission bit for the group or for others.
_SHARED = stat.S_IRWXG | stat.S_IRWXO
# Paths already warned about: once per process, however often they are opened.
_warned: set[Path] = set()


def _warn_if_shared(path: Path, mode: int) -> None:
    path = path.resolve()  # one warning, whichever way the path was spelt
    if mode & _SHARED and path not in _warned:
        _warned.add(path)
        log.warning("storage.insecure_permissions", path=str(path), mode=f"{stat.S_IMODE(mode):04o}",
                    fix=f"chmod {'700' if stat.S_ISDIR(mode) else '600'} {path}")


def private_directory(path: Path) -> Path:
    """`path` as a directory, with any missing parents, each created `0700`.

    An existing directory keeps its mode; one that others may use is warned
    about. Raises OSError as `mkdir` would (NotADirectoryError under a file).
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # made by another process meanwhile: theirs is as private
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is narrowed by the umask, never widened
    if not missing:
        mode = path.stat().st_mode
        if not stat.S_ISDIR(mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
        _warn_if_shared(path, mode)
    return path


def check_private(path: Path) -> None:
    """Warn (once) if `path` exists and others may use it; nothing is created."""
    try:
        _warn_if_shared(path, path.stat().st_mode)
    except FileNotFoundError:
        pass


def private_file(path: Path) -> Path:
    """`path` as a file that only its owner can read and write.

    A missing file is created empty with mode `0600`. An existing one keeps
    its content and mode; one that others may read is warned about.
    """
    private_directory(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path)) from None
        _warn_if_shared(path, mode)
        return path
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path
