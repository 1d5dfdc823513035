"""The register stage's checks: a plugin author's mistakes, named with the fix.

Each mistake is caught where the kernel first can see it, at registration,
rather than later as a hook that is never called, a `no such table` or a
`500`. A mistake that stops the plugin raises `Dropped` with the reason; one
that does not (an unmarked hook function, a setting key nothing reads) is a
warning, and the plugin goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic_settings import BaseSettings

from .._core.isolation import describe
from .._core.settings import (
    PluginSettings,
    SettingsError,
    config_table,
    load_settings,
    unknown_keys,
)
from .._core.spelling import did_you_mean
from .._plugin.context import PluginInfo
from .._plugin.states import PluginState, Stage
from .hooks import HooksRefused, MarkedHook, PluginHooks

__all__ = ["PLUGIN_API_VERSION", "Dropped", "check_hooks", "migrations_dir", "plugin_info",
           "plugin_settings", "publish_hookspecs", "warn_unknown_keys"]

PLUGIN_API_VERSION = "1.0"
log = structlog.get_logger("lukhas.kernel")
_NOT_UP = (PluginState.FAILED, PluginState.SKIPPED, PluginState.DISABLED, PluginState.QUARANTINED)


class Dropped(Exception):
    """A transition failed: the plugin leaves the lifecycle at `stage`.

    `retriable` when the plugin's own migrate, setup or startup code failed
    (perhaps on something transient), not the kernel's checks around it.
    `cause` is the exception that made it fail, for the log's traceback;
    None for a timeout or a mistake the kernel found itself.
    """

    def __init__(self, stage: Stage, reason: str, state: PluginState = PluginState.FAILED,
                 *, retriable: bool = False, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.stage, self.reason, self.state = stage, reason, state
        self.retriable, self.cause = retriable, cause


def plugin_info(module: ModuleType, hooks: PluginHooks) -> PluginInfo:
    """Call the module's `lukhas_plugin_info` (before registering it: its
    `requires` decide the order plugins register in) and check the answer."""
    marked = hooks.marked(module).get("lukhas_plugin_info")
    if marked is None:
        raise Dropped(Stage.REGISTER,
                      "lukhas_plugin_info is missing: is the function marked with @hookimpl?")
    try:
        info = marked.function()
    except Exception as exc:
        raise Dropped(Stage.REGISTER, describe(exc), cause=exc) from None
    if not isinstance(info, PluginInfo):
        raise Dropped(Stage.REGISTER, "lukhas_plugin_info must return a PluginInfo")
    try:
        compatible = PLUGIN_API_VERSION in SpecifierSet(info.api)
    except InvalidSpecifier:
        raise Dropped(Stage.REGISTER, f"invalid api range {info.api!r}") from None
    if not compatible:
        raise Dropped(Stage.REGISTER, f"incompatible: needs {info.api}, kernel has {PLUGIN_API_VERSION}")
    return info


def check_hooks(name: str, module: ModuleType, hooks: PluginHooks, requires: tuple[str, ...],
                state_of: Callable[[str], PluginState | None]) -> None:
    """Warn about unmarked hook functions; drop the plugin for a marked one
    that names no hook, or whose parameters the hook does not pass.

    A hook named after a plugin it requires that did not register (so never
    published its hooks) skips this plugin, as a requirement not met does.
    """
    for function in hooks.unmarked(module):
        log.warning("plugin.unmarked_hook", plugin=name, function=function,
                    reason=f"{function} is not a hook implementation: "
                           "mark it with @lukhas_kernel.hookimpl")
    specified = hooks.specified()
    for marked in hooks.marked(module).values():
        if marked.hook in specified:
            _check_parameters(marked, specified[marked.hook])
        elif not marked.optional:
            publisher = next((r for r in requires if marked.hook.startswith(f"{r}_")), None)
            state = state_of(publisher) if publisher else None
            if publisher is not None and (state is None or state in _NOT_UP):
                raise Dropped(Stage.REGISTER, f"requires {publisher}, which is "
                              f"{state.value if state else 'not installed'}", PluginState.SKIPPED)
            closest = did_you_mean(marked.hook, specified)
            raise Dropped(Stage.REGISTER, f"unknown hook {marked.hook}: " + (
                f"did you mean {closest}?" if closest else
                "neither the kernel nor a plugin it requires specifies it"))


def _check_parameters(marked: MarkedHook, passed: tuple[str, ...]) -> None:
    unknown = [arg for arg in marked.argnames if arg not in passed]
    if unknown:
        raise Dropped(Stage.REGISTER, (
            f"{marked.hook}({', '.join(marked.argnames)}): {', '.join(unknown)} is not a "
            f"parameter of the hook, which passes ({', '.join(passed)}): "
            "name the parameters as the hook does"))


def publish_hookspecs(name: str, hooks: PluginHooks) -> None:
    """Add the hook specifications the plugin publishes (`lukhas_hookspecs`)."""
    function = hooks.implementation("lukhas_hookspecs", name)
    if function is None:
        return
    try:
        hooks.publish(name, function())
    except HooksRefused as exc:
        raise Dropped(Stage.REGISTER, str(exc)) from None
    except Exception as exc:
        raise Dropped(Stage.REGISTER, describe(exc), cause=exc) from None


def migrations_dir(name: str, hooks: PluginHooks) -> Path | None:
    """The directory `lukhas_migrations` names, which must exist now: a
    missing one would otherwise surface at the first request as `no such table`."""
    function = hooks.implementation("lukhas_migrations", name)
    if function is None:
        return None
    try:
        path = Path(function())
    except Exception as exc:
        raise Dropped(Stage.REGISTER, describe(exc), cause=exc) from None
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise Dropped(Stage.REGISTER, f"lukhas_migrations names {path}, which {what}: "
                      "ship the revision files with the package (package data)")
    return path


def plugin_settings(name: str, hooks: PluginHooks, config: Mapping[str, Any],
                    env_file: str | None) -> PluginSettings | None:
    """The plugin's settings model, loaded; warns about keys of its
    `[plugins.NAME]` table that nothing reads (`enabled` is its flag's)."""
    hook = hooks.implementation("lukhas_settings_model", name)
    table = config_table(config, "plugins", name)
    try:
        model = hook() if hook else None
    except Exception as exc:
        raise Dropped(Stage.REGISTER, describe(exc), cause=exc) from None
    if model is not None and not (isinstance(model, type) and issubclass(model, PluginSettings)):
        raise Dropped(Stage.REGISTER, "lukhas_settings_model must return a PluginSettings subclass")
    if model is None:
        for key in (key for key in table if key != "enabled"):
            log.warning("settings.unknown_key", table=f"plugins.{name}", key=key, closest=None,
                        reason=f"plugin {name} takes no settings (it has no lukhas_settings_model)")
        return None
    warn_unknown_keys(f"plugins.{name}", model, table, frozenset({"enabled"}))
    try:
        return load_settings(model, config, ("plugins", name), env_file)
    except SettingsError as exc:  # one line naming the variable: no traceback needed
        raise Dropped(Stage.REGISTER, str(exc)) from None
    except Exception as exc:  # the model's own validator
        raise Dropped(Stage.REGISTER, describe(exc), cause=exc) from None


def warn_unknown_keys(table_name: str, model: type[BaseSettings], table: Mapping[str, Any],
                      allowed: frozenset[str] = frozenset()) -> None:
    """One `settings.unknown_key` warning for each key of a config table that
    no setting reads, naming the closest setting."""
    for key, closest in unknown_keys(model, table, allowed).items():
        hint = f"did you mean {closest}?" if closest else "no setting has a name close to it"
        log.warning("settings.unknown_key", table=table_name, key=key, closest=closest,
                    reason=f"[{table_name}] has no setting {key}: {hint}")
