"""Run-time flags as configured: `<NAME>_ENABLED` per plugin and the flags
plugins declare, from the environment, `.env`, the config file, defaults."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError, create_model

from .._core.settings import PluginSettings, config_table, first_error, reading_table

__all__ = ["explicit_in_environment", "flag_name", "load_flags", "parse_flags"]


def flag_name(plugin: str) -> str:
    """The environment variable that enables or disables a plugin."""
    return plugin.upper().replace("-", "_") + "_ENABLED"


@lru_cache(maxsize=16)
def _flags_model(defaults: tuple[tuple[str, bool], ...]) -> type[PluginSettings]:
    fields: dict[str, Any] = {name: (bool, default) for name, default in defaults}
    return create_model("PluginFlags", __base__=PluginSettings, **fields)


def load_flags(
    plugins: list[str], config: Mapping[str, Any], env_file: str | None = ".env"
) -> dict[str, bool]:
    """Parse `<NAME>_ENABLED` for each plugin name; TOML `[plugins.NAME] enabled`."""
    from_toml = {
        flag_name(name): config_table(config, "plugins", name)["enabled"]
        for name in plugins
        if "enabled" in config_table(config, "plugins", name)
    }
    values = parse_flags({flag_name(name): True for name in plugins}, from_toml, env_file)
    return {name: values[flag_name(name)] for name in plugins}


def parse_flags(
    defaults: Mapping[str, bool], from_toml: Mapping[str, Any], env_file: str | None = ".env"
) -> dict[str, bool]:
    """Boolean flags by name from environment, `.env`, TOML values, defaults."""
    if not defaults:  # most plugins declare none: nothing to read
        return {}
    model = _flags_model(tuple(sorted(defaults.items())))
    with reading_table(from_toml):
        try:
            # `_env_file` is pydantic-settings' init argument; its stubs do not declare it.
            sources: dict[str, Any] = {"_env_file": env_file}
            flags = model(**sources)
        except ValidationError as exc:
            raise first_error(exc, model, "") from None
    return {name: getattr(flags, name) for name in defaults}


def explicit_in_environment(names: Iterable[str], env_file: str | None) -> set[str]:
    """The flag names the environment or the `.env` file sets explicitly."""
    present = {key.upper() for key in os.environ}
    if env_file:
        present |= {key.upper() for key in dotenv_values(env_file)}
    return {name for name in names if name.upper() in present}
