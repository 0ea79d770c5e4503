"""The linter's rules: one place, each an engine, the operation it is about, why it blocks writes, the fix.

A rule's ``check`` looks at one recorded operation (and what the migration did before it) and returns
why it blocks, or None. Whether a column change is metadata-only is asked of shadowswap's own dialect
(``instant_reason``: the planner's answer), so the linter and ``shadowswap plan`` never disagree.
Each rule carries an ``example`` call that trips it; tests/test_lint.py runs every example.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shadowswap.lint.record import LintOp
from shadowswap.strategy import ChangeFacts, is_constant


@dataclass
class Env:
    """What a check may know: the engine, shadowswap's dialect for it, the live table when --db is given."""

    engine: str  # postgresql, mysql, sqlite
    dialect: Any  # shadowswap.dialects.Dialect
    columns: Callable[[str], dict[str, dict[str, Any]] | None]

    def type_sql(self, type_: Any) -> str | None:
        if type_ is None:
            return None
        return str(sa.types.to_instance(type_).compile(dialect=self.dialect.sa_dialect))

    def old_column(self, op: LintOp, column: str) -> dict[str, Any] | None:
        live = self.columns(op.table or "") if op.table else None
        return (live or {}).get(column)


@dataclass(frozen=True)
class Rule:
    id: str
    engines: tuple[str, ...]
    operation: str
    #: why the statement blocks the application's writes, and for how long
    blocks: str
    #: the online form
    fix: str
    check: Callable[[LintOp, Env], str | None]
    #: --fix can move the call into op.online_alter_table
    fixable: bool
    #: a call that trips the rule (on table products, as the tests create it)
    example: str


# -- checks ---------------------------------------------------------------------------------------


def _server_default_sql(env: Env, value: Any) -> str | None:
    if value is None or value is False:
        return None
    if isinstance(value, sa.schema.DefaultClause):
        value = value.arg
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value.compile(dialect=env.dialect.sa_dialect, compile_kwargs={"literal_binds": True}))


def _type_change(op: LintOp, env: Env) -> str | None:
    alter = op.operation
    new = getattr(alter, "modify_type", None)
    if new is None:
        return None
    column = alter.column_name  # type: ignore[union-attr]
    live = env.old_column(op, column)
    old = env.type_sql(live["type"]) if live else env.type_sql(getattr(alter, "existing_type", None))
    new_sql = env.type_sql(new)
    assert new_sql is not None
    using = bool((getattr(alter, "kw", None) or {}).get("postgresql_using"))
    facts = ChangeFacts(kind="alter", description="", column=column, old_type=old, new_type=new_sql, has_using=using)
    in_place, why = env.dialect.instant_reason(facts)
    if in_place:
        return None
    if old is None:
        return f"{column} to {new_sql}: rewrites the table unless it only widens (give existing_type= or --db to know)"
    return f"{column}: {why}"


def _sqlite_alter(op: LintOp, env: Env) -> str | None:
    alter = op.operation
    changed = [
        what
        for what, value in (
            ("type", getattr(alter, "modify_type", None)),
            ("nullability", getattr(alter, "modify_nullable", None)),
            ("default", None if getattr(alter, "modify_server_default", False) is False else True),
        )
        if value is not None
    ]
    if not changed:
        return None
    return f"{alter.column_name}: {' and '.join(changed)}"  # type: ignore[union-attr]


def _set_not_null(op: LintOp, env: Env) -> str | None:
    alter = op.operation
    if getattr(alter, "modify_nullable", None) is not False:
        return None
    column = alter.column_name  # type: ignore[union-attr]
    live = env.old_column(op, column)
    if live is not None and not live.get("nullable"):
        return None  # already NOT NULL
    pattern = re.compile(rf"{re.escape(column)}\W*\s+IS\s+NOT\s+NULL", re.IGNORECASE)
    for earlier in op.before:
        text = " ".join(earlier.sql)
        if "VALIDATE CONSTRAINT" in text.upper() and op.table and op.table in text:
            return None  # a check validated first: SET NOT NULL uses it instead of scanning (PostgreSQL 12+)
        if earlier.name == "create_check_constraint" and pattern.search(text) and "NOT VALID" not in text.upper():
            return None  # validated as it was added (that step is flagged on its own)
    return f"{column}: SET NOT NULL scans every row"


def _add_column(op: LintOp, env: Env) -> str | None:
    column = getattr(op.operation, "column", None)
    if column is None:
        return None
    default = _server_default_sql(env, column.server_default)
    facts = ChangeFacts(
        kind="add",
        description="",
        column=column.name,
        new_type=env.type_sql(column.type),
        new_nullable=bool(column.nullable),
        default=default,
        default_changed=default is not None,
        default_is_constant=is_constant(default, env.dialect.sqlglot_dialect) if default else True,
    )
    in_place, why = env.dialect.instant_reason(facts)
    return None if in_place else f"{column.name}: {why}"


