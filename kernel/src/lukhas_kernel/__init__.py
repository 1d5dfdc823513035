"""Lukhas kernel: settings, flags, plugin lifecycle and the aiohttp host.

Importing this package has no side effects; discovery happens in
:meth:`Kernel.load`. Plugins need only what is listed here.
"""

import pluggy

from ._cli.common import with_database
from ._core.problems import ProblemError, problem_type, validation_error
from ._core.processes import process_ended
from ._core.settings import KernelSettings, PluginSettings, SettingsError
from ._core.version import KERNEL_VERSION
from ._http.app import request_id
from ._http.auth import current_user, request_user
from ._lifecycle.kernel import PLUGIN_API_VERSION, Kernel
from ._plugin.context import HealthCheck, PluginContext, PluginInfo
from ._plugin.fields import INPUT_YEARS, IsoDate, JsonInt, Rfc3339Datetime
from ._plugin.ownership import owned_by
from ._plugin.pagination import Page, PageQuery, paginate
from ._plugin.route import Route
from ._plugin.states import CheckResult, PluginState, PluginView, StartupReport
from ._plugin.view import KernelView
from ._services.accounts import User
from ._services.cache import CacheRegion
from ._services.storage import Database, UtcDateTime
from .hookspecs import hookspec

__version__ = KERNEL_VERSION

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
