"""`lukhas db revision`, `db downgrade` and `db purge` on one plugin's history and
tables, as real processes on the test's database. The plugin is one
`lukhas new plugin` wrote, loaded from its source (as an editable install is)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from lukhas_kernel._services.storage import Database
from support.cli import cli, ok, one_line_error
from support.paths import TESTS

pytestmark = pytest.mark.both_databases

STORE_COLUMN = '    sa.Column("created_at", UtcDateTime, nullable=False),\n'
#: A column and a table more, as an author would change store.py.
CHANGED = STORE_COLUMN + '    sa.Column("done_at", UtcDateTime, nullable=True),\n'
TAGS = '''
tags = sa.Table(
    "memo_tags", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.String(32), sa.ForeignKey("memo_items.id"), nullable=False),
)
'''


def memo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The plugin `memo` as `lukhas new plugin` writes it: its migrations
    directory, and the environment that loads it from source."""
    ok(cli(tmp_path, "new", "plugin", "memo", "--dir", str(tmp_path)))
    src = tmp_path / "memo" / "src"
    return src / "lukhas_memo" / "migrations", {
        "PYTHONPATH": f"{src}{os.pathsep}{TESTS}", "LUKHAS_EXTRA_PLUGINS": "memo=lukhas_memo.plugin"}


async def schema(database_url: str) -> dict[str, set[str]]:
    """Every table of the database with its columns."""
    def read(connection: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(connection)
        return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}

    db = Database(database_url, timeout_s=10)
    try:
        async with db.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await db.dispose()


async def revision_of(database_url: str, owner: str) -> str | None:
    db = Database(database_url, timeout_s=10)
    try:
        return await db.revision(owner)
    finally:
        await db.dispose()


async def test_revisions_written_from_the_tables_then_upgrade_and_downgrade(
        tmp_path, database_url, database_env):
    versions, plugin = memo(tmp_path)
    env = {**database_env, **plugin}
    ok(cli(tmp_path, "db", "upgrade", env=env))
    assert await revision_of(database_url, "memo") == "memo_0001"

    # Nothing changed: an empty revision (the kernel's UtcDateTime matches what the database has).
    unchanged = ok(cli(tmp_path, "db", "revision", "--plugin", "memo", "-m", "Nothing", "--autogenerate",
                       env=env))
    assert unchanged == (f"wrote {versions / '0002_nothing.py'}: memo_0002, revises memo_0001 "
                         "(no changes found: it is empty)\n")
    (versions / "0002_nothing.py").unlink()

    store = versions.parent / "store.py"
    store.write_text(store.read_text().replace(STORE_COLUMN, CHANGED) + TAGS)
    written = ok(cli(tmp_path, "db", "revision", "--plugin", "memo", "-m", "Items: done, and tags",
                     "--autogenerate", env=env))
    path = versions / "0002_items_done_and_tags.py"
    assert written == f"wrote {path}: memo_0002, revises memo_0001\n"
    text = path.read_text()
    assert text.startswith('"""Items: done, and tags\n\nRevision ID: memo_0002\nRevises: memo_0001\n"""')
    assert "revision = 'memo_0002'" in text and "down_revision = 'memo_0001'" in text
    assert "from lukhas_kernel import UtcDateTime" in text
    assert "batch_op.add_column(sa.Column('done_at', UtcDateTime(), nullable=True))" in text
    assert "op.create_table('memo_tags'" in text and "op.drop_table('memo_tags')" in text
    # Neither another owner's tables nor its own version table.
    assert "alembic_version" not in text.split("def upgrade")[1]

    ok(cli(tmp_path, "db", "upgrade", env=env))
    tables = await schema(database_url)
    assert "done_at" in tables["memo_items"] and "memo_tags" in tables
    assert await revision_of(database_url, "memo") == "memo_0002"

    down = cli(tmp_path, "db", "downgrade", "--plugin", "memo", "memo_0001", env=env)
    assert ok(down) == "memo: memo_0002 -> memo_0001\n"
    tables = await schema(database_url)
    assert "done_at" not in tables["memo_items"] and "memo_tags" not in tables
    based = cli(tmp_path, "db", "downgrade", "--plugin", "memo", "base", env=env)
    assert ok(based) == "memo: memo_0001 -> base\n"
    tables = await schema(database_url)
    assert "memo_items" not in tables and "lukhas_users" in tables and "glyphs_bindings" in tables
    assert await revision_of(database_url, "memo") is None

    unknown = cli(tmp_path, "db", "downgrade", "--plugin", "memo", "memo_0099", env=env)
    assert one_line_error(unknown, 2) == "lukhas: memo: Can't locate revision identified by 'memo_0099'"
    behind = cli(tmp_path, "db", "revision", "--plugin", "memo", "-m", "more", "--autogenerate", env=env)
    assert one_line_error(behind) == ("lukhas: memo tables are at revision base, its migrations' head is "
                                      "memo_0002: run `lukhas db upgrade` first")

    # Without --autogenerate: an empty revision on the history's head, whatever the database.
    plain = ok(cli(tmp_path, "db", "revision", "--plugin", "memo", "-m", "Later", env=env))
    assert plain == f"wrote {versions / '0003_later.py'}: memo_0003, revises memo_0002\n"
    later = (versions / "0003_later.py").read_text()
    assert "down_revision = 'memo_0002'" in later and "def upgrade() -> None:\n    pass\n" in later
    ok(cli(tmp_path, "db", "upgrade", env=env))
    assert await revision_of(database_url, "memo") == "memo_0003"


