"""Prefix claims and the routes and middlewares plugins contribute.

Invariants: a prefix is claimed by at most one owner, the kernel's first;
a (method, path) is mounted by at most one plugin; a plugin's routes lie
under its prefixes. A plugin brought up again replaces its own entries.
`revision` changes whenever the mounted routes do, so what is built from
them (a router, the OpenAPI document) is current while it is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._plugin.route import Route, handler_mismatch
from .._services.ratelimit import parse_limit

__all__ = ["KERNEL_PREFIXES", "Mounted", "RouteTable", "RoutesRefused"]

#: Paths the kernel serves itself; no plugin may claim them.
KERNEL_PREFIXES = ("/healthz", "/readyz", "/openapi.json", "/docs", "/api/v1/plugins",
                   "/api/v1/users", "/api/v1/admin")
_KERNEL = "the kernel"


class RoutesRefused(Exception):
    """A plugin's prefix or routes cannot be mounted; `str()` is the reason."""


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


@dataclass(eq=False)
class Mounted:
    """One plugin route as the host serves it; replaced as a whole when the
    plugin is brought up again. `handler` is the HTTP layer's wrapping of
    `route`, made at its first request."""

    plugin: str
    route: Route
    handler: Any = None


class RouteTable:
    """Every claimed prefix and every plugin route and middleware."""

    def __init__(self) -> None:
        self._claims: dict[str, str] = {prefix: _KERNEL for prefix in KERNEL_PREFIXES}
        self.mounted: dict[tuple[str, str], Mounted] = {}
        self.middlewares: dict[str, list[Any]] = {}
        self.revision = 0

    def claim(self, plugin: str, prefix: str) -> None:
        """Claim `prefix` for `plugin`; raises RoutesRefused on a clash."""
        for claimed, owner in self._claims.items():
            if owner != plugin and _overlaps(prefix, claimed):
                first = owner if owner == _KERNEL else f"plugin {owner}"
                raise RoutesRefused(f"route prefix {prefix} clashes with {claimed}, claimed by {first}")
        self._claims[prefix] = plugin

    def plugin_prefixes(self) -> list[str]:
        """Every prefix a plugin has claimed."""
        return [prefix for prefix, owner in self._claims.items() if owner != _KERNEL]

    def owner_of(self, path: str) -> str | None:
        """The plugin whose prefix holds `path` (prefixes never overlap)."""
        for prefix, owner in self._claims.items():
            if owner != _KERNEL and _under(path, prefix):
                return owner
        return None

    def mount(self, plugin: str, prefixes: list[str], routes: list[Route], middlewares: list[Any]) -> None:
        """Put `plugin`'s routes in force, replacing any it had; all or nothing."""
        keys: dict[tuple[str, str], Route] = {}
        for route in routes:
            key = (route.method.upper(), route.path)
            if not any(_under(route.path, prefix) for prefix in prefixes):
                raise RoutesRefused(f"{route.operation} is outside its prefixes " + ", ".join(prefixes))
            owner = self.mounted[key].plugin if key in self.mounted else None
            if key in keys or owner not in (None, plugin):
                holder = "itself" if key in keys else f"plugin {owner}"
                raise RoutesRefused(f"{route.operation} already claimed by {holder}")
            mismatch = handler_mismatch(route)
            if mismatch is not None:  # else a 500 (or a silently dropped input) per request
                raise RoutesRefused(f"{route.operation}: {mismatch}")
            if route.rate_limit is not None:
                try:
                    parse_limit(route.rate_limit)
                except ValueError:
                    raise RoutesRefused(f"{route.operation}: invalid rate limit "
                                        f"{route.rate_limit!r}") from None
            keys[key] = route
        self.unmount(plugin)
        for key, route in keys.items():
            self.mounted[key] = Mounted(plugin, route)
        self.middlewares[plugin] = middlewares
        self.revision += 1

    def unmount(self, plugin: str) -> None:
        """Forget `plugin`'s routes and middlewares (the host answers 404 for them)."""
        for key in [k for k, entry in self.mounted.items() if entry.plugin == plugin]:
            del self.mounted[key]
        self.middlewares.pop(plugin, None)
        self.revision += 1

    def routes_of(self, plugin: str) -> list[Route]:
        return [entry.route for entry in self.mounted.values() if entry.plugin == plugin]
