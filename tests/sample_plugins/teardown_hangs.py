"""Its teardown never finishes: shutdown goes on without it."""

import asyncio

from lukhas_kernel import PluginInfo, hookimpl

from sample_plugins import healthy
from sample_plugins._kit import lukhas_routes  # noqa: F401


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(requires=("healthy",))


@hookimpl
async def lukhas_teardown(context) -> None:
    healthy.events.append("teardown_hangs.teardown")
    await asyncio.sleep(3600)