@pytest.mark.sqlite_only
def test_revision_and_downgrade_refusals(tmp_path):
    versions, env = memo(tmp_path)
    ok(cli(tmp_path, "db", "upgrade", env=env))
    blank = cli(tmp_path, "db", "revision", "--plugin", "memo", "-m", " ", env=env)
    assert one_line_error(blank, 2) == "lukhas: a revision needs a message: -m 'what it does'"
    unknown = cli(tmp_path, "db", "revision", "--plugin", "nosuch", "-m", "x", env=env)
    assert one_line_error(unknown, 2) == "lukhas: no plugin 'nosuch': `lukhas plugins list` shows the plugins"
    plugin = versions.parent / "plugin.py"
    plugin.write_text("".join(line for line in plugin.read_text().splitlines(keepends=True)
                              if "import metadata" not in line))
    no_metadata = cli(tmp_path, "db", "revision", "--plugin", "memo", "-m", "x", "--autogenerate", env=env)
    assert one_line_error(no_metadata, 2) == (
        "lukhas: plugin memo has no `metadata` (a sqlalchemy.MetaData of its tables) in module "
        "lukhas_memo.plugin: --autogenerate compares it with the database")
    disabled = cli(tmp_path, "db", "downgrade", "--plugin", "memo", "base", env={**env, "MEMO_ENABLED": "0"})
    assert one_line_error(disabled, 2) == "lukhas: plugin memo is not loaded: MEMO_ENABLED is false"
    healthy = {**env, "LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy"}
    no_history = cli(tmp_path, "db", "downgrade", "--plugin", "healthy", "base", env=healthy)
    assert one_line_error(no_history, 2) == (
        "lukhas: plugin healthy has no migrations: it implements no lukhas_migrations")
    assert sorted(p.name for p in versions.glob("*.py")) == ["0001_memo_items.py"]


async def test_purge_drops_an_uninstalled_plugins_tables_once_confirmed(tmp_path, database_url, database_env):
    _, plugin = memo(tmp_path)
    ok(cli(tmp_path, "db", "upgrade", env={**database_env, **plugin}))
    await other_owners_tables(database_url)
    installed = cli(tmp_path, "db", "purge", "memo", "--yes", env={**database_env, **plugin})
    assert one_line_error(installed, 2) == (
        "lukhas: memo is installed (LUKHAS_EXTRA_PLUGINS): purge drops only an uninstalled plugin's tables")
    assert one_line_error(cli(tmp_path, "db", "purge", "glyphs", env=database_env), 2) == (
        "lukhas: glyphs is installed (lukhas-glyphs): purge drops only an uninstalled plugin's tables")
    assert one_line_error(cli(tmp_path, "db", "purge", "lukhas", env=database_env), 2) == (
        "lukhas: the lukhas_… tables are the kernel's own")

    # Uninstalled (no longer loaded): it asks first.
    mine = ["memo_alembic_version", "memo_items", "memo_tags"]
    declined = cli(tmp_path, "db", "purge", "memo", env=database_env, input="n\n")
    assert one_line_error(declined) == "lukhas: not confirmed: nothing was dropped"
    assert declined.stdout == f"Drop 3 tables of memo ({', '.join(mine)})? [y/N]: "
    assert set(mine) <= set(await schema(database_url))

    confirmed = cli(tmp_path, "db", "purge", "memo", env=database_env, input="y\n")
    assert ok(confirmed).endswith(f"dropped 3 tables of memo: {', '.join(mine)}\n")
    left = set(await schema(database_url))
    assert not left & set(mine)
    assert {"memo_extra_notes", "memo_extra_alembic_version", "lukhas_users", "glyphs_bindings"} <= left

    again = cli(tmp_path, "db", "purge", "memo", "--yes", env=database_env)
    assert one_line_error(again) == "lukhas: no tables of memo in the database"


async def other_owners_tables(database_url: str) -> None:
    """A table of memo's that refers to another (dropped first), and the
    tables of a plugin `memo_extra` (whose names start with `memo_` too)."""
    metadata = sa.MetaData()
    items = sa.Table("memo_items", metadata, sa.Column("id", sa.String(32), primary_key=True))
    sa.Table("memo_tags", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("item_id", sa.ForeignKey(items.c.id)))
    sa.Table("memo_extra_notes", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("memo_extra_alembic_version", metadata, sa.Column("version_num", sa.String(32)))
    db = Database(database_url, timeout_s=10)
    try:
        async with db.begin() as connection:
            await connection.run_sync(lambda c: metadata.create_all(c, checkfirst=True))
    finally:
        await db.dispose()
