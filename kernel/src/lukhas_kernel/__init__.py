"""Lukhas kernel: settings, flags, plugin lifecycle and the aiohttp host.

Importing this package has no side effects; discovery happens in
:meth:`Kernel.load`. Plugins need only what is listed here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cli.common import with_database
    from ._core.problems import ProblemError, problem_type, validation_error
    from ._core.processes import process_ended
    from ._core.settings import KernelSettings, PluginSettings, SettingsError
    from ._http.app import request_id
    from ._http.auth import current_user, request_user
    from ._lifecycle.kernel import PLUGIN_API_VERSION, Kernel
    from ._plugin.context import HealthCheck, PluginContext, PluginInfo
    from ._plugin.fields import INPUT_YEARS, IsoDate, JsonInt, Rfc3339Datetime
    from ._plugin.ownership import owned_by
    from ._plugin.paged_select import PagedSelect
    from ._plugin.pagination import Page, PageQuery, paginate
    from ._plugin.route import Route
    from ._plugin.states import CheckResult, PluginState, PluginView, StartupReport
    from ._plugin.view import KernelView
    from ._services.accounts import User
    from ._services.cache import CacheRegion
    from ._services.storage import Database, UtcDateTime
    from .hookspecs import hookimpl, hookspec

    __version__: str

#: Where each public name is defined. A name is imported on first use: every
#: `lukhas_kernel.*` module imports this package first, and `lukhas serve`'s
#: supervising process, `--help` or a plugin using three names should not pay
#: for SQLAlchemy, aiohttp and the whole host.
_DEFINED_IN = {
    "with_database": "._cli.common",
    **dict.fromkeys(["ProblemError", "problem_type", "validation_error"], "._core.problems"),
    "process_ended": "._core.processes",
    **dict.fromkeys(["KernelSettings", "PluginSettings", "SettingsError"], "._core.settings"),
    "request_id": "._http.app",
    **dict.fromkeys(["current_user", "request_user"], "._http.auth"),
    **dict.fromkeys(["PLUGIN_API_VERSION", "Kernel"], "._lifecycle.kernel"),
    **dict.fromkeys(["HealthCheck", "PluginContext", "PluginInfo"], "._plugin.context"),
    **dict.fromkeys(["INPUT_YEARS", "IsoDate", "JsonInt", "Rfc3339Datetime"], "._plugin.fields"),
    "owned_by": "._plugin.ownership",
    "PagedSelect": "._plugin.paged_select",
    **dict.fromkeys(["Page", "PageQuery", "paginate"], "._plugin.pagination"),
    "Route": "._plugin.route",
    **dict.fromkeys(["CheckResult", "PluginState", "PluginView", "StartupReport"], "._plugin.states"),
    "KernelView": "._plugin.view",
    "User": "._services.accounts",
    "CacheRegion": "._services.cache",
    **dict.fromkeys(["Database", "UtcDateTime"], "._services.storage"),
    **dict.fromkeys(["hookimpl", "hookspec"], ".hookspecs"),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._core.version import KERNEL_VERSION as value
    elif name in _DEFINED_IN:
        value = getattr(importlib.import_module(_DEFINED_IN[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # found once; later lookups never reach here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})


__all__ = [
    "INPUT_YEARS",
    "PLUGIN_API_VERSION",
    "CacheRegion",
    "CheckResult",
    "Database",
    "HealthCheck",
    "IsoDate",
    "JsonInt",
    "Kernel",
    "KernelSettings",
    "KernelView",
    "Page",
    "PageQuery",
    "PagedSelect",
    "PluginContext",
    "PluginInfo",
    "PluginSettings",
    "PluginState",
    "PluginView",
    "ProblemError",
    "Rfc3339Datetime",
    "Route",
    "SettingsError",
    "StartupReport",
    "User",
    "UtcDateTime",
    "current_user",
    "hookimpl",
    "hookspec",
    "owned_by",
    "paginate",
    "process_ended",
    "problem_type",
    "request_id",
    "request_user",
    "validation_error",
    "with_database",
]
