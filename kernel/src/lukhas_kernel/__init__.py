"""Lukhas kernel: settings, flags, plugin lifecycle and the aiohttp host.

Importing this package has no side effects; discovery happens in
:meth:`Kernel.load`. Plugins need only what is listed here.
"""

import pluggy
from importlib_metadata import PackageNotFoundError, version

from ._accounts import User
from ._auth import current_user, request_user
from ._cache import CacheRegion
from ._cli_common import with_database
from ._context import HealthCheck, PluginContext, PluginInfo
from ._fields import INPUT_YEARS, IsoDate, JsonInt, Rfc3339Datetime
from ._host import request_id
from ._kernel import PLUGIN_API_VERSION, Kernel
from ._pagination import Page, PageQuery, paginate
from ._problems import ProblemError
from ._records import CheckResult, PluginState, PluginView, StartupReport
from ._routing import Route
from ._settings import KernelSettings, PluginSettings, SettingsError
from ._storage import Database, UtcDateTime
from ._view import KernelView

try:
    __version__ = version("lukhas-kernel")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

#: Marks a plugin's hook implementations (see :mod:`lukhas_kernel.hookspecs`).
hookimpl = pluggy.HookimplMarker("lukhas")

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
    "paginate",
    "request_id",
    "request_user",
    "with_database",
]
