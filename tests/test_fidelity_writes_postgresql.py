"""Fidelity under concurrent writers (issue 14): what surrounds the table stays right while writes land.

Writer threads (tests/harness.py) insert, update, re-key and delete throughout the migration; after
it the rows match the writers' model exactly and the surrounding objects behave as after a blocking
ALTER. Test names carry their engine.
"""

from __future__ import annotations

import sqlalchemy as sa
from harness import Writers, compare, create_products

from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.executor import Executor, Options
from shadowswap.planner import build_plan

ROWS = 3000


def test_postgresql_views_and_referencing_keys_follow_the_new_table_under_writers(pg_url: str) -> None:
    """A view over a view over the table, and another table's key (re-keys and deletes cascade into it),
    redefined in the swap's transaction while writers run: both end up on the new table, the key
    validated, the child rows exactly those whose product survived, under the product's new key."""
    engine, dialect = connect(pg_url)
    initial = create_products(engine, ROWS)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE reviews (id serial PRIMARY KEY, product_id integer NOT NULL,"
            " CONSTRAINT fk_review_product FOREIGN KEY (product_id) REFERENCES products (id)"
            " ON UPDATE CASCADE ON DELETE CASCADE)"
        )
        conn.exec_driver_sql("INSERT INTO reviews (product_id) SELECT id FROM products WHERE id %% 3 = 0")
        conn.exec_driver_sql("CREATE VIEW v_active AS SELECT id, name, price FROM products WHERE is_active")
        conn.exec_driver_sql("CREATE VIEW v_active_count AS SELECT count(*) AS n FROM v_active")
    reviewed = {k for k in initial if k % 3 == 0}
    plan = build_plan(engine, dialect, "products", [parse_alter("stock_quantity:bigint")], strategy_name="shadow")
    with Writers(pg_url, initial, threads=3, seed=5) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=200, max_chunk=200)).run()
    assert writers.total.errors == []
    assert writers.total.rekeys > 0 and writers.total.deletes > 0
    compare(engine, writers.model).assert_exact()
    # the reviews that survive are those of surviving products, under their current keys: a
    # write's cascade reached them before, during and after the swap
    origin = {}
    for key, row in writers.model.items():
        origin[row["sku"]] = key
    expected = sorted(origin[row["sku"]] for k, row in initial.items() if k in reviewed and row["sku"] in origin)
    with engine.connect() as conn:
        assert sorted(r[0] for r in conn.exec_driver_sql("SELECT product_id FROM reviews")) == expected
        bound = conn.exec_driver_sql(
            "SELECT confrelid::regclass::text, convalidated FROM pg_constraint WHERE conname = 'fk_review_product'"
        ).one()
        assert tuple(bound) == ("products", True)
        tables_read = {
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT DISTINCT d.refobjid::regclass::text FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid"
                " WHERE w.ev_class IN ('v_active'::regclass, 'v_active_count'::regclass)"
                " AND d.refobjid <> w.ev_class AND d.refclassid = 'pg_class'::regclass"
            )
        }
        assert tables_read == {"products", "v_active"}
        active = sum(1 for row in writers.model.values() if row["is_active"])
        assert conn.exec_driver_sql("SELECT n FROM v_active_count").scalar_one() == active
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM products WHERE id = (SELECT min(product_id) FROM reviews)")
        assert conn.exec_driver_sql("SELECT count(*) FROM reviews").scalar_one() == len(expected) - 1
    assert sa.inspect(engine).has_table(plan.old_table)


def test_postgresql_unique_only_key_under_writers(pg_url: str) -> None:
    """A table whose only key is a NOT NULL unique constraint migrates on it while writers insert,
    update, re-key (the tracked key itself) and delete; the new table has no primary key either."""
    engine, dialect = connect(pg_url)
    initial = create_products(engine, ROWS)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE products DROP CONSTRAINT products_pkey, ADD CONSTRAINT a_uq_id UNIQUE (id)")
    plan = build_plan(engine, dialect, "products", [parse_alter("stock_quantity:bigint")], strategy_name="shadow")
    assert plan.primary_key == ["id"]
    with Writers(pg_url, initial, threads=3, seed=7) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=200, max_chunk=200)).run()
    assert writers.total.errors == []
    assert writers.total.rekeys > 0
    compare(engine, writers.model).assert_exact()
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("products")["constrained_columns"] == []
    assert {u["name"] for u in inspector.get_unique_constraints("products")} == {"a_uq_id", "products_sku_key"}
