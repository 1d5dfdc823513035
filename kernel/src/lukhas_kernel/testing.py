"""Names tests need besides the fixtures of :mod:`lukhas_kernel.pytest_plugin`."""

from ._host import KERNEL_KEY
from ._local_servers import LocalPostgres, LocalRedis, ServerUnavailable, local_postgres, local_redis
from ._records import PluginRecord, StartupReport

__all__ = ["KERNEL_KEY", "LocalPostgres", "LocalRedis", "PluginRecord", "ServerUnavailable",
           "StartupReport", "local_postgres", "local_redis"]