def _drop_column_sqlite(op: LintOp, env: Env) -> str | None:
    return f"{getattr(op.operation, 'column_name', '?')}: DROP COLUMN rewrites every row of the table"


def _index_not_concurrent(op: LintOp, env: Env) -> str | None:
    kw = getattr(op.operation, "kw", None) or {}
    if kw.get("postgresql_concurrently"):
        return None
    return f"{getattr(op.operation, 'index_name', '?')} on {op.table}"


def _index_sqlite(op: LintOp, env: Env) -> str | None:
    return f"{getattr(op.operation, 'index_name', '?')} on {op.table}"


def _unique(op: LintOp, env: Env) -> str | None:
    return f"{getattr(op.operation, 'constraint_name', '?')} on {op.table}"


def _not_valid_missing(op: LintOp, env: Env) -> str | None:
    text = " ".join(op.sql).upper()
    if "NOT VALID" in text:
        return None
    return f"{getattr(op.operation, 'constraint_name', '?')} on {op.table}"


def _execute(op: LintOp, env: Env) -> str | None:
    """SQL written by hand in op.execute: read as shadowswap reads --ddl, judged as the calls above are."""
    reasons = [why for statement in op.sql for why in _statement_blocks(statement, env)]
    return "; ".join(reasons) if reasons else None


def _statement_blocks(statement: str, env: Env) -> list[str]:
    import sqlglot
    from sqlglot import exp

    from shadowswap.changes import AddColumn, AddIndex, AlterColumn, DropColumn, parse_ddl
    from shadowswap.errors import UsageError

    upper = " ".join(statement.upper().split())
    if env.engine == "postgresql" and "ADD CONSTRAINT" in upper and "NOT VALID" not in upper:
        if "FOREIGN KEY" in upper:
            return ["ADD FOREIGN KEY without NOT VALID checks every row under SHARE ROW EXCLUSIVE locks"]
        if " CHECK" in upper:
            return ["ADD CHECK without NOT VALID scans every row under an ACCESS EXCLUSIVE lock"]
    try:
        changes = parse_ddl(statement, env.dialect.sqlglot_dialect)
    except UsageError:
        return []  # not a table change shadowswap reads (DML, a function, ...): not judged
    try:
        parsed = sqlglot.parse_one(statement, read=env.dialect.sqlglot_dialect)
        concurrently = isinstance(parsed, exp.Create) and bool(parsed.args.get("concurrently"))
    except sqlglot.errors.SqlglotError:
        concurrently = "CONCURRENTLY" in upper
    table = changes.table or ""
    live = env.columns(table) or {}
    reasons = []
    for change in changes.changes:
        if isinstance(change, AddIndex):
            if env.engine == "postgresql" and not concurrently:
                reasons.append(f"{change.describe()} without CONCURRENTLY holds a SHARE lock for the build")
            elif env.engine == "sqlite":
                reasons.append(f"{change.describe()} holds the only write lock for the build")
            continue
        if isinstance(change, DropColumn):
            if env.engine == "sqlite":
                reasons.append(f"{change.describe()} rewrites every row")
            continue
        facts = None
        if isinstance(change, AlterColumn):
            old = live.get(change.column)
            facts = ChangeFacts(
                kind="alter",
                description=change.describe(),
                column=change.column,
                old_type=env.type_sql(old["type"]) if old else None,
                new_type=change.type_sql,
                old_nullable=bool(old["nullable"]) if old else True,
                new_nullable=change.nullable,
                default=change.default,
                default_changed=change.default is not None or change.drop_default,
                default_is_constant=is_constant(change.default, env.dialect.sqlglot_dialect),
            )
        elif isinstance(change, AddColumn):
            facts = ChangeFacts(
                kind="add",
                description=change.describe(),
                column=change.column,
                new_type=change.type_sql,
                new_nullable=change.nullable,
                default=change.default,
                default_changed=change.default is not None,
                default_is_constant=is_constant(change.default, env.dialect.sqlglot_dialect)
                if change.default
                else True,
            )
        if facts is not None:
            in_place, why = env.dialect.instant_reason(facts)
            if not in_place:
                reasons.append(f"{change.describe()}: {why}")
    return reasons


def _always(op: LintOp, env: Env) -> str | None:
    return f"{getattr(op.operation, 'constraint_name', None) or op.name} on {op.table}"


def _after_writes(op: LintOp) -> str | None:
    # an earlier online block wrote nothing on the migration's connection: it does not count
    earlier = sorted({b.name for b in op.before if not b.online})
    return f"after {', '.join(earlier)}" if earlier else None


