"""The cheapest safe strategy per change, the in-place ALTERs, and what ``execute`` must refuse.

Two strategies: ``instant`` runs the table's own ALTER statements in one transaction under a short lock
timeout (invariant 5) when every change is metadata-only on this engine; ``shadow`` is the copy, which
can make any change. Which change is metadata-only is the dialect's call (``Dialect.instant_reason``);
the ALTERs are rendered by alembic's operations in offline mode, so the plan file shows exactly what runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.errors import CopyFailed, DestructiveChange, ShadowswapError, UsageError

if TYPE_CHECKING:
    from shadowswap.dialects import Dialect
    from shadowswap.plan import Plan

INSTANT = "instant"
SHADOW = "shadow"
STRATEGIES = ("auto", SHADOW, INSTANT)


@dataclass(frozen=True)
class ChangeFacts:
    """What a dialect needs to know about one change to judge whether it can run in place."""

    kind: str
    description: str
    #: the column the change is about (the index, for index changes)
    column: str | None = None
    old_type: str | None = None
    #: the requested type; None when the type does not change
    new_type: str | None = None
    old_nullable: bool | None = None
    new_nullable: bool | None = None
    default: str | None = None
    default_changed: bool = False
    #: the new default is a literal (no function call, no column): engines can store it once
    default_is_constant: bool = False
    has_using: bool = False
    unique: bool = False
    #: an added generated column: "stored" or "virtual"
    generated: str | None = None
    #: an added identity column ("always" / "by default")
    identity: str | None = None
    #: PostgreSQL catalog-only column clauses the change makes (SET STATISTICS, identity, ...)
    settings: tuple[str, ...] = ()


class ColumnTypeSQL(sa.types.UserDefinedType[Any]):
    """A type exactly as the user wrote it (already shape-checked, and validated by the server)."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec


def is_constant(expr: str | None, read: str | None) -> bool:
    """A literal, possibly signed or cast: the same value for every row, computed once."""
    if expr is None:
        return True
    import sqlglot
    from sqlglot import exp

    try:
        node = sqlglot.parse_one(expr, read=read)
    except sqlglot.errors.SqlglotError:
        return False
    while isinstance(node, exp.Paren | exp.Cast | exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal | exp.Null | exp.Boolean)


def parse_type(type_sql: str | None, read: str | None) -> Any:
    """The type as a sqlglot DataType, or None when sqlglot does not know it (then no rule applies)."""
    if not type_sql:
        return None
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        return exp.DataType.build(type_sql, dialect=read)
    except (SqlglotError, ValueError):
        return None


def type_params(data_type: Any) -> list[int]:
    out = []
    for param in data_type.expressions:
        try:
            out.append(int(param.sql()))
        except ValueError:
            return []
    return out


_STRINGS = {"CHAR", "NCHAR", "VARCHAR", "NVARCHAR", "TEXT", "BPCHAR", "TINYTEXT", "MEDIUMTEXT", "LONGTEXT"}
_UNBOUNDED_STRINGS = {"TEXT", "MEDIUMTEXT", "LONGTEXT"}
_FLOATS = {"FLOAT": 1, "DOUBLE": 2}
_DATETIMES = {"TIMESTAMP", "TIMESTAMPTZ", "DATETIME", "TIMESTAMPLTZ"}


#: value bits of each integer type (sign excluded): what a float's mantissa must hold to keep them all
_INT_BITS = {
    "TINYINT": 7, "SMALLINT": 15, "MEDIUMINT": 23, "INT": 31, "BIGINT": 63,
    "UTINYINT": 8, "USMALLINT": 16, "UMEDIUMINT": 24, "UINT": 32, "UBIGINT": 64,
}  # fmt: skip
#: decimal digits of each integer type's largest value: what a decimal's integer part must hold
_INT_DIGITS = {
    "TINYINT": 3, "SMALLINT": 5, "MEDIUMINT": 7, "INT": 10, "BIGINT": 19,
    "UTINYINT": 3, "USMALLINT": 5, "UMEDIUMINT": 8, "UINT": 10, "UBIGINT": 20,
}  # fmt: skip
#: mantissa bits of single and double precision, and the decimal digits each keeps exactly (FLT_DIG, DBL_DIG)
_FLOAT_DIGITS = {24: 6, 53: 15}
_TIMES = {"TIME", "TIMETZ"}


def _float_bits(name: str, params: list[int]) -> int:
    """24 (single) or 53 (double): ``float(p)`` is single up to p = 24 on PostgreSQL and MySQL alike."""
    if params:
        return 24 if params[0] <= 24 else 53
    return 24 if name == "FLOAT" else 53


