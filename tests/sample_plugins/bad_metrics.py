"""Its `lukhas_metrics` misbehaves as BAD_METRICS_MODE says: `raise_collect` (a
collector raises on collect), `duplicate` (a family named like observability's
own, beside one of its own), `raise_hook` (the hook itself raises)."""

from typing import Literal

from lukhas_kernel import PluginSettings, hookimpl
from prometheus_client import Counter
from prometheus_client.registry import Collector
from pydantic_settings import SettingsConfigDict

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401


class BadMetricsSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="BAD_METRICS_")

    mode: Literal["raise_collect", "duplicate", "raise_hook"] = "raise_collect"


class Broken(Collector):
    def collect(self):
        raise RuntimeError("collector broke")


@hookimpl
def lukhas_settings_model():
    return BadMetricsSettings


@hookimpl
def lukhas_metrics(context) -> list[Collector]:
    own = Counter("bad_metrics_events", "Events of the sample plugin", registry=None)
    if context.settings.mode == "raise_hook":
        raise RuntimeError("hook broke")
    if context.settings.mode == "duplicate":
        return [Counter("lukhas_http_requests", "A name observability already exports", registry=None), own]
    return [own, Broken()]
