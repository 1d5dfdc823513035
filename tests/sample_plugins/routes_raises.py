"""Its lukhas_routes raises."""

from lukhas_kernel import hookimpl

from sample_plugins._kit import lukhas_plugin_info  # noqa: F401


@hookimpl
def lukhas_routes(context) -> list:
    raise LookupError("route table template missing")
