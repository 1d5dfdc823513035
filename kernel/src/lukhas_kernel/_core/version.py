"""The installed lukhas-kernel version."""

from importlib_metadata import PackageNotFoundError, version

try:
    KERNEL_VERSION = version("lukhas-kernel")
except PackageNotFoundError:  # running from a source tree
    KERNEL_VERSION = "0.0.0"