def _time_precision(params: list[int], read: str | None) -> int:
    """Fractional-second digits; unspecified means 6 on PostgreSQL (the maximum) and 0 on MySQL."""
    if params:
        return params[0]
    return 0 if read == "mysql" else 6


def narrowing_reason(column: str, old_type: str | None, new_type: str | None, read: str | None) -> str | None:
    """Why some value of ``old_type`` cannot be held by ``new_type`` unchanged, or None when it knowably can
    (or sqlglot does not know a type). A change that loses information for SOME value of the old type,
    by failing or by rounding, is destructive by type alone; ``--check-casts`` tells about today's rows."""
    # SQLAlchemy renders MySQL's fractional seconds as DATETIME(fsp=6)
    old = parse_type(re.sub(r"\bfsp\s*=\s*", "", old_type or ""), read)
    new = parse_type(re.sub(r"\bfsp\s*=\s*", "", new_type or ""), read)
    if old is None or new is None:
        return None
    o, n = old.this.name, new.this.name
    op, np_ = type_params(old), type_params(new)
    what = f"narrows {column} from {old_type} to {new_type}"
    if o in _STRINGS and n in _STRINGS:
        old_len = None if o in _UNBOUNDED_STRINGS or not op else op[0]
        new_len = None if n in _UNBOUNDED_STRINGS or not np_ else np_[0]
        if new_len is not None and (old_len is None or new_len < old_len):
            return f"{what}: longer values do not fit"
        return None
    if o in _INT_BITS and n in _INT_BITS:
        to_unsigned = n.startswith("U") and not o.startswith("U")
        if to_unsigned:
            return f"{what}: {'large or ' if _INT_BITS[n] < _INT_BITS[o] else ''}negative values do not fit"
        if _INT_BITS[n] < _INT_BITS[o]:
            return f"{what}: large values do not fit"
        return None
    if o == "DECIMAL" and n == "DECIMAL":
        if not np_:
            return None
        if not op:
            return f"{what}: an unconstrained numeric holds more"
        old_scale = op[1] if len(op) > 1 else 0
        new_scale = np_[1] if len(np_) > 1 else 0
        if new_scale < old_scale:
            return f"{what}: digits after the point are rounded away"
        if np_[0] - new_scale < op[0] - old_scale:
            return f"{what}: large values do not fit"
        return None
    if o == "DECIMAL" and n in _INT_BITS:
        return f"{what}: fractions are rounded away" if (not op or (len(op) > 1 and op[1] > 0)) else None
    if o in _INT_BITS and n == "DECIMAL" and np_:
        integer_digits = np_[0] - (np_[1] if len(np_) > 1 else 0)
        return f"{what}: large values do not fit" if integer_digits < _INT_DIGITS[o] else None
    if n in _FLOATS:
        bits = _float_bits(n, np_)
        kind = "single" if bits == 24 else "double"
        if o in _FLOATS:
            return f"{what}: precision is lost" if bits < _float_bits(o, op) else None
        if o in _INT_BITS:
            lossy = _INT_BITS[o] > bits
            return f"{what}: integers above 2^{bits} are rounded in {kind} precision" if lossy else None
        if o == "DECIMAL":
            if not op or op[0] > _FLOAT_DIGITS[bits]:
                return f"{what}: {kind} precision keeps {_FLOAT_DIGITS[bits]} significant digits, values are rounded"
            return None
    if o in _FLOATS and (n in _INT_BITS or n == "DECIMAL"):
        return f"{what}: fractions or magnitude are lost"
    if (o in _DATETIMES and n in _DATETIMES) or (o in _TIMES and n in _TIMES):
        if _time_precision(np_, read) < _time_precision(op, read):
            return f"{what}: fractions of a second are rounded away"
        return None
    if o in _DATETIMES and n in ("DATE", "TIME", "TIMETZ"):
        return f"{what}: part of each value is dropped"
    return None


# -- choosing -------------------------------------------------------------------------------


@dataclass
class Decision:
    facts: ChangeFacts
    instant: bool
    reason: str
    destructive: str | None


def choose(decisions: list[Decision], requested: str) -> tuple[str, str]:
    """The plan's strategy and why: in place only when every change can be, else the copy does them all."""
    if requested not in STRATEGIES:
        raise UsageError(f"unknown strategy {requested!r}", hint="--strategy auto, shadow or instant")
    blocking = [d for d in decisions if not d.instant]
    if requested == SHADOW:
        return SHADOW, "--strategy shadow: every change is made by the shadow copy"
    if blocking:
        if requested == INSTANT:
            raise UsageError(
                f"--strategy instant: {blocking[0].facts.description!r} cannot run in place ({blocking[0].reason})",
                hint="drop --strategy instant to let the shadow copy make it",
            )
        return SHADOW, f"{blocking[0].facts.description!r} needs the shadow copy ({blocking[0].reason})"
    return INSTANT, (
        "every change is metadata-only here: in-place ALTER in one transaction under a short lock "
        "timeout with retries, no copy"
    )


