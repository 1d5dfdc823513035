"""The data dir is the owner's alone: created `0700`, its files `0600`, under
any umask; an existing one that others can read is named in the log at start."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.cli import add_user, cli, data_dir, ok
from support.host import serving


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """The processes the test starts inherit `mask`."""
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def everything_under(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_a_new_data_dir_and_every_file_in_it_are_private_whatever_the_umask(tmp_path: Path, mask: int):
    with umask(mask):
        add_user(tmp_path, "ada")  # creates the data dir and the database
        with serving(tmp_path) as served:
            # While it serves, SQLite's -wal and -shm files exist too.
            found = {p.relative_to(tmp_path).as_posix(): mode(p)
                     for p in everything_under(data_dir(tmp_path))}
    assert {"data/lukhas.db-wal", "data/lukhas.db-shm", "data/plugins/glyphs"} <= set(found), found
    for name, bits in found.items():
        expected = 0o700 if (tmp_path / name).is_dir() else 0o600
        assert bits == expected, f"{name} is {bits:04o}"
    assert not served.events("storage.insecure_permissions")


def test_an_existing_data_dir_others_can_read_is_named_once_at_start(tmp_path: Path):
    with umask(0o022):
        add_user(tmp_path, "ada")
    data = data_dir(tmp_path)
    os.chmod(data, 0o755)
    os.chmod(data / "lukhas.db", 0o644)
    result = cli(tmp_path, "users", "list")
    ok(result)
    warned = [line for line in result.stderr.splitlines() if "storage.insecure_permissions" in line]
    shown = sorted(line.split('"path": "', 1)[1].split('"', 1)[0] for line in warned)
    assert shown == [str(data.resolve()), str((data / "lukhas.db").resolve())], result.stderr
    assert all('"fix": "chmod' in line for line in warned)
    # It is left as it was: the warning names it, the operator decides.
    assert mode(data) == 0o755 and mode(data / "lukhas.db") == 0o644
