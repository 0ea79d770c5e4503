"""Which values of the live table a unique key of the new definition cannot hold.

A unique index added by the plan, or a unique key whose column the plan converts (a shortened
varchar, a case-folding type), can meet rows whose new values collide. That is a fact about the
data, not about the moment: the build fails the same way on every resume. So ``--check-casts``
looks for such collisions before anything starts, and a build that fails on them anyway (rows
written since the plan) is reported as a data failure naming the values, with everything the
migration created removed.

The search reads the original table through the plan's own copy expressions (invariant 1: the
values compared are the values the copy would write), grouping by them as the new index would.
NULLs never collide in a unique index, so rows with one are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.db import first_line
from shadowswap.dialects import Dialect
from shadowswap.plan import ColumnPlan, DuplicateCheck, Plan

log = structlog.get_logger("shadowswap.uniqueness")

SAMPLE_VALUES = 5


@dataclass(frozen=True)
class UniqueKey:
    """A unique key of the new table: its name and the new columns (with their copy expressions)."""

    name: str
    columns: list[ColumnPlan]
    #: added by the plan (else: an existing key, which can only collide where the plan converts it)
    new: bool

    def converted(self, dialect: Dialect) -> bool:
        return any(
            c.source_column is None or c.expression != dialect.column_reference(c.source_column) for c in self.columns
        )


def unique_keys(engine: Engine, dialect: Dialect, plan: Plan) -> list[UniqueKey]:
    """The new table's unique keys whose columns are all copied: the primary key, the original's
    unique constraints and (non-partial) unique indexes the plan keeps, and the ones it adds."""
    by_source = {c.source_column: c for c in plan.columns if c.source_column is not None}
    by_name = {c.name: c for c in plan.columns}
    dropped = {c.column for c in plan.change_plans if c.kind == "drop_index"}
    keys = [UniqueKey("the primary key", plan.shadow_primary_key, new=False)]
    inspector = sa.inspect(engine)
    found: list[tuple[str | None, list[str | None]]] = [
        (u.get("name"), list(u["column_names"])) for u in inspector.get_unique_constraints(plan.table)
    ]
    for ix in inspector.get_indexes(plan.table):
        partial = any(k.endswith("_where") for k in (ix.get("dialect_options") or {}))
        if ix.get("unique") and not partial:
            found.append((ix.get("name"), list(ix["column_names"])))
    seen: set[tuple[str, ...]] = set()
    for name, names in found:
        if name in dropped or any(n is None or n not in by_source for n in names):
            continue  # dropped, or over an expression or a dropped column: not a key the copy fills
        cols = [by_source[n] for n in names if n is not None]
        signature = tuple(c.name for c in cols)
        if signature not in seen:
            seen.add(signature)
            keys.append(UniqueKey(name or "unique key", cols, new=False))
    for index in plan.indexes:
        if index.new and index.unique and index.columns and all(n in by_name for n in index.columns):
            keys.append(UniqueKey(index.final_name, [by_name[n] for n in index.columns], new=True))
    return keys


def find_duplicates(engine: Engine, dialect: Dialect, plan: Plan, key: UniqueKey) -> DuplicateCheck | None:
    """The values of ``key`` held by more than one row (a few, with the totals), or None if none."""
    exprs = [c.expression for c in key.columns]
    table = dialect.q(plan.table)
    not_null = " AND ".join(f"({e}) IS NOT NULL" for e in exprs)
    group = ", ".join(exprs)
    groups = f"SELECT {group}, COUNT(*) AS n FROM {table} AS src WHERE {not_null} GROUP BY {group} HAVING COUNT(*) > 1"
    try:
        with engine.connect() as conn:
            total = conn.execute(dialect.statement(f"SELECT COUNT(*), SUM(d.n) FROM ({groups}) AS d")).one()
            if not total[0]:
                conn.rollback()
                return None
            sample = conn.execute(
                dialect.statement(f"{groups} ORDER BY COUNT(*) DESC, {group} LIMIT {SAMPLE_VALUES}")
            ).all()
            conn.rollback()
    except DBAPIError as exc:
        # a value the conversion cannot make at all is the cast check's finding, not this one's
        log.info("duplicate search failed", key=key.name, error=first_line(exc))
        return None
    return DuplicateCheck(
        index=key.name,
        columns=[c.name for c in key.columns],
        values=int(total[0]),
        rows=int(total[1] or 0),
        sample_values=[[_plain(v) for v in row[:-1]] + [int(row[-1])] for row in sample],
    )


def _plain(value: Any) -> Any:
    """A JSON-safe rendering of a sampled value (the plan file keeps it)."""
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def check_duplicates(engine: Engine, dialect: Dialect, plan: Plan) -> list[DuplicateCheck]:
    """The collisions in the keys the plan adds or converts (the others hold today, as the live
    table's own keys): for ``--check-casts``, and to name the values after a build failed."""
    found = []
    for key in unique_keys(engine, dialect, plan):
        if key.new or key.converted(dialect):
            duplicate = find_duplicates(engine, dialect, plan, key)
            if duplicate is not None:
                found.append(duplicate)
    return found


def describe(duplicates: list[DuplicateCheck]) -> str:
    """``uq (code): 3 value(s) held by 7 rows, e.g. 'c1' (3 rows), 'c2' (2 rows)``, per key."""
    parts = []
    for d in duplicates:
        shown = []
        for sample in d.sample_values:
            values, count = sample[:-1], sample[-1]
            value = repr(values[0]) if len(values) == 1 else "(" + ", ".join(map(repr, values)) + ")"
            shown.append(f"{value} ({count} rows)")
        parts.append(
            f"{d.index} ({', '.join(d.columns)}): {d.values} value(s) held by {d.rows} rows, e.g. {', '.join(shown)}"
        )
    return "; ".join(parts)
