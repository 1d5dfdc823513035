"""Names tests need besides the fixtures of :mod:`lukhas_kernel.pytest_plugin`."""

from ._host import KERNEL_KEY
from ._records import PluginRecord, StartupReport

__all__ = ["KERNEL_KEY", "PluginRecord", "StartupReport"]
