"""Its lukhas_migrations names a directory that does not exist."""

from pathlib import Path

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401


@hookimpl
def lukhas_migrations() -> Path:
    return Path(__file__).parent / "no_such_migrations"