# -- rendering the in-place ALTERs with alembic ---------------------------------------------


class _Statements:
    """An alembic ``output_buffer`` that keeps one entry per statement."""

    def __init__(self, terminator: str) -> None:
        self.terminator = terminator
        self.statements: list[str] = []

    def write(self, text: str) -> None:
        text = text.strip()
        if text.endswith(self.terminator):
            text = text[: -len(self.terminator)].rstrip()
        if text:
            self.statements.append(text)

    def flush(self) -> None:
        pass


@dataclass
class InstantOps:
    """The in-place operations, in the order they must run (indexes before the columns they use)."""

    table: str
    drop_indexes: list[tuple[str, bool]]
    alters: list[dict[str, Any]]
    drops: list[str]
    renames: list[tuple[str, str, dict[str, Any]]]
    adds: list[sa.Column[Any]]


def render_instant_sql(dialect: Dialect, ops: InstantOps, table_options: Sequence[str] = ()) -> list[str]:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    buffer = _Statements(";")
    context = MigrationContext.configure(dialect=dialect.sa_dialect, opts={"as_sql": True, "output_buffer": buffer})
    op = Operations(context)
    for name, is_constraint in ops.drop_indexes:
        if is_constraint:
            op.drop_constraint(name, ops.table, type_="unique")
        else:
            op.drop_index(name, table_name=ops.table)
    for alter in ops.alters:
        op.alter_column(ops.table, **alter)
    for name in ops.drops:
        op.drop_column(ops.table, name)
    for old, new, existing in ops.renames:
        op.alter_column(ops.table, old, new_column_name=new, **existing)
    for column in ops.adds:
        op.add_column(ops.table, column)
    # alembic compiles for the driver, doubling each %; the plan holds what the server must see
    # ``table_options``: the engine's own in-place statements for table options (table_option_in_place)
    statements = [dialect.unescape_percents(s) for s in buffer.statements] + list(table_options)
    return dialect.instant_statements(ops.table, statements)


def run_instant(engine: Engine, dialect: Dialect, plan: Plan, lock_timeout_ms: int) -> float:
    """One attempt: all the ALTERs in one transaction; returns seconds spent. Raises on a lock timeout."""
    started = time.perf_counter()
    with engine.begin() as conn:
        for stmt in [*dialect.lock_timeout_sql(lock_timeout_ms), *dialect.instant_guard_sql(lock_timeout_ms)]:
            dialect.run(conn, stmt)
        for stmt in plan.instant_sql:
            try:
                dialect.run(conn, stmt)
            except DBAPIError as exc:
                refusal = dialect.instant_refusal(exc)
                if refusal is None:
                    raise
                raise ShadowswapError(
                    f"the server refused to change {plan.table!r} in place: {refusal}; nothing was changed",
                    hint="plan again with `--strategy shadow` to make the change with the online copy",
                ) from None
    return time.perf_counter() - started


# -- refusals at execute --------------------------------------------------------------------


def refuse_unsafe(plan: Plan, allow_destructive: bool) -> None:
    """A plan known to fail, or to destroy data without leave, never starts."""
    check = plan.cast_check
    if check is not None and check.duplicates:
        from shadowswap.uniqueness import describe

        raise CopyFailed(
            "the plan's cast check found values a unique key of the new table cannot hold: "
            + describe(check.duplicates),
            hint="make those values distinct (or drop the unique key from the plan), then plan again",
        )
    if check is not None and check.rows_failing:
        worst = next(c for c in check.columns if c.rows_failing)
        keys = ", ".join(str(k[0] if len(k) == 1 else tuple(k)) for k in worst.sample_keys[:5])
        raise CopyFailed(
            f"the plan's cast check found {check.rows_failing} row(s) that cannot be converted "
            f"({worst.column}: {worst.rows_failing}{'' if worst.exact else '+'} row(s), e.g. keys {keys})",
            hint="fix those rows or give --using COL=EXPR to convert them, then plan again",
        )
    found = plan.transform.check if plan.transform is not None else None
    if found is not None and found.rows_failing:
        raise CopyFailed(
            f"the plan's transform check found {found.rows_failing} row(s) the function fails on: {found.failures[0]}",
            hint="fix the function (or those rows), then plan again",
        )
    if plan.destructive and not allow_destructive:
        raise DestructiveChange(
            f"the plan is destructive: {'; '.join(plan.destructive)}",
            hint="review it, then run `shadowswap execute --allow-destructive`",
        )
