"""Dependency order: a plugin's step runs once the plugins it requires have run theirs."""

from __future__ import annotations

import asyncio
import graphlib
from collections.abc import Awaitable, Callable, Collection, Mapping

from .._plugin.states import PluginState, Stage
from .machine import PluginLifecycle
from .records import Phase

__all__ = ["dependents", "in_dependency_order", "registration_order", "set_up_in_order",
           "start_in_order"]

Step = Callable[[PluginLifecycle], Awaitable[None]]


async def in_dependency_order(plugins: Mapping[str, PluginLifecycle], names: Collection[str],
                              stage: Stage, step: Step) -> None:
    """Run `step` for each of `names` once its requirements among them have run;
    independent plugins run concurrently; a cycle fails the plugins in it.

    Before its step, a plugin whose requirement is missing or not ready is skipped.
    """
    graph = {n: {d for d in plugins[n].record.requires if d in names} for n in names}
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
            break
        except graphlib.CycleError as exc:
            cycle: list[str] = exc.args[1]
            for name in set(cycle):
                plugins[name].drop(stage, "dependency cycle: " + " -> ".join(cycle))
                graph.pop(name)
            for deps in graph.values():
                deps.difference_update(cycle)
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    running: dict[asyncio.Task[None], str] = {}
    while sorter.is_active():
        for name in sorter.get_ready():
            running[asyncio.create_task(_guarded(plugins, plugins[name], stage, step))] = name
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            sorter.done(running.pop(task))


async def _guarded(plugins: Mapping[str, PluginLifecycle], plugin: PluginLifecycle,
                   stage: Stage, step: Step) -> None:
    for dependency in plugin.record.requires:
        other = plugins.get(dependency)
        if other is None:
            return plugin.drop(stage, f"requires {dependency}, which is not installed",
                               PluginState.SKIPPED)
        ready = other.teardown_owed if stage is Stage.SETUP else other.record.state.serving
        if not ready:
            return plugin.drop(stage, f"requires {dependency}, which is {other.record.state.value}",
                               PluginState.SKIPPED)
    await step(plugin)


def registration_order(plugins: list[PluginLifecycle]) -> list[PluginLifecycle]:
    """`plugins` with each after the ones it requires (otherwise in the given
    order), so that the hooks a plugin publishes exist before the plugins
    implementing them register. A cycle is broken anywhere here: it fails
    its plugins later, at setup, with the cycle named."""
    by_name = {plugin.name: plugin for plugin in plugins}
    ordered: dict[str, PluginLifecycle] = {}
    visiting: set[str] = set()

    def visit(plugin: PluginLifecycle) -> None:
        if plugin.name in ordered or plugin.name in visiting:
            return
        visiting.add(plugin.name)
        for required in plugin.record.requires:
            if required in by_name:
                visit(by_name[required])
        ordered[plugin.name] = plugin

    for plugin in plugins:
        visit(plugin)
    return list(ordered.values())


def dependents(name: str, plugins: Mapping[str, PluginLifecycle]) -> list[str]:
    """Every plugin that requires `name`, directly or through others."""
    found: list[str] = []
    frontier = [name]
    while frontier:
        current = frontier.pop()
        for other in plugins.values():
            if current in other.record.requires and other.name not in found and other.name != name:
                found.append(other.name)
                frontier.append(other.name)
    return found


async def set_up_in_order(plugins: Mapping[str, PluginLifecycle], names: list[str]) -> None:
    """Migrate, set up and mount `names` (registered, pending) in dependency order."""
    async def up(plugin: PluginLifecycle) -> None:
        if plugin.record.phase < Phase.REGISTERED and not await plugin.step(plugin.register):
            return
        for transition in (plugin.migrate, plugin.set_up):
            if not await plugin.step(transition):
                return
        await plugin.step(plugin.mount_routes)

    await in_dependency_order(plugins, names, Stage.SETUP, up)


async def start_in_order(plugins: Mapping[str, PluginLifecycle], names: list[str]) -> None:
    """Run the startup stage of those of `names` whose routes are mounted, in
    dependency order."""
    routed = [n for n in names if plugins[n].record.phase is Phase.ROUTED]

    async def start(plugin: PluginLifecycle) -> None:
        await plugin.step(plugin.start)

    await in_dependency_order(plugins, routed, Stage.STARTUP, start)
