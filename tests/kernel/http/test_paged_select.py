"""`PagedSelect`: the same pages, byte for byte, as `paginate` and the item model."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lukhas_kernel import Page, PagedSelect, PageQuery, ProblemError, UtcDateTime, paginate
from pydantic import BaseModel, Field

metadata = sa.MetaData()
things = sa.Table(
    "things", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(20), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("ratio", sa.Float, nullable=True),
    sa.Column("on", sa.Boolean, nullable=False),
    sa.Column("extra", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),
)


class Thing(BaseModel):
    thing_id: str
    kind: Literal["a", "b"]
    size: int
    ratio: float | None
    on: bool
    extra: dict[str, Any]
    created_at: datetime
    ended_at: datetime | None = Field(description="when it ended")


KEY = [things.c.created_at, things.c.id]
PAGES = PagedSelect(
    sa.select(things.c.id.label("thing_id"), things.c.kind, things.c.size, things.c.ratio, things.c.on,
              things.c.extra, things.c.created_at, things.c.ended_at)
    .where(things.c.owner == sa.bindparam("owner")), KEY, Thing)
MOMENT = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)

moments = st.builds(lambda seconds, micro: MOMENT + timedelta(seconds=seconds, microseconds=micro),
                    st.integers(-10**9, 10**9), st.sampled_from([0, 0, 1, 5, 120000, 999999]))
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8)
                           | st.floats(allow_nan=False, allow_infinity=False),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
rows = st.lists(st.fixed_dictionaries({
    "id": st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12),
    "owner": st.sampled_from(["ada", "bo"]), "kind": st.sampled_from(["a", "b"]),
    "size": st.integers(-2**63, 2**63 - 1),
    "ratio": st.none() | st.floats(allow_nan=False, allow_infinity=False),
    "on": st.booleans(), "extra": st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    "created_at": moments, "ended_at": st.none() | moments}), max_size=12, unique_by=lambda r: r["id"])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> sa.Engine:
    made = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'things.db'}")
    metadata.create_all(made)
    return made


def by_paginate(conn: sa.Connection, query: PageQuery, owner: str) -> bytes:
    """The page as `paginate` and the model make it."""
    columns = [things.c[name] for name in ("id", *list(Thing.model_fields)[1:])]
    statement, split = paginate(sa.select(*columns).where(things.c.owner == owner), KEY, query)
    found, cursor = split(conn.execute(statement).all())
    items = [Thing(thing_id=row.id, **{k: v for k, v in row._mapping.items() if k != "id"}) for row in found]
    return Page[Thing](items=items, count=len(items), next_cursor=cursor).model_dump_json().encode()


def pages(conn: sa.Connection, make: Any, limit: int) -> list[bytes]:
    answers, cursor = [], None
    while True:
        answers.append(make(conn, PageQuery(limit=limit, cursor=cursor), "ada"))
        cursor = json.loads(answers[-1])["next_cursor"]
        if cursor is None:
            return answers


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=rows, limit=st.integers(1, 5))
def test_every_page_is_the_models(engine: sa.Engine, stored: list[dict[str, Any]], limit: int) -> None:
    with engine.begin() as conn:
        conn.execute(things.delete())
        if stored:
            conn.execute(things.insert(), stored)
    with engine.connect() as conn:
        fast = pages(conn, lambda c, q, owner: PAGES.json(c, q, owner=owner), limit)
        assert fast == pages(conn, by_paginate, limit)
    shown = [item["thing_id"] for page in fast for item in json.loads(page)["items"]]
    assert sorted(shown) == sorted(r["id"] for r in stored if r["owner"] == "ada")


def test_a_foreign_cursor_is_a_validation_problem(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        for values in (["x"], ["not a time", "x"], ["2026-01-01T00:00:00", "x"], [1, "x"]):
            cursor = PageQuery(cursor=base64.urlsafe_b64encode(json.dumps(values).encode()).decode())
            with pytest.raises(ProblemError) as caught:
                PAGES.json(conn, cursor, owner="ada")
            assert caught.value.status == 422


class Nested(BaseModel):
    thing_id: str
    inner: Thing


@pytest.mark.parametrize(("columns", "item", "key", "why"), [
    ([things.c.id.label("thing_id"), things.c.kind], Thing, KEY, "has the fields"),
    ([things.c.id.label("thing_id"), things.c.id.label("inner")], Nested, [things.c.id], "of type"),
    ([things.c.id.label("thing_id"), things.c.kind], type("Two", (BaseModel,), {
        "__annotations__": {"thing_id": str, "kind": str}}), KEY, "is not selected"),
])
def test_a_statement_that_does_not_fit_the_model_is_refused(columns: list[Any], item: Any, key: Any,
                                                           why: str) -> None:
    with pytest.raises(TypeError, match=why):
        PagedSelect(sa.select(*columns), key, item)


def test_the_handler_answers_the_bytes(tmp_path: Path) -> None:
    """What `json` returns is a whole `Page` document: a handler returns it as is."""
    made = sa.create_engine(f"sqlite:///{tmp_path / 'one.db'}")
    metadata.create_all(made)
    with made.begin() as conn:
        conn.execute(things.insert(), {"id": "t1", "owner": "ada", "kind": "a", "size": 1, "ratio": None,
                                       "on": True, "extra": {}, "created_at": MOMENT, "ended_at": None})
    with made.connect() as conn:
        answer = PAGES.json(conn, PageQuery(), owner="ada")
    assert answer == (b'{"items":[{"thing_id":"t1","kind":"a","size":1,"ratio":null,"on":true,"extra":{},'
                      b'"created_at":"2026-05-06T07:08:09Z","ended_at":null}],"count":1,"next_cursor":null}')
