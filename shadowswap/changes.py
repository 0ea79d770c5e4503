"""The alter mini-language: ``price:varchar(20) not null default '0'`` into change objects.

Parsing happens before any connection so a typo costs nothing. Types are only checked for shape
here (no quotes, no statement separators); whether a type exists is asked of the database itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shadowswap.errors import UsageError

# A type is words, an optional (n) or (p, s), more words, an optional [] (arrays):
# enough for every built-in type, and nothing that could end a statement or open a quote.
_TYPE_RE = re.compile(
    r"""^[A-Za-z_][A-Za-z0-9_]*(\s+[A-Za-z_][A-Za-z0-9_]*)*
        \s*(\(\s*\d+\s*(,\s*\d+\s*)?\))?
        (\s+[A-Za-z_][A-Za-z0-9_]*)*
        (\s*\[\])?$""",
    re.VERBOSE,
)
_DEFAULT_RE = re.compile(r"\s+default\s+", re.IGNORECASE)
_NULLABILITY_RE = re.compile(r"\s+(not\s+null|null)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class AlterColumn:
    column: str
    type_sql: str
    nullable: bool | None = None
    default: str | None = None

    def describe(self) -> str:
        text = f"alter {self.column} type {self.type_sql}"
        if self.nullable is not None:
            text += " null" if self.nullable else " not null"
        if self.default is not None:
            text += f" default {self.default}"
        return text


def check_type(type_sql: str) -> str:
    cleaned = " ".join(type_sql.split())
    if not cleaned or not _TYPE_RE.match(cleaned):
        raise UsageError(
            f"invalid type {type_sql!r}",
            hint="give a type such as varchar(20), numeric(10,2), bigint or text",
        )
    return cleaned


def check_default(expr: str) -> str:
    """A default is one SQL expression: refuse anything that could end the statement."""
    import sqlglot

    try:
        parsed = sqlglot.parse(expr)
    except sqlglot.errors.ParseError:
        raise UsageError(f"invalid default expression {expr!r}") from None
    if len(parsed) != 1 or parsed[0] is None or isinstance(parsed[0], sqlglot.exp.Query | sqlglot.exp.DDL):
        raise UsageError(f"invalid default expression {expr!r}", hint="give a single value or expression")
    return expr.strip()


def split_column_spec(spec: str, option: str) -> tuple[str, str]:
    if ":" not in spec:
        raise UsageError(f"{option} {spec!r} is not of the form COLUMN:TYPE", hint=f"e.g. {option} price:varchar(20)")
    column, rest = spec.split(":", 1)
    column = column.strip()
    if not column:
        raise UsageError(f"{option} {spec!r} names no column")
    return column, rest.strip()


def parse_column_definition(rest: str) -> tuple[str, bool | None, str | None]:
    """``TYPE [null|not null] [default EXPR]`` (the two modifiers in either order)."""
    default = None
    nullable: bool | None = None
    match = _DEFAULT_RE.search(rest)
    if match:
        rest, default = rest[: match.start()], rest[match.end() :]
        tail = _NULLABILITY_RE.search(default)
        if tail:
            nullable = tail.group(1).lower() == "null"
            default = default[: tail.start()]
        default = check_default(default)
    tail = _NULLABILITY_RE.search(rest)
    if tail:
        nullable = tail.group(1).lower() == "null"
        rest = rest[: tail.start()]
    return check_type(rest), nullable, default


def parse_alter(spec: str) -> AlterColumn:
    column, rest = split_column_spec(spec, "--alter")
    type_sql, nullable, default = parse_column_definition(rest)
    return AlterColumn(column=column, type_sql=type_sql, nullable=nullable, default=default)


def parse_using(spec: str) -> tuple[str, str]:
    if "=" not in spec:
        raise UsageError(
            f"--using {spec!r} is not of the form COLUMN=EXPRESSION",
            hint="e.g. --using price=\"to_char(price, 'FM999990.00')\"",
        )
    column, expr = spec.split("=", 1)
    column, expr = column.strip(), expr.strip()
    if not column or not expr:
        raise UsageError(f"--using {spec!r} needs both a column and an expression")
    if ";" in _strip_quoted(expr):
        raise UsageError(f"--using expression for {column} must be one expression, not statements")
    return column, expr


def _strip_quoted(expr: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", expr)
