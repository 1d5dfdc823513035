"""Whether a process of this machine has ended, for records that name their
writer by process id (start markers, dream job leases)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["process_ended"]


def process_ended(pid: int) -> bool:
    """True when process `pid` of this machine (and PID namespace) has ended.

    A zombie has ended: where PID 1 does not reap orphans (many containers),
    a killed process's entry stays until the machine restarts. A process of
    another user is alive as far as we can tell.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # "pid (name) S ...": the state follows the last parenthesis
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False
