"""The plugins' hook implementations and specifications, as pluggy holds them.

Invariant: pluggy never holds an implementation of a hook it has no
specification for. The kernel checks a module's marked functions before
registering it (`checks.check_hooks`), and plugins publish their own
specifications before the plugins that require them register.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import FunctionType, MethodType, ModuleType
from typing import Any, TypeVar, cast

import pluggy

from .. import hookspecs
from .._core.isolation import StageError, describe

__all__ = ["HooksRefused", "MarkedHook", "PluginHooks"]

T = TypeVar("T")
_MARK = f"{hookspecs.PROJECT}_impl"  # the attribute @hookimpl sets on a function
#: What pluggy can register from a module's namespace, besides plain functions.
_WRAPPERS = (MethodType, staticmethod, classmethod)


class HooksRefused(Exception):
    """Specifications a plugin publishes cannot be added; `str()` is the reason."""


@dataclass(frozen=True)
class MarkedHook:
    """A function of a plugin module marked with @hookimpl."""

    hook: str  # the hook it implements (its name, or the marker's `specname`)
    function: Callable[..., Any]
    opts: pluggy.HookimplOpts

    @property
    def optional(self) -> bool:
        """@hookimpl(optionalhook=True): its hook may never be specified."""
        return bool(self.opts.get("optionalhook"))

    @property
    def argnames(self) -> tuple[str, ...]:
        """Its parameters as pluggy matches them against the specification's."""
        return pluggy.HookImpl(None, "", self.function, self.opts).argnames


class _Manager(pluggy.PluginManager):
    """pluggy's manager, with a cheap first look at a module's names.

    pluggy looks each name of a plugin up with `inspect.getattr_static`, so
    that no descriptor runs. In a module, a name whose value is neither a
    function nor a method wrapper can be no hook implementation, and a
    function's options are its marker attribute, whatever pluggy would find
    (reading a function's attribute runs no plugin code). Most of a module's
    names are its imports: each is now decided after two lookups.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        if isinstance(plugin, ModuleType) and not name.startswith("__"):
            value = vars(plugin).get(name)
            if isinstance(value, FunctionType):
                # What pluggy would read, without its static lookup: a module's
                # function is its own marker holder, and no descriptor is involved.
                opts = getattr(value, _MARK, None)
                return cast(pluggy.HookimplOpts, opts) if isinstance(opts, dict) else None
            if not isinstance(value, _WRAPPERS):
                return None
        return super().parse_hookimpl_opts(plugin, name)


class PluginHooks:
    """One pluggy manager; a plugin's hooks are registered while it may serve."""

    def __init__(self) -> None:
        self.pm = _Manager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        #: The hooks plugins published (`lukhas_hookspecs`): hook name → plugin.
        self.publishers: dict[str, str] = {}

    def register(self, name: str, module: ModuleType) -> None:
        """Register and validate `module`'s hooks; raises what pluggy raises."""
        self.pm.register(module, name=name)
        self.pm.check_pending()

    def unregister(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)

    def marked(self, module: ModuleType) -> dict[str, MarkedHook]:
        """The functions of `module` pluggy would register, by the hook each implements."""
        found: dict[str, MarkedHook] = {}
        for attribute in dir(module):
            opts = self.pm.parse_hookimpl_opts(module, attribute)
            if opts is not None:
                hook = opts.get("specname") or attribute
                found[hook] = MarkedHook(hook, getattr(module, attribute), opts)
        return found

    @staticmethod
    def unmarked(module: ModuleType) -> list[str]:
        """`lukhas_*` functions defined in `module` itself that are not marked:
        pluggy skips them silently, so the hook is never called."""
        return sorted(name for name, value in vars(module).items()
                      if name.startswith(f"{hookspecs.PROJECT}_") and inspect.isfunction(value)
                      and value.__module__ == module.__name__ and not hasattr(value, _MARK))

    def specified(self) -> dict[str, tuple[str, ...]]:
        """Every hook with a specification (the kernel's and the published ones),
        with the parameters it passes."""
        return {name: caller.spec.argnames for name, caller in vars(self.pm.hook).items()
                if isinstance(caller, pluggy.HookCaller) and caller.spec is not None}

    def publish(self, plugin: str, namespace: object) -> None:
        """Add the specifications `plugin` publishes; HooksRefused names what
        is wrong with them, anything else is pluggy's or the namespace's own."""
        if not isinstance(namespace, (ModuleType, type)):
            raise HooksRefused(f"lukhas_hookspecs must return a module or a class, not {namespace!r}")
        names = [name for name in dir(namespace)
                 if self.pm.parse_hookspec_opts(namespace, name) is not None]
        if not names:
            raise HooksRefused(f"lukhas_hookspecs returned {namespace!r}, which has no "
                               "function marked with @lukhas_kernel.hookspec")
        for name in names:
            # Named after the plugin: unique among plugins, and clear of the kernel's.
            if not name.startswith(f"{plugin}_"):
                raise HooksRefused(f"hook specification {name} must be named {plugin}_…, "
                                   "after the plugin that publishes it")
            if name in self.specified():
                raise HooksRefused(f"hook specification {name} exists already")
        self.pm.add_hookspecs(namespace)
        self.publishers.update(dict.fromkeys(names, plugin))

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
