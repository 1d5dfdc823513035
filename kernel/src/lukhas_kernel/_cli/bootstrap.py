"""From the process's environment to a loaded kernel and app (CLI, tests)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from .._core.settings import KernelSettings, SettingsError, load_config_file, load_kernel_settings

if TYPE_CHECKING:
    from aiohttp import web

    from .._lifecycle.chaos import ChaosPlan
    from .._lifecycle.kernel import Kernel
    from .._services.bundle import Services

# The kernel, the host and storage are imported by the functions that build
# them: `kernel_settings` is all that `lukhas serve`'s supervising process
# and the commands that open nothing need from here.

__all__ = ["create_app", "first_admin_created", "kernel_settings", "load_kernel", "migrate_plugins"]


def kernel_settings(env_file: str | None = ".env", **overrides: Any) -> tuple[KernelSettings, dict[str, Any]]:
    """The kernel's settings and the parsed config file; SettingsError if bad."""
    config = load_config_file()
    return load_kernel_settings(config, env_file, **overrides), config


def chaos_plan(settings: KernelSettings, log: Any) -> ChaosPlan:
    from .._lifecycle.chaos import ChaosPlan

    if not settings.chaos:
        return ChaosPlan()
    if not settings.chaos_enabled:
        log.warning("chaos.ignored", reason="LUKHAS_CHAOS is set but LUKHAS_CHAOS_ENABLED is not true")
        return ChaosPlan()
    try:
        return ChaosPlan.parse(settings.chaos)
    except ValueError as exc:
        raise SettingsError("LUKHAS_CHAOS", str(exc)) from None


async def load_kernel(
    settings: KernelSettings, config: dict[str, Any], *, env_file: str | None = ".env",
    installed: bool = True, set_up: bool = True, storage: bool = True, first_admin: bool = True,
    hosting: bool = False,
) -> Kernel:
    """A kernel with plugins loaded: imported and registered, then set up
    unless `set_up` is False. Without `storage` no database is opened (only
    for reading plugins' declarations). A `hosting` kernel is a host's: it
    retries, keeps circuit breakers and counts its starts for quarantine.
    Raises SettingsError or StorageError."""
    from .._lifecycle.kernel import Kernel
    from .._services.bundle import Services

    chaos = chaos_plan(settings, structlog.get_logger("lukhas.kernel"))
    services = await Services.open(settings, create_admin=first_admin) if storage else None
    kernel = Kernel(settings, config, services=services, env_file=env_file, installed=installed,
                    chaos=chaos, hosting=hosting)
    try:
        await kernel.load(set_up=set_up)
    except BaseException:
        await kernel.close()
        raise
    return kernel


async def create_app(
    settings: KernelSettings, config: dict[str, Any], *, env_file: str | None = ".env",
    installed: bool = True, first_admin: bool = True,
) -> web.Application:
    """Load every plugin, then build the app; its start-up runs the plugins'."""
    from .._http.app import build_app

    return build_app(await load_kernel(settings, config, env_file=env_file, installed=installed,
                                       first_admin=first_admin, hosting=True))


async def migrate_plugins(kernel: Kernel, *, upgrade: bool = True) -> dict[str, str]:
    """Bring every loaded plugin's tables to head (only check unless `upgrade`).

    `kernel` is loaded without set-up; the kernel's own tables were migrated
    when its storage opened. Returns "ok" or "failed: reason" by owner.
    """
    from .._core.isolation import describe

    assert kernel.services is not None, "migrating needs storage"
    results = {"lukhas": "ok"}
    for name in kernel.contexts:
        versions = kernel.implementation("lukhas_migrations", name)
        if versions is None:
            continue
        try:
            await kernel.services.db.migrate(name, Path(versions()), upgrade=upgrade)
            results[name] = "ok"
        except Exception as exc:
            results[name] = f"failed: {describe(exc)}"
    return results


async def first_admin_created(services: Services) -> tuple[str, str] | None:
    """(user id, token) of the admin `admin` this start created, else None.

    Only the process that created the user holds its token (it is shown
    once), and the user it created is the one named `admin`: names are unique.
    """
    token = services.first_admin_token
    if token is None:
        return None
    return (await services.accounts.user_named("admin")).id, token


def services_of(app: web.Application) -> Services:
    from .._http.app import KERNEL_KEY

    services = app[KERNEL_KEY].services
    assert services is not None
    return services
