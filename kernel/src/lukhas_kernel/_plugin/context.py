"""What a plugin declares about itself and what the kernel hands it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel, TypeAdapter

from .._core.private_files import private_directory
from .._core.settings import KernelSettings, PluginSettings
from .._services.accounts import User
from .._services.cache import Cache, CacheRegion
from .._services.storage import Database
from .hookcalls import NoHookCalls, PublishedHooks
from .view import KernelView

__all__ = ["KERNEL_PROFILE_FIELDS", "HealthCheck", "PluginContext", "PluginInfo"]

#: A named health check: passes unless it raises or returns False.
HealthCheck = Callable[[], Awaitable[bool | None]]

SettingsT = TypeVar("SettingsT", bound=PluginSettings | None)
RuntimeT = TypeVar("RuntimeT")
_UNSET: Any = object()
#: The profile fields the kernel answers itself; no plugin may declare them.
KERNEL_PROFILE_FIELDS = ("user_id", "username", "tier")
_PROFILE_FIELD = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class PluginInfo:
    """Metadata a plugin returns from `lukhas_plugin_info`.

    `api` is a PEP 440 specifier of the plugin-API versions the plugin works
    with (e.g. ``">=1,<2"``); `route_prefixes` are paths the plugin owns in
    addition to ``/api/v1/<name>``; `requires` names plugins that must be
    active before this one is set up; `profile_fields` names the fields its
    `lukhas_profile_fields` contributes to user profiles, each with its type
    (e.g. ``{"drift_metrics": DriftMetrics}``; the profile field is that or null).

    Raises ValueError for a profile field the kernel answers itself, or whose
    type pydantic cannot validate: the plugin then fails at `register`.
    """

    api: str = ">=1,<2"
    version: str | None = None
    requires: tuple[str, ...] = ()
    route_prefixes: tuple[str, ...] = ()
    description: str = ""
    # Run-time flags the plugin reads through `context.flags`, with defaults,
    # e.g. {"PARALLEL_DREAMS_ENABLED": False}; admins change them at run time.
    flags: Mapping[str, bool] = field(default_factory=dict)
    profile_fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, kind in self.profile_fields.items():
            if name in KERNEL_PROFILE_FIELDS:
                raise ValueError(f"profile field {name!r} is the kernel's own; name it otherwise")
            # A model field of the profile: no pydantic attribute (`json`, `copy`) either.
            if not _PROFILE_FIELD.fullmatch(name) or hasattr(BaseModel, name):
                raise ValueError(f"profile field {name!r}: name it with a-z, 0-9 and '_', "
                                 "starting with a letter, and not as a pydantic model's attribute")
            try:
                TypeAdapter(kind)
            except Exception as exc:  # pydantic's schema errors, or a non-type
                raise ValueError(f"profile field {name!r}: {kind!r} is not a type pydantic "
                                 f"can validate ({type(exc).__name__})") from None


@dataclass(eq=False)
class PluginContext(Generic[SettingsT, RuntimeT]):
    """Per-plugin handle passed to every lifecycle hook.

    A plugin names its own types once, e.g.
    ``NotesContext = PluginContext[NotesSettings, NotesRuntime]``, and
    annotates its hooks with it: `settings` is then its settings model and
    `runtime` the object its `lukhas_setup` stores there (engines, stores),
    both typed, with no casts. `kernel` answers read-only questions about
    every plugin (states, timings, collectors).
    """

    name: str
    settings: SettingsT
    kernel_settings: KernelSettings
    log: Any
    db: Database | None  # None only while the CLI reads declarations
    # Live run-time flag values (shared with the kernel; read, don't write).
    flags: Mapping[str, bool]
    kernel: KernelView | None = field(default=None, repr=False)  # set for every loaded plugin
    #: Calls the hooks this plugin publishes to others (`lukhas_hookspecs`).
    hooks: PublishedHooks = field(default_factory=NoHookCalls, repr=False)
    #: Untyped scratch space, kept for plugins written before `runtime`.
    state: dict[str, Any] = field(default_factory=dict)
    _find_user: Callable[[str], Awaitable[User | None]] | None = field(default=None, repr=False)
    _cache: Cache | None = field(default=None, repr=False)
    _runtime: RuntimeT = field(default=_UNSET, repr=False)
    _degraded_reason: str | None = None
    _degraded_listeners: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @classmethod
    def create(
        cls, name: str, settings: SettingsT, kernel_settings: KernelSettings,
        db: Database | None, flags: Mapping[str, bool],
        find_user: Callable[[str], Awaitable[User | None]] | None = None,
        kernel: KernelView | None = None, cache: Cache | None = None,
    ) -> PluginContext[SettingsT, Any]:
        log = structlog.get_logger().bind(plugin=name)
        return cls(name, settings, kernel_settings, log, db, flags, kernel=kernel,
                   _find_user=find_user, _cache=cache)

    @property
    def runtime(self) -> RuntimeT:
        """The plugin's run-time objects, as its `lukhas_setup` stored them.

        Raises RuntimeError before setup has stored them (and after
        teardown), so that a handler never works on a torn-down engine.
        """
        if self._runtime is _UNSET:
            raise RuntimeError(f"{self.name} has no runtime: lukhas_setup has not stored it")
        return self._runtime

    @runtime.setter
    def runtime(self, value: RuntimeT) -> None:
        self._runtime = value

    def clear_runtime(self) -> None:
        """Forget the runtime objects (the kernel calls it after teardown)."""
        self._runtime = _UNSET
        self.state.clear()

    async def user(self, user_id: str) -> User | None:
        """The user with this id, or None (a plugin never reads the kernel's tables)."""
        if self._find_user is None:
            raise RuntimeError("no storage: users cannot be looked up here")
        return await self._find_user(user_id)

    def cache(self, region: str, model: Any, *, ttl_s: float, size: int) -> CacheRegion[Any]:
        """A cache region of this plugin for values of type `model` (call it once, in setup).

        In this process with `LUKHAS_CACHE_URL=memory://` (at most `size`
        entries), shared by every host process with `redis://…`; entries
        live `ttl_s` seconds (0: nothing is kept). See :class:`CacheRegion`.
        """
        if self._cache is None:
            raise RuntimeError("no cache: the kernel's services are not open here")
        return self._cache.region(f"{self.name}:{region}", model, ttl_s=ttl_s, size=size)

    @property
    def data_dir(self) -> Path:
        """A directory of the plugin's own under the kernel's data dir (`0700`, like
        the data dir; files the plugin writes there should be `0600`)."""
        return private_directory(self.kernel_settings.data_dir / "plugins" / self.name)

    def set_degraded(self, reason: str | None) -> None:
        """Report a fallback in use (degraded) or, with None, its end."""
        self._degraded_reason = reason
        for listener in self._degraded_listeners:
            listener()

    def on_degraded_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every `set_degraded` (the kernel's lifecycle listens)."""
        self._degraded_listeners.append(listener)

    @property
    def degraded_reason(self) -> str | None:
        return self._degraded_reason
