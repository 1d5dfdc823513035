"""Finding plugins: entry points of `lukhas.plugins` and `LUKHAS_EXTRA_PLUGINS`.

Discovery reads package metadata only; nothing is imported here. Route
prefixes outside ``/api/v1/<name>`` may be declared in metadata too (group
`lukhas.route_prefixes`, ``"/prefix" = "the plugin's module"``), so that they
are known, and answer 403, while the plugin is disabled and never imported.
"""

from __future__ import annotations

import os
import re
import sys

from importlib_metadata import Distribution, entry_points

from .._plugin.states import PluginState, Stage
from .records import PluginRecord

__all__ = ["ENTRY_POINT_GROUP", "ROUTE_PREFIX_GROUP", "discover", "valid_prefix"]

ENTRY_POINT_GROUP = "lukhas.plugins"
ROUTE_PREFIX_GROUP = "lukhas.route_prefixes"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def valid_prefix(prefix: str) -> bool:
    """A route prefix is an absolute path without a trailing slash or parameters."""
    return prefix.startswith("/") and not prefix.endswith("/") and "{" not in prefix


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
        for name, module, distribution, version, prefixes in _installed():
            found.append(PluginRecord(name=name, module=module, distribution=distribution,
                                      version=version, prefixes=list(prefixes)))
    for spec in extras:
        name, module = _extra(spec)
        found.append(PluginRecord(name=name, module=module, distribution=None, version=None))

    by_name: dict[str, PluginRecord] = {}
    records: list[PluginRecord] = []
    for record in found:
        invalid = [prefix for prefix in record.prefixes if not valid_prefix(prefix)]
        if not _NAME.match(record.name):
            record.fail(Stage.DISCOVERY, f"invalid plugin name {record.name!r}: use [a-z][a-z0-9_]*")
        elif not _MODULE.match(record.module):
            record.fail(Stage.DISCOVERY, f"invalid module path {record.module!r}")
        elif invalid:
            record.fail(Stage.DISCOVERY, f"invalid route prefix {invalid[0]!r} in {ROUTE_PREFIX_GROUP}")
        elif record.name in by_name:
            first = by_name[record.name]
            origin = first.distribution or "LUKHAS_EXTRA_PLUGINS"
            record.fail(Stage.DISCOVERY, f"duplicate plugin name, already provided by {origin}")
            record.update(name=f"{record.name}#{len(records)}")
        else:
            by_name[record.name] = record
        records.append(record)
    return sorted(records, key=lambda r: (r.state is PluginState.FAILED, r.name))


#: One installed plugin: name, module, distribution, version, route prefixes.
_Installed = tuple[str, str, str | None, str | None, tuple[str, ...]]
#: The last scan, and the state of sys.path it was made in.
_last_scan: tuple[tuple[tuple[str, int | None], ...], list[_Installed]] | None = None


def _installed() -> list[_Installed]:
    """The installed plugins, as the metadata of the distributions on sys.path declare them.

    Scanning reads every distribution's metadata: in a process that loads a
    kernel more than once (tests, embedding hosts), most of a kernel's
    start-up. Installing or removing a distribution adds or removes its
    metadata directory, which changes the modification time of the sys.path
    entry holding it; so the same entries, unchanged, hold the same entry
    points, the same assumption importlib's own path finder makes. A new
    process (every `lukhas serve` worker, every reload) always scans.
    """
    global _last_scan
    state = tuple((entry, _modified_ns(entry)) for entry in sys.path)
    if _last_scan is not None and _last_scan[0] == state:
        return _last_scan[1]
    everything = entry_points()
    named = _Names()
    prefixes: dict[tuple[str | None, str], list[str]] = {}
    for ep in everything.select(group=ROUTE_PREFIX_GROUP):
        prefixes.setdefault((named(ep.dist)[0], ep.value), []).append(ep.name)
    scanned: list[_Installed] = []
    for ep in everything.select(group=ENTRY_POINT_GROUP):
        distribution, version = named(ep.dist)
        scanned.append((ep.name, ep.value, distribution, version,
                        tuple(prefixes.get((distribution, ep.value), ()))))
    _last_scan = (state, scanned)
    return scanned


def _modified_ns(entry: str) -> int | None:
    try:
        return os.stat(entry or ".").st_mtime_ns
    except OSError:
        return None


class _Names:
    """A distribution's name and version, its metadata read once: `.name` and
    `.version` each parse the whole file (its long description included),
    and one distribution may have several entry points."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[str, str]] = {}

    def __call__(self, dist: Distribution | None) -> tuple[str | None, str | None]:
        if dist is None:
            return None, None
        if id(dist) not in self._known:  # the entry points of one scan share their distribution
            metadata = dist.metadata
            self._known[id(dist)] = (metadata["Name"], metadata["Version"])
        return self._known[id(dist)]
