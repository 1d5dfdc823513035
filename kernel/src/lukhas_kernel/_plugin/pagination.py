"""Keyset pagination: the one shape of every list route (docs/plugin-api.md, Pagination).

A list is ordered by a unique key of columns, newest first; the cursor is the
key of the last item sent, encoded opaquely. Keyset pages stay correct while
rows are added and cost the same at any depth, unlike offsets.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._core.problems import ProblemError, validation_error

__all__ = ["Page", "PageQuery", "encode_cursor", "paginate", "restore_key"]

T = TypeVar("T")


def encode_cursor(key: Sequence[Any]) -> str:
    """The opaque cursor of the last item sent, from its key values."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode()


class PageQuery(BaseModel):
    """`?limit=` (1..100, default 20) and `?cursor=`; subclass it to add filters."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=1024, description="`next_cursor` of the previous page")

    @field_validator("cursor")
    @classmethod
    def _decodable(cls, cursor: str | None) -> str | None:
        if cursor is not None:
            cls._decode(cursor)
        return cursor

    @staticmethod
    def _decode(cursor: str) -> list[Any]:
        try:
            values = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        except (ValueError, UnicodeError, binascii.Error):
            values = None
        if not isinstance(values, list) or not values:
            raise ValueError("not a cursor this list returned")
        return values

    def after(self) -> list[Any] | None:
        return None if self.cursor is None else self._decode(self.cursor)


class Page(BaseModel, Generic[T]):
    """`{"items": [...], "count": n, "next_cursor": str|null}`."""

    items: list[T]
    count: int
    next_cursor: str | None


def paginate(
    statement: sa.Select[Any],
    key: Sequence[sa.ColumnElement[Any]],
    query: PageQuery,
) -> tuple[sa.Select[Any], Callable[[Sequence[Any]], tuple[list[Any], str | None]]]:
    """Order `statement` by `key` descending, from `query`'s cursor on.

    Returns the paged statement and a function that takes its rows and gives
    back the page's rows and the next cursor (None on the last page). `key`
    must be unique per row (end it with the primary key).
    """
    after = query.after()
    if after is not None:
        bound = [sa.literal(value, type_=column.type)
                 for value, column in zip(restore_key(after, key), key, strict=True)]
        statement = statement.where(sa.tuple_(*key) < sa.tuple_(*bound))
    # One row more than asked tells whether another page exists.
    statement = statement.order_by(*(column.desc() for column in key)).limit(query.limit + 1)

    def split(rows: Sequence[Any]) -> tuple[list[Any], str | None]:
        page = list(rows[: query.limit])
        if len(rows) <= query.limit:
            return page, None
        last = page[-1]._mapping
        return page, encode_cursor([last[column] for column in key])

    return statement, split


def restore_key(after: list[Any], key: Sequence[sa.ColumnElement[Any]]) -> list[Any]:
    """A decoded cursor's values as the `key` columns' Python types; a 422
    problem when it is not a cursor of this list."""
    if len(after) != len(key):
        raise _foreign_cursor()
    return [_restore(value, column) for value, column in zip(after, key, strict=True)]


def _restore(value: Any, column: sa.ColumnElement[Any]) -> Any:
    """A cursor's JSON value as the key column's Python type (checked)."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:  # a type without a Python equivalent: bound as decoded
        return value
    if python_type is datetime and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _foreign_cursor() from None
        if moment.tzinfo is None:  # every stored key is aware UTC; a naive one was not sent
            raise _foreign_cursor()
        return moment
    if not isinstance(value, python_type):
        raise _foreign_cursor()
    # Values no key can hold, which a server database refuses to even compare
    # (PostgreSQL: an integer past the column's range, a NUL in a string).
    if isinstance(value, int) and not -_int_bound(column) <= value < _int_bound(column):
        raise _foreign_cursor()
    if isinstance(value, str) and "\x00" in value:
        raise _foreign_cursor()
    return value


def _int_bound(column: sa.ColumnElement[Any]) -> int:
    """2**(bits - 1) of the key column's integer type."""
    if isinstance(column.type, sa.SmallInteger):
        return 2**15
    return 2**63 if isinstance(column.type, sa.BigInteger) else 2**31


def _foreign_cursor() -> ProblemError:
    # Decodable, but made by another list (or by hand): still a bad query.
    return validation_error(("query", "cursor"), "not a cursor this list returned")
