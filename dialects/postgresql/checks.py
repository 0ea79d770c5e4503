"""PostgreSQL's own plan-time refusals, registered with ``shadowswap.checks`` (stage ``shadow``)."""

from __future__ import annotations

import sqlalchemy as sa

from shadowswap.checks import Context, Outcome, check

ENGINES = ("postgresql",)


@check(
    "postgresql-dependent-views",
    "shadow",
    "views depend on the table; PostgreSQL binds a view to the table, so after the swap it would show the old one",
    "drop the views before migrating and recreate them after",
    engines=ENGINES,
)
def dependent_views(ctx: Context) -> Outcome:
    views = [
        r[0]
        for r in ctx.db.execute(
            sa.text(
                "SELECT DISTINCT v.relname FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
                "JOIN pg_class v ON v.oid = r.ev_class "
                "WHERE d.refobjid = to_regclass(:t) AND v.oid <> d.refobjid ORDER BY 1"
            ),
            {"t": ctx.engine_dialect.q(ctx.table)},
        )
    ]
    if not views:
        return None
    return (
        f"views depend on {ctx.table!r} ({', '.join(views)}); PostgreSQL binds them to the table, "
        "so after the swap they would show the old table"
    )
