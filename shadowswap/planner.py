"""Reads the live table and decides everything ``execute`` will do; writes nothing to the database.

The planner only reads (SQLAlchemy Inspector plus read-only probes); the executor only writes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.changes import AlterColumn
from shadowswap.db import first_line
from shadowswap.dialects import Dialect
from shadowswap.errors import UsageError
from shadowswap.plan import ColumnPlan, IndexPlan, Plan
from shadowswap.state import STATE_TABLE


class LiteralType(sa.types.UserDefinedType[Any]):
    """A type exactly as the user wrote it (already shape-checked, and validated by the server)."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec


@dataclass
class Reflection:
    """The original table as the Inspector sees it; its fingerprint detects a stale plan."""

    table: str
    columns: list[dict[str, Any]]
    primary_key: dict[str, Any]
    unique_constraints: list[dict[str, Any]]
    indexes: list[dict[str, Any]]
    check_constraints: list[dict[str, Any]]
    foreign_keys: list[dict[str, Any]]
    referenced_by: list[str] = field(default_factory=list)

    def column(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.columns if c["name"] == name), None)

    def fingerprint(self) -> str:
        doc = {
            "columns": [[c["name"], str(c["type"]), bool(c["nullable"]), str(c.get("default"))] for c in self.columns],
            "pk": self.primary_key.get("constrained_columns"),
            "unique": sorted([str(u.get("name")), u["column_names"]] for u in self.unique_constraints),
            "indexes": sorted(
                [str(i.get("name")), [str(c) for c in i["column_names"]], bool(i.get("unique"))] for i in self.indexes
            ),
            "checks": sorted([str(c.get("name")), str(c.get("sqltext"))] for c in self.check_constraints),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def reflect(conn: Connection, table: str) -> Reflection:
    inspector = sa.inspect(conn)
    if not inspector.has_table(table):
        names = [n for n in inspector.get_table_names() if n != STATE_TABLE]
        close = [n for n in names if n.lower() == table.lower() or table.lower() in n.lower()]
        hint = f"did you mean {', '.join(close[:3])}?" if close else "check the table name and the database URL"
        raise UsageError(f"table {table!r} does not exist", hint=hint)
    indexes = [ix for ix in inspector.get_indexes(table) if not ix.get("duplicates_constraint")]
    referenced_by = []
    for other in inspector.get_table_names():
        if other == table:
            continue
        for fk in inspector.get_foreign_keys(other):
            if fk.get("referred_table") == table:
                referenced_by.append(other)
    try:
        checks = inspector.get_check_constraints(table)
    except NotImplementedError:
        checks = []
    return Reflection(
        table=table,
        columns=[dict(c) for c in inspector.get_columns(table)],
        primary_key=dict(inspector.get_pk_constraint(table)),
        unique_constraints=[dict(u) for u in inspector.get_unique_constraints(table)],
        indexes=[dict(i) for i in indexes],
        check_constraints=[dict(c) for c in checks],
        foreign_keys=[dict(f) for f in inspector.get_foreign_keys(table)],
        referenced_by=referenced_by,
    )


def _type_sql(dialect: Dialect, type_: sa.types.TypeEngine[Any]) -> str:
    return type_.compile(dialect=dialect.sa_dialect)


def _validate(conn: Connection, dialect: Dialect, sql: str, what: str, hint: str | None = None) -> None:
    try:
        with conn.begin_nested():
            dialect.run(conn, sql)
    except DBAPIError as exc:
        raise UsageError(f"{what}: {first_line(exc)}", hint=hint) from None


def build_plan(
    engine: Engine,
    dialect: Dialect,
    table: str,
    alters: list[AlterColumn],
    usings: dict[str, str] | None = None,
) -> Plan:
    usings = dict(usings or {})
    with engine.connect() as conn:
        ref = reflect(conn, table)
        plan = _plan_from_reflection(conn, dialect, ref, alters, usings)
        conn.rollback()
    return plan


def _plan_from_reflection(
    conn: Connection,
    dialect: Dialect,
    ref: Reflection,
    alters: list[AlterColumn],
    usings: dict[str, str],
) -> Plan:
    table = ref.table
    pk = list(ref.primary_key.get("constrained_columns") or [])
    if not pk:
        raise UsageError(
            f"table {table!r} has no primary key",
            hint="shadowswap copies and tracks rows by primary key; add one first",
        )
    if ref.referenced_by:
        raise UsageError(
            f"table {table!r} is referenced by foreign keys from {', '.join(sorted(set(ref.referenced_by)))}",
            hint="after the swap those keys would point at the old table; drop them before migrating",
        )
    for col in ref.columns:
        if col.get("computed"):
            raise UsageError(f"column {col['name']!r} is a generated column, which shadowswap cannot copy yet")
    if not alters:
        raise UsageError("no change given", hint="e.g. --alter price:varchar(20)")

    by_name = {alter.column: alter for alter in alters}
    for name in [*by_name, *usings]:
        if ref.column(name) is None:
            raise UsageError(
                f"column {name!r} does not exist in table {table!r}",
                hint="columns: " + ", ".join(c["name"] for c in ref.columns),
            )

    shadow = dialect.shadow_name(table)
    old = dialect.old_name(table)
    inspector = sa.inspect(conn)
    for name in (shadow, old):
        if inspector.has_table(name):
            raise UsageError(
                f"table {name!r} already exists",
                hint="a previous migration left it; `shadowswap status` tells, `shadowswap cleanup --drop-old` "
                "or `shadowswap abort` removes it",
            )
    foreign = [t for t in dialect.existing_triggers(conn, table) if not t.startswith(f"_{table}_ss_")]
    if foreign and not dialect.can_stack_triggers:
        raise UsageError(
            f"table {table!r} already has triggers ({', '.join(foreign)}) that this database "
            "cannot stack with shadowswap's own"
        )

    metadata = sa.MetaData()
    columns: list[sa.Column[Any]] = []
    column_plans: list[ColumnPlan] = []
    changes: list[str] = []
    for col in ref.columns:
        name = col["name"]
        alter = by_name.get(name)
        old_type = _type_sql(dialect, col["type"])
        if alter:
            _validate(
                conn,
                dialect,
                dialect.validate_type_sql(alter.type_sql),
                f"invalid type {alter.type_sql!r}",
                hint="give a type this database knows, e.g. varchar(20)",
            )
            new_type: sa.types.TypeEngine[Any] = LiteralType(alter.type_sql)
            nullable = col["nullable"] if alter.nullable is None else alter.nullable
            default = col.get("default") if alter.default is None else alter.default
            changes.append(alter.describe())
        else:
            new_type = col["type"]
            nullable = col["nullable"]
            default = col.get("default")
        if name in pk:
            nullable = False
        if name in usings:
            expression = usings[name]
        elif alter:
            expression = dialect.cast_expression(name, alter.type_sql)
        else:
            expression = dialect.column_reference(name)
        columns.append(dialect.shadow_column(col, new_type, nullable, default))
        column_plans.append(
            ColumnPlan(
                name=name,
                old_type=old_type,
                new_type=_type_sql(dialect, new_type),
                old_nullable=bool(col["nullable"]),
                new_nullable=bool(nullable),
                expression=expression,
                changed=bool(alter) or name in usings,
                source_column=name,
            )
        )

    constraint_renames: list[tuple[str, str, str]] = []
    constraints: list[sa.schema.Constraint] = []
    pk_name = ref.primary_key.get("name")
    if pk_name and dialect.names_constraints:
        shadow_pk = dialect.shadow_index_name(table, pk_name)
        constraint_renames.append((dialect.old_index_name(table, pk_name), shadow_pk, pk_name))
        constraints.append(sa.PrimaryKeyConstraint(*pk, name=shadow_pk))
    else:
        constraints.append(sa.PrimaryKeyConstraint(*pk))
    for uq in ref.unique_constraints:
        uq_name = uq.get("name")
        if uq_name and dialect.names_constraints:
            shadow_uq = dialect.shadow_index_name(table, uq_name)
            constraint_renames.append((dialect.old_index_name(table, uq_name), shadow_uq, uq_name))
            constraints.append(sa.UniqueConstraint(*uq["column_names"], name=shadow_uq))
        else:
            constraints.append(sa.UniqueConstraint(*uq["column_names"], name=uq_name))
    for check in ref.check_constraints:
        constraints.append(sa.CheckConstraint(sa.text(check["sqltext"]), name=check.get("name")))
    shadow_table = sa.Table(shadow, metadata, *columns, *constraints, **dialect.shadow_table_options(conn, table))
    # compiled before the foreign keys join the table: those are added after the copy
    # (not compiled twice: SQLAlchemy memoizes a table's constraints at its first compile)
    shadow_ddl = [] if dialect.foreign_keys_in_create_table else dialect.create_table_sql(shadow_table)

    foreign_key_ddl: list[str] = []
    for fk in ref.foreign_keys:
        if fk.get("referred_table") == table:
            raise UsageError(
                f"table {table!r} has a foreign key to itself ({fk.get('name')}); after the swap it would point "
                "at the old table",
                hint="drop the self-referencing key before migrating and add it back after",
            )
        referred = sa.Table(
            fk["referred_table"],
            metadata,
            *[sa.Column(c, sa.Integer) for c in fk["referred_columns"]],
            schema=fk.get("referred_schema"),
            extend_existing=True,
        )
        constraint = sa.ForeignKeyConstraint(
            fk["constrained_columns"],
            [referred.c[c] for c in fk["referred_columns"]],
            name=fk.get("name"),
            **{
                k: v
                for k, v in (fk.get("options") or {}).items()
                if k in ("onupdate", "ondelete", "deferrable", "initially")
            },
        )
        shadow_table.append_constraint(constraint)
        foreign_key_ddl.extend(dialect.add_foreign_key_sql(constraint))
    if dialect.foreign_keys_in_create_table:
        shadow_ddl = dialect.create_table_sql(shadow_table)
        foreign_key_ddl = []

    index_plans = []
    for ix in ref.indexes:
        index_plans.append(_index_plan(dialect, table, shadow_table, ix))
    index_plans = dialect.shadow_indexes(conn, table, shadow, index_plans)

    plan = Plan(
        dialect=dialect.name,
        table=table,
        shadow_table=shadow,
        old_table=old,
        primary_key=pk,
        source_columns=[c["name"] for c in ref.columns],
        columns=column_plans,
        fingerprint=ref.fingerprint(),
        estimated_rows=dialect.estimated_rows(conn, table),
        shadow_ddl=shadow_ddl,
        foreign_key_ddl=foreign_key_ddl,
        indexes=index_plans,
        trigger_names=[dialect.trigger_name(table, kind) for kind in ("ins", "upd", "del")],
        trigger_ddl=[],
        drop_trigger_ddl=[],
        swap_sql=[],
        post_swap_sql=[],
        changes=changes,
    )
    plan.trigger_ddl = dialect.trigger_ddl(plan)
    plan.drop_trigger_ddl = dialect.drop_trigger_ddl(plan)
    swap_facts = dialect.swap_facts(conn, plan, ref)
    swap_facts["constraint_renames"] = constraint_renames
    plan.swap_sql, plan.post_swap_sql = dialect.swap_sql(plan, swap_facts)
    _validate(
        conn,
        dialect,
        f"SELECT {dialect.select_list(plan.columns)} FROM {dialect.q(table)} AS src WHERE 1 = 0",
        "a copy expression is invalid",
        hint="check the --using expressions; they are SQL evaluated against the original row",
    )
    plan.notes = dialect.plan_notes(plan)
    return plan


def _index_plan(dialect: Dialect, table: str, shadow_table: sa.Table, ix: dict[str, Any]) -> IndexPlan:
    name = ix["name"]
    expressions = ix.get("expressions") or []
    elements: list[Any] = []
    for i, col in enumerate(ix["column_names"]):
        if col is None:
            elements.append(sa.text(expressions[i]))
        else:
            elements.append(shadow_table.c[col])
    kwargs: dict[str, Any] = {}
    for key, value in (ix.get("dialect_options") or {}).items():
        if key == "postgresql_where":
            kwargs[key] = sa.text(str(value))
        elif key in (
            "postgresql_using",
            "postgresql_include",
            "mysql_length",
            "mysql_prefix",
            "mysql_using",
            "postgresql_nulls_not_distinct",
            "sqlite_where",
        ):
            kwargs[key] = value
    if ix.get("include_columns") and "postgresql_include" not in kwargs:
        kwargs["postgresql_include"] = ix["include_columns"]
    shadow_ix_name = dialect.shadow_index_name(table, name)
    index = sa.Index(shadow_ix_name, *elements, unique=bool(ix.get("unique")), **kwargs)
    index._set_parent(shadow_table)  # bind to the shadow without adding it to CreateTable
    return IndexPlan(
        shadow_name=shadow_ix_name,
        final_name=name,
        old_name=dialect.old_index_name(table, name),
        create_sql=dialect.create_index_sql(index),
        unique=bool(ix.get("unique")),
    )


def check_fresh(engine: Engine, plan: Plan) -> None:
    """Refuse a plan whose table changed since it was written (invariant: plan is what runs)."""
    from shadowswap.errors import StalePlan

    with engine.connect() as conn:
        ref = reflect(conn, plan.table)
    if ref.fingerprint() != plan.fingerprint:
        raise StalePlan(
            f"the plan is stale: table {plan.table!r} changed since it was planned",
            hint="run `shadowswap plan` again",
        )
