"""The fast form of `paginate`: a list's statement compiled once, its page answered as JSON.

`paginate` builds its statement for each request and SQLAlchemy then keys,
looks up and processes it, and the route validates a model per row before
serialising the page: on a 20-item page of dreams that was most of the
request's CPU time. A `PagedSelect` is declared once, with its per-request
values as bind parameters. Per dialect and per shape (first page, or from a
cursor) it compiles its statement once; a page then only binds values:

- on SQLite's stdlib driver the compiled SQL runs on the driver connection
  itself, and each value is turned straight into what the page's JSON shows
  (a stored UTC timestamp is reformatted as text, never parsed);
- on other drivers the prebuilt statement runs through SQLAlchemy.

The items are not validated: the item model defines the page's schema, and
the statement's columns must be its fields, in order, each of a type whose
JSON is the same whether pydantic serialises it by field or by value
(checked at declaration). So the bytes are the ones `Page[item]` would give;
tests compare the two.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, Literal, Union, get_args, get_origin

import pydantic_core
import sqlalchemy as sa
from pydantic import BaseModel, TypeAdapter

from .._services.storage import UtcDateTime
from .pagination import PageQuery, encode_cursor, restore_key

__all__ = ["PagedSelect"]

_LIMIT, _AFTER = "lukhas_limit", "lukhas_after_"
_SCALARS = (str, int, float, bool, type(None))
_DATETIME = TypeAdapter(datetime)
Encode = Callable[[Any], Any]


class PagedSelect:
    """A keyset-paged list of `item`s, compiled once (docs/plugin-api.md, Pagination).

    `statement` selects exactly `item`'s fields, in order (label a column to
    rename it), and names each per-request value with `sa.bindparam("name")`;
    `key` is as for `paginate` (unique, ends with the primary key) and every
    key column is selected. Raises TypeError when they do not fit.
    """

    def __init__(self, statement: sa.Select[Any], key: Sequence[sa.ColumnElement[Any]],
                 item: type[BaseModel]) -> None:
        self.key = list(key)
        self.item = item
        self._statement = statement
        # Plain str: a column name is a str subclass, which to_json inspects at length.
        self._names = [str(name) for name in statement.selected_columns.keys()]
        self._columns = list(statement.selected_columns)
        _check_fields(item, self._names)
        self._key_at = [_position(self._columns, column) for column in self.key]
        self._shapes: dict[tuple[str, bool], _Shape] = {}

    def json(self, conn: sa.Connection, query: PageQuery, **params: Any) -> bytes:
        """The page `query` asks for, as the JSON of `Page[item]`; `params`
        are the statement's bind parameters. Run it with `db.read(..., short=True)`."""
        after = query.after()
        if after is not None:
            after = restore_key(after, self.key)
        shape = self._shape(conn.dialect, after is not None)
        values = {**params, _LIMIT: query.limit + 1}
        if after is not None:
            values.update((f"{_AFTER}{i}", value) for i, value in enumerate(after))
        page = shape.fetch(conn, values)
        more = len(page) > query.limit
        del page[query.limit:]
        names, encoded = self._names, shape.encoded
        items = []
        for row in page:
            item = dict(zip(names, row, strict=True))
            for name, position, encode in encoded:
                item[name] = encode(row[position])
            items.append(item)
        cursor = None
        if more:
            cursor = encode_cursor([shape.key_value(page[-1], i) for i in self._key_at])
        return pydantic_core.to_json({"items": items, "count": len(items), "next_cursor": cursor})

    def _shape(self, dialect: sa.Dialect, from_cursor: bool) -> _Shape:
        found = self._shapes.get((dialect.name, from_cursor))
        if found is None:
            found = self._shapes[(dialect.name, from_cursor)] = _Shape(
                self._paged(from_cursor), self._columns, self._names, dialect)
        return found

    def _paged(self, from_cursor: bool) -> sa.Select[Any]:
        statement = self._statement
        if from_cursor:
            bound = [sa.bindparam(f"{_AFTER}{i}", type_=column.type) for i, column in enumerate(self.key)]
            statement = statement.where(sa.tuple_(*self.key) < sa.tuple_(*bound))
        # One row more than asked tells whether another page exists.
        return statement.order_by(*(column.desc() for column in self.key)).limit(
            sa.bindparam(_LIMIT, type_=sa.Integer()))


