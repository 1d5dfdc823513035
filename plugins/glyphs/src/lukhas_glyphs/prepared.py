"""The inserts of the bind path, compiled once and run on SQLite's driver.

Through `conn.execute(insert, values)` SQLAlchemy keys the statement, finds
its compiled form and processes every value on each call: for a bind's two
inserts that was most of the writer thread's time (~100 µs each, against
~15 µs for the statement itself). A `PreparedInsert` compiles once per
dialect; on SQLite it runs the SQL text through `exec_driver_sql` with the
values converted by each column type's own bind processor, so what is
stored is exactly what SQLAlchemy would store, and errors keep SQLAlchemy's
types (a constraint violation is still an IntegrityError). Elsewhere the
statement runs through SQLAlchemy as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["PreparedInsert"]

Processor = Callable[[Any], Any]
#: The SQL, each position's parameter name and processor, and the statement's own values.
_Compiled = tuple[str, list[tuple[str, Processor | None]], dict[str, Any]]


class PreparedInsert:
    """`statement` (an INSERT, or INSERT … SELECT of bind parameters) taking
    the values named `names`, every one of them given on each execution."""

    def __init__(self, statement: sa.Insert, names: Sequence[str]) -> None:
        self.statement = statement
        self._names = list(names)
        self._sqlite: _Compiled | None = None

    def execute(self, conn: sa.Connection, values: Mapping[str, Any]) -> int:
        """Insert `values`; the number of rows inserted."""
        if conn.dialect.name != "sqlite":
            return conn.execute(self.statement, values).rowcount
        sql, order, fixed = self._sqlite or self._compile(conn.dialect)
        given = {**fixed, **values} if fixed else values
        parameters = tuple(given[name] if process is None else process(given[name])
                           for name, process in order)
        return conn.exec_driver_sql(sql, parameters).rowcount

    def execute_many(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert every one of `rows` (elsewhere than SQLite: one executemany)."""
        if conn.dialect.name == "sqlite":
            for values in rows:  # each as cheap as SQLite's own work
                self.execute(conn, values)
        elif rows:
            conn.execute(self.statement, rows)

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=self._names)
        # What SQLAlchemy applies at execution: the dialect's form of the type's processor.
        order: list[tuple[str, Processor | None]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or ()]
        # The statement's own values (a LIMIT's), as SQLAlchemy binds them.
        fixed = {name: bind.effective_value for name, bind in compiled.binds.items()
                 if name not in self._names}
        prepared = self._sqlite = compiled.string, order, fixed
        return prepared
