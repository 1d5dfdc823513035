"""Profile-field contributors that raise or hang (request-time isolation)."""

import asyncio

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info  # noqa: F401


@hookimpl
async def lukhas_profile_fields(user, options):
    if options.get("mode") == "hang":
        await asyncio.sleep(3600)
    raise RuntimeError("profile store offline")
