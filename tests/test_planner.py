"""The alter language, the strategy choice and the safety checks, end to end under concurrent writers."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import only_dialects
from harness import COLUMNS, Writer, WriterPool, Writers, compare, create_products
from typer.testing import CliRunner, Result

from shadowswap import logs
from shadowswap.changes import AlterColumn, DropColumn, RenameColumn, parse_ddl, parse_options
from shadowswap.cli import app
from shadowswap.db import connect
from shadowswap.errors import CopyFailed, DestructiveChange, UsageError
from shadowswap.executor import Executor, Options, cleanup
from shadowswap.plan import Plan
from shadowswap.planner import build_plan

ROWS = int(os.environ.get("SHADOWSWAP_TEST_ROWS", "100000"))
FAST = Options(chunk_size=2000, chunk_time=0.05, allow_destructive=True)
#: engines where varchar(n) and numeric(p, s) are only names: values are stored whole, neither refused nor cut
TYPES_NOT_ENFORCED = {"sqlite"}


def q(engine: sa.Engine, name: str) -> str:
    quoted = engine.dialect.identifier_preparer.quote_identifier(name)
    # the preparer doubles % for the driver; text() does that again itself
    return quoted.replace("%%", "%") if engine.dialect.paramstyle in ("format", "pyformat") else quoted


def cli(*args: str) -> Result:
    """The command line in-process; the logger is pointed back at the real stderr afterwards."""
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        logs.configure()


def relfilenode(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT relfilenode FROM pg_class WHERE oid = to_regclass(:t)"), {"t": q(engine, name)}
            ).scalar_one()
        )


def columns_of(engine: sa.Engine, table: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in sa.inspect(engine).get_columns(table)}


def index_names(engine: sa.Engine, table: str) -> set[str]:
    inspector = sa.inspect(engine)
    names = {str(ix["name"]) for ix in inspector.get_indexes(table)}
    return names | {str(uq["name"]) for uq in inspector.get_unique_constraints(table)}


# -- the language -------------------------------------------------------------------------------


def test_ddl_parses_into_the_same_changes_as_the_options() -> None:
    from_ddl = parse_ddl(
        "ALTER TABLE products ALTER COLUMN price TYPE varchar(20), ALTER COLUMN price SET NOT NULL, "
        "ADD COLUMN note text NOT NULL DEFAULT 'n/a', DROP COLUMN created_at, "
        "RENAME COLUMN updated_at TO modified_at, ALTER COLUMN stock_quantity DROP DEFAULT; "
        "CREATE UNIQUE INDEX uq_name_sku ON products (name, sku); DROP INDEX ix_products_active_created",
        "postgres",
    )
    from_options = parse_options(
        alter=["price:varchar(20) not null", "stock_quantity:drop default"],
        add=["note:text not null default 'n/a'"],
        drop=["created_at"],
        rename=["updated_at:modified_at"],
        add_unique=["uq_name_sku:(name, sku)"],
        drop_index=["ix_products_active_created"],
    )
    assert from_ddl.table == "products"

    def canonical(changes: list[Any]) -> set[str]:
        return {c.describe().lower() for c in changes}

    assert canonical(from_ddl.changes) == canonical(from_options.changes)
    # MySQL's MODIFY restates the whole column; CHANGE renames it too
    mysql = parse_ddl("ALTER TABLE t MODIFY COLUMN a varchar(20) NOT NULL, CHANGE COLUMN b c int", "mysql")
    # (comment "" and generated "": what MODIFY leaves out is reset, a comment and a generation too)
    restated = {"comment": "", "generated": "", "auto_increment": False}
    assert AlterColumn("a", "VARCHAR(20)", nullable=False, drop_default=True, **restated) in mysql.changes
    assert RenameColumn("b", "c") in mysql.changes
    assert AlterColumn("b", "INT", nullable=True, drop_default=True, **restated) in mysql.changes
    using = parse_ddl('ALTER TABLE "Order" ALTER COLUMN "Unit Price" TYPE text USING "Unit Price"::text', "postgres")
    assert using.table == "Order" and using.usings == {"Unit Price": 'CAST("Unit Price" AS TEXT)'}
    assert parse_ddl("alter table Products drop column Foo", "postgres").changes == [DropColumn("foo")]
    # SQLite has no ALTER COLUMN: the standard statement still says what to do
    sqlite = parse_ddl("ALTER TABLE t ALTER COLUMN a TYPE varchar(20), ADD COLUMN b text", "sqlite")
    assert sqlite.changes[0] == AlterColumn("a", "VARCHAR(20)")


@pytest.mark.parametrize(
    "ddl",
    [
        "ALTER TABLE products ADD CONSTRAINT ck CHECK (price > 0)",
        "ALTER TABLE products RENAME TO goods",
        "ALTER TABLE products ADD COLUMN x int PRIMARY KEY",
        "ALTER TABLE products ADD COLUMN x int REFERENCES other (id)",
        "ALTER TABLE products ALTER COLUMN x SET EXPRESSION AS (stock_quantity * 2)",
        "ALTER TABLE products ADD PRIMARY KEY (sku)",
        "ALTER TABLE products DROP COLUMN name CASCADE",
        'ALTER TABLE products ALTER COLUMN name TYPE text COLLATE "C"',
        "CREATE INDEX ix ON products (lower(name))",
        "CREATE INDEX ix ON products (name) WHERE is_active",
        "ALTER TABLE products ADD COLUMN x int; DROP TABLE products",
        "ALTER TABLE products ADD COLUMN x int; ALTER TABLE other ADD COLUMN y int",
        "UPDATE products SET price = 0",
        "ALTER TABLE products ADD COLUMN IF NOT EXISTS x int",
        "ALTER TABLE products DROP COLUMN IF EXISTS x",
        "CREATE INDEX ix ON products USING gin (name)",
    ],
)
def test_ddl_that_cannot_be_expressed_is_refused(ddl: str) -> None:
    with pytest.raises(UsageError, match="--ddl"):
        parse_ddl(ddl, "postgres")


@pytest.mark.parametrize(
    "ddl",
    [
        # (FIRST / AFTER, COMMENT, CHARACTER SET / COLLATE and AS (expr) are mapped: issue 15)
        "ALTER TABLE t ADD COLUMN x int, ALGORITHM=INSTANT",
        "ALTER TABLE t ADD FULLTEXT INDEX ft (a)",
        "ALTER TABLE t DROP PRIMARY KEY",
    ],
)
def test_mysql_clauses_we_do_not_map_are_refused(ddl: str) -> None:
    with pytest.raises(UsageError, match="--ddl"):
        parse_ddl(ddl, "mysql")


# -- several changes in one shadow copy ------------------------------------------------------


def test_many_changes_in_one_shadow_copy_under_writers(db_url: str) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, ROWS, seed=4)
    changes = parse_options(
        alter=["price:varchar(20)"],
        add=["note:text not null default 'n/a'", "rating:integer"],
        drop=["created_at"],
        rename=["updated_at:modified_at"],
        drop_index=["ix_products_active_created"],
        add_index=["ix_products_sku_price:(sku, price)"],
        add_unique=["uq_products_name_sku:(name, sku)"],
    )
    plan = build_plan(engine, dialect, "products", changes)
    assert plan.strategy == "shadow" and "price" in plan.strategy_reason
    assert plan.verdict == "destructive"
    assert {c.kind for c in plan.change_plans if c.destructive} == {"drop", "drop_index"}
    assert [c.name for c in plan.default_columns] == ["note", "rating"]
    with Writers(db_url, initial, threads=4, seed=4) as writers:
        time.sleep(0.3)
        Executor(engine, dialect, plan, FAST).run()
        time.sleep(0.3)  # the application keeps writing to the new table
    assert writers.total.errors == []
    assert writers.total.rekeys and writers.total.deletes
    compare(engine, writers.model).assert_exact()

    columns = columns_of(engine, "products")
    assert set(columns) == {"id", *COLUMNS, "modified_at", "note", "rating"}
    assert isinstance(columns["price"]["type"], sa.String)
    assert index_names(engine, "products") >= {"ix_products_name", "ix_products_sku_price", "uq_products_name_sku"}
    assert "ix_products_active_created" not in index_names(engine, "products")
    with engine.connect() as conn:
        wrong = conn.execute(
            sa.text("SELECT count(*) FROM products WHERE note IS NULL OR note <> 'n/a' OR rating IS NOT NULL")
        ).scalar_one()
        matched, differing = conn.execute(
            sa.text(
                f"SELECT count(*), sum(CASE WHEN n.modified_at = o.updated_at THEN 0 ELSE 1 END) "
                f"FROM products n JOIN {q(engine, plan.old_table)} o ON o.id = n.id"
            )
        ).one()
    assert wrong == 0
    assert matched > ROWS // 2 and differing == 0
    with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.text("INSERT INTO products (name, sku, price) VALUES ('dup', 'SKU-00000001', '1')"))


def test_renamed_primary_key_and_column_with_space(db_url: str) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, ROWS // 4, seed=5)
    changes = parse_options(rename=["id:product_id", "price:unit price"], alter=["price:varchar(20)"])
    plan = build_plan(engine, dialect, "products", changes)
    assert [c.name for c in plan.shadow_primary_key] == ["product_id"]
    # the application writes by the old names until the swap: run everything up to it under writers
    with Writers(db_url, initial, threads=4, seed=5) as writers:
        time.sleep(0.2)
        Executor(engine, dialect, plan, Options(chunk_size=500, chunk_time=0.02, stop_after="verified")).run()
    assert writers.total.errors == [] and writers.total.rekeys
    Executor(engine, dialect, plan).run()
    view_columns = ", ".join(
        f"{q(engine, new)} AS {q(engine, old)}"
        for new, old in [("product_id", "id"), *[(c, c) for c in COLUMNS if c != "price"], ("unit price", "price")]
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE VIEW products_as_before AS SELECT {view_columns} FROM products")
    compare(engine, writers.model, table="products_as_before").assert_exact()
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP VIEW products_as_before")
    assert [m.old_table for m in cleanup(engine, dialect, "products")] == [plan.old_table]
    with engine.begin() as conn:  # the key generator followed the renamed column and outlived the old table
        conn.execute(sa.text(f"INSERT INTO products (name, sku, {q(engine, 'unit price')}) VALUES ('n', 's', '1.5')"))
        new = conn.execute(sa.text("SELECT product_id FROM products WHERE sku = 's'")).scalar_one()
    assert new > 0


# -- the strategy -----------------------------------------------------------------------------

CHEAP = {
    "alter": ["name:varchar(500)", "stock_quantity:null"],
    "add": ["note:text default 'n/a'", "rating:integer", "share %:text default '100%'"],
    "drop": ["created_at"],
    "drop_index": ["ix_products_active_created"],
    "rename": ["updated_at:modified_at"],
}


@pytest.mark.parametrize("forced", ["auto", "shadow"])
def test_cheap_changes_run_in_place_under_writers(db_url: str, forced: str) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, ROWS, seed=6)
    plan = build_plan(engine, dialect, "products", parse_options(**CHEAP), strategy_name=forced)
    in_place = plan.strategy == "instant"
    if forced == "shadow":
        assert not in_place and plan.strategy_reason.startswith("--strategy shadow")
    elif dialect.name == "postgresql":
        assert in_place, plan.strategy_reason
    if in_place:
        assert all(c.strategy == "instant" for c in plan.change_plans)
        assert plan.instant_sql and not plan.shadow_ddl and not plan.trigger_ddl
    table_file = relfilenode(engine, "products") if dialect.name == "postgresql" else None
    index_file = relfilenode(engine, "ix_products_name") if dialect.name == "postgresql" else None
    with Writers(db_url, initial, threads=4, seed=6) as writers:
        time.sleep(0.3)
        ops_before = writers.total.ops
        summary = Executor(engine, dialect, plan, FAST).run()
        time.sleep(0.3)
        ops_after = writers.total.ops
    assert writers.total.errors == []
    assert ops_after > ops_before  # the writers kept going
    compare(engine, writers.model).assert_exact()
    columns = columns_of(engine, "products")
    assert set(columns) == {"id", *COLUMNS, "modified_at", "note", "rating", "share %"}
    assert columns["stock_quantity"]["nullable"] and columns["name"]["type"].length == 500
    with engine.connect() as conn:
        share = q(engine, "share %")
        assert conn.execute(
            sa.text(f"SELECT count(*) FROM products WHERE note = 'n/a' AND {share} = '100%' AND rating IS NULL")
        ).scalar_one() == len(writers.model)
    if dialect.name == "postgresql":
        rewritten = relfilenode(engine, "products") != table_file
        assert rewritten is not in_place  # the instant path did not rewrite; the copy is a new table
        if in_place:
            assert relfilenode(engine, "ix_products_name") == index_file  # nor rebuild the index
    if in_place:
        assert summary.strategy == "instant" and summary.rows_copied == 0


def test_strategy_instant_refuses_a_change_that_needs_a_copy(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 10)
    with pytest.raises(UsageError, match="cannot run in place"):
        build_plan(engine, dialect, "products", parse_options(alter=["price:varchar(20)"]), strategy_name="instant")


def test_pg_rules_for_what_is_instant(pg_url: str) -> None:
    engine, dialect = connect(pg_url)
    create_products(engine, 10)

    def strategy(**options: Any) -> str:
        return build_plan(engine, dialect, "products", parse_options(**options)).strategy

    assert strategy(alter=["name:text"]) == "instant"
    assert strategy(alter=["name:varchar(255) default 'x'"]) == "instant"
    assert strategy(alter=["description:varchar"]) == "instant"
    assert strategy(add=["n:integer not null default 0"]) == "instant"
    assert strategy(alter=["name:varchar(100)"]) == "shadow"  # narrowing: existing rows must be checked
    assert strategy(alter=["description:not null"]) == "shadow"  # SET NOT NULL scans under a lock
    assert strategy(alter=["stock_quantity:bigint"]) == "shadow"  # a rewrite
    assert strategy(add=["n:timestamp default clock_timestamp()"]) == "shadow"  # volatile default
    assert strategy(add=["n:integer"], using=["n=stock_quantity * 2"]) == "shadow"
    assert strategy(add_index=["ix_new:(sku, name)"]) == "shadow"


# -- safety -----------------------------------------------------------------------------------


def _codes(engine: sa.Engine, rows: int = 30_000, name: str = "codes") -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", sa.String(30)),
        sa.Column("amount", sa.Numeric(10, 3), nullable=False),
    )
    metadata.create_all(engine)
    data = []
    for i in range(1, rows + 1):
        code = f"x{i}" if i % 997 == 0 else ("z" * 25 if i % 1500 == 0 else str(i))
        data.append({"id": i, "code": code, "amount": f"{i // 8}.{(i % 8) * 125:03d}"})
    with engine.begin() as conn:
        conn.execute(table.insert(), data)


def test_check_casts_counts_failures_and_execute_refuses(db_url: str) -> None:
    engine, dialect = connect(db_url)
    _codes(engine)
    plan = build_plan(engine, dialect, "codes", parse_options(alter=["code:integer"]), check_casts=True)
    check = plan.cast_check
    assert check is not None and check.rows_scanned == 30_000
    (code,) = check.columns
    # 30 values like 'x997' and 20 like 'zzz…' do not convert; bisection pins each one down
    assert (code.rows_failing, code.exact) == (50, True)
    assert [k[0] for k in code.sample_keys] == [997, 1500, 1994, 2991, 3000]
    assert plan.verdict == "blocked"
    tables_before = set(sa.inspect(engine).get_table_names())
    with pytest.raises(CopyFailed, match="cannot be converted"):
        Executor(engine, dialect, plan, FAST).run()
    assert set(sa.inspect(engine).get_table_names()) - tables_before <= {"shadowswap_migrations"}
    assert Plan.from_json(plan.to_json()).cast_check == check


def test_check_casts_finds_values_that_do_not_fit_or_change(db_url: str) -> None:
    engine, dialect = connect(db_url)
    _codes(engine, 6000)
    plan = build_plan(
        engine,
        dialect,
        "codes",
        parse_options(alter=["code:varchar(20)", "amount:numeric(12,2)"], rename=["amount:amt"]),
        check_casts=True,
    )
    assert plan.cast_check is not None
    by_column = {c.column: c for c in plan.cast_check.columns}
    destructive = {c.column: c.destructive for c in plan.change_plans if c.destructive}
    if engine.dialect.name in TYPES_NOT_ENFORCED:
        # nothing is refused and nothing is rounded: the values are kept whole
        assert (by_column["code"].rows_failing, by_column["amt"].rows_changed) == (0, 0)
        assert plan.verdict == "safe" and destructive == {}
        return
    # four 25-character codes do not fit varchar(20); amounts with a third decimal are rounded
    assert by_column["code"].rows_failing == 4 and by_column["code"].rows_changed == 0
    assert by_column["amt"].rows_failing == 0
    assert by_column["amt"].rows_changed == sum(1 for i in range(1, 6001) if (i % 8) * 125 % 10)
    assert plan.verdict == "blocked"
    assert "narrows code" in destructive["code"]
    # numeric(10,3) -> numeric(12,2) loses a decimal (static), and the check saw the values change
    assert "narrows amount" in destructive["amount"] and "value(s) of amt change" in destructive["amount"]


def test_narrowed_copy_fails_instead_of_truncating(db_url: str) -> None:
    engine, dialect = connect(db_url)
    _codes(engine, 3000)
    plan = build_plan(engine, dialect, "codes", parse_options(alter=["code:varchar(20)"]))
    enforced = engine.dialect.name not in TYPES_NOT_ENFORCED
    if enforced:
        assert plan.verdict == "destructive"
        with pytest.raises(DestructiveChange, match="narrows code"):
            Executor(engine, dialect, plan, Options()).run()
    if enforced:
        with pytest.raises(CopyFailed):
            Executor(engine, dialect, plan, FAST).run()
    else:
        Executor(engine, dialect, plan, FAST).run()
    with engine.connect() as conn:  # refused, or (where lengths are not enforced) kept whole: never cut short
        assert conn.execute(sa.text("SELECT count(*) FROM codes WHERE length(code) = 25")).scalar_one() == 2
    # converting to a short string from another type is not a narrowing we can see statically;
    # it must still fail rather than cut values short (invariant 8)
    _codes(engine, 100, name="amounts")
    as_text = f"SELECT id, CAST(amount AS {'CHAR' if engine.dialect.name == 'mysql' else 'TEXT'}) FROM amounts"
    with engine.connect() as conn:
        before = dict(conn.execute(sa.text(as_text)).all())
    plan = build_plan(engine, dialect, "amounts", parse_options(alter=["amount:varchar(4)"]))
    assert plan.verdict == "safe"
    if enforced:
        with pytest.raises(CopyFailed):
            Executor(engine, dialect, plan, FAST).run()
    else:
        Executor(engine, dialect, plan, FAST).run()
    with engine.connect() as conn:
        assert dict(conn.execute(sa.text(as_text)).all()) == before


def test_destructive_plan_needs_allow_destructive(db_url: str, tmp_path: Path) -> None:
    engine, _dialect = connect(db_url)
    create_products(engine, 200)
    planned = cli("plan", "products", "--drop", "description", "--out", str(tmp_path / "p.json"), "--db", db_url)
    assert planned.exit_code == 0, planned.output
    refused = cli("execute", str(tmp_path / "p.json"), "--db", db_url)
    assert refused.exit_code == 2
    assert "destructive" in refused.stderr and "--allow-destructive" in refused.stderr
    assert "description" in columns_of(engine, "products")
    done = cli("execute", str(tmp_path / "p.json"), "--allow-destructive", "--db", db_url)
    assert done.exit_code == 0, done.stderr
    assert "description" not in columns_of(engine, "products")


def test_plan_json_is_the_documented_schema(db_url: str, tmp_path: Path) -> None:
    engine, _dialect = connect(db_url)
    create_products(engine, 50)
    result = cli(
        "plan",
        "--ddl",
        "ALTER TABLE products ALTER COLUMN price TYPE varchar(20), ADD COLUMN note text",
        "--check-casts",
        "--json",
        "--out",
        str(tmp_path / "p.json"),
        "--db",
        db_url,
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc == json.loads((tmp_path / "p.json").read_text())
    assert doc["version"] == 4
    documented = {
        "version", "dialect", "schema", "table", "shadow_table", "old_table", "primary_key", "source_columns",
        "columns", "default_columns", "fingerprint", "estimated_rows", "changes", "change_plans", "strategy",
        "foreign_key_ddl",
        "strategy_reason", "verdict", "instant_sql", "shadow_ddl", "indexes", "trigger_names", "trigger_ddl",
        "drop_trigger_ddl", "swap_sql", "post_swap_sql", "cast_check", "notes", "capture", "moved_at_swap",
        "table_option_sql", "order_by_index", "order_by",
        "transform",
        "column_settings_sql",
        "way_back", "reverts",
    }  # fmt: skip
    assert set(doc) == documented
    assert doc["transform"] is None
    assert set(doc["change_plans"][0]) == {"kind", "description", "strategy", "reason", "destructive", "column"}
    assert set(doc["columns"][0]) == {
        "name", "old_type", "new_type", "old_nullable", "new_nullable", "expression", "changed", "source_column",
    }  # fmt: skip
    assert set(doc["cast_check"]) == {"rows_scanned", "columns", "duplicates"}
    assert doc["cast_check"]["duplicates"] == []  # no unique key added or converted
    assert set(doc["cast_check"]["columns"][0]) == {
        "column", "expression", "rows_failing", "rows_changed", "sample_keys", "exact",
    }  # fmt: skip
    assert doc["strategy"] == "shadow" and doc["verdict"] == "safe"
    assert [c["kind"] for c in doc["change_plans"]] == ["alter", "add"]
    capture = doc["capture"]
    assert set(capture) == {"mode", "log_table", "route", "primary_key_after_copy", "unique_after_copy"}
    assert set(capture["route"]) == {"via", "helper_table", "autoinc_column", "autoinc_lock_mode"}
    assert (capture["log_table"] is not None) is (capture["mode"] == "change_log")
    assert doc["moved_at_swap"] == {"triggers": [], "keys_from": [], "keys_to": []}
    # the typed capture reads back to the same document, and a version 2 file is refused
    assert json.loads(Plan.from_json(json.dumps(doc)).to_json()) == doc
    assert set(doc["way_back"]) == {
        "possible", "reason", "log_table", "trigger_names", "columns", "log_ddl", "reverted_table", "notes",
        "inverse_sql",
    }  # fmt: skip
    # a version 3 file (before the way back) still loads, with no way back
    old = {k: v for k, v in doc.items() if k not in ("way_back", "reverts")}
    assert Plan.from_json(json.dumps({**old, "version": 3})).way_back is None
    with pytest.raises(UsageError, match="has version 2, this shadowswap reads version 4"):
        Plan.from_json(json.dumps({**doc, "version": 2}))


# -- identifiers that need quoting, end to end --------------------------------------------------


def test_reserved_words_spaces_quotes_and_unicode_work_end_to_end(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    metadata = sa.MetaData()
    table = sa.Table(
        "order",
        metadata,
        sa.Column("select", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("unit price", sa.Numeric(10, 2), nullable=False),
        sa.Column('say "hi"', sa.String(40)),
        sa.Column("größe", sa.Integer),
        sa.Column("a;b -- c", sa.String(10)),
        sa.Column("disc %", sa.Numeric(5, 2)),
    )
    sa.Index("ix order", table.c["größe"])
    metadata.create_all(engine)
    model = {i: {"unit price": f"{i}.25", 'say "hi"': f"hi {i}", "größe": i % 7} for i in range(1, 3001)}
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"select": k, **v, "a;b -- c": "x", "disc %": "12.25"} for k, v in model.items()])

    cols = {name: q(engine, name) for name in ["select", "unit price", 'say "hi"', "größe", "order"]}

    def write(engine: sa.Engine, w: Writer) -> str:
        key = w.rng.choice(list(w.model))
        table, key_col, price = cols["order"], cols["select"], cols["unit price"]
        with engine.begin() as conn:
            if w.counter % 4 == 0:
                new = 100_000 + w.counter
                conn.execute(sa.text(f"UPDATE {table} SET {key_col} = :n WHERE {key_col} = :k"), {"n": new, "k": key})
            elif w.counter % 4 == 1:
                conn.execute(sa.text(f"DELETE FROM {table} WHERE {key_col} = :k"), {"k": key})
            else:
                conn.execute(
                    sa.text(f"UPDATE {table} SET {price} = :p WHERE {key_col} = :k"), {"p": f"{w.counter}.75", "k": key}
                )
        if w.counter % 4 == 0:
            w.model[100_000 + w.counter] = w.model.pop(key)
            return "rekeys"
        if w.counter % 4 == 1:
            del w.model[key]
            return "deletes"
        w.model[key]["unit price"] = f"{w.counter}.75"
        return "updates"

    # the same expression in each engine's spelling of a quoted name and of concatenation
    mysql = engine.dialect.name in ("mysql", "mariadb")
    disc_using = "disc %=CONCAT(`disc %`, '%')" if mysql else "disc %=\"disc %\" || '%'"
    with WriterPool(engine, write, model, seed=3) as writers:
        result = cli(
            "plan",
            "order",
            "--alter",
            "unit price:varchar(20)",
            "--alter",
            "disc %:varchar(10)",
            "--using",
            disc_using,
            "--rename",
            'say "hi":größe 2',
            "--add",
            "neue spalte:text default 'ü'",
            "--add",
            "rate %:text not null default '100%'",
            "--drop",
            "a;b -- c",
            "--add-index",
            'ix "quoted"; DROP TABLE order; --:(unit price, größe)',
            "--out",
            str(tmp_path / "p.json"),
            "--db",
            db_url,
        )
        assert result.exit_code == 0, result.stderr
        plan = Plan.read(tmp_path / "p.json")
        assert plan.strategy == "shadow"
        Executor(engine, dialect, plan, Options(chunk_size=200, chunk_time=0.01, allow_destructive=True)).run()
        time.sleep(0.1)
    assert writers.total.errors == []
    model = writers.model
    assert set(columns_of(engine, "order")) == {
        "select", "unit price", "größe 2", "größe", "neue spalte", "rate %", "disc %",
    }  # fmt: skip
    assert 'ix "quoted"; DROP TABLE order; --' in index_names(engine, "order")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT {cols['select']}, {cols['unit price']}, {q(engine, 'größe 2')}, {cols['größe']}, "
                f"{q(engine, 'neue spalte')}, {q(engine, 'rate %')}, {q(engine, 'disc %')} FROM {cols['order']}"
            )
        ).all()
    got = {r[0]: {"unit price": r[1], 'say "hi"': r[2], "größe": r[3]} for r in rows}
    assert got == model
    assert {r[4] for r in rows} == {"ü"} and {r[5] for r in rows} == {"100%"} and {r[6] for r in rows} == {"12.25%"}


def test_renames_follow_identity_and_foreign_keys(pg_url: str) -> None:
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id int PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO customers SELECT g FROM generate_series(1, 50) g")
        conn.exec_driver_sql(
            "CREATE TABLE orders (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
            "customer_id int NOT NULL REFERENCES customers (id), amount numeric(10,2) NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO orders (customer_id, amount) SELECT mod(g, 50) + 1, g / 4.0 FROM generate_series(1, 5000) g"
        )
    plan = build_plan(
        engine,
        dialect,
        "orders",
        parse_options(rename=["id:order_id", "customer_id:buyer_id"], alter=["amount:varchar(20)"]),
    )

    def insert(engine: sa.Engine, w: Writer) -> str:
        with engine.begin() as conn:
            new_id = conn.execute(
                sa.text("INSERT INTO orders (customer_id, amount) VALUES (7, 1.5) RETURNING id")
            ).scalar_one()
        w.model[new_id] = (7, "1.5")
        return "inserts"

    with WriterPool(engine, insert) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=500, chunk_time=0.02, stop_after="verified")).run()
    assert writers.total.errors == []
    inserted = list(writers.model)
    Executor(engine, dialect, plan).run()
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 5000 + len(inserted)
        new_id = conn.execute(
            sa.text("INSERT INTO orders (buyer_id, amount) VALUES (1, '2.50') RETURNING order_id")
        ).scalar_one()
    assert inserted and new_id > max(inserted)  # the identity continues under its new column name
    with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):  # the foreign key came along, renamed
        conn.execute(sa.text("INSERT INTO orders (buyer_id, amount) VALUES (999, '1')"))
    fks = sa.inspect(engine).get_foreign_keys("orders")
    assert [fk["constrained_columns"] for fk in fks] == [["buyer_id"]]


def test_instant_waits_briefly_for_its_lock_and_retries(pg_url: str) -> None:
    from shadowswap import state
    from shadowswap.errors import ShadowswapError

    engine, dialect = connect(pg_url)
    create_products(engine, 1000)
    plan = build_plan(engine, dialect, "products", parse_options(add=["note:text"]))
    assert plan.strategy == "instant"
    holder = engine.connect()
    holder.begin()
    holder.execute(sa.text("SELECT count(*) FROM products"))  # a reader holds ACCESS SHARE until it ends
    try:
        with pytest.raises(ShadowswapError, match="could not alter in place"):
            Executor(engine, dialect, plan, Options(lock_timeout_ms=50, lock_retries=3)).run()
        assert "note" not in columns_of(engine, "products")
        with engine.connect() as conn:
            assert state.all_migrations(conn)[0].phase == state.ABORTED
        # the reader finishes while the ALTER is giving way and retrying: then it goes through
        timer = threading.Timer(0.5, holder.rollback)
        timer.start()
        summary = Executor(engine, dialect, plan, Options(lock_timeout_ms=50, lock_retries=30)).run()
        timer.join()
    finally:
        holder.close()
    assert summary.strategy == "instant" and "note" in columns_of(engine, "products")
    with engine.connect() as conn:
        assert state.all_migrations(conn)[0].phase == state.ALTERED


def test_check_casts_counts_nulls_for_a_new_not_null(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 700)
    plan = build_plan(engine, dialect, "products", parse_options(alter=["description:not null"]), check_casts=True)
    assert plan.strategy == "shadow" and plan.cast_check is not None
    (description,) = plan.cast_check.columns
    assert description.rows_failing == 100 and description.rows_changed == 0  # every 7th description is NULL
    assert [k[0] for k in description.sample_keys] == [7, 14, 21, 28, 35]
    assert plan.verdict == "blocked"


@only_dialects("sqlite", "postgresql")  # MariaDB has no expression indexes
def test_expression_indexes_over_dropped_or_renamed_columns_are_refused(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 50)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_lower_description ON products (lower(description))")
    with pytest.raises(UsageError, match="'ix_lower_description' uses column 'description', which is dropped"):
        build_plan(engine, dialect, "products", parse_options(drop=["description"]))
    with pytest.raises(UsageError, match=r"'ix_lower_description' has an expression .*over column 'description'"):
        build_plan(engine, dialect, "products", parse_options(rename=["description:details"]), strategy_name="shadow")
    with pytest.raises(UsageError, match="'ix_lower_description' already exists"):
        build_plan(engine, dialect, "products", parse_options(add_index=["ix_lower_description:(sku)"]))
    # an expression index over another column comes along, on the new table
    plan = build_plan(engine, dialect, "products", parse_options(rename=["sku:code"]), strategy_name="shadow")
    Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        table, definition = conn.exec_driver_sql(
            "SELECT tbl_name, sql FROM sqlite_master WHERE name = 'ix_lower_description'"
            if engine.dialect.name == "sqlite"
            else "SELECT tablename, indexdef FROM pg_indexes WHERE indexname = 'ix_lower_description'"
        ).one()
    assert table == "products" and "lower(description)" in definition.replace('"', "")
