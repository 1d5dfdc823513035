"""The README's make targets: `make run` on a chosen port, and one line, not an
apt-get error, when a Debian package the tests need is missing and make is
not root."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.paths import ROOT

MAKE = shutil.which("make") or "/usr/bin/make"


def test_make_run_takes_the_port_from_PORT():
    shown = subprocess.run([MAKE, "-s", "-n", "run", "PORT=9123"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert shown.splitlines()[-1] == ".venv/bin/lukhas serve --port 9123"
    default = subprocess.run([MAKE, "-s", "-n", "run"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, check=True).stdout
    assert default.splitlines()[-1] == ".venv/bin/lukhas serve"


def test_missing_test_tools_without_root_stop_make_with_one_line(tmp_path: Path):
    # A PATH where none of the tools is found, and `id -u` says: not root.
    (tmp_path / "id").write_text("#!/bin/sh\necho 1000\n")
    (tmp_path / "id").chmod(0o755)
    done = subprocess.run([MAKE, "-s", "test-tools"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        "make: missing Debian packages prometheus chromium postgresql redis-server: installing them "
        "needs root (sudo apt-get install prometheus chromium postgresql redis-server, or run make as root)")
    assert "apt-get" not in done.stdout
