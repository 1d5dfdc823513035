"""Throwaway virtual environments layered over the suite's.

An overlay venv sees every package of the suite's (the kernel and plugins
included) through a .pth file and installs its own on top, so `pip install`
and `pip uninstall` in it change nothing outside it. Every process has a timeout.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

__all__ = ["overlay_venv", "pip"]


def overlay_venv(path: Path) -> Path:
    """A venv at `path` over the suite's packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True, timeout=120)
    python = path / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    # addsitedir also runs the suite's .pth files (its editable installs).
    suite = sysconfig.get_paths()["purelib"]
    Path(site, "suite.pth").write_text(f"import site; site.addsitedir({suite!r})\n")
    return python


def pip(python: Path, *args: str | Path, timeout: float = 240) -> None:
    """`python -m pip ARGS`, which must succeed."""
    result = subprocess.run([python, "-m", "pip", *map(str, args)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
