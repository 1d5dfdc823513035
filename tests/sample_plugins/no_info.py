"""Has no lukhas_plugin_info."""

from sample_plugins._kit import lukhas_routes  # noqa: F401
