"""Bearer authentication for `/api/v1/*`, roles and rate limits per route."""

from __future__ import annotations

from aiohttp import web

from .._core.problems import ProblemError
from .._plugin.route import Route
from .._services.accounts import Accounts, User
from .._services.ratelimit import RateLimits, parse_limit
from .handlers import Guard

__all__ = ["USER_KEY", "bearer_token", "current_user", "guard_for", "needs_token", "request_user", "user_of"]

USER_KEY = web.RequestKey("lukhas_user", User)
API_PREFIX = "/api/v1"


def needs_token(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def _unauthorized(detail: str, error: str | None = "invalid_token") -> ProblemError:
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return ProblemError(401, detail, type="urn:lukhas:problem:unauthorized",
                        headers={"WWW-Authenticate": challenge})


def bearer_token(request: web.Request) -> str:
    """The request's bearer token, or a 401 problem if it names none."""
    header = request.headers.get("Authorization")
    if not header:
        raise _unauthorized("this route needs an Authorization: Bearer token", error=None)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("the Authorization header must be 'Bearer <token>'", error="invalid_request")
    return token


async def user_of(token: str, accounts: Accounts) -> User:
    """The live token's user, or a 401 problem."""
    user = await accounts.authenticate(token)
    if user is None:
        raise _unauthorized("the token is unknown, malformed or revoked")
    return user


def current_user(request: web.Request) -> User:
    """The authenticated caller of a `/api/v1` route (for plugins' handlers)."""
    return request[USER_KEY]


def request_user(request: web.Request) -> User | None:
    """The authenticated caller, or None where there is none (a public route,
    a refused token, a request not yet authenticated); for middlewares."""
    return request.get(USER_KEY)


def guard_for(route: Route, limits: RateLimits) -> Guard | None:
    """Role check and rate limit for one route, or None when it has neither."""
    limit = parse_limit(route.rate_limit) if route.rate_limit else None
    if route.role != "admin" and limit is None:
        return None

    async def guard(request: web.Request) -> dict[str, str]:
        user = request.get(USER_KEY)
        if route.role == "admin" and (user is None or not user.is_admin):
            raise ProblemError(403, "this operation needs the admin role",
                               type="urn:lukhas:problem:forbidden")
        if limit is None:
            return {}
        caller = user.id if user is not None else (request.remote or "unknown")
        return await limits.hit(limit, route.operation, caller)

    return guard