# -- the rules ------------------------------------------------------------------------------------

ONLINE = 'op.online_alter_table("{table}") (--fix rewrites it)'

RULES: list[Rule] = [
    Rule(
        id="pg-alter-type",
        engines=("postgresql",),
        operation="alter_column",
        blocks="ALTER COLUMN TYPE rewrites the table and its indexes under an ACCESS EXCLUSIVE lock: "
        "reads and writes wait until it ends",
        fix=ONLINE,
        check=_type_change,
        fixable=True,
        example='op.alter_column("products", "price", type_=sa.String(20), existing_type=sa.Numeric(10, 2))',
    ),
    Rule(
        id="pg-set-not-null",
        engines=("postgresql",),
        operation="alter_column",
        blocks="SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock",
        fix="first op.create_check_constraint(..., 'col IS NOT NULL', postgresql_not_valid=True) and "
        "VALIDATE CONSTRAINT it (writes go on), then SET NOT NULL uses it; or " + ONLINE,
        check=_set_not_null,
        fixable=True,
        example='op.alter_column("products", "description", nullable=False)',
    ),
    Rule(
        id="pg-add-column-volatile-default",
        engines=("postgresql",),
        operation="add_column",
        blocks="a column whose default is not a constant is written into every row under an ACCESS EXCLUSIVE lock",
        fix=ONLINE,
        check=_add_column,
        fixable=True,
        example='op.add_column("products", sa.Column("token", sa.Text(), '
        'server_default=sa.text("md5(random()::text)")))',
    ),
    Rule(
        id="pg-create-index",
        engines=("postgresql",),
        operation="create_index",
        blocks="CREATE INDEX without CONCURRENTLY holds a SHARE lock for the whole build: writes wait",
        fix="postgresql_concurrently=True inside `with op.get_context().autocommit_block():`; or " + ONLINE,
        check=_index_not_concurrent,
        fixable=True,
        example='op.create_index("ix_products_stock", "products", ["stock_quantity"])',
    ),
    Rule(
        id="pg-unique-constraint",
        engines=("postgresql",),
        operation="create_unique_constraint",
        blocks="ADD CONSTRAINT UNIQUE builds its index under a SHARE lock: writes wait for the build",
        fix="CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX; or " + ONLINE,
        check=_unique,
        fixable=True,
        example='op.create_unique_constraint("uq_products_name", "products", ["name"])',
    ),
    Rule(
        id="pg-foreign-key-not-valid",
        engines=("postgresql",),
        operation="create_foreign_key",
        blocks="ADD FOREIGN KEY checks every row under SHARE ROW EXCLUSIVE locks on both tables: writes wait",
        fix="postgresql_not_valid=True, then `ALTER TABLE ... VALIDATE CONSTRAINT` (writes go on) in a later step",
        check=_not_valid_missing,
        fixable=False,
        example='op.create_foreign_key("fk_products_parent", "products", "products", ["stock_quantity"], ["id"])',
    ),
    Rule(
        id="pg-check-not-valid",
        engines=("postgresql",),
        operation="create_check_constraint",
        blocks="ADD CHECK scans every row under an ACCESS EXCLUSIVE lock",
        fix="postgresql_not_valid=True, then `ALTER TABLE ... VALIDATE CONSTRAINT` (writes go on) in a later step",
        check=_not_valid_missing,
        fixable=False,
        example='op.create_check_constraint("ck_products_stock", "products", "stock_quantity >= 0")',
    ),
    Rule(
        id="mysql-alter-type-copy",
        engines=("mysql",),
        operation="alter_column",
        blocks="the server runs this MODIFY with ALGORITHM=COPY: writes wait until the whole table is copied",
        fix=ONLINE,
        check=_type_change,
        fixable=True,
        example='op.alter_column("products", "price", type_=sa.String(20), existing_type=sa.Numeric(10, 2))',
    ),
    Rule(
        id="mysql-add-column-copy",
        engines=("mysql",),
        operation="add_column",
        blocks="the server cannot add this column in place (ALGORITHM=COPY): writes wait for the copy",
        fix=ONLINE,
        check=_add_column,
        fixable=True,
        example='op.add_column("products", sa.Column("created", sa.DateTime(), server_default=sa.text("(now())")))',
    ),
    Rule(
        id="mysql-foreign-key-copy",
        engines=("mysql",),
        operation="create_foreign_key",
        blocks="with foreign_key_checks on, ADD FOREIGN KEY runs with ALGORITHM=COPY: writes wait",
        fix="SET foreign_key_checks=0 for the session lets it run INPLACE (existing rows are then not checked)",
        check=_always,
        fixable=False,
        example='op.create_foreign_key("fk_products_parent", "products", "products", ["stock_quantity"], ["id"])',
    ),
    Rule(
        id="mysql-check-copy",
        engines=("mysql",),
        operation="create_check_constraint",
        blocks="ADD CHECK runs with ALGORITHM=COPY to check every row: writes wait",
        fix="check the rows in the application or with a trigger, or accept the copy in a quiet hour",
        check=_always,
        fixable=False,
        example='op.create_check_constraint("ck_products_stock", "products", "stock_quantity >= 0")',
    ),
    Rule(
        id="sqlite-alter-column-rebuild",
        engines=("sqlite",),
        operation="alter_column",
        blocks="SQLite cannot change a column in place: batch mode rebuilds the table (create, copy, drop, "
        "rename) holding the database's only write lock",
        fix=ONLINE,
        check=_sqlite_alter,
        fixable=True,
        example='op.alter_column("products", "price", type_=sa.String(20))',
    ),
    Rule(
        id="sqlite-drop-column-rebuild",
        engines=("sqlite",),
        operation="drop_column",
        blocks="SQLite's DROP COLUMN (or batch mode's rebuild) rewrites every row holding the only write lock",
        fix=ONLINE,
        check=_drop_column_sqlite,
        fixable=True,
        example='op.drop_column("products", "description")',
    ),
    Rule(
        id="sqlite-add-column-rebuild",
        engines=("sqlite",),
        operation="add_column",
        blocks="SQLite adds a column in place only with a constant default; otherwise the table is rebuilt",
        fix=ONLINE,
        check=_add_column,
        fixable=True,
        example='op.add_column("products", sa.Column("t", sa.DateTime(), server_default=sa.func.current_timestamp()))',
    ),
    Rule(
        id="sqlite-create-index",
        engines=("sqlite",),
        operation="create_index",
        blocks="SQLite builds an index holding the database's only write lock: every writer waits",
        fix=ONLINE,
        check=_index_sqlite,
        fixable=True,
        example='op.create_index("ix_products_stock", "products", ["stock_quantity"])',
    ),
]

