"""Fidelity under concurrent writers (issue 14): what a migration carries over around the rows keeps
behaving while the application writes through the whole migration, the swap included."""

from __future__ import annotations

import time

import sqlalchemy as sa
from harness import Writers, compare, create_products

from shadowswap.changes import parse_alter, parse_ddl
from shadowswap.db import connect
from shadowswap.executor import Executor, Options
from shadowswap.planner import build_plan

MYSQL_ROWS = 20_000


def test_mysql_app_triggers_fire_once_per_write_through_the_swap(mysql_url: str) -> None:
    """The application's triggers move to the new table under the swap's lock: each committed write
    fires its trigger exactly once, before and after the swap, and no copied or replayed row does."""
    engine, dialect = connect(mysql_url)
    initial = create_products(engine, MYSQL_ROWS)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, product_id INT, what CHAR(1))")
        for event, record in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            conn.exec_driver_sql(
                f"CREATE TRIGGER trg_{event.lower()} AFTER {event} ON products FOR EACH ROW"
                f" INSERT INTO audit (product_id, what) VALUES ({record}.id, '{event[0]}')"
            )
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    assert [t.name for t in plan.moved_at_swap.triggers] == ["trg_delete", "trg_insert", "trg_update"]
    with Writers(mysql_url, initial, threads=4, seed=7) as writers:
        time.sleep(0.3)
        Executor(engine, dialect, plan, Options(chunk_size=2000, chunk_time=0.05)).run()
        time.sleep(0.5)  # writes after the swap reach the new table and its triggers
    stats = writers.total
    assert stats.errors == []
    assert stats.inserts and stats.updates and stats.rekeys and stats.deletes
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        fired = dict(conn.exec_driver_sql("SELECT what, count(*) FROM audit GROUP BY what").fetchall())
        placed = {
            r[0]: r[1]
            for r in conn.exec_driver_sql(
                "SELECT trigger_name, event_object_table FROM information_schema.triggers"
                " WHERE trigger_schema = DATABASE()"
            )
            if not r[0].startswith("_products_ss_r")  # the reverse capture the swap carried (revert.py)
        }
    # re-keys are updates too; nothing the copy or the replays wrote fired anything
    assert fired == {"I": stats.inserts, "U": stats.updates + stats.rekeys, "D": stats.deletes}
    assert placed == {"trg_insert": "products", "trg_update": "products", "trg_delete": "products"}
    assert "products" in sa.inspect(engine).get_table_names()


