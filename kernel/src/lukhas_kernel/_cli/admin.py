"""`lukhas users` and `lukhas tokens`: the kernel's accounts from the shell."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from .._services.accounts import TIERS, Accounts
from .._services.bundle import Services
from .common import require_database, run, settings

__all__ = ["tokens", "users"]

T = TypeVar("T")


def _with_accounts(work: Callable[[Accounts], Awaitable[T]]) -> T:
    loaded, _ = settings()
    require_database(loaded)

    async def go() -> T:
        services = await Services.open(loaded, create_admin=False)
        try:
            return await work(services.accounts)
        finally:
            await services.close()

    return run(go())


@click.group()
def users() -> None:
    """Manage users."""


@users.command("add")
@click.argument("name")
@click.option("--tier", type=click.Choice(TIERS), default="free", show_default=True)
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
def users_add(name: str, tier: str, admin: bool) -> None:
    """Create user NAME; print its id and its first token (shown only now)."""
    user, token = _with_accounts(lambda accounts: accounts.create_user(name, tier, admin))
    click.echo(f"user_id: {user.id}\ntoken:   {token}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def users_list(as_json: bool) -> None:
    """Every user with id, tier and role."""
    found = _with_accounts(lambda accounts: accounts.list_users())
    rows = [{"user_id": u.id, "username": u.username, "tier": u.tier, "role": u.role,
             "created_at": u.created_at.isoformat()} for u in found]
    if as_json:
        click.echo(json.dumps({"items": rows, "count": len(rows)}, indent=2))
        return
    for row in rows:
        click.echo(f"{row['user_id']}  {row['username']:<24} {row['tier']:<10} {row['role']}")


@click.group()
def tokens() -> None:
    """Issue, list and revoke bearer tokens."""


@tokens.command("issue")
@click.argument("name")
def tokens_issue(name: str) -> None:
    """Print a new token for user NAME (shown only now)."""
    click.echo(_with_accounts(lambda accounts: accounts.issue_token(name)))


@tokens.command("list")
@click.argument("name")
def tokens_list(name: str) -> None:
    """User NAME's tokens by their leading 12 characters."""
    for token in _with_accounts(lambda accounts: accounts.list_tokens(name)):
        state = f"revoked {token['revoked_at']:%Y-%m-%d %H:%M}" if token["revoked_at"] else "live"
        used = f"{token['last_used_at']:%Y-%m-%d %H:%M}" if token["last_used_at"] else "never"
        click.echo(f"{token['prefix']}  created {token['created_at']:%Y-%m-%d %H:%M}  "
                   f"last used {used}  {state}")


@tokens.command("revoke")
@click.argument("prefix")
def tokens_revoke(prefix: str) -> None:
    """Revoke the one live token starting with PREFIX (at least 8 characters)."""
    click.echo(f"revoked {_with_accounts(lambda accounts: accounts.revoke(prefix))}")
