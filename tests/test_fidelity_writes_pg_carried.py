"""Fidelity under concurrent writers (issue 14): what surrounds the table keeps working through the
migration while the application writes, not only on a quiet table."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from harness import Writers, compare, create_products

from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.executor import Executor, Options
from shadowswap.planner import build_plan

AUDIT = [
    "CREATE TABLE audit (op text NOT NULL, id bigint NOT NULL)",
    "CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
    " INSERT INTO audit VALUES (TG_OP, CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);"
    " RETURN NULL; END$$",
    "CREATE TRIGGER trg_audit AFTER INSERT OR UPDATE OR DELETE ON products FOR EACH ROW EXECUTE FUNCTION audit_fn()",
]


def test_postgresql_app_trigger_fires_once_per_write(pg_url: str, tmp_path: Path) -> None:
    """The application's trigger fires exactly once for every write the writers commit, before,
    during and after the swap, and never for a row the copy or the capture triggers move: the
    audit log counts each operation exactly as often as the writers made it."""
    engine, dialect = connect(pg_url)
    initial = create_products(engine, 20_000)
    with engine.begin() as conn:
        for stmt in AUDIT:
            conn.exec_driver_sql(stmt)
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    with Writers(pg_url, initial, threads=4, seed=7) as writers:
        time.sleep(0.3)
        Executor(engine, dialect, plan, Options(chunk_size=1000, chunk_time=0.05)).run()
        swapped_at = time.time()
        time.sleep(0.5)  # writes after the swap reach the new table and its trigger
    stats = writers.total
    assert stats.errors == []
    assert stats.inserts and stats.updates and stats.deletes
    assert any(c > swapped_at for c in stats.commits)
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        fired = dict(conn.exec_driver_sql("SELECT op, count(*) FROM audit GROUP BY op").all())
        on_new = conn.exec_driver_sql(
            "SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'products'::regclass AND tgname = 'trg_audit'"
        ).scalar()
    # a re-key is an UPDATE too
    assert fired == {
        "INSERT": stats.inserts,
        "UPDATE": stats.updates + stats.rekeys,
        "DELETE": stats.deletes,
    }
    assert on_new == "O"
    engine.dispose()


def test_postgresql_grants_and_policies_hold_for_writers_through_the_swap(pg_url: str, tmp_path: Path) -> None:
    """A role that may write the table only through its grants and a row-level-security policy
    keeps writing through the migration: at no point (before, during, after the swap) is it
    refused, so grants and policies reach the new table in the swap transaction itself."""
    engine, dialect = connect(pg_url)
    initial = create_products(engine, 10_000)
    role = "ss_fid_writer"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN"
            f" CREATE ROLE {role}; END IF; END$$"
        )
        conn.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON products TO {role}")
        conn.exec_driver_sql(f"GRANT USAGE ON SEQUENCE products_id_seq TO {role}")
        conn.exec_driver_sql("ALTER TABLE products ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f"CREATE POLICY p_all ON products TO {role} USING (true) WITH CHECK (stock_quantity >= 0)")
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    writer_url = sa.make_url(pg_url).set(query={"options": f"-c role={role}"}).render_as_string(hide_password=False)
    with Writers(writer_url, initial, threads=2, seed=3) as writers:
        time.sleep(0.3)
        Executor(engine, dialect, plan, Options(chunk_size=1000, chunk_time=0.05)).run()
        swapped_at = time.time()
        time.sleep(0.5)
    stats = writers.total
    assert stats.errors == []
    assert stats.inserts and stats.updates
    assert any(c > swapped_at for c in stats.commits)
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        refused = conn.exec_driver_sql(
            f"SELECT has_table_privilege('{role}', 'products', 'INSERT'),"
            " (SELECT relrowsecurity FROM pg_class WHERE oid = 'products'::regclass),"
            " (SELECT count(*) FROM pg_policy WHERE polrelid = 'products'::regclass)"
        ).one()
    assert tuple(refused) == (True, True, 1)
    engine.dispose()
