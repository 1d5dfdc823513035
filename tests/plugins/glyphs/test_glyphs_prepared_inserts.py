"""The bind path's inserts, compiled once and run on SQLite's driver
(lukhas_glyphs.prepared), store exactly what SQLAlchemy's own insert stores,
and keep SQLAlchemy's errors."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from lukhas_glyphs.audit import audit as audit_table
from lukhas_glyphs.prepared import PreparedInsert
from lukhas_glyphs.store import bindings, metadata
from lukhas_kernel._services.storage import Database, default_url
from sqlalchemy.exc import IntegrityError

CREATED = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
BINDING = {"owner": "usr_1", "source": "user:ada", "target": "doc:q3", "symbol": "LINK", "priority": "HIGH",
           "context": {"note": "Grüße ✓", "n": [1, 2.5, None], "nested": {"a": True}},
           "created_at": CREATED, "expires_at": CREATED + timedelta(days=1), "revoked_at": None}
ENTRY = {"at": CREATED, "action": "create", "glyph_id": "gly_x", "actor": None,
         "details": {"source": "user:ada", "ünï": "✓"}, "prev_hash": "0" * 64, "hash": "f" * 64}


def raw_rows(tmp_path: Any, table: str, key: str) -> dict[Any, list[tuple[str, Any]]]:
    """Every row of `table` as SQLite stores it: each column's storage class and value."""
    with sqlite3.connect(tmp_path / "lukhas.db") as conn:
        names = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        columns = ", ".join(f"typeof({name}), {name}" for name in names)
        rows = conn.execute(f"SELECT {columns} FROM {table}").fetchall()
    stored = [[(row[2 * i], row[2 * i + 1]) for i in range(len(names))] for row in rows]
    at = names.index(key)
    return {row[at][1]: [cell for i, cell in enumerate(row) if i != at] for row in stored}


async def database(tmp_path: Any) -> Database:
    db = Database(default_url(tmp_path), timeout_s=10)
    await db.write(metadata.create_all)
    return db


async def test_a_binding_is_stored_as_sqlalchemys_insert_stores_it(tmp_path):
    db = await database(tmp_path)
    prepared = PreparedInsert(bindings.insert(), list(BINDING) + ["id"])
    assert await db.write(lambda conn: prepared.execute(conn, {**BINDING, "id": "gly_prepared"})) == 1
    await db.write(lambda conn: conn.execute(bindings.insert(), {**BINDING, "id": "gly_core"}))
    rows = raw_rows(tmp_path, "glyphs_bindings", "id")
    assert rows["gly_prepared"] == rows["gly_core"]
    read = await db.read(lambda conn: conn.execute(bindings.select().order_by(bindings.c.id)).all())
    assert {**read[0]._mapping, "id": ""} == {**read[1]._mapping, "id": ""}  # and reads back alike
    await db.dispose()


async def test_an_audit_entry_after_the_head_is_stored_alike_and_only_after_the_head(tmp_path):
    db = await database(tmp_path)
    names = list(ENTRY)
    head = sa.select(audit_table.c.hash).order_by(audit_table.c.seq.desc()).limit(1)
    after_head = PreparedInsert(audit_table.insert().from_select(
        names, sa.select(*(sa.bindparam(name, type_=audit_table.c[name].type) for name in names))
        .where(head.scalar_subquery() == sa.bindparam("prev_hash"))), names)
    await db.write(lambda conn: conn.execute(audit_table.insert(), ENTRY))
    assert await db.write(lambda conn: after_head.execute(conn, ENTRY)) == 0  # the head is "f…f"
    assert await db.write(lambda conn: after_head.execute(conn, {**ENTRY, "prev_hash": "f" * 64})) == 1
    rows = raw_rows(tmp_path, "glyphs_audit", "seq")
    assert rows[1][:5] == rows[2][:5]  # at, action, glyph_id, actor, details
    await db.dispose()


async def test_a_constraint_violation_is_sqlalchemys_integrity_error(tmp_path):
    db = await database(tmp_path)
    prepared = PreparedInsert(bindings.insert(), list(BINDING) + ["id"])
    await db.write(lambda conn: prepared.execute(conn, {**BINDING, "id": "gly_1"}))
    with pytest.raises(IntegrityError):
        await db.write(lambda conn: prepared.execute(conn, {**BINDING, "id": "gly_1"}))
    await db.dispose()
