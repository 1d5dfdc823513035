"""Its lukhas_setup is not marked with @hookimpl (so it is never called)."""

from sample_plugins._kit import lukhas_plugin_info, lukhas_routes  # noqa: F401

calls: list[str] = []


async def lukhas_setup(context) -> None:
    calls.append("setup")
