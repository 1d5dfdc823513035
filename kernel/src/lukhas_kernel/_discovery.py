"""Finding plugins: entry points of `lukhas.plugins` and `LUKHAS_EXTRA_PLUGINS`.

Discovery reads package metadata only; nothing is imported here.
"""

from __future__ import annotations

import re

from importlib_metadata import entry_points

from ._records import PluginRecord, PluginState, Stage

__all__ = ["ENTRY_POINT_GROUP", "discover"]

ENTRY_POINT_GROUP = "lukhas.plugins"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _extra(spec: str) -> tuple[str, str]:
    """`name=module.path` or `module.path` (named after its last component)."""
    name, sep, module = spec.partition("=")
    if not sep:
        module, name = spec, spec.rsplit(".", 1)[-1]
    return name.strip(), module.strip()


def discover(extras: list[str], installed: bool = True) -> list[PluginRecord]:
    """Every plugin candidate, sorted by name; bad names are already failed.

    A name found twice keeps the first (installed before extras) and fails the
    second, naming where the first came from.
    """
    found: list[PluginRecord] = []
    if installed:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            found.append(
                PluginRecord(
                    name=ep.name,
                    module=ep.value,
                    distribution=dist.name if dist else None,
                    version=dist.version if dist else None,
                )
            )
    for spec in extras:
        name, module = _extra(spec)
        found.append(PluginRecord(name=name, module=module, distribution=None, version=None))

    by_name: dict[str, PluginRecord] = {}
    records: list[PluginRecord] = []
    for record in found:
        if not _NAME.match(record.name):
            record.fail(Stage.DISCOVERY, f"invalid plugin name {record.name!r}: use [a-z][a-z0-9_]*")
        elif not _MODULE.match(record.module):
            record.fail(Stage.DISCOVERY, f"invalid module path {record.module!r}")
        elif record.name in by_name:
            first = by_name[record.name]
            origin = first.distribution or "LUKHAS_EXTRA_PLUGINS"
            record.fail(Stage.DISCOVERY, f"duplicate plugin name, already provided by {origin}")
            record.name = f"{record.name}#{len(records)}"
        else:
            by_name[record.name] = record
        records.append(record)
    return sorted(records, key=lambda r: (r.state is PluginState.FAILED, r.name))
