"""`lukhas glyphs audit-verify`: walk the audit chain."""

from __future__ import annotations

import sys

import click
from lukhas_kernel import Database, with_database

from . import audit


@click.group()
def glyphs() -> None:
    """GLYPH bindings: audit trail tools."""


@glyphs.command("audit-verify")
def audit_verify() -> None:
    """Check the hash chain of the audit trail: exit 0 if intact, else 1."""

    async def walk(db: Database) -> tuple[int, tuple[int, str] | None]:
        checked = 0
        async for seq, problem in audit.verify(db):
            if problem is not None:
                return checked, (seq, problem)
            checked += 1
        return checked, None

    checked, broken = with_database(walk)
    if broken is not None:
        click.echo(f"audit chain broken at entry {broken[0]}: {broken[1]} "
                   f"({checked} entries before it are intact)")
        sys.exit(1)
    click.echo(f"audit chain intact: {checked} entries")
