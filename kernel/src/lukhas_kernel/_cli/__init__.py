"""The `lukhas` command: serving, supervision of worker processes, administration.

`main` is the entry point of both `lukhas` and `python -m lukhas_kernel`. It
imports only the standard library before it has pre-started the first
worker of a `lukhas serve` (`prestart.py`), so that worker's imports overlap
the CLI's here.

Note: once the submodule `lukhas_kernel._cli.main` (the click group) is
imported, the package attribute `main` is that submodule; the console
script and `__main__` bind this function before calling it.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the `lukhas` command line on `sys.argv`; exits like a click command."""
    from . import prestart

    prestart.start(sys.argv[1:])
    try:
        from .main import main as commands

        commands()
    finally:
        # Handed over by now if the host started; otherwise (cannot start,
        # usage error, --version) it must not outlive this process.
        prestart.dismiss()
