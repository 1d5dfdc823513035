"""Settings of the observability plugin."""

from __future__ import annotations

from typing import Literal

from lukhas_kernel import PluginSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class ObservabilitySettings(PluginSettings):
    """`OBSERVABILITY_*` variables, or the `[plugins.observability]` table of the config file."""

    model_config = SettingsConfigDict(env_prefix="OBSERVABILITY_")

    request_log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="level of the one log event per request (shown if LUKHAS_LOG_LEVEL admits it)")
    status_window_s: float = Field(
        60.0, ge=1, le=3600, description="request rates and latencies on /status cover this many seconds")
    status_refresh_s: int = Field(10, ge=1, le=3600, description="how often /status reloads itself")
