"""Where the suite and the repository are."""

from __future__ import annotations

from pathlib import Path

#: The `tests/` directory: on every `lukhas` process's PYTHONPATH (for `sample_plugins`).
TESTS = Path(__file__).resolve().parents[1]
#: The repository's root.
ROOT = TESTS.parent
#: The sample plugins, well-behaved and broken (importable as `sample_plugins.NAME`).
SAMPLE_PLUGINS = TESTS / "sample_plugins"
