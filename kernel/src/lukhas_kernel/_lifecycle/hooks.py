"""The plugins' hook implementations, as pluggy holds them."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import pluggy

from .. import hookspecs
from .._core.isolation import StageError, describe

__all__ = ["PluginHooks"]

T = TypeVar("T")


class PluginHooks:
    """One pluggy manager; a plugin's hooks are registered while it may serve."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)

    def register(self, name: str, module: ModuleType) -> None:
        """Register and validate `module`'s hooks; raises what pluggy raises."""
        self.pm.register(module, name=name)
        self.pm.check_pending()

    def unregister(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)

    def implementation(self, hook: str, plugin: str) -> Callable[..., Any] | None:
        """`plugin`'s implementation of `hook`, or None."""
        for impl in self.implementations(hook):
            if impl.plugin_name == plugin:
                function: Callable[..., Any] = impl.function
                return function
        return None

    def implementations(self, hook: str) -> list[pluggy.HookImpl]:
        return list(getattr(self.pm.hook, hook).get_hookimpls())

    def listed(self, hook: str, plugin: str, kind: type[T], **kwargs: Any) -> list[T]:
        """Call a sync hook that returns a list; raises StageError (it raised)
        or TypeError (an item is not a `kind`)."""
        function = self.implementation(hook, plugin)
        if function is None:
            return []
        try:
            items = list(function(**kwargs) or [])
        except Exception as exc:
            raise StageError(describe(exc)) from exc
        if not all(isinstance(item, kind) for item in items):
            raise TypeError(f"{hook} must return a list of {kind.__name__}")
        return items
