"""Who runs a dream job: one host process's incarnation, as stored in `dreams_jobs.runner`.

A runner is ``"<hostname>:<pid>:<incarnation>:<node>"``: the hostname and
process id for people reading the table, a random token that tells two
starts of the same PID apart (a container's main process is PID 1 on every
start), and the node, a digest of this boot of this machine and its PID
namespace. Two runners on the same node see the same process ids, so a
process can tell for sure that another runner of its node is dead (its PID
is gone, or is this very process under a new incarnation) and take its jobs
at once, without waiting for their lease. A runner of another node is only
ever judged by its lease.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from lukhas_kernel import process_ended

__all__ = ["Incarnation"]


def _node() -> str:
    """This boot of this machine and this PID namespace; "" where it cannot be told (not Linux)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return hashlib.sha256(f"{boot}/{namespace}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Incarnation:
    """This process, from its start to its stop."""

    runner: str
    pid: int
    node: str

    @classmethod
    def current(cls) -> Incarnation:
        """A new incarnation of this process (each plugin start makes its own)."""
        pid, node = os.getpid(), _node()
        return cls(f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}:{node}", pid, node)

    def is_dead(self, runner: str) -> bool:
        """True only when `runner` is certainly not running any more: it ran on
        this node, and its process is gone or is this process started anew.
        A reused PID makes a dead runner look alive: then its lease decides."""
        try:
            _, pid_text, _, node = runner.rsplit(":", 3)
            pid = int(pid_text)
        except ValueError:
            return False
        if not self.node or node != self.node or runner == self.runner or pid <= 0:
            return False
        # The same pid is this process's previous incarnation.
        return pid == self.pid or process_ended(pid)
