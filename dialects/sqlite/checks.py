"""SQLite's own plan-time refusals, registered with ``shadowswap.checks``.

SQLite accepts any type name, and the shadow is created from what SQLAlchemy reflects: where the
reflection loses part of the stored CREATE TABLE (a COLLATE, a column-level foreign key action),
the new table would quietly lose it too, so the plan is refused instead.
"""

from __future__ import annotations

import re
from typing import Any

from shadowswap.checks import Context, Outcome, Refusal, check
from shadowswap.dialects.sqlite.base import SQLiteBase
from shadowswap.dialects.sqlite.schema import strip_literals
from shadowswap.dialects.sqlite.types import NUMERIC_AFFINITY_NAMES, affinity

ENGINES = ("sqlite",)


@check(
    "sqlite-numeric-affinity-type",
    "database",
    "a new type name SQLite would store with NUMERIC affinity, which is rarely what a typo meant",
    "use a type SQLite recognises: integer, text, varchar(n), real, blob, numeric, decimal(p,s), boolean, date, "
    "datetime",
    engines=ENGINES,
)
def numeric_affinity_type(ctx: Context) -> Outcome:
    # SQLite accepts any type name, so a typo (``varchr(20)``) would silently get NUMERIC affinity;
    # names that reach that fallback must be numeric or date words SQLite users mean.
    for target in ctx.plan.targets:
        type_sql = target.type_sql
        if type_sql is None or affinity(type_sql) != "NUMERIC":
            continue
        if type_sql.split("(")[0].strip().upper() not in NUMERIC_AFFINITY_NAMES:
            return (
                f"invalid type {type_sql!r}: SQLite would store it with NUMERIC affinity, "
                "which is rarely what a typo meant"
            )
    return None


@check(
    "sqlite-collate",
    "shadow",
    "the table declares a COLLATE, which shadowswap cannot carry to the new table on SQLite yet",
    "drop the COLLATE clause first, or make the change in place",
    engines=ENGINES,
)
def collate(ctx: Context) -> Outcome:
    dialect = ctx.engine_dialect
    assert isinstance(dialect, SQLiteBase)
    table_sql = strip_literals(dialect._table_sql(ctx.db, ctx.table))
    if not re.search(r"\bCOLLATE\b", table_sql, re.I):
        return None
    return Refusal(
        f"table {ctx.table!r} declares a COLLATE, which shadowswap cannot carry to the new table on SQLite yet"
    )


@check(
    "sqlite-foreign-key-action",
    "shadow",
    "a column-level REFERENCES ... ON DELETE/ON UPDATE action that the reflection (hence the new table) would lose",
    "declare the foreign key as a table-level FOREIGN KEY clause first",
    engines=ENGINES,
)
def foreign_key_action(ctx: Context) -> Outcome:
    # SQLAlchemy reads ON DELETE/ON UPDATE only from table-level FOREIGN KEY clauses; refuse rather
    # than let a column-level `REFERENCES … ON DELETE CASCADE` lose its action.
    dialect = ctx.engine_dialect
    groups: dict[int, dict[str, Any]] = {}
    for row in dialect.run(ctx.db, f"PRAGMA foreign_key_list({dialect.q(ctx.table)})"):
        group = groups.setdefault(row[0], {"columns": [], "onupdate": row[5], "ondelete": row[6]})
        group["columns"].append(row[3])
    options = {tuple(fk["constrained_columns"]): fk.get("options") or {} for fk in ctx.reflection.foreign_keys}
    for group in groups.values():
        kept = options.get(tuple(group["columns"]), {})
        for key, clause in (("onupdate", "ON UPDATE"), ("ondelete", "ON DELETE")):
            action = str(group[key]).upper()
            if action != "NO ACTION" and str(kept.get(key) or "").upper() != action:
                return Refusal(
                    f"the foreign key of {ctx.table}.{', '.join(group['columns'])} has {clause} {action}, which "
                    "shadowswap cannot carry to the new table on SQLite yet",
                )
    return None
