"""SQLite's own plan-time refusals, registered with ``shadowswap.checks``.

SQLite accepts any type name, so a typo would quietly become NUMERIC affinity. (The shadow's CREATE
TABLE is the original's own text with only the changed columns rewritten — schema.shadow_create_sql —
so a COLLATE or a column-level foreign key action carries over and needs no refusal.)
"""

from __future__ import annotations

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
