"""Clients of a `lukhas_host` acting as a given user (the `lukhas_user` fixture)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.client import _RequestContextManager
from aiohttp.test_utils import TestClient

from .._http.app import KERNEL_KEY
from .._services.accounts import User

__all__ = ["HostClient", "UserClient", "new_user"]

#: The aiohttp test client `lukhas_host` returns.
HostClient = TestClient[web.Request, web.Application]


@dataclass(frozen=True)
class UserClient:
    """The host's test client, sending `user`'s bearer token on every request.

    It shares the host's client (one server, one connection pool): any
    number of users, the host's own admin client among them, talk to the
    same host at once. An `Authorization` header given to one request wins,
    e.g. to send a revoked or malformed token.
    """

    client: HostClient
    user: User
    token: str

    @property
    def app(self) -> web.Application:
        return self.client.app

    @property
    def headers(self) -> dict[str, str]:
        """The header this client adds: `Authorization: Bearer <token>`."""
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> _RequestContextManager:
        """As the test client's `request`, as this user (awaitable or `async with`)."""
        headers = {**self.headers, **(kwargs.pop("headers", None) or {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request("DELETE", path, **kwargs)


async def new_user(client: HostClient | UserClient, name: str | None = None, *,
                   tier: str = "free", admin: bool = False) -> UserClient:
    """A new user of `client`'s host (named `user-<hex>` unless `name` is
    given) with a first token, and a client acting as them."""
    host = client.client if isinstance(client, UserClient) else client
    services = host.app[KERNEL_KEY].services
    assert services is not None, "a lukhas_host kernel has its services"
    user, token = await services.accounts.create_user(name or f"user-{secrets.token_hex(4)}", tier,
                                                      admin=admin)
    return UserClient(host, user, token)