RULES.append(
    Rule(
        id="sqlite-batch-rebuild",
        engines=("sqlite",),
        operation="batch_rebuild",
        blocks="SQLite has no ALTER for it: batch mode rebuilds the table (create, copy, drop, rename) holding "
        "the database's only write lock",
        fix=ONLINE,
        check=lambda op, env: f"{op.args[0]} in batch_alter_table({op.table!r})",
        fixable=True,
        example='with op.batch_alter_table("products") as batch_op:\n'
        '    batch_op.create_check_constraint("ck_stock", "stock_quantity >= 0")',
    )
)

RULES.extend(
    Rule(
        id=f"{engine_id}-execute-ddl",
        engines=(engine,),
        operation="execute",
        blocks=f"the SQL given to op.execute {what}",
        fix="the same change through op.online_alter_table, or the statement's online form "
        + ("(CONCURRENTLY, NOT VALID then VALIDATE)" if engine == "postgresql" else "(see the rules above)"),
        check=_execute,
        fixable=False,
        example=example,
    )
    for engine_id, engine, what, example in (
        (
            "pg",
            "postgresql",
            "rewrites or scans the table under a lock that stops writes",
            'op.execute("CREATE INDEX ix_products_stock ON products (stock_quantity)")',
        ),
        (
            "mysql",
            "mysql",
            "makes the server copy the table (ALGORITHM=COPY): writes wait",
            'op.execute("ALTER TABLE products MODIFY price VARCHAR(20) NOT NULL")',
        ),
        (
            "sqlite",
            "sqlite",
            "rewrites the table or builds an index holding the only write lock",
            'op.execute("CREATE INDEX ix_products_stock ON products (stock_quantity)")',
        ),
    )
)

#: not about blocking: an online block that alembic would refuse at run time (runner.py)
ONLINE_NOT_FIRST = Rule(
    id="online-block-not-first",
    engines=("postgresql", "mysql", "sqlite"),
    operation="online_alter_table",
    blocks="op.online_alter_table follows other operations of the same migration, which are still "
    "uncommitted when it runs: shadowswap refuses it then",
    fix="put the online block first in the function, or in a migration of its own",
    check=lambda op, env: _after_writes(op),
    fixable=False,
    example='op.create_index("ix_products_stock", "products", ["stock_quantity"], postgresql_concurrently=True)\n'
    'with op.online_alter_table("products") as batch_op:\n    batch_op.alter_column("price", type_=sa.String(20))',
)


def rules_for(engine: str, operation: str) -> list[Rule]:
    return [r for r in [*RULES, ONLINE_NOT_FIRST] if engine in r.engines and r.operation == operation]
