"""PostgreSQL's own plan-time refusals, registered with ``shadowswap.checks``.

A view is bound to the table's columns by number: PostgreSQL's own ``ALTER TABLE`` refuses to drop
a column a view reads, or to change its type. The shadow route refuses both where it reads the views
it recreates (dependents.py); made in place (strategy instant) they would only fail at ``execute``,
so they are refused here, in the stage every plan passes. The column settings (SET STATISTICS /
STORAGE / COMPRESSION) and identity clauses are checked before anything runs, as the server's ALTER
would check them (so an in-place plan cannot fail at execute on them).
"""

from __future__ import annotations

import sqlalchemy as sa

from shadowswap.changes import AddColumn, AlterColumn
from shadowswap.checks import Context, Outcome, Refusal, check

ENGINES = ("postgresql",)
_INTEGERS = ("smallint", "integer", "bigint")


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


@check(
    "postgresql-add-identity-column",
    "table",
    "ADD COLUMN ... GENERATED AS IDENTITY: the copy numbers the existing rows, and the change log's replay "
    "would number a row changed during the copy again",
    "add a plain bigint column, fill it, then ALTER COLUMN ... ADD GENERATED ... AS IDENTITY (in place) and "
    "setval() its sequence past the largest value",
    engines=ENGINES,
)
def add_identity_column(ctx: Context) -> Outcome:
    for ch in ctx.changes:
        if isinstance(ch, AddColumn) and ch.identity is not None:
            return (
                f"ADD COLUMN {ch.column} ... GENERATED {ch.identity.upper()} AS IDENTITY: the blocking ALTER numbers "
                "the existing rows once; the copy's replay would number again each row changed during the copy"
            )
    return None


@check(
    "postgresql-identity-change-invalid",
    "table",
    "an identity clause the server's ALTER would refuse (ADD on a nullable, defaulted, non-integer or identity "
    "column; SET / DROP on a column that is not one)",
    "make the column NOT NULL and drop its default first; SET GENERATED and DROP IDENTITY need an identity column",
    engines=ENGINES,
)
def identity_change_invalid(ctx: Context) -> Outcome:
    for ch in ctx.changes:
        if not isinstance(ch, AlterColumn) or ch.identity is None:
            continue
        source = ctx.source_of(ch.column)
        col = ctx.reflection.column(source) if source is not None else None
        if col is None:
            continue  # alter-unknown-column says so
        is_identity = bool(col.get("identity"))
        clause = ch.describe().split(" ", 2)[-1]
        if ch.identity.startswith("add"):
            nullable = col["nullable"] if ch.nullable is None else ch.nullable
            has_default = (col.get("default") is not None and not ch.drop_default) or ch.default is not None
            type_name = str(col["type"]).lower()
            why = (
                "it is already an identity column" if is_identity
                else "it is nullable (make it NOT NULL first)" if nullable and source not in ctx.pk
                else "it has a default (a serial's nextval, or its own: drop it first)" if has_default
                else f"its type {type_name} is not an integer type" if ch.type_sql is None
                and not any(type_name == t for t in _INTEGERS)
                else None
            )  # fmt: skip
        elif ch.identity in ("set always", "set by default", "drop"):
            why = None if is_identity else "it is not an identity column"
        else:
            why = None
        if why:
            return f"column {ch.column!r}: {clause} is refused: {why}"
    return None


@check(
    "postgresql-identity-change-with-copy",
    "shadow",
    "an identity clause (ADD GENERATED, SET GENERATED, DROP IDENTITY) together with a change that needs the copy",
    "make the identity change in a plan of its own: it runs in place (catalog only)",
    engines=ENGINES,
)
def identity_change_with_copy(ctx: Context) -> Outcome:
    for t in ctx.plan.targets:
        if t.alter is not None and t.alter.identity is not None:
            return (
                f"column {t.name!r}: {t.alter.describe().split(' ', 2)[-1]} runs in place on its own, and the swap "
                "re-attaches the identities the table has; give it a plan of its own"
            )
    return None


@check(
    "postgresql-column-setting-invalid",
    "database",
    "a SET STORAGE or SET COMPRESSION the column's type does not take, a compression method this server was "
    "built without, or a statistics target outside -1..10000",
    "SET STORAGE other than PLAIN and SET COMPRESSION need a variable-length type (text, varchar, bytea, jsonb, ...)",
    engines=ENGINES,
)
def column_setting_invalid(ctx: Context) -> Outcome:
    for t in ctx.plan.targets:
        alter = t.alter
        if alter is None or not alter.settings:
            continue
        type_text = t.type_sql or (t.reflected or {})["type"].compile(dialect=ctx.engine_dialect.sa_dialect)
        row = ctx.db.execute(
            sa.text("SELECT typstorage, typlen FROM pg_type WHERE oid = CAST(CAST(:t AS text) AS regtype)"),
            {"t": type_text},
        ).first()
        if alter.statistics is not None and not -1 <= alter.statistics <= 10000:
            return f"column {t.name!r}: SET STATISTICS {alter.statistics} is outside -1..10000"
        if row is None:
            continue
        storage, length = row
        if alter.storage is not None and alter.storage != "plain" and storage == "p":
            return f"column {t.name!r}: type {type_text} can only have storage PLAIN, not {alter.storage.upper()}"
        if alter.compression is not None:
            if length != -1:
                return f"column {t.name!r}: type {type_text} does not support compression"
            methods = ctx.db.execute(
                sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
            ).scalar()
            if alter.compression != "default" and alter.compression not in (methods or []):
                return (
                    f"column {t.name!r}: compression method {alter.compression!r} is not available on this server "
                    f"(it has: {', '.join(methods or [])})"
                )
    return None


@check(
    "postgresql-drop-expression-invalid",
    "table",
    "ALTER COLUMN ... DROP EXPRESSION names a column that is not a generated column",
    "name a generated column",
    engines=ENGINES,
)
def drop_expression_invalid(ctx: Context) -> Outcome:
    for ch in ctx.changes:
        if isinstance(ch, AlterColumn) and ch.drop_expression:
            source = ctx.source_of(ch.column)
            col = ctx.reflection.column(source) if source is not None else None
            if col is not None and not col.get("computed"):
                return f"column {ch.column!r}: drop expression is refused: it is not a generated column"
    return None
