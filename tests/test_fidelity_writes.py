"""Fidelity under concurrent writers (issue 14): what a migration carries over around the rows keeps
behaving while the application writes through the whole migration, the swap included."""

from __future__ import annotations

import time

import sqlalchemy as sa
from harness import Writers, compare, create_products

from shadowswap.changes import parse_alter
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
    assert [t["name"] for t in plan.extra["app_triggers"]] == ["trg_delete", "trg_insert", "trg_update"]
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
        }
    # re-keys are updates too; nothing the copy or the replays wrote fired anything
    assert fired == {"I": stats.inserts, "U": stats.updates + stats.rekeys, "D": stats.deletes}
    assert placed == {"trg_insert": "products", "trg_update": "products", "trg_delete": "products"}
    assert "products" in sa.inspect(engine).get_table_names()