class _Shape:
    """One compiled form of a paged statement, for one dialect."""

    def __init__(self, statement: sa.Select[Any], columns: list[Any], names: list[str],
                 dialect: sa.Dialect) -> None:
        self.statement = statement
        self.raw = dialect.name == "sqlite" and dialect.driver == "pysqlite"
        compiled = statement.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            raise TypeError("a PagedSelect takes single-valued bind parameters (no expanding IN)")
        self.sql = compiled.string
        self.order = list(compiled.positiontup or ())
        self.fixed = {name: bind.effective_value for name, bind in compiled.binds.items()
                      if not bind.required}
        self.binders = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                        for name, bind in compiled.binds.items()}
        # What SQLAlchemy would make of each stored value (for the cursor), and
        # what the page shows of it.
        self.results = [_result_processor(column, dialect) if self.raw else None
                        for column in columns]
        # (name, position, encoder) of each column whose value needs one.
        self.encoded = [(names[position], position, encode) for position, column in enumerate(columns)
                        if (encode := _encoder(column, dialect, self.raw)) is not None]

    def fetch(self, conn: sa.Connection, values: dict[str, Any]) -> list[Any]:
        """The statement's rows for the bind parameters `values`."""
        if not self.raw:
            return list(conn.execute(self.statement, values))
        merged = {**self.fixed, **values}
        arguments = []
        for name in self.order:
            value, bind = merged[name], self.binders[name]
            arguments.append(value if bind is None else bind(value))
        driver = conn.connection.dbapi_connection
        assert driver is not None
        rows: list[Any] = driver.execute(self.sql, arguments).fetchall()
        return rows

    def key_value(self, row: Any, position: int) -> Any:
        """A row's key value as SQLAlchemy gives it (what the cursor encodes)."""
        process = self.results[position]
        return row[position] if process is None else process(row[position])


def _encoder(column: Any, dialect: sa.Dialect, raw: bool) -> Encode | None:
    """Turns a column's value, as the statement's execution gives it, into what the item's JSON shows."""
    process = _result_processor(column, dialect) if raw else None
    if _python_type(column) is not datetime:
        return process
    if raw and isinstance(column.type, UtcDateTime):
        return partial(_utc_text, process=process)
    if process is None:
        return _datetime_text
    return lambda stored: _datetime_text(process(stored))


def _result_processor(column: Any, dialect: sa.Dialect) -> Encode | None:
    """What SQLAlchemy applies to the column's values from `dialect`'s driver."""
    process: Encode | None = column.type.dialect_impl(dialect).result_processor(dialect, None)
    return process


def _utc_text(stored: str | None, process: Encode | None) -> str | None:
    """A UTC timestamp as SQLite stores it ("2026-01-02 03:04:05.000006"), as
    pydantic writes it ("2026-01-02T03:04:05.000006Z", no fraction when 0)."""
    if stored is None:
        return None
    if len(stored) == 26 and stored[10] == " " and stored[19] == ".":
        if stored.endswith(".000000"):
            return stored[:19].replace(" ", "T") + "Z"
        return stored.replace(" ", "T") + "Z"
    return _datetime_text(process(stored) if process is not None else stored)


def _datetime_text(value: Any) -> str | None:
    """A datetime as pydantic writes it in JSON (None stays None)."""
    text: str | None = None if value is None else _DATETIME.dump_python(value, mode="json")
    return text


def _python_type(column: Any) -> type | None:
    try:
        python_type: type = column.type.python_type
    except NotImplementedError:
        return None
    return python_type


def _position(columns: list[Any], key_column: sa.ColumnElement[Any]) -> int:
    for index, column in enumerate(columns):
        if column is key_column or getattr(column, "element", None) is key_column:
            return index
    raise TypeError(f"PagedSelect: the key column {key_column} is not selected")


def _check_fields(item: type[BaseModel], names: list[str]) -> None:
    """The statement's columns are `item`'s fields, in order, each serialised the
    same by field and by value (so the page needs no model per row)."""
    fields = list(item.model_fields)
    if names != fields:
        raise TypeError(f"PagedSelect: the statement selects {names}, but {item.__name__} "
                        f"has the fields {fields}: select (or label) exactly those, in order")
    decorators = item.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers or item.model_computed_fields:
        raise TypeError(f"PagedSelect: {item.__name__} has its own serializers; use paginate")
    for name, field in item.model_fields.items():
        if field.serialization_alias not in (None, name) or field.alias not in (None, name) or field.exclude:
            raise TypeError(f"PagedSelect: {item.__name__}.{name} is renamed or excluded; use paginate")
        if not _plain(field.annotation):
            raise TypeError(f"PagedSelect: {item.__name__}.{name} is of type {field.annotation}, "
                            "which it cannot serialise without the model; use paginate")


def _plain(annotation: Any) -> bool:
    """JSON scalars, Literal, datetime, and dicts and lists of those or of Any."""
    if annotation is Any or annotation is datetime or annotation in _SCALARS:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return all(isinstance(value, _SCALARS) for value in get_args(annotation))
    if origin in (Union, types.UnionType, list, dict):
        return all(_plain(argument) for argument in get_args(annotation))
    return False
