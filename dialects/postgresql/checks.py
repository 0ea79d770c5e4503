"""PostgreSQL's own plan-time refusals, registered with ``shadowswap.checks``.

A view is bound to the table's columns by number: PostgreSQL's own ``ALTER TABLE … DROP COLUMN``
refuses to drop one a view reads. The shadow route refuses it where it reads the views it recreates
(dependents.py); a drop made in place (strategy instant) would only fail at ``execute``, so the drop
is refused here, in the stage every plan passes.
"""

from __future__ import annotations

import sqlalchemy as sa

from shadowswap.checks import Context, Outcome, Refusal, check

ENGINES = ("postgresql",)


@check(
    "postgresql-view-uses-dropped-column",
    "database",
    "a view reads a dropped column (PostgreSQL's own ALTER refuses the drop)",
    "drop the view before migrating and create it again after",
    engines=ENGINES,
)
def view_uses_dropped_column(ctx: Context) -> Outcome:
    if not ctx.plan.drops:
        return None
    rows = ctx.db.execute(
        sa.text(
            "SELECT DISTINCT v.relname, a.attname FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid"
            " JOIN pg_class v ON v.oid = r.ev_class"
            " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
            " WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = to_regclass(:t) AND d.refobjsubid > 0"
            " AND v.oid <> d.refobjid AND a.attname = ANY(:drops) ORDER BY 1, 2"
        ),
        {"t": ctx.engine_dialect.q(ctx.table), "drops": list(ctx.plan.drops)},
    ).first()
    if rows is None:
        return None
    view, column = rows
    return Refusal(
        f"view {view!r} uses column {column!r}, which the change drops; PostgreSQL refuses to drop it under the view",
        hint=f"drop the view (DROP VIEW {view}) before migrating and create it again after",
    )
