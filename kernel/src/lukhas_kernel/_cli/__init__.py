"""The `lukhas` command: serving, supervision of worker processes, administration."""

from .main import main

__all__ = ["main"]
