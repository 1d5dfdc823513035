"""pytest fixtures for integrators: real hosts, users, the CLI, and packaging.

Registered through the `pytest11` entry point, so installing lukhas-kernel
makes them available (async tests need ``asyncio_mode = "auto"``)::

    async def test_my_plugin(lukhas_host, lukhas_user, lukhas_cli, lukhas_chaos):
        admin = await lukhas_host(["my_plugin=my_plugin.plugin"])  # a client sending an admin's token
        ada = await lukhas_user(admin, "ada")                      # a client acting as a new user
        assert (await ada.get("/api/v1/my_plugin/hello")).status == 200
        listed = await lukhas_cli("users", "list")                 # `lukhas` on the host's data
        assert listed.exit_code == 0 and "ada" in listed.output
        await lukhas_chaos(admin, ["my_plugin:request:raise"])     # faults while it runs
        assert (await ada.get("/api/v1/my_plugin/hello")).status == 500

    def test_my_package(lukhas_package):                           # @pytest.mark.slow: builds a venv
        package = lukhas_package("path/to/my-plugin")              # pip install of a copy of the tree
        with package.serve() as host:                              # a real `lukhas serve`
            assert host.get("/api/v1/my_plugin/hello").status == 200
        assert package.pytest("-q", "-m", "not slow").exit_code == 0  # its own tests, not this one

- `lukhas_host`: a host in-process with chosen plugins; an aiohttp test client.
- `lukhas_user`: a new user with a token, and a client acting as them.
- `lukhas_cli`: `lukhas ARGS` as a process on a host's data dir, database and settings.
- `lukhas_chaos`: replace the injected faults of a running host.
- `lukhas_package`: a plugin's tree installed into a throwaway environment.
- `lukhas_database_url`: override to run every host of a test on another database.

docs/plugin-api.md, "The lukhas_host pytest fixture", details each.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import structlog

from .._cli.bootstrap import create_app, services_of
from .._core.settings import load_kernel_settings
from .._http.app import KERNEL_KEY
from .._lifecycle.chaos import ChaosPlan
from .cli_runner import COMMAND_TIMEOUT_S, RunResult, environment_of, run_lukhas
from .clients import HostClient, UserClient, new_user
from .packages import PluginPackage

__all__ = ["lukhas_chaos", "lukhas_cli", "lukhas_database_url", "lukhas_host", "lukhas_package",
           "lukhas_user"]


def pytest_configure(config: pytest.Config) -> None:
    """Unless the suite configured structlog itself, in-process hosts log a
    traceback as plain text, as `lukhas serve` does: structlog's default
    renders it with every frame's locals, which for a deep one (a failed
    migration's) takes seconds on the event loop, and other plugins'
    timeouts pay for it."""
    if not structlog.is_configured():
        *processors, _ = structlog.get_config()["processors"]
        structlog.configure(processors=[*processors, structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.plain_traceback)])


@pytest.fixture
def lukhas_database_url() -> str | None:
    """The database URL every `lukhas_host` of a test uses; None: a SQLite file
    under ``tmp_path``. Override it (in a conftest) to run a suite on another
    database, e.g. a PostgreSQL database made for each test."""
    return None


@pytest.fixture
def _lukhas_hosts() -> list[HostClient]:
    """The clients of the hosts this test started, oldest first."""
    return []


@pytest.fixture
def lukhas_host(aiohttp_client: Any, tmp_path: Path, lukhas_database_url: str | None,
                _lukhas_hosts: list[HostClient]) -> Callable[..., Awaitable[HostClient]]:
    """Start a host and return an aiohttp test client for it.

    Call it with the plugin modules to load (``LUKHAS_EXTRA_PLUGINS`` items),
    optionally ``chaos=`` (a ``LUKHAS_CHAOS`` value; chaos is enabled with it),
    ``installed=True`` to also discover installed plugins, ``config=`` (the
    parsed TOML) and any kernel setting as a keyword (``plugin_timeout_s=1``).
    The environment still applies to plugin flags and settings; ``.env`` is
    not read. Each host has its own SQLite database under ``tmp_path``, or the
    database of the ``lukhas_database_url`` fixture.

    The client sends the first admin's token on every request unless
    ``as_admin=False``. The kernel is ``client.app[lukhas_kernel.testing.KERNEL_KEY]``.
    Clients acting as other users: ``lukhas_user``; faults: ``lukhas_chaos``.
    """

    async def start(
        plugins: Iterable[str] = (),
        *,
        chaos: str = "",
        installed: bool = False,
        config: dict[str, Any] | None = None,
        as_admin: bool = True,
        **settings: Any,
    ) -> HostClient:
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
        client: HostClient = await aiohttp_client(app, headers=headers)
        _lukhas_hosts.append(client)
        return client

    return start


@pytest.fixture
def lukhas_user() -> Callable[..., Awaitable[UserClient]]:
    """Create a user of a running ``lukhas_host``, with a client acting as them.

    ``ada = await lukhas_user(client, "ada", tier="premium")`` creates the
    user (named ``user-<hex>`` without a name) and a first token, and returns
    a client of the same host that sends that token on every request:
    ``await ada.get(path)``, ``ada.post(path, json=...)``, any method, as
    with the host's own client. ``ada.user`` is the `User` (``id``,
    ``username``, ``tier``, ``role``), ``ada.token`` the token, ``ada.headers``
    its ``Authorization`` header. ``admin=True`` makes an admin. A header
    given to one request wins over the user's.
    """
    return new_user


@pytest.fixture
def lukhas_cli(tmp_path: Path, _lukhas_hosts: list[HostClient]) -> Callable[..., Awaitable[RunResult]]:
    """Run a ``lukhas`` command on a running ``lukhas_host``'s data.

    ``result = await lukhas_cli("users", "list")`` runs ``python -m
    lukhas_kernel users list`` as a process with the host's settings (its
    data dir, database, plugins, chaos and timeouts; its config as a
    ``LUKHAS_CONFIG`` file), JSON logs, and this process's ``sys.path`` as
    ``PYTHONPATH`` so that the plugins the host loaded by module path load
    there too; it sees the host's users, tokens, flags and tables. The
    result has ``exit_code``, ``output`` (stdout) and ``stderr``.

    Keywords: ``host=`` the client of the host (default: the test's latest
    ``lukhas_host``), ``input=`` the command's stdin (``"y\\n"``), ``env=``
    more variables, ``timeout_s=`` (120; past it, TimeoutError).
    """

    async def run(*args: str, host: HostClient | UserClient | None = None, input: str | None = None,
                  env: dict[str, str] | None = None, timeout_s: float = COMMAND_TIMEOUT_S) -> RunResult:
        client = host.client if isinstance(host, UserClient) else host
        if client is None:
            if not _lukhas_hosts:
                raise RuntimeError("lukhas_cli runs on a host's data: start a lukhas_host first")
            client = _lukhas_hosts[-1]
        full = environment_of(client.app[KERNEL_KEY], tmp_path, env or {})
        return await run_lukhas(args, full, tmp_path, input=input, timeout_s=timeout_s)

    return run


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


@pytest.fixture
def lukhas_package(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str | os.PathLike[str]],
                                                                          PluginPackage]:
    """Install a plugin's source tree as its users will, to test the packaging too.

    ``package = lukhas_package("path/to/tree")`` copies the tree (without
    build output, caches or ``.venv``), makes a virtual environment layered
    over the test's (it sees every package the test sees; the tree and any
    dependency missing here go into its own site-packages) and ``pip
    install``s the copy there (PackagingError with pip's output if that
    fails). Then, all blocking (for synchronous tests):

    - ``with package.serve(env={...}) as host:`` a real ``lukhas serve`` of
      that environment on a free port, once it listens; ``host.url``,
      ``host.token`` (a new admin's), ``host.get(path)`` and
      ``host.request(method, path, json_body=..., token=...)`` (→ ``status``,
      ``headers``, ``body``, ``json()``), ``host.events(name)`` (its JSON log).
      Stopped with SIGINT after the block.
    - ``package.pytest(*args)``: the tree's own tests, in the copy, against
      the installed distribution.
    - ``package.lukhas(*args)``, ``package.pip(*args)``, ``package.run(*args)``:
      ``lukhas`` on the package's data dir, pip and python of that environment.

    Each returns ``exit_code``, ``output`` and ``stderr``. ``package.tree`` is
    the copy (write test files into it), ``package.data_dir`` the hosts' data dir.
    It takes a while (a venv, a wheel build): mark such tests slow.
    """

    def build(source: str | os.PathLike[str]) -> PluginPackage:
        return PluginPackage.install(Path(source), tmp_path_factory.mktemp("lukhas-package"))

    return build
