"""Names tests need besides the fixtures of :mod:`lukhas_kernel.testing.pytest_plugin`."""

from .._http.app import KERNEL_KEY
from .._lifecycle.records import PluginRecord
from .._plugin.states import StartupReport
from .local_servers import LocalPostgres, LocalRedis, ServerUnavailable, local_postgres, local_redis
from .packages import layered_venv

__all__ = ["KERNEL_KEY", "LocalPostgres", "LocalRedis", "PluginRecord", "ServerUnavailable",
           "StartupReport", "layered_venv", "local_postgres", "local_redis"]
