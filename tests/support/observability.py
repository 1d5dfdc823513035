"""The observability plugin, as `lukhas_host` loads it."""

from __future__ import annotations

OBS = "observability=lukhas_observability.plugin"
