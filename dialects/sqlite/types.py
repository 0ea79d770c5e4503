"""Types: SQLite's column affinity, which type names it accepts, and the guarded casts that store
a value the way the new column would (or refuse it, invariant 8)."""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sa_sqlite

from shadowswap.dialects.sqlite.base import DOES_NOT_FIT, SQLiteBase, literal
from shadowswap.strategy import ColumnTypeSQL

if TYPE_CHECKING:
    from shadowswap.plan import ColumnPlan

#: type names SQLite users mean when they reach NUMERIC affinity (see checks.py)
NUMERIC_AFFINITY_NAMES = {
    "NUMERIC",
    "DECIMAL",
    "BOOLEAN",
    "BOOL",
    "DATE",
    "DATETIME",
    "TIMESTAMP",
    "TIME",
    "NUMBER",
    "MONEY",
    "JSON",
}


def affinity(type_sql: str) -> str:
    """SQLite's column affinity of a declared type (the rules of its datatype3 page, in order)."""
    t = type_sql.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t.strip():
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def keep_declared_types(sa_dialect: Any) -> None:
    """Reflect a declared type SQLAlchemy does not know (``shape WIDGET``) or an absent one as written.

    SQLAlchemy maps such a name to its affinity (NUMERIC) or to NullType, which then names the
    wrong type in the plan, or cannot be compiled at all (``CompileError: Can't generate DDL for
    NullType()``). The declared type is the column's whole type on SQLite, so it is kept verbatim;
    the shadow's CREATE TABLE comes from the table's own text anyway (schema.shadow_create_sql).
    Patched on this engine's dialect instance only: shadowswap's own engine.
    """
    resolve = sa_dialect._resolve_type_affinity
    known = sa_dialect.ischema_names

    def resolve_declared(type_: str) -> sa.types.TypeEngine[Any]:
        head = re.match(r"([\w ]+)", type_)
        if head and head.group(1).strip() in known:
            return resolve(type_)
        return ColumnTypeSQL(type_)

    sa_dialect._resolve_type_affinity = resolve_declared


#: what sqlite3 binds as it is (bool is an int to it)
_PLAIN = (int, float, str, bytes)


@functools.cache
def _sqlalchemy_text(kind: type) -> Callable[[Any], Any]:
    """SQLAlchemy's own storage format of a date/time on SQLite (what an application reads back)."""
    type_: Any = {dt.datetime: sa_sqlite.DATETIME, dt.date: sa_sqlite.DATE, dt.time: sa_sqlite.TIME}[kind]()
    processor = type_.bind_processor(sa_sqlite.dialect())
    assert processor is not None
    return processor


def adapt_value(column_affinity: str, value: Any) -> Any:
    """A value a --transform returns, as sqlite3 can bind it and the column's affinity stores it:
    a Decimal as its text (SQLite's own conversion then stores a number where the affinity is
    numeric; a REAL column gets the float), a date/time as SQLAlchemy's SQLite types write it,
    dict/list as JSON text (a column that can hold text), bytearray/memoryview as a blob."""
    if value is None or isinstance(value, _PLAIN):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value) if column_affinity == "REAL" else str(value)
    for kind in (dt.datetime, dt.date, dt.time):  # datetime first: it is a date too
        if isinstance(value, kind):
            if getattr(value, "tzinfo", None) is not None:
                # SQLAlchemy's text has no zone: storing it would drop the offset unseen
                raise TypeError(f"{value!r} has a timezone, which SQLite's date text does not keep; return it naive")
            return _sqlalchemy_text(kind)(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (dict, list)) and column_affinity not in ("INTEGER", "REAL"):
        return json.dumps(value)
    raise TypeError(f"a {type(value).__name__} cannot be stored in a column of {column_affinity} affinity")


class SQLiteTypes(SQLiteBase):
    def __init__(self, sa_dialect: sa.engine.Dialect) -> None:
        super().__init__(sa_dialect)
        keep_declared_types(sa_dialect)

    def transform_adapter(self, column: ColumnPlan) -> Callable[[Any], Any] | None:
        # sqlite3 binds only None, int, float, str and bytes (its date adapters are deprecated)
        return functools.partial(adapt_value, affinity(column.new_type))

    def cast_expression(self, column: str, type_sql: str) -> str:
        """The value SQLite would store in a column of the new type, or an error if it would not fit.

        A SQLite CAST never fails: CAST('abc' AS INTEGER) is 0 and CAST('2024-01-02' AS DATETIME)
        is 2024. So the expression converts the way the new column's affinity would, and raises
        where the user asked for a number the value is not (invariant 8). SQLite has no way to
        raise an error from an expression outside a trigger except a failing built-in; json_extract
        with an invalid path is used, and its message names the value.
        """
        x = self.column_reference(column)
        kind = affinity(type_sql)
        fail = (
            f"json_extract('{{}}', '{DOES_NOT_FIT} ' || substr(quote({x}), 1, 40) || "
            f"{literal(' of column ' + column + ' does not fit ' + type_sql)})"
        )
        if kind == "TEXT":
            return f"CASE WHEN typeof({x}) IN ('integer', 'real') THEN CAST({x} AS TEXT) ELSE {x} END"
        if kind in ("INTEGER", "REAL"):
            # the comparison applies numeric affinity to x: '12' = 12 holds, 'abc' = 0 and 12.5 = 12 do not
            return f"CASE WHEN {x} IS NULL OR {x} = CAST({x} AS {kind}) THEN CAST({x} AS {kind}) ELSE {fail} END"
        if kind == "NUMERIC":
            if re.search(r"DEC|NUM", type_sql, re.I):
                return f"CASE WHEN {x} IS NULL OR {x} = CAST({x} AS NUMERIC) THEN CAST({x} AS NUMERIC) ELSE {fail} END"
            # DATE, DATETIME, BOOLEAN: numeric affinity keeps text that is not a number as text
            return f"CASE WHEN {x} = CAST({x} AS NUMERIC) THEN CAST({x} AS NUMERIC) ELSE {x} END"
        return x

    def narrowing_reason(self, column: str, old_type: str | None, new_type: str) -> str | None:
        # A declared length or scale is only a name here: values are stored whole, and the guarded
        # casts refuse what does not convert at all, so no type change loses data.
        return None
