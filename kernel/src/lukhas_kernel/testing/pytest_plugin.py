"""pytest fixtures for integrators: a real host, in-process, with chosen plugins.

Registered through the `pytest11` entry point, so installing lukhas-kernel
makes them available::

    async def test_my_plugin(lukhas_host):  # with asyncio_mode = "auto"
        client = await lukhas_host(["my_plugin=my_plugin.plugin"], chaos="other:setup:raise")
        assert (await client.get("/api/v1/my_plugin/hello")).status == 200
        await lukhas_chaos(client, ["my_plugin:request:raise"])  # faults while it runs
        assert (await client.get("/api/v1/my_plugin/hello")).status == 500
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

from .._cli.bootstrap import create_app, services_of
from .._core.settings import load_kernel_settings
from .._http.app import KERNEL_KEY
from .._lifecycle.chaos import ChaosPlan

__all__ = ["lukhas_chaos", "lukhas_database_url", "lukhas_host"]


@pytest.fixture
def lukhas_database_url() -> str | None:
    """The database URL every `lukhas_host` of a test uses; None: a SQLite file
    under ``tmp_path``. Override it (in a conftest) to run a suite on another
    database, e.g. a PostgreSQL database made for each test."""
    return None


@pytest.fixture
def lukhas_host(aiohttp_client: Any, tmp_path: Any, lukhas_database_url: str | None,
                ) -> Callable[..., Awaitable[Any]]:
    """Start a host and return an aiohttp test client for it.

    Call it with the plugin modules to load (``LUKHAS_EXTRA_PLUGINS`` items),
    optionally ``chaos=`` (a ``LUKHAS_CHAOS`` value; chaos is enabled with it),
    ``installed=True`` to also discover installed plugins, ``config=`` (the
    parsed TOML) and any kernel setting as a keyword (``plugin_timeout_s=1``).
    The environment still applies to plugin flags and settings; ``.env`` is
    not read. Each host has its own SQLite database under ``tmp_path``, or the
    database of the ``lukhas_database_url`` fixture.

    The client sends the first admin's token on every request unless
    ``as_admin=False``. The kernel is ``client.app[lukhas_kernel.testing.KERNEL_KEY]``;
    more users: ``await kernel.services.accounts.create_user("ada")`` → ``(user, token)``.
    To change the injected faults of a running host, see ``lukhas_chaos``.
    """

    async def start(
        plugins: Iterable[str] = (),
        *,
        chaos: str = "",
        installed: bool = False,
        config: dict[str, Any] | None = None,
        as_admin: bool = True,
        **settings: Any,
    ) -> Any:
        settings.setdefault("data_dir", tmp_path / "data")
        if lukhas_database_url:
            settings.setdefault("database_url", lukhas_database_url)
        settings.setdefault("chaos_enabled", bool(chaos))
        kernel_settings = load_kernel_settings(
            config or {}, None, extra_plugins=",".join(plugins), chaos=chaos, **settings
        )
        app = await create_app(kernel_settings, config or {}, env_file=None, installed=installed)
        services = services_of(app)
        token = services.first_admin_token
        if as_admin and token is None:  # a database that already has its admin
            _, token = await services.accounts.create_user(
                f"fixture-admin-{secrets.token_hex(4)}", "enterprise", admin=True)
        headers = {"Authorization": f"Bearer {token}"} if as_admin else {}
        return await aiohttp_client(app, headers=headers)

    return start


@pytest.fixture
def lukhas_chaos() -> Callable[[Any, Iterable[str]], Awaitable[list[str]]]:
    """Replace every injected fault of a running ``lukhas_host``.

    ``await lukhas_chaos(client, ["my_plugin:request:raise"])`` makes the
    faults given (``LUKHAS_CHAOS`` entries) the whole plan, as
    ``PUT /api/v1/admin/chaos`` does, and returns them as the host now holds
    them; ``[]`` clears them. ``request`` and ``health`` faults apply from the
    next request or check, the others at the next attempt (a retry or
    ``kernel.restart(name)``), and every ``fail_times=N`` count starts again.
    An entry that is not valid, or names a plugin the host did not discover,
    raises ``ChaosSpecError`` (a ValueError) listing each bad entry, and
    nothing changes. It works on any host, whether or not it was started with
    chaos enabled (only the HTTP routes need that) or as admin.
    """

    async def replace(client: Any, faults: Iterable[str]) -> list[str]:
        kernel = client.app[KERNEL_KEY]
        kernel.chaos.replace(ChaosPlan.parse_entries(list(faults), plugins=kernel.plugins))
        entries: list[str] = kernel.chaos.entries()
        return entries

    return replace
