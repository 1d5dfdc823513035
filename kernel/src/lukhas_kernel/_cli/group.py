"""The `lukhas` command group: built-in commands, and plugins' commands on demand.

Invariant: listing commands (`lukhas --help`), `--version` and every
built-in command import no plugin, so a plugin that is slow or broken at
import never delays or breaks them. Plugins are imported (and registered,
never set up) only to look up a command name that is not built in.

The built-in commands defined outside `main.py` are imported only when
named (or listed): `lukhas serve`, whose supervising process lives as long
as the host, never loads the database tools it has no use for.
"""

from __future__ import annotations

import importlib

import click
import structlog

from .common import fail, run, settings

__all__ = ["LukhasGroup"]

#: Built-in commands by name, and the module (in this package) defining each.
BUILT_IN_ELSEWHERE = {"users": ".admin", "tokens": ".admin", "db": ".dbtools", "new": ".scaffold"}

#: Under `lukhas --help`: plugin commands are not listed, since listing them
#: would import every plugin.
PLUGIN_COMMANDS_HELP = (
    "Plugins add commands of their own, named after the plugin (e.g. `lukhas glyphs`); "
    "they are loaded only when named: `lukhas plugins list` shows the plugins, "
    "`lukhas COMMAND --help` a command's help.")


class LukhasGroup(click.Group):
    """Built-in commands first; any other name is looked up among the plugins."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *BUILT_IN_ELSEWHERE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return (super().get_command(ctx, cmd_name) or built_in_elsewhere(cmd_name)
                or plugin_command(cmd_name))


def built_in_elsewhere(name: str) -> click.Command | None:
    """The built-in command `name` of BUILT_IN_ELSEWHERE, imported now; else None."""
    module = BUILT_IN_ELSEWHERE.get(name)
    if module is None:
        return None
    command = getattr(importlib.import_module(module, __package__), name)
    assert isinstance(command, click.Command)
    return command


def plugin_command(name: str) -> click.Command | None:
    """The command `name` that an enabled plugin adds, or None.

    A command is attributed to the plugin of the same name: when that plugin
    could not add its commands, the CLI exits 2 saying why rather than
    "no such command". Plugins that failed before their commands were known
    are named too, since `name` may be one of theirs.
    """
    from .._core.isolation import describe
    from .._plugin.states import PluginState
    from .bootstrap import load_kernel

    loaded, config = settings()
    kernel = run(load_kernel(loaded, config, set_up=False, storage=False))
    commands: dict[str, click.Command] = {}
    unknown: dict[str, str] = {}  # plugin -> why its commands are not known
    for plugin, record in kernel.records.items():
        if record.state is PluginState.FAILED and plugin not in kernel.contexts:
            unknown[plugin] = f"which failed at {record.reason}"
    for plugin in kernel.contexts:
        hook = kernel.implementation("lukhas_cli_commands", plugin)
        try:
            for command in (hook() if hook else None) or []:
                commands.setdefault(command.name or plugin, command)
        except Exception as exc:
            reason = describe(exc)
            structlog.get_logger("lukhas.cli").warning("plugin.cli_commands_failed",
                                                       plugin=plugin, reason=reason)
            unknown[plugin] = f"whose lukhas_cli_commands raised {reason}"
    if name in commands:
        return commands[name]
    if name in unknown:
        fail(f"'{name}' comes from plugin {name}, {unknown[name]}", 2)
    if unknown:
        suspects = "; ".join(f"{plugin}, {why}" for plugin, why in sorted(unknown.items()))
        fail(f"no command '{name}'; it may come from plugin {suspects}", 2)
    return None
