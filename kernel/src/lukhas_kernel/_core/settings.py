"""Kernel settings, plugin flags and the TOML config file.

Every settings model reads, in order of precedence: explicit keyword
arguments (tests), the environment, `.env`, the TOML file named by
`LUKHAS_CONFIG`, then its defaults. The TOML table a model reads is handed to
pydantic-settings through a context variable, so plugin settings classes stay
plain subclasses of :class:`PluginSettings` with no kernel plumbing in them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar, get_args

from pydantic import Field, SecretBytes, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .spelling import did_you_mean

__all__ = [
    "HostSettings",
    "KernelSettings",
    "PluginSettings",
    "SettingsError",
    "config_table",
    "first_error",
    "load_config_file",
    "load_kernel_settings",
    "load_settings",
    "reading_table",
    "unknown_keys",
]

# The TOML values for the model being loaded right now (one table of the file).
_toml_values: ContextVar[Mapping[str, Any]] = ContextVar(
    "lukhas_toml_values", default=MappingProxyType({})
)

SettingsT = TypeVar("SettingsT", bound="PluginSettings")


class SettingsError(Exception):
    """A setting has a value that cannot be used; the message is one line."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"invalid setting {variable}: {reason}")
        self.variable = variable
        self.reason = reason


class PluginSettings(BaseSettings):
    """Base class for every Lukhas settings model, the kernel's and plugins'.

    A plugin subclasses it, names its environment prefix, and receives its
    `[plugins.NAME]` table of the config file as the lowest-precedence source.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_settings = InitSettingsSource(settings_cls, dict(_toml_values.get()))
        # No `.env` file (or an empty one) gives no value, yet asking it costs as
        # much as asking the environment, field by field: it is left out then.
        dotenv = (dotenv_settings,) if getattr(dotenv_settings, "env_vars", True) else ()
        return (init_settings, env_settings, *dotenv, toml_settings)


class HostSettings(PluginSettings):
    """What finds a running host and bounds a wait for it (`lukhas reload`):
    any other kernel setting may be what the reload it asks for rejects."""

    model_config = SettingsConfigDict(env_prefix="LUKHAS_")

    data_dir: Path = Path(".lukhas")
    # How long a reload's new generation of workers has to be ready.
    reload_timeout_s: float = Field(60.0, gt=0, le=3600)


class KernelSettings(HostSettings):
    """Settings of the kernel itself (docs/settings.md); TOML table `[kernel]`."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Host processes serving the one port (`lukhas serve --workers N`); 1 is one process.
    workers: int = Field(1, ge=1, le=64)
    plugin_timeout_s: float = Field(5.0, gt=0, le=3600)
    request_timeout_s: float = Field(30.0, gt=0, le=3600)
    # A connection has this long for a request's headers, then for its body
    # (from the end of the headers); past either it is closed (see _serving).
    header_timeout_s: float = Field(10.0, gt=0, le=3600)
    body_timeout_s: float = Field(60.0, gt=0, le=3600)
    # Open connections per host process; more are closed at once.
    max_connections: int = Field(1000, ge=1, le=1_000_000)
    health_interval_s: float = Field(30.0, gt=0)
    required_plugins: str = ""
    extra_plugins: str = ""
    max_body_bytes: int = Field(1024 * 1024, ge=1)
    database_url: str | None = None
    db_timeout_s: float = Field(5.0, gt=0, le=600)
    db_busy_timeout_ms: int = Field(5000, ge=0)
    auto_migrate: bool = True
    auth_cache_ttl_s: float = Field(5.0, ge=0)
    rate_limit_storage: str = "memory://"
    cache_url: str = "memory://"
    log_format: Literal["console", "json"] | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    chaos_enabled: bool = False
    chaos: str = ""
    # Run-time resilience (docs/plugin-states.md): retries of a failed migrate,
    # setup or startup stage, per-plugin circuit breakers, crash-loop quarantine.
    plugin_retries: int = Field(5, ge=0, le=1000)
    plugin_retry_base_s: float = Field(1.0, gt=0, le=86400)
    plugin_retry_max_s: float = Field(300.0, gt=0, le=86400)
    breaker_enabled: bool = True
    breaker_window_s: float = Field(10.0, gt=0, le=3600)
    breaker_min_requests: int = Field(20, ge=1, le=1_000_000)
    breaker_failure_ratio: float = Field(0.5, gt=0, le=1)
    breaker_cooldown_s: float = Field(10.0, gt=0, le=86400)
    quarantine_after: int = Field(3, ge=0, le=1000)
    # How long a stopping host process lets in-flight requests finish.
    shutdown_grace_s: float = Field(30.0, ge=0, le=3600)

    @field_validator("required_plugins", "extra_plugins", "chaos")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def required(self) -> list[str]:
        return [name.strip() for name in self.required_plugins.split(",") if name.strip()]

    @property
    def extras(self) -> list[str]:
        return [spec.strip() for spec in self.extra_plugins.split(",") if spec.strip()]


