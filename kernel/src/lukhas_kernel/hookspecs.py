# mypy: disable-error-code="empty-body"
# (hook specifications declare signatures; pluggy never calls their bodies)
"""The Lukhas plugin API: every hook a plugin may implement, one function each.

A plugin is a module registered in the entry-point group ``lukhas.plugins``.
It implements any of these hooks with ``@lukhas_kernel.hookimpl``; only
`lukhas_plugin_info` is required. Each call is made for one plugin at a time,
isolated: an exception fails (or, at request time, drops) that plugin alone,
and so does the import or an async hook running past
``LUKHAS_PLUGIN_TIMEOUT_S``. Sync hooks only return declarations and must
return at once: they run on the event loop, where nothing can interrupt them.

Plugin-API version: :data:`lukhas_kernel.PLUGIN_API_VERSION`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from aiohttp.typedefs import Middleware
    from prometheus_client.registry import Collector

    from ._core.settings import PluginSettings
    from ._plugin.context import HealthCheck, PluginContext, PluginInfo
    from ._plugin.route import Route

PROJECT = "lukhas"
#: Marks hook specifications: the kernel's below, and those a plugin publishes
#: through `lukhas_hookspecs` (exported as ``lukhas_kernel.hookspec``).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementations (exported as ``lukhas_kernel.hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def lukhas_plugin_info() -> PluginInfo:
    """Describe the plugin: API range, version, requirements, route prefixes.

    Called once after import. A range that excludes the kernel's plugin-API
    version fails the plugin with ``incompatible: needs X, kernel has Y``.
    """


@hookspec(firstresult=True)
def lukhas_settings_model() -> type[PluginSettings]:
    """Return the plugin's settings model, a :class:`PluginSettings` subclass.

    It is loaded from the environment (the model's own ``env_prefix``), ``.env``
    and the ``[plugins.NAME]`` table of the ``LUKHAS_CONFIG`` file; invalid
    values fail the plugin at the register stage, naming the variable.
    """


@hookspec(firstresult=True)
def lukhas_migrations() -> str | os.PathLike[str]:
    """Return the directory of the plugin's Alembic revisions.

    The kernel upgrades them to head before `lukhas_setup` (or, with
    ``LUKHAS_AUTO_MIGRATE=false``, checks they are at head); its revision is
    kept in the plugin's own version table ``<name>_alembic_version``. Tables
    are named with the plugin's prefix. A failing migration fails the plugin.
    """


@hookspec
async def lukhas_setup(context: PluginContext[Any, Any]) -> None:
    """Create the plugin's resources (stores, engines) in `context.runtime`.

    `context.db` is the kernel's database (``async with context.db.begin()``).

    Runs after every plugin this one requires is set up, concurrently with
    unrelated plugins, within the plugin timeout.
    """


@hookspec
def lukhas_routes(context: PluginContext[Any, Any]) -> list[Route]:
    """Declare HTTP routes, each with its pydantic request and response models.

    Paths must lie under ``/api/v1/<name>`` or a declared route prefix; a path
    another plugin already claimed fails this plugin, naming the first.
    """


@hookspec
def lukhas_middlewares(context: PluginContext[Any, Any]) -> list[Middleware]:
    """Return aiohttp middlewares wrapped around every request of the host.

    They run outside the kernel's routing, see every final response (errors
    included, already as problem+json) and are bypassed while the plugin is
    not active.
    """


@hookspec
async def lukhas_startup(context: PluginContext[Any, Any]) -> None:
    """Start background work once the host is about to serve (e.g. resume jobs)."""


@hookspec
def lukhas_health_checks(context: PluginContext[Any, Any]) -> Mapping[str, HealthCheck]:
    """Name async checks; one that raises, returns False or times out degrades the plugin."""


@hookspec
def lukhas_metrics(context: PluginContext[Any, Any]) -> list[Collector]:
    """Return the plugin's Prometheus collectors, exported while it serves.

    Build them unregistered (``Histogram(..., registry=None)``) or as a
    custom collector whose ``collect()`` reads state the plugin keeps current;
    ``collect()`` runs on the scrape and must not block.
    """


@hookspec
async def lukhas_teardown(context: PluginContext[Any, Any]) -> None:
    """Release resources; called in reverse set-up order at shutdown, with a timeout."""


@hookspec
async def lukhas_profile_fields(
    context: PluginContext[Any, Any], user: Mapping[str, Any], options: Mapping[str, Any]
) -> Mapping[str, Any]:
    """Contribute fields to a user's profile (``GET /api/v1/users/{id}`` and
    ``GET /api/v1/users/me``).

    `context` is the contributing plugin's own (declare only the arguments
    you use). Declare each field with its type in
    ``PluginInfo.profile_fields``: it is then in the profile's schema in
    /openapi.json (that type or null), and a value that does not fit it is
    dropped and logged. An undeclared field is passed on as it is (schema: any).

    `options` are the request's query parameters, ``include_drift`` parsed
    as a bool and any others as strings.
    A contributor that raises or hangs is logged and its fields dropped.
    """


@hookspec
def lukhas_cli_commands() -> list[click.Command]:
    """Return click commands added to the ``lukhas`` CLI (e.g. a ``glyphs`` group)."""


@hookspec(firstresult=True)
def lukhas_hookspecs() -> object:
    """Return a module or class of hook specifications other plugins may implement.

    Each is a function marked with ``@lukhas_kernel.hookspec`` and named
    after the plugin (``notes_…``). They are added when the plugin registers,
    before the plugins that list it in ``PluginInfo.requires``; the plugin
    calls them with ``await context.hooks.call(name, **arguments)``.
    """
