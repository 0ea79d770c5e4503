"""SQLite's own plan-time refusals, registered with ``shadowswap.checks``.

SQLite accepts any type name, so a typo would quietly become NUMERIC affinity; and only a column
declared exactly ``INTEGER PRIMARY KEY`` is the rowid's alias, the one that fills itself. (The shadow's CREATE
TABLE is the original's own text with only the changed columns rewritten — schema.shadow_create_sql —
so a COLLATE or a column-level foreign key action carries over and needs no refusal.)
"""

from __future__ import annotations

import sqlalchemy as sa

from shadowswap.checks import Context, Outcome, check
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
    "sqlite-rowid-alias-retyped",
    "database",
    "the table's INTEGER PRIMARY KEY (the rowid alias, which fills in ids) is given another type name, which "
    "SQLite would not make the alias: inserts without an id would store NULL",
    "keep it integer (SQLite's INTEGER is already 64-bit, as big as bigint)",
    engines=ENGINES,
)
def rowid_alias_retyped(ctx: Context) -> Outcome:
    # Only the declared type name INTEGER makes a single-column primary key the rowid's alias (an
    # ``int``/``bigint`` key is an ordinary column, NULL when an insert leaves it out, as SQLite's
    # own rebuild of the table would leave it too): retyping away from it exits 0 with a table whose
    # inserts without an id behave differently. Refused rather than quietly kept INTEGER.
    pk = ctx.reflection.primary_key.get("constrained_columns") or []
    if len(pk) != 1:
        return None
    target = next((t for t in ctx.plan.targets if t.source == pk[0] and t.type_sql is not None), None)
    if target is None or target.type_sql is None or target.type_sql.strip().upper() == "INTEGER":
        return None
    declared = {
        r[1]: str(r[2]) for r in ctx.db.execute(sa.text("SELECT * FROM pragma_table_info(:t)"), {"t": ctx.table})
    }
    if declared.get(pk[0], "").strip().upper() != "INTEGER":
        return None
    # an index backing the key means no alias after all: WITHOUT ROWID, or the PRIMARY KEY DESC quirk
    origins = ctx.db.execute(sa.text("SELECT origin FROM pragma_index_list(:t)"), {"t": ctx.table})
    if any(r[0] == "pk" for r in origins):
        return None
    return (
        f"column {pk[0]!r} is the table's INTEGER PRIMARY KEY, the rowid alias that fills in ids; as "
        f"{target.type_sql!r} SQLite would make it an ordinary column, and an insert without an id would store NULL"
    )
