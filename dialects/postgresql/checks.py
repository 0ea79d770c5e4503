"""PostgreSQL's own plan-time refusals, registered with ``shadowswap.checks``.

A view is bound to the table's columns by number: PostgreSQL's own ``ALTER TABLE`` refuses to drop
a column a view reads, or to change its type. The shadow route refuses both where it reads the views
it recreates (dependents.py); made in place (strategy instant) they would only fail at ``execute``,
so they are refused here, in the stage every plan passes.
"""

from __future__ import annotations

import sqlalchemy as sa

from shadowswap.checks import Context, Outcome, Refusal, check

ENGINES = ("postgresql",)


def _retyped(ctx: Context) -> list[str]:
    """Existing columns given a type other than the one they have (compared as PostgreSQL spells it)."""
    dialect = ctx.engine_dialect
    out = []
    for target in ctx.plan.targets:
        if target.source is None or target.type_sql is None or target.reflected is None:
            continue
        old = target.reflected["type"].compile(dialect=dialect.sa_dialect)
        if " ".join(target.type_sql.lower().split()) != " ".join(str(old).lower().split()):
            out.append(target.source)
    return out


@check(
    "postgresql-view-uses-changed-column",
    "database",
    "a view reads a column the change drops or retypes (PostgreSQL's own ALTER refuses both)",
    "drop the view before migrating and create it again after",
    engines=ENGINES,
)
def view_uses_changed_column(ctx: Context) -> Outcome:
    what = {c: "retypes" for c in _retyped(ctx)} | {c: "drops" for c in ctx.plan.drops}
    if not what:
        return None
    row = ctx.db.execute(
        sa.text(
            "SELECT DISTINCT v.relname, a.attname FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid"
            " JOIN pg_class v ON v.oid = r.ev_class"
            " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
            " WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = to_regclass(:t) AND d.refobjsubid > 0"
            " AND v.oid <> d.refobjid AND a.attname = ANY(:changed) ORDER BY 1, 2"
        ),
        {"t": ctx.engine_dialect.q(ctx.table), "changed": sorted(what)},
    ).first()
    if row is None:
        return None
    view, column = row
    return Refusal(
        f"view {view!r} uses column {column!r}, which the change {what[column]}; PostgreSQL refuses that under a view",
        hint=f"drop the view (DROP VIEW {view}) before migrating and create it again after",
    )
