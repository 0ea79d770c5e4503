"""``shadowswap revert`` (issue 16): after the swap, back to the original table with every write since.

Writers insert, update, re-key and delete through the swap, the revert and after it; the final table
equals what they committed, row by row, in the original type, with the original keys, indexes and
names. A value the way back refuses makes ``revert`` refuse (exit 2) and loses nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import only_dialects
from harness import Writers, compare, create_products, shadowswap

from shadowswap import operator, revert, state
from shadowswap.changes import parse_alter, parse_options
from shadowswap.db import connect
from shadowswap.executor import Executor, Options
from shadowswap.plan import Plan
from shadowswap.planner import build_plan

ROWS = 300
FAST = Options(chunk_size=100, max_chunk=100)


def _catalog(engine: sa.Engine) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    return {
        "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("products")],
        "pk": inspector.get_pk_constraint("products"),
        "unique": sorted((str(u["name"]), u["column_names"]) for u in inspector.get_unique_constraints("products")),
        "indexes": sorted((str(i["name"]), i["column_names"]) for i in inspector.get_indexes("products")),
    }


def _wait_for_writes(writers: Writers, more: int) -> None:
    target = writers.total.ops + more
    deadline = time.monotonic() + 30
    while writers.total.ops < target and time.monotonic() < deadline:
        time.sleep(0.02)


def test_revert_under_writers_then_execute_again(db_url: str) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, ROWS)
    before = _catalog(engine)
    # int → bigint and back: the writers' statements (prepared by the driver) bind either way
    plan = build_plan(engine, dialect, "products", [parse_alter("stock_quantity:bigint")], strategy_name="shadow")
    assert plan.way_back is not None and plan.way_back.possible, plan.way_back
    with Writers(db_url, initial, threads=3, seed=11) as writers:
        Executor(engine, dialect, plan, FAST).run()
        _wait_for_writes(writers, 150)  # writes to the new table, captured on the way back
        with engine.connect() as conn:
            forward = state.latest(conn, "products")
        assert forward is not None and forward.reverse_log is not None
        revert.revert(engine, dialect, "products", FAST)
        _wait_for_writes(writers, 100)  # and writes after the revert, to the original again
    assert writers.total.errors == []
    assert writers.total.rekeys > 0 and writers.total.deletes > 0
    compare(engine, writers.model).assert_exact()
    assert _catalog(engine) == before
    inspector = sa.inspect(engine)
    assert inspector.has_table("_products_reverted") and not inspector.has_table("_products_old")
    assert not inspector.has_table("_products_ss_rlog")
    with engine.connect() as conn:
        assert state.get(conn, forward.id).phase == state.REVERTED
    # the same plan runs again, and its swap keeps the new rows too
    operator.cleanup(engine, dialect, "products")
    assert not sa.inspect(engine).has_table("_products_reverted")
    Executor(engine, dialect, plan, FAST).run()
    compare(engine, writers.model).assert_exact()
    assert "BIGINT" in str(sa.inspect(engine).get_columns("products")[5]["type"]).upper()


def test_a_value_that_cannot_go_back_refuses_the_revert(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 50)
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")], strategy_name="shadow")
    Executor(engine, dialect, plan, FAST).run()
    with engine.begin() as conn:  # the application's write succeeds: the trigger only logs the key
        conn.execute(sa.text("UPDATE products SET price = 'abc' WHERE id = 7"))
        conn.execute(sa.text("UPDATE products SET price = '1.50' WHERE id = 8"))
    [found] = [s for s in operator.status(engine, "products") if s.migration.phase == state.CUT_OVER]
    assert "not revertible" in found.notes and "id=7" in found.notes
    with pytest.raises(revert.NotRevertible, match="id=7"):
        revert.revert(engine, dialect, "products", FAST)
    result = shadowswap("revert", "products", url=db_url, cwd=tmp_path)
    assert result.returncode == 2 and "id=7" in result.stderr and "Traceback" not in result.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT price FROM products WHERE id = 7")).scalar_one() == "abc"
    # fixed: the way back is open again, and takes the fix with it
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE products SET price = '2.25' WHERE id = 7"))
    revert.revert(engine, dialect, "products", FAST)
    with engine.connect() as conn:
        prices = dict(conn.execute(sa.text("SELECT id, price FROM products WHERE id IN (7, 8)")).all())
    assert {k: str(v) for k, v in prices.items()} == {7: "2.25", 8: "1.5" if dialect.name == "sqlite" else "1.50"}


def test_plan_shows_the_way_back(pg_url: str) -> None:
    engine, dialect = connect(pg_url)
    create_products(engine, 5)
    plan = build_plan(
        engine,
        dialect,
        "products",
        [parse_alter("price:varchar(20)"), parse_alter("stock_quantity:bigint")],
        strategy_name="shadow",
        reverse_usings={"stock_quantity": "stock_quantity + 0"},
    )
    back = plan.way_back
    assert back is not None and back.possible
    assert any(n.startswith('price: CAST(src."price"') or "price" in n for n in back.notes)
    assert any("--reverse-using" in n for n in back.notes)
    again = Plan.from_json(plan.to_json())
    assert again.way_back == back


def _latest(engine: sa.Engine) -> state.Migration:
    with engine.connect() as conn:
        return state.all_migrations(conn, limit=1)[0]


def _wait(what: str, predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _spawn(*args: str, url: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shadowswap", *args],
        cwd=cwd,
        env={**os.environ, "DATABASE_URL": url, "COLUMNS": "250"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


KILLS = [("held before the swap", "revert"), ("held before the swap", "abort"), ("in the swap", "revert")]


@only_dialects("postgresql", "mysql")
@pytest.mark.parametrize(("where", "then"), KILLS)
def test_sigkill_during_the_revert(db_url: str, tmp_path: Path, where: str, then: str) -> None:
    """``revert`` killed while it holds (after its replays, before the verification) or while its
    swap waits for the lock; ``revert`` again finishes it, ``abort`` gives it up and leaves the way
    back open. The writers never stop, and the table ends as they made it, in the original type."""
    _sigkill_during_the_revert(db_url, tmp_path, where, then)


@only_dialects("sqlite")
def test_sigkill_during_the_revert_sqlite(db_url: str, tmp_path: Path) -> None:
    """SQLite: the plain kill while the revert holds, then revert again (CI time: the other paths
    are engine-independent and run on the servers, where a reader can keep the swap waiting)."""
    _sigkill_during_the_revert(db_url, tmp_path, *KILLS[0])


def _sigkill_during_the_revert(db_url: str, tmp_path: Path, where: str, then: str) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, ROWS)
    before = _catalog(engine)
    plan = build_plan(engine, dialect, "products", [parse_alter("stock_quantity:bigint")], strategy_name="shadow")
    hold = tmp_path / "hold"
    with Writers(db_url, initial, threads=2, seed=13) as writers:
        Executor(engine, dialect, plan, FAST).run()
        _wait_for_writes(writers, 60)
        blocker = engine.connect()
        try:
            if where == "in the swap":
                # a reader's open transaction: the swap's lock waits behind it and retries
                if dialect.name == "postgresql":
                    blocker.execute(sa.text("LOCK TABLE products IN ACCESS SHARE MODE"))
                else:
                    blocker.execute(sa.text("SELECT id FROM products LIMIT 1")).all()
                proc = _spawn("revert", "products", "--lock-timeout", "100", url=db_url, cwd=tmp_path)
                _wait("the revert's swap", lambda: _latest(engine).phase == state.VERIFIED)
                time.sleep(0.5)  # its swap retries behind the reader
            else:
                hold.touch()
                proc = _spawn("revert", "products", "--pause-file", str(hold), url=db_url, cwd=tmp_path)
                _wait("the revert to hold", lambda: (_latest(engine).waiting or "").startswith("paused"))
            killed = _latest(engine)
            assert Plan.from_json(killed.plan_json).reverts is not None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            blocker.rollback()
            blocker.close()
        hold.unlink(missing_ok=True)
        _wait_for_writes(writers, 30)  # writes go on while nothing runs: the reverse capture logs them
        result = shadowswap(then, "products", url=db_url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        if then == "abort":
            with engine.connect() as conn:
                assert state.get(conn, killed.id).phase == state.ABORTED
            with engine.connect() as conn:  # the way back is still there (on MySQL renamed: revert.py says why)
                assert sa.inspect(conn).has_table(
                    state.get(conn, Plan.from_json(killed.plan_json).reverts or 0).old_table
                )
            result = shadowswap("revert", "products", url=db_url, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
        _wait_for_writes(writers, 30)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    assert _catalog(engine) == before
    if then == "revert":
        assert _latest(engine).id == killed.id and _latest(engine).phase == state.CUT_OVER


def test_no_revert_skips_the_reverse_capture(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 30)
    plan = build_plan(engine, dialect, "products", [parse_alter("stock_quantity:bigint")], strategy_name="shadow")
    Executor(engine, dialect, plan, Options(no_revert=True)).run()
    assert not sa.inspect(engine).has_table("_products_ss_rlog")
    with engine.connect() as conn:
        assert dialect.existing_triggers(conn, "products") == []
    result = shadowswap("revert", "products", url=db_url, cwd=tmp_path)
    assert result.returncode == 2 and "no reverse capture" in result.stderr, result.stderr


def test_postgresql_application_trigger_fires_once_per_write_through_the_revert(pg_url: str) -> None:
    """An audit trigger: carried to the new table at the swap, back to the original at the revert,
    never fired by the way back's replays; every committed update audited exactly once."""
    engine, dialect = connect(pg_url)
    initial = create_products(engine, ROWS)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE audit (id bigserial PRIMARY KEY, product_id bigint)")
        conn.exec_driver_sql(
            "CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN INSERT INTO audit (product_id) VALUES (NEW.id); RETURN NULL; END$$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER trg_audit AFTER UPDATE ON products FOR EACH ROW EXECUTE FUNCTION audit_fn()"
        )
    plan = build_plan(engine, dialect, "products", [parse_alter("stock_quantity:bigint")], strategy_name="shadow")
    with Writers(pg_url, initial, threads=2, seed=17) as writers:
        Executor(engine, dialect, plan, FAST).run()
        _wait_for_writes(writers, 100)
        revert.revert(engine, dialect, "products", FAST)
        _wait_for_writes(writers, 50)
    stats = writers.total
    assert stats.errors == []
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audit").scalar_one() == stats.updates + stats.rekeys
        on = conn.exec_driver_sql(
            "SELECT c.relname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE t.tgname = 'trg_audit'"
        ).all()
    # on the table again (and, like any retired table's, on the kept _products_reverted, which nothing writes)
    assert sorted(tuple(r) for r in on) == [("_products_reverted", "O"), ("products", "O")]


