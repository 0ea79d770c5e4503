"""What SQLAlchemy's MySQL reflection does not see, read from the engine's own ``SHOW CREATE TABLE``.

A blocking ``ALTER TABLE`` keeps every column and index exactly as the server stores it; the
shadow is built from reflection, so whatever reflection drops would be silently lost at the swap.
Three such things are carried over here, verbatim from the server's own text:

- column types SQLAlchemy has no class for (``POINT``, ``GEOMETRY``, MariaDB's ``INET6``/``UUID``):
  the type is kept as the server spells it instead of becoming ``NullType`` (which cannot be
  compiled into the shadow's ``CREATE TABLE``);
- column-level ``CHECK`` clauses (MariaDB's ``JSON`` is ``LONGTEXT … CHECK (json_valid(col))``),
  which the reflected column dict lacks: they go back onto the shadow's column;
- DEFAULT expressions with a comma in them (``DEFAULT point(0,0)``), which SQLAlchemy's pattern
  drops;
- index definitions (sort order, prefix lengths): ``KEY `ix` (`qty` DESC,`name`(10))``.

The reflection hooks are installed on this engine's own SQLAlchemy dialect object only (never on
the class), and the table-definition parser is built lazily, as SQLAlchemy itself does, because
its regular expressions depend on the server's quoting, known only after the first connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.mysql.reflection import MySQLTableDefinitionParser
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

#: ``KEY `name` (…)`` lines of SHOW CREATE TABLE: kind, name, the column list as written
_KEY_LINE = re.compile(r"^\s*(UNIQUE |FULLTEXT |SPATIAL )?KEY (`(?:[^`]|``)+`) (\(.*\))(.*?),?$")


class VerbatimType(sa.types.UserDefinedType[Any]):
    """A column type SQLAlchemy does not know, kept exactly as the server spelled it."""

    cache_ok = True
    type_name = ""

    def __init__(self, *args: Any, charset: str | None = None, collate: str | None = None, **kw: Any) -> None:
        spec = self.type_name
        if args:
            spec += "(" + ",".join(f"'{a}'" if isinstance(a, str) else str(a) for a in args) + ")"
        for word, value in (("unsigned", kw.get("unsigned")), ("zerofill", kw.get("zerofill"))):
            if value:
                spec += f" {word}"
        if charset:
            spec += f" CHARACTER SET {charset}"
        if collate:
            spec += f" COLLATE {collate}"
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec

    def __repr__(self) -> str:  # the plan's fingerprint and messages show the type as written
        return self.spec.upper()

    def __str__(self) -> str:
        return self.spec


@compiles(VerbatimType)
def _compile_verbatim(type_: VerbatimType, compiler: Any, **kw: Any) -> str:
    return type_.spec


class _TypeNames(dict[str, Any]):
    """SQLAlchemy's type-name map, answering an unknown name with a verbatim type of that name
    (the parser calls ``issubclass`` on the answer, so it must be a class)."""

    def __missing__(self, name: str) -> type[VerbatimType]:
        made = type(f"Verbatim_{name}", (VerbatimType,), {"type_name": name, "cache_ok": True})
        self[name] = made
        return made


def _unquoted(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """Each character of ``text`` from ``start`` outside quotes (quote marks left out), with its
    parenthesis depth: the one outside it, for a parenthesis itself."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'`\"":
            quote = ch
            continue
        if ch == ")":
            depth -= 1
        yield i, ch, depth
        if ch == "(":
            depth += 1


def _top_level(line: str, word: str) -> int | None:
    """Where ``word`` starts in a column line outside quotes and parentheses, or None."""
    return next((i for i, _ch, depth in _unquoted(line) if depth == 0 and line.startswith(word, i)), None)


def column_check(line: str) -> str | None:
    """The ``CHECK (…)`` clause at the end of one column line of SHOW CREATE TABLE, or None."""
    at = _top_level(line, " CHECK (")
    return None if at is None else _balanced(line, at + len(" CHECK "))


def column_default(line: str) -> str | None:
    """The DEFAULT expression of one column line as the server wrote it (``point(0,0)``,
    ``concat('a','b')``: SQLAlchemy's pattern stops at the comma), or None."""
    at = _top_level(line, " DEFAULT ")
    if at is None:
        return None
    start = at + len(" DEFAULT ")
    for i, ch, depth in _unquoted(line, start):
        if depth == 0 and ch in " ,":
            return line[start:i]
    return line[start:].rstrip(",") or None


def _balanced(text: str, start: int) -> str | None:
    for i, ch, depth in _unquoted(text, start):
        if ch == ")" and depth == 0:
            return text[start : i + 1]
    return None


class _Parser(MySQLTableDefinitionParser):
    """SQLAlchemy's parser, also keeping a column's own CHECK clause as ``mysql_column_check``,
    and a DEFAULT expression its pattern cannot read."""

    def _parse_column(self, line: str, state: Any) -> None:
        before = len(state.columns)
        super()._parse_column(line, state)
        if len(state.columns) > before:
            column = state.columns[-1]
            check = column_check(line)
            if check is not None:
                column["mysql_column_check"] = check
            default = column_default(line)
            if column.get("default") is None and default is not None and default != "NULL":
                column["default"] = default


class _LazyParser:
    """Builds the parser at its first use, once the connection has told the dialect its quoting."""

    def __init__(self, sa_dialect: Any) -> None:
        self._sa_dialect = sa_dialect
        self._parser: _Parser | None = None

    def __getattr__(self, name: str) -> Any:
        if self._parser is None:
            self._parser = _Parser(self._sa_dialect, self._sa_dialect.identifier_preparer)
        return getattr(self._parser, name)


def install_reflection(sa_dialect: Any) -> None:
    """Make this engine's reflection keep unknown types and column CHECKs (see the module docstring)."""
    if not isinstance(sa_dialect.__dict__.get("ischema_names"), _TypeNames):
        sa_dialect.ischema_names = _TypeNames(sa_dialect.ischema_names)
    if not isinstance(sa_dialect.__dict__.get("_tabledef_parser"), _LazyParser):
        sa_dialect._tabledef_parser = _LazyParser(sa_dialect)


def show_create(conn: Connection, table: str, q: Any) -> str:
    return str(conn.exec_driver_sql(f"SHOW CREATE TABLE {q(table)}").fetchone()[1])  # type: ignore[index]


def key_lines(ddl: str) -> Iterator[tuple[str, str, str, str]]:
    """(kind, name, column list, trailing options) of each secondary key in SHOW CREATE TABLE."""
    for line in ddl.splitlines():
        match = _KEY_LINE.match(line)
        if match:
            kind, name, columns, rest = match.groups()
            yield (kind or "").strip(), name[1:-1].replace("``", "`"), columns, rest.strip()