def test_mysql_foreign_keys_from_and_to_the_table_hold_through_the_swap(mysql_url: str) -> None:
    """Keys of the table and keys referencing it move to the new table under the swap's lock: child
    rows follow every re-key and delete of the writers (ON UPDATE/DELETE CASCADE), no orphan is
    accepted after the swap, and the old table no longer holds anyone's keys."""
    engine, dialect = connect(mysql_url)
    initial = create_products(engine, MYSQL_ROWS, seed=3)
    reviewed = sorted(initial)[:3000]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE categories (id INT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO categories VALUES (1), (2), (3)")
        conn.exec_driver_sql(
            "ALTER TABLE products ADD COLUMN category_id INT,"
            " ADD CONSTRAINT fk_product_category FOREIGN KEY (category_id) REFERENCES categories (id)"
        )
        conn.exec_driver_sql("UPDATE products SET category_id = 1 + MOD(id, 2) WHERE id <= 1000")
        conn.exec_driver_sql(
            "CREATE TABLE reviews (id INT AUTO_INCREMENT PRIMARY KEY, product_id INT NOT NULL,"
            " CONSTRAINT fk_review_product FOREIGN KEY (product_id) REFERENCES products (id)"
            " ON DELETE CASCADE ON UPDATE CASCADE)"
        )
        conn.execute(sa.text("INSERT INTO reviews (product_id) VALUES (:p)"), [{"p": p} for p in reviewed])
    skus = {initial[p]["sku"] for p in reviewed}
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    assert [f.name for f in plan.moved_at_swap.keys_from] == ["fk_product_category"]
    assert [(f.table, f.name) for f in plan.moved_at_swap.keys_to] == [("reviews", "fk_review_product")]
    with Writers(mysql_url, initial, threads=4, seed=3) as writers:
        time.sleep(0.3)
        Executor(engine, dialect, plan, Options(chunk_size=2000, chunk_time=0.05)).run()
        time.sleep(0.5)
    stats = writers.total
    assert stats.errors == []
    assert stats.rekeys and stats.deletes
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        keys = dict(
            conn.exec_driver_sql(
                "SELECT constraint_name, concat(table_name, '->', referenced_table_name)"
                " FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE()"
            ).fetchall()
        )
        children = {r[0] for r in conn.exec_driver_sql("SELECT product_id FROM reviews")}
    assert keys == {"fk_product_category": "products->categories", "fk_review_product": "reviews->products"}
    # every review still belongs to its product, through the writers' re-keys and deletes
    assert children == {k for k, row in writers.model.items() if row["sku"] in skus}
    with engine.connect() as conn:
        for orphan in (
            "INSERT INTO reviews (product_id) VALUES (-1)",
            "INSERT INTO products (name, sku, price, category_id) VALUES ('o', 'orphan', '1', 99)",
        ):
            try:
                conn.exec_driver_sql(orphan)
            except sa.exc.IntegrityError:
                conn.rollback()
            else:
                raise AssertionError(f"accepted an orphan: {orphan}")
    with engine.begin() as conn:  # the old table's rows no longer hold the category
        conn.exec_driver_sql("UPDATE products SET category_id = NULL WHERE category_id = 2")
        conn.exec_driver_sql("DELETE FROM categories WHERE id = 2")


def test_mysql_reorder_collation_and_generated_columns_under_writers(mysql_url: str) -> None:
    """Issue 15: one --ddl that moves columns (FIRST / AFTER), changes a column's character set and
    collation and adds generated columns, run while the application writes. The copy, the triggers
    and the replays never write a generated column: the engine computes them on the new table from
    what the writers committed; every other value is the writers', in the order the ALTER gives."""
    engine, dialect = connect(mysql_url)
    initial = create_products(engine, 1_500, seed=11)
    ddl = (
        "ALTER TABLE products MODIFY description text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin AFTER id,"
        " MODIFY stock_quantity int NOT NULL DEFAULT 0 COMMENT 'units' FIRST,"
        " ADD COLUMN stock_value decimal(16,2) AS (price * stock_quantity) STORED AFTER price,"
        " ADD COLUMN name_length int AS (char_length(name)) VIRTUAL AFTER name"
    )
    plan = build_plan(engine, dialect, "products", parse_ddl(ddl, "mysql"))
    assert plan.strategy == "shadow"
    copied = {c.name for c in plan.columns}
    assert {"stock_value", "name_length"} <= {c.name for c in plan.default_columns}
    assert not copied & {"stock_value", "name_length"}
    # the triggers (and the copy and replays, which insert plan.columns) never write a generated column
    for sql in plan.trigger_ddl:
        assert "`stock_value`" not in sql and "`name_length`" not in sql, sql
    with Writers(mysql_url, initial, threads=3, seed=11) as writers:
        time.sleep(0.2)
        Executor(engine, dialect, plan, Options(chunk_size=200, chunk_time=0.02)).run()
        time.sleep(0.3)  # writes after the swap reach the new table too
    stats = writers.total
    assert stats.errors == []
    assert stats.inserts and stats.updates and stats.rekeys and stats.deletes
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        order = [r[0] for r in conn.exec_driver_sql("SHOW COLUMNS FROM products")]
        collation = conn.exec_driver_sql(
            "SELECT collation_name, column_comment FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = 'products' AND column_name IN ('description',"
            " 'stock_quantity') ORDER BY column_name"
        ).fetchall()
        wrong = conn.exec_driver_sql(
            "SELECT count(*) FROM products WHERE NOT (stock_value <=> price * stock_quantity)"
            " OR NOT (name_length <=> char_length(name))"
        ).scalar()
    assert order == [
        "stock_quantity", "id", "description", "name", "name_length", "sku", "price", "stock_value", "is_active",
        "created_at", "updated_at",
    ]  # fmt: skip
    assert [tuple(r) for r in collation] == [("utf8mb4_bin", ""), (None, "units")]
    assert wrong == 0