@only_dialects("postgresql", "sqlite")
def test_an_in_place_plan_reverts_with_its_inverse_in_place(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 20)
    before = _catalog(engine)
    changes = parse_options(add=["note:varchar(20)"], rename=["name:title"])
    plan = build_plan(engine, dialect, "products", changes)
    assert plan.strategy == "instant" and plan.way_back is not None and plan.way_back.inverse_sql
    Executor(engine, dialect, plan, Options()).run()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE products SET title = 'renamed', note = 'n' WHERE id = 3"))
    result = shadowswap("revert", "products", url=db_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _catalog(engine) == before
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM products WHERE id = 3")).scalar_one() == "renamed"
        assert state.latest(conn, "products").phase == state.REVERTED
    if dialect.name != "postgresql":
        return  # SQLite drops a column only with the copy
    # a dropped column has no inverse in place (its values are gone): the plan says so
    plan = build_plan(engine, dialect, "products", parse_options(drop=["description"]), strategy_name="instant")
    assert plan.way_back is not None and not plan.way_back.possible and "new migration" in plan.way_back.reason


def test_added_and_dropped_columns_on_the_way_back(db_url: str) -> None:
    """What the plan says: an added column is left behind, a dropped one keeps what the old rows
    hold and is the column's default (NULL here) for rows written since the swap."""
    engine, dialect = connect(db_url)
    create_products(engine, 30)
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT description FROM products WHERE id = 5")).scalar_one()
    changes = parse_options(add=["note:varchar(20)"], drop=["description"])
    plan = build_plan(engine, dialect, "products", changes, strategy_name="shadow")
    assert plan.way_back is not None and plan.way_back.possible
    assert any(n.startswith("description: dropped") for n in plan.way_back.notes)
    assert any(n.startswith("note: added") for n in plan.way_back.notes)
    Executor(engine, dialect, plan, Options(allow_destructive=True)).run()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE products SET note = 'x', stock_quantity = 77 WHERE id = 6"))
        conn.execute(sa.text("INSERT INTO products (id, name, sku, price, note) VALUES (999, 'n', 'S-999', 1.5, 'y')"))
    revert.revert(engine, dialect, "products", FAST)
    assert "note" not in {c["name"] for c in sa.inspect(engine).get_columns("products")}
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, description FROM products WHERE id IN (5, 6, 999)")).all())
        assert conn.execute(sa.text("SELECT stock_quantity FROM products WHERE id = 6")).scalar_one() == 77
    assert rows == {5: kept, 6: None, 999: None}


def test_mysql_a_write_queued_through_the_swap_reaches_the_reverse_log(mysql_url: str) -> None:
    """The write MariaDB lets back off: it opened the old table and waits for the change log that
    the swap's LOCK TABLES, taking its locks in name order, asked for first; when the swap then waits
    for the table it holds, the write gives way, and reopens after the RENAME the new table, with
    the tables its first opening's triggers used. It must find the reverse log there (failed
    with 1146 before: dialects/mysql/triggers.py, ``_prelock_reverse_log``)."""
    engine, dialect = connect(mysql_url)
    create_products(engine, 20)
    plan = build_plan(engine, dialect, "products", [parse_alter("stock_quantity:bigint")], strategy_name="shadow")
    Executor(engine, dialect, plan, Options(stop_after=state.VERIFIED)).run()
    outcome: dict[str, BaseException | None] = {}

    def run(what: str, action: Any) -> threading.Thread:
        def target() -> None:
            try:
                action()
                outcome[what] = None
            except BaseException as exc:
                outcome[what] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread

    def waiting(statement: str) -> bool:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.text(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
                        "AND INFO LIKE :s AND STATE LIKE '%metadata lock%'"
                    ),
                    {"s": statement + "%"},
                ).scalar_one()
            )

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE products SET stock_quantity = 4242 WHERE id = 2"))

    holder = engine.connect()
    try:
        # a transaction that read the change log: the swap's LOCK TABLES waits behind it
        holder.execute(sa.text("SELECT COUNT(*) FROM _products_ss_log")).scalar_one()
        swap = run("swap", lambda: Executor(engine, dialect, plan, Options(lock_timeout_ms=20_000)).run())
        _wait("the swap's lock to wait", lambda: waiting("LOCK TABLES"))
        writer = run("write", write)
        _wait("the write to wait", lambda: waiting("UPDATE products SET stock_quantity = 4242"))
    finally:
        holder.commit()
        holder.close()
    writer.join(30)
    swap.join(60)
    assert outcome == {"swap": None, "write": None}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT stock_quantity FROM products WHERE id = 2")).scalar_one() == 4242
        assert "BIGINT" in str(sa.inspect(conn).get_columns("products")[5]["type"]).upper()
        assert conn.execute(sa.text("SELECT COUNT(*) FROM _products_ss_rlog WHERE id = 2")).scalar_one() >= 1
