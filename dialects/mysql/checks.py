"""MySQL/MariaDB's own plan-time refusals, registered with ``shadowswap.checks`` (stage ``shadow``).

Each one is a table shadowswap cannot migrate by a shadow copy here: InnoDB is needed for the
copy's row locks, the shadow keeps AUTO_INCREMENT (so ids go on after the swap), RENAME TABLE
leaves the application's triggers on the old table, and foreign keys cannot follow the swap.
"""

from __future__ import annotations

import sqlalchemy as sa

from shadowswap.checks import Context, Outcome, Refusal, check
from shadowswap.dialects.mysql.base import MySQLBase
from shadowswap.dialects.mysql.types import _INTEGER_TYPES

ENGINES = ("mysql",)


def _autoinc_columns(ctx: Context) -> list[str]:
    return [c["name"] for c in ctx.reflection.columns if c.get("autoincrement") is True]


@check(
    "mysql-auto-increment-type",
    "shadow",
    "an AUTO_INCREMENT column's new type is not an integer type (the shadow keeps AUTO_INCREMENT)",
    "e.g. bigint or int unsigned",
    engines=ENGINES,
)
def auto_increment_type(ctx: Context) -> Outcome:
    for target in ctx.plan.targets:
        if target.reflected is None or target.reflected.get("autoincrement") is not True or not target.type_sql:
            continue
        words = target.type_sql.lower().split("(")[0].split()
        if not words or words[0] not in _INTEGER_TYPES:
            return f"column {target.reflected['name']!r} is AUTO_INCREMENT, so its new type must be an integer type"
    return None


@check(
    "mysql-not-innodb",
    "shadow",
    "the table is not InnoDB; the copy needs InnoDB's transactions and row locks",
    "convert the table to InnoDB first (ALTER TABLE ... ENGINE=InnoDB)",
    engines=ENGINES,
)
def not_innodb(ctx: Context) -> Outcome:
    engine = str(sa.inspect(ctx.db).get_table_options(ctx.table).get("mysql_engine", "InnoDB"))
    if engine.lower() == "innodb":
        return None
    return Refusal(
        f"table {ctx.table!r} uses the {engine} engine; shadowswap needs InnoDB's transactions and row locks"
    )


@check(
    "mysql-auto-increment-not-leading",
    "shadow",
    "an AUTO_INCREMENT column is not in the primary key leading it or a unique key",
    "the shadow is created with its primary and unique keys only; other indexes come after the copy",
    engines=ENGINES,
)
def auto_increment_not_leading(ctx: Context) -> Outcome:
    # InnoDB needs an AUTO_INCREMENT column to lead an index, and the shadow has only its primary
    # and unique keys while the copy runs.
    autoinc = _autoinc_columns(ctx)
    if not autoinc:
        return None
    ref = ctx.reflection
    leading = {ctx.pk[0]} if ctx.pk else set()
    leading |= {u["column_names"][0] for u in ref.unique_constraints if u.get("column_names")}
    if autoinc[0] in ctx.pk and autoinc[0] in leading:
        return None
    return (
        f"AUTO_INCREMENT column {autoinc[0]!r} of {ctx.table!r} must be in the primary key and lead it or a "
        "unique key for shadowswap"
    )


@check(
    "mysql-leftover-helper-table",
    "shadow",
    "the copy's helper table name is taken, usually by a previous migration",
    "a previous migration left it (`shadowswap status`, `shadowswap abort`), or rename yours",
    engines=ENGINES,
)
def leftover_helper_table(ctx: Context) -> Outcome:
    dialect = ctx.engine_dialect
    assert isinstance(dialect, MySQLBase)
    helper = dialect.helper_name(ctx.table)
    return f"table {helper!r} already exists" if sa.inspect(ctx.db).has_table(helper) else None