@contextmanager
def reading_table(values: Mapping[str, Any]) -> Iterator[None]:
    token = _toml_values.set(values)
    try:
        yield
    finally:
        _toml_values.reset(token)


def load_config_file(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the TOML file named by `LUKHAS_CONFIG` (empty when unset)."""
    environ = os.environ if environ is None else environ
    path = environ.get("LUKHAS_CONFIG", "").strip()
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise SettingsError("LUKHAS_CONFIG", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError("LUKHAS_CONFIG", f"{path} is not valid TOML: {exc}") from None


def first_error(exc: ValidationError, model: type[BaseSettings], prefix: str) -> SettingsError:
    """The first error, naming the variable; the refused value is shown unless
    the setting is a secret (`SecretStr`), which never reaches a message."""
    error = exc.errors(include_url=False)[0]
    loc = str(error["loc"][0]) if error["loc"] else "?"
    field = model.model_fields.get(loc)
    # A loc that is no field's name is an alias, a full variable name already.
    variable = (prefix + loc).upper() if field is not None else loc.upper()
    if field is None:
        field = next((f for f in model.model_fields.values()
                      if loc in _aliases(f.validation_alias)), None)
    secret = field is not None and _is_secret(field.annotation)
    value = error.get("input")
    shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) and not secret else ""
    return SettingsError(variable, f"{error['msg']}{shown}")


def _is_secret(annotation: Any) -> bool:
    """Whether a setting's type is, or holds, a pydantic secret (`SecretStr | None`)."""
    return annotation in (SecretStr, SecretBytes) or any(_is_secret(a) for a in get_args(annotation))


def _aliases(alias: Any) -> list[str]:
    if isinstance(alias, str):
        return [alias]
    return [str(choice) for choice in getattr(alias, "choices", [])]


def config_table(config: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    table: Any = config
    for key in keys:
        table = table.get(key, {}) if isinstance(table, Mapping) else {}
    return table if isinstance(table, Mapping) else {}


def unknown_keys(model: type[BaseSettings], table: Mapping[str, Any],
                 allowed: frozenset[str] = frozenset()) -> dict[str, str | None]:
    """The keys of a config-file table that no setting of `model` reads, each
    with the closest setting name (or None).

    A misspelt key is otherwise silent: the models ignore extra input, so
    that one table can serve several readers (`enabled` is the flags').
    """
    names = [*model.model_fields, *allowed]
    aliases = (alias for field in model.model_fields.values()
               for alias in _aliases(field.validation_alias))
    # Keys are matched as the models match them: regardless of case.
    readable = {name.lower() for name in (*names, *aliases)}
    return {key: did_you_mean(key, names) for key in table if key.lower() not in readable}


def load_settings(
    model: type[SettingsT],
    config: Mapping[str, Any],
    table: tuple[str, ...],
    env_file: str | None = ".env",
    **overrides: Any,
) -> SettingsT:
    """Build `model` from overrides, environment, `.env` and `config[table]`.

    Raises :class:`SettingsError` naming the environment variable at fault.
    """
    prefix = str(model.model_config.get("env_prefix", ""))
    with reading_table(config_table(config, *table)):
        try:
            # `_env_file` is pydantic-settings' init argument; its type stubs
            # do not declare it.
            sources: dict[str, Any] = {"_env_file": env_file}
            return model(**sources, **overrides)
        except ValidationError as exc:
            raise first_error(exc, model, prefix) from None


def load_kernel_settings(
    config: Mapping[str, Any] | None = None, env_file: str | None = ".env", **overrides: Any
) -> KernelSettings:
    """The kernel's settings; reads the config file itself unless given."""
    config = load_config_file() if config is None else config
    return load_settings(KernelSettings, config, ("kernel",), env_file, **overrides)
