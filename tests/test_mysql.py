"""MySQL/MariaDB-only behaviour: strict mode, the RENAME swap and its triggers, the AUTO-INC lock, in-place ALTERs."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from harness import Writers, compare, create_products, shadowswap

from shadowswap import state
from shadowswap.changes import parse_alter, parse_options
from shadowswap.db import connect
from shadowswap.errors import CopyFailed, CutoverFailed, ShadowswapError, UsageError, VerificationFailed
from shadowswap.executor import Executor, Options, SilentReporter
from shadowswap.planner import build_plan
from shadowswap.verify import verify

ROWS = int(os.environ.get("SHADOWSWAP_TEST_ROWS", "100000"))


def plan_for(
    engine: sa.Engine, dialect: Any, table: str, change: str, usings: dict[str, str] | None = None, direct: bool = False
) -> Any:
    """A plan; ``direct``: with dual-write triggers that write the shadow (no change log)."""
    if direct:
        dialect.supports_change_log = False
    try:
        return build_plan(engine, dialect, table, [parse_alter(change)], usings)
    finally:
        if direct:
            del dialect.supports_change_log


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def triggers(engine: sa.Engine, table: str) -> dict[str, str]:
    """Trigger name -> the sql_mode it runs under."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT TRIGGER_NAME, SQL_MODE FROM information_schema.TRIGGERS "
                "WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = :t"
            ),
            {"t": table},
        )
        return {r[0]: r[1] for r in rows}


def names_table(engine: sa.Engine, rows: int = 2000) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        "people",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(50), nullable=False),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        rows_ = [{"id": i, "name": f"person {i:05d}" + "x" * (i % 30)} for i in range(1, rows + 1)]
        conn.execute(table.insert(), rows_)


def test_sessions_and_triggers_are_strict(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    with engine.connect() as conn:
        assert "STRICT_ALL_TABLES" in conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar_one()
    names_table(engine, 500)
    plan = plan_for(engine, dialect, "people", "name:varchar(40)", direct=True)
    assert not plan.capture.change_log
    Executor(engine, dialect, plan, Options(stop_after=state.TRIGGERS_INSTALLED, allow_destructive=True)).run()
    modes = triggers(engine, "people")
    assert sorted(modes) == sorted(plan.trigger_names)
    assert all("STRICT_ALL_TABLES" in mode for mode in modes.values())

    # An application session without strict mode: its write fits the original but not the new
    # type, and the trigger refuses it rather than truncating it into the shadow (invariant 8).
    lax = sa.create_engine(mysql_url)
    with pytest.raises(sa.exc.DBAPIError) as raised, lax.begin() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = ''")
        conn.exec_driver_sql("UPDATE people SET name = REPEAT('y', 45) WHERE id = 7")
    lax.dispose()
    assert dialect.is_data_error(raised.value)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM people WHERE id = 7")).scalar_one().startswith("person 00007")
        shadowed = conn.execute(sa.text(f"SELECT name FROM {dialect.q(plan.shadow_table)} WHERE id = 7")).scalar()
    assert shadowed is None or shadowed.startswith("person 00007")


def test_a_pooled_connection_forgets_its_lock_timeout_and_only_such_a_one_pays_for_it(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)

    def session(conn: sa.Connection) -> tuple[int, int, int]:
        row = conn.exec_driver_sql("SELECT CONNECTION_ID(), @@SESSION.lock_wait_timeout").one()
        questions = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Questions'").one()[1]
        return int(row[0]), int(row[1]), int(questions)

    with engine.connect() as conn:
        pid, default, _ = session(conn)
        for stmt in dialect.lock_timeout_sql(200):
            dialect.run(conn, stmt)
        assert session(conn)[1] == 1
    with engine.connect() as conn:  # the same pooled connection, its timeout back to the server's
        again, timeout, before = session(conn)
    assert (again, timeout) == (pid, default)
    for _ in range(5):
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    with engine.connect() as conn:
        after = session(conn)[2]
    # 6 check-ins of a connection that set no timeout: a rollback each, no SET; 5 SELECTs; 2 reads
    assert after - before == 6 + 5 + 2
    engine.dispose()


def test_change_log_a_lax_write_the_new_type_cannot_hold_stops_the_migration(mysql_url: str) -> None:
    """With a change log the application's write is never refused by the migration: the strict
    replay meets the value, the migration stops before the swap, and the original keeps the write."""
    engine, dialect = connect(mysql_url)
    names_table(engine, 500)
    plan = build_plan(engine, dialect, "people", [parse_alter("name:varchar(42)")])
    assert plan.capture.change_log
    Executor(engine, dialect, plan, Options(stop_after=state.COPIED, allow_destructive=True)).run()
    assert all("STRICT_ALL_TABLES" in mode for mode in triggers(engine, "people").values())
    lax = sa.create_engine(mysql_url)
    with lax.begin() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = ''")
        conn.exec_driver_sql("UPDATE people SET name = REPEAT('y', 45) WHERE id = 7")
    lax.dispose()
    with pytest.raises(CopyFailed, match="written during the migration"):
        Executor(engine, dialect, plan, Options(allow_destructive=True)).run()
    assert tables(engine) == {"people", state.STATE_TABLE}
    assert triggers(engine, "people") == {}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM people WHERE id = 7")).scalar_one() == "y" * 45
        assert state.all_migrations(conn)[0].phase == state.FAILED


def test_a_truncating_change_stops_the_copy_and_leaves_the_original(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    names_table(engine)
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT id, name FROM people ORDER BY id")).all()
    plan = build_plan(engine, dialect, "people", [parse_alter("name:varchar(20)")])
    started = threading.active_count()
    with pytest.raises(CopyFailed, match="Data too long"):
        Executor(engine, dialect, plan, Options(chunk_size=300, allow_destructive=True)).run()
    assert threading.active_count() == started  # the verification beside the copy stopped with it
    assert tables(engine) == {"people", state.STATE_TABLE}
    assert triggers(engine, "people") == {}
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT id, name FROM people ORDER BY id")).all() == before
        conn.execute(sa.text("INSERT INTO people (name) VALUES ('still writable')"))
        assert state.all_migrations(conn)[0].phase == state.FAILED


def test_types_are_validated_by_the_server(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    create_products(engine, 10)
    for bad in ("notatype", "decimal(70,2)", "varchar"):
        with pytest.raises(UsageError, match="invalid type"):
            build_plan(engine, dialect, "products", [parse_alter(f"price:{bad}")])
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    assert plan.columns[4].expression == "CAST(src.`price` AS CHAR)"
    assert tables(engine) == {"products"}


def test_swap_held_off_by_a_lock_retries_then_gives_up_with_the_original_untouched(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    initial = create_products(engine, 2000)
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    Executor(engine, dialect, plan, Options(stop_after=state.VERIFIED)).run()

    blocker = sa.create_engine(mysql_url)
    holder = blocker.connect()
    holder.exec_driver_sql("SELECT id FROM products LIMIT 1").all()  # its open transaction holds the table
    try:
        with pytest.raises(CutoverFailed, match="3 attempts"):
            Executor(engine, dialect, plan, Options(lock_retries=3, lock_timeout_ms=1000)).run()
        assert {"products", plan.shadow_table} <= tables(engine) and plan.old_table not in tables(engine)
        assert sorted(triggers(engine, "products")) == sorted(plan.trigger_names)  # dual-write stays on
        with engine.begin() as conn:
            assert state.all_migrations(conn)[0].phase == state.VERIFIED
            conn.execute(sa.text("UPDATE products SET price = '7.77' WHERE id = 5"))
            logged = conn.execute(sa.text(f"SELECT COUNT(*) FROM {dialect.q(plan.capture.logged_table)} WHERE id = 5"))
            assert logged.scalar_one() >= 1
        initial[5]["price"] = "7.77"
    finally:
        holder.rollback()
        holder.close()
        blocker.dispose()

    Executor(engine, dialect, plan).run()
    # after the swap only the way back's reverse capture is on the table (invariant 10)
    assert plan.way_back is not None and plan.way_back.possible
    assert set(triggers(engine, "products")) == set(plan.way_back.trigger_names)
    assert triggers(engine, plan.old_table) == {}
    compare(engine, initial).assert_exact()


@pytest.mark.parametrize("mode", ["change_log", "direct"])
def test_triggers_move_with_the_rename_and_are_dropped_after_it(mysql_url: str, mode: str) -> None:
    engine, dialect = connect(mysql_url)
    initial = create_products(engine, 1000)
    plan = plan_for(engine, dialect, "products", "price:varchar(20)", direct=mode == "direct")
    assert plan.capture.change_log is (mode == "change_log")
    renames = [s for s in plan.swap_sql if s.startswith("RENAME TABLE")]
    assert len(renames) == 1 and len(plan.swap_sql) == (3 if mode == "change_log" else 1)
    assert all(f"DROP TRIGGER IF EXISTS {dialect.q(n)}" in plan.post_swap_sql for n in plan.trigger_names)
    Executor(engine, dialect, plan, Options(stop_after=state.VERIFIED)).run()

    class Crash(Exception):
        pass

    def crash(conn: Any) -> None:
        raise Crash  # the process dies right after the RENAME, before recording it

    with pytest.raises(Crash):
        dialect.run_swap(engine, plan, 1000, crash)
    # The triggers went with the renamed table: the live table has none, nothing was lost.
    assert sorted(triggers(engine, plan.old_table)) == sorted(plan.trigger_names)
    assert triggers(engine, "products") == {}
    assert plan.shadow_table not in tables(engine)

    summary = Executor(engine, dialect, plan).run()  # resume finishes the interrupted swap
    assert summary.old_table == plan.old_table
    assert triggers(engine, plan.old_table) == {}
    with engine.connect() as conn:
        assert state.all_migrations(conn)[0].phase == state.CUT_OVER
    compare(engine, initial).assert_exact()


class CopyWindow(SilentReporter):
    def __init__(self) -> None:
        self.started = self.finished = 0.0

    def copy_started(self, total_estimate: int, already: int) -> None:
        self.started = time.time()

    def copy_finished(self) -> None:
        self.finished = time.time()


@pytest.mark.parametrize("mode", ["change_log", "direct"])
def test_writes_keep_flowing_while_an_auto_increment_table_is_copied(mysql_url: str, mode: str) -> None:
    engine, dialect = connect(mysql_url)
    initial = create_products(engine, ROWS, seed=4)
    plan = plan_for(engine, dialect, "products", "price:varchar(20)", direct=mode == "direct")
    if mode == "change_log":
        assert plan.capture.mode == "change_log" and plan.capture.route.via == "direct"
    elif plan.capture.route.autoinc_lock_mode == 1:
        assert plan.capture.mode == "dual_write" and plan.capture.route.via == "helper"
    window = CopyWindow()
    with Writers(mysql_url, initial, threads=4, seed=4) as writers:
        time.sleep(0.2)
        Executor(engine, dialect, plan, Options(chunk_size=2000, chunk_time=0.2), reporter=window).run()
        time.sleep(0.2)
    stats = writers.total
    assert stats.errors == []
    during = [t for t in stats.commits if window.started <= t <= window.finished]
    assert during, "no write completed while the copy ran"
    assert stats.inserts and stats.rekeys and stats.deletes
    compare(engine, writers.model).assert_exact()
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO products (name, sku, price) VALUES ('after', 'SKU-after', '1.50')"))
        new_id = conn.execute(sa.text("SELECT id FROM products WHERE sku = 'SKU-after'")).scalar_one()
    assert new_id > max(writers.model)


def _chunk_progress(engine: sa.Engine) -> tuple[str, int] | None:
    """The copy transaction in this database and the rows it has written so far, while it runs."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT t.trx_id, t.trx_rows_modified FROM information_schema.INNODB_TRX t "
                "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                "WHERE p.DB = DATABASE() AND p.INFO LIKE 'INSERT INTO%' AND t.trx_rows_modified > 0"
            )
        ).first()
    return (str(row[0]), int(row[1])) if row else None


@pytest.mark.parametrize("via", ["helper", "direct", "change_log"])
def test_an_application_insert_does_not_wait_for_the_chunk_in_progress(mysql_url: str, via: str) -> None:
    """The AUTO-INC lock, shown by the order of events rather than by timing: the application's
    insert returns while the slow first chunk is still inserting. Forcing the chunk straight into
    the shadow (what a plain trigger tool does) makes the insert wait for the whole statement;
    with a change log the trigger writes only the log, and the chunk goes straight in."""
    engine, dialect = connect(mysql_url)
    create_products(engine, 600)
    slow_first_chunk = "IF(src.id > 200 OR SLEEP(0.01) = 0, src.name, src.name)"
    using = {"name": slow_first_chunk}
    plan = plan_for(engine, dialect, "products", "price:varchar(20)", using, direct=via != "change_log")
    assert plan.capture.change_log is (via == "change_log")
    if plan.capture.route.autoinc_lock_mode != 1:
        pytest.skip("the table-level AUTO-INC lock only exists under innodb_autoinc_lock_mode=1 here")
    if via == "direct":
        direct = dataclasses.replace(plan.capture.route, via="direct", helper_table=None)
        plan.capture = dataclasses.replace(plan.capture, route=direct)
        plan.trigger_ddl = dialect.trigger_ddl(plan)
        plan.drop_trigger_ddl = dialect.drop_trigger_ddl(plan)
        plan.swap_sql, plan.post_swap_sql = dialect.swap_sql(plan, {})
    # rows the first chunk's statement writes: 200 into the shadow, and as many into the helper
    full = 400 if via == "helper" else 200
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            Executor(engine, dialect, plan, Options(chunk_size=200, max_chunk=200, verify=False)).run()
        except BaseException as exc:  # asserted on below
            errors.append(exc)

    thread = threading.Thread(target=migrate)
    thread.start()
    try:
        deadline = time.time() + 30
        before = None
        while (before is None or before[1] < 20) and time.time() < deadline:
            time.sleep(0.2)  # INNODB_TRX is a cache refreshed only after 0.1 s without readers
            before = _chunk_progress(engine)
        assert before is not None, "the copy never started"
        app = sa.create_engine(mysql_url)
        with app.begin() as conn:
            conn.execute(sa.text("INSERT INTO products (name, sku, price) VALUES ('app', 'SKU-app', '3.25')"))
        app.dispose()
        time.sleep(0.2)
        after = _chunk_progress(engine)
    finally:
        thread.join(timeout=120)
    assert not errors
    still_inserting = after is not None and after[0] == before[0] and before[1] < after[1] < full
    assert still_inserting is (via != "direct")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT price FROM products WHERE sku = 'SKU-app'")).scalar_one() == "3.25"


@pytest.mark.parametrize("table", ["products", "order_lines"])
def test_rows_copied_counts_only_rows_the_copy_inserted(mysql_url: str, table: str) -> None:
    """Direct dual-write: rows the triggers wrote first are skipped by the copy, not counted."""
    engine, dialect = connect(mysql_url)
    if table == "products":  # AUTO_INCREMENT key: the helper path under mode 1
        create_products(engine, 1000)
        change = "price:varchar(20)"
        touch = "UPDATE products SET stock_quantity = stock_quantity + 1 WHERE id % 27 = 0"
    else:  # composite key without AUTO_INCREMENT: chunks go straight into the shadow
        metadata = sa.MetaData()
        lines = sa.Table(
            "order_lines",
            metadata,
            sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("qty", sa.Integer, nullable=False),
        )
        metadata.create_all(engine)
        with engine.begin() as conn:
            rows = [{"order_id": o, "line_no": n, "qty": o} for o in range(200) for n in range(5)]
            conn.execute(lines.insert(), rows)
        change = "qty:bigint"
        touch = "UPDATE order_lines SET qty = qty + 1 WHERE order_id % 27 = 0"
    plan = plan_for(engine, dialect, table, change, direct=True)
    helper = table == "products" and plan.capture.route.autoinc_lock_mode == 1
    assert plan.capture.route.via == ("helper" if helper else "direct")
    Executor(engine, dialect, plan, Options(stop_after=state.TRIGGERS_INSTALLED)).run()
    with engine.begin() as conn:
        touched = dialect.run(conn, touch).rowcount  # the triggers put these rows in the shadow
    assert touched > 0
    summary = Executor(engine, dialect, plan, Options(chunk_size=130)).run()
    assert summary.rows_copied == 1000 - touched


def test_keys_continue_past_deleted_top_rows_and_a_widened_key_keeps_auto_increment(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    create_products(engine, 1000)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM products WHERE id > 990"))
    with pytest.raises(UsageError, match="integer type"):
        build_plan(engine, dialect, "products", [parse_alter("id:varchar(20)")])
    plan = build_plan(engine, dialect, "products", [parse_alter("id:bigint")])
    Executor(engine, dialect, plan).run()
    id_column = next(c for c in sa.inspect(engine).get_columns("products") if c["name"] == "id")
    assert isinstance(id_column["type"], sa.BigInteger) and id_column["autoincrement"] is True
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO products (name, sku, price) VALUES ('next', 'SKU-next', '1.00')"))
        assert conn.execute(sa.text("SELECT id FROM products WHERE sku = 'SKU-next'")).scalar_one() == 1001


def test_trigger_installation_creates_only_what_is_missing(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    create_products(engine, 500)
    plan = plan_for(engine, dialect, "products", "price:varchar(20)", direct=True)
    other = plan_for(engine, dialect, "products", "price:varchar(20)", {"name": "UPPER(src.name)"}, direct=True)
    Executor(engine, dialect, plan, Options(stop_after=state.SHADOW_CREATED)).run()
    delete_trigger = next(s for s in plan.trigger_ddl if "AFTER DELETE" in s)
    with engine.begin() as conn:  # a crash left only the first trigger behind
        dialect.run(conn, delete_trigger)
    Executor(engine, dialect, plan, Options(stop_after=state.TRIGGERS_INSTALLED)).run()
    assert sorted(triggers(engine, "products")) == sorted(plan.trigger_names)

    assert other.trigger_names == plan.trigger_names
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER {dialect.q(plan.trigger_names[0])}")
        dialect.run(conn, next(s for s in other.trigger_ddl if "AFTER INSERT ON `products`" in s))
        conn.execute(state.migrations.update().values(phase=state.SHADOW_CREATED))
    with pytest.raises(ShadowswapError, match="exists with a different definition"):
        Executor(engine, dialect, plan).run()


@pytest.mark.parametrize(
    ("ddl", "message"),
    [
        (
            "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, total DECIMAL(10,2), "
            "CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE)",
            "foreign key 'fk_customer' of 'orders' cascades \\(ON DELETE CASCADE\\)",
        ),
        ("ALTER TABLE orders ENGINE=MyISAM", "uses the MyISAM engine"),
    ],
)
def test_tables_it_cannot_migrate_are_refused_with_a_clear_error(mysql_url: str, ddl: str, message: str) -> None:
    engine, dialect = connect(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id INT PRIMARY KEY)")
        if not ddl.startswith("CREATE TABLE orders"):
            conn.exec_driver_sql("CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2))")
        conn.exec_driver_sql(ddl)
    with pytest.raises(UsageError, match=message):
        build_plan(engine, dialect, "orders", [parse_alter("total:varchar(20)")])
    assert tables(engine) == {"customers", "orders"}


def test_the_shadow_keeps_the_table_character_set(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(100), n INT) "
            "DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci"
        )
        conn.execute(sa.text("INSERT INTO notes (body, n) VALUES ('café', 1), ('naïve', 2)"))
    plan = build_plan(engine, dialect, "notes", [parse_alter("n:bigint")])
    Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        charset = conn.execute(
            sa.text(
                "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'notes' AND COLUMN_NAME = 'body'"
            )
        ).scalar_one()
        assert charset == "latin1"
        assert conn.execute(sa.text("SELECT body FROM notes ORDER BY id")).scalars().all() == ["café", "naïve"]


def test_a_using_expression_runs_the_same_in_the_copy_and_the_triggers(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    initial = create_products(engine, 3000)
    using = {"price": "CONCAT(FORMAT(src.price, 2), ' %:', src.id)"}  # % and : reach the server as written
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(40)")], using)
    Executor(engine, dialect, plan, Options(stop_after=state.TRIGGERS_INSTALLED)).run()
    with engine.begin() as conn:  # written by the triggers before the copy reaches them
        conn.execute(sa.text("UPDATE products SET price = '1234.5' WHERE id IN (10, 2999)"))
    initial[10]["price"] = initial[2999]["price"] = "1234.50"
    Executor(engine, dialect, plan, Options(chunk_size=400)).run()  # verify compares both paths
    expect = {key: f"{float(row['price']):,.2f} %:{key}" for key, row in initial.items()}
    with engine.connect() as conn:
        got = dict(conn.execute(sa.text("SELECT id, price FROM products")).all())
    assert got == expect


# -- in place: ALGORITHM=INSTANT / NOCOPY|INPLACE, LOCK=NONE -----------------------------------------


def table_id(engine: sa.Engine, table: str) -> int:
    """InnoDB's id of the table: a rebuild (COPY, or INPLACE with a rebuild) creates a new one."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT TABLE_ID FROM information_schema.INNODB_SYS_TABLES WHERE NAME = :n"),
                {"n": f"{conn.exec_driver_sql('SELECT DATABASE()').scalar_one()}/{table}"},
            ).scalar_one()
        )


def show_create(engine: sa.Engine, table: str) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql(f"SHOW CREATE TABLE `{table}`").one()[1])


def test_mysql_rules_for_what_is_instant(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    if not dialect.sa_dialect.is_mariadb:
        pytest.skip("the rules asserted here are MariaDB 10.4+'s")
    create_products(engine, 10)
    with engine.begin() as conn:  # columns whose character set is not the table's carry it in their type
        conn.exec_driver_sql(
            "CREATE TABLE notes (id INT PRIMARY KEY, u VARCHAR(50) CHARACTER SET utf8mb4, "
            "w VARCHAR(100) CHARACTER SET utf8mb4, l VARCHAR(100), b VARBINARY(100), KEY ix_u (u)) "
            "DEFAULT CHARSET=latin1"
        )

    def strategy(table: str = "products", **options: Any) -> str:
        return build_plan(engine, dialect, table, parse_options(**options)).strategy

    mb4 = "character set utf8mb4 collate utf8mb4_general_ci"
    assert strategy(add=["note:varchar(20)"]) == "instant"
    notes = build_plan(engine, dialect, "products", parse_options(add=["note:varchar(20)"])).notes
    assert any("ALGORITHM" in n for n in notes) and not any("cancelled" in n for n in notes)  # MySQL has no timeout
    assert strategy(add=["n:integer not null default 0"]) == "instant"
    assert strategy(drop=["description"]) == "instant"
    assert strategy(rename=["price:unit_price"]) == "instant"
    assert strategy(drop_index=["ix_products_name"]) == "instant"
    assert strategy(alter=["stock_quantity:default 5"]) == "instant"
    assert strategy(alter=["description:drop default"]) == "instant"
    assert strategy("notes", alter=[f"u:varchar(60) {mb4}"]) == "instant"  # 200 → 240 bytes: one length byte
    assert strategy("notes", alter=[f"w:varchar(200) {mb4}"]) == "instant"  # 400 → 800 bytes: two length bytes
    assert strategy("notes", alter=["b:varbinary(255)"]) == "instant"
    assert strategy("notes", alter=[f"u:varchar(64) {mb4}"]) == "shadow"  # 200 → 256 bytes: crosses 255
    assert strategy("notes", alter=["u:varchar(60)"]) == "shadow"  # would become latin1: a conversion
    assert strategy("notes", alter=[f"w:varchar(1000) {mb4}"]) == "shadow"  # past an index key's 3072 bytes
    # the table's default character set is not in the reflected type: 100 → 200 characters might
    # cross 255 bytes (latin1), so the copy; 10 → 60 cannot, whatever the character set
    assert strategy("notes", alter=["l:varchar(200)"]) == "shadow"
    assert strategy(alter=["sku:varchar(120)"]) == "shadow"
    assert strategy("notes", alter=["b:varbinary(256)"]) == "shadow"
    assert strategy(alter=["name:varchar(100)"]) == "shadow"  # narrowing: every row is checked
    assert strategy(alter=["description:not null"]) == "shadow"  # a rebuild that checks every row
    assert strategy(alter=["stock_quantity:null"]) == "shadow"  # DROP NOT NULL rebuilds an InnoDB table
    assert strategy(alter=["stock_quantity:bigint"]) == "shadow"  # a rebuild
    assert strategy(add=["n:datetime default current_timestamp"]) == "shadow"  # computed per row
    assert strategy(add=["n:integer"], using=["n=stock_quantity * 2"]) == "shadow"
    assert strategy(add_index=["ix_new:(sku, name)"]) == "shadow"

    # one ALTER TABLE for the whole plan, with the weakest algorithm every change allows
    plan = build_plan(engine, dialect, "products", parse_options(add=["note:varchar(20)"], rename=["price:cost"]))
    assert plan.instant_sql == [
        "ALTER TABLE products ADD COLUMN note varchar(20), RENAME COLUMN price TO cost, ALGORITHM=INSTANT"
    ]
    plan = build_plan(
        engine, dialect, "products", parse_options(drop=["description"], drop_index=["ix_products_name", "sku"])
    )
    assert plan.strategy == "instant"
    assert plan.instant_sql == [
        "ALTER TABLE products DROP INDEX ix_products_name, DROP INDEX sku, DROP COLUMN description, "
        "ALGORITHM=NOCOPY, LOCK=NONE"
    ]
    # a widened column that is also renamed is one CHANGE clause (MySQL refuses two clauses on a column)
    plan = build_plan(engine, dialect, "notes", parse_options(alter=[f"u:varchar(60) {mb4}"], rename=["u:uu"]))
    assert len(plan.instant_sql) == 1 and plan.instant_sql[0].startswith("ALTER TABLE notes CHANGE u uu varchar(60)")
    Executor(engine, dialect, plan).run()
    assert "`uu` varchar(60) CHARACTER SET utf8mb4" in show_create(engine, "notes")


def test_an_instant_change_does_not_rebuild_the_table_while_writes_go_on(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    initial = create_products(engine, 20_000, seed=7)
    changes = parse_options(
        add=["note:varchar(40) not null default 'none'"],
        drop_index=["ix_products_active_created"],
        alter=["stock_quantity:default 3"],
    )
    plan = build_plan(engine, dialect, "products", changes)
    assert plan.strategy == "instant" and len(plan.instant_sql) == 1
    assert plan.instant_sql[0].endswith(
        "ALGORITHM=NOCOPY, LOCK=NONE" if dialect.sa_dialect.is_mariadb else "ALGORITHM=INPLACE, LOCK=NONE"
    )
    before = table_id(engine, "products")
    with Writers(mysql_url, initial, threads=4, seed=7) as writers:
        time.sleep(0.5)
        summary = Executor(engine, dialect, plan, Options(allow_destructive=True)).run()
        time.sleep(0.5)
    assert summary.strategy == "instant" and summary.rows_copied == 0
    assert table_id(engine, "products") == before  # the same InnoDB table: nothing was rebuilt
    stats = writers.total
    assert stats.errors == []
    assert stats.inserts and stats.updates and stats.rekeys and stats.deletes
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM products WHERE note <> 'none'")).scalar_one() == 0
        assert state.all_migrations(conn)[0].phase == state.ALTERED
    created = show_create(engine, "products")
    assert "ix_products_active_created" not in created and "`stock_quantity` int(11) NOT NULL DEFAULT 3" in created
    # the signal is real: a rebuild gives the table a new id
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE products FORCE")
    assert table_id(engine, "products") != before


def test_an_algorithm_the_server_refuses_is_a_clear_error_and_changes_nothing(mysql_url: str) -> None:
    engine, dialect = connect(mysql_url)
    create_products(engine, 500)
    plan = build_plan(engine, dialect, "products", parse_options(add=["note:varchar(20)"]))
    assert plan.strategy == "instant"
    # what a misjudged rule would produce: a type change no server makes in place
    plan.instant_sql = ["ALTER TABLE products MODIFY stock_quantity bigint NOT NULL DEFAULT 0, ALGORITHM=INSTANT"]
    before, created = table_id(engine, "products"), show_create(engine, "products")
    with pytest.raises(ShadowswapError) as raised:
        Executor(engine, dialect, plan).run()
    message = str(raised.value)
    assert "refused" in message and "ALGORITHM=INSTANT is not supported" in message and "\n" not in message
    assert raised.value.hint is not None and "--strategy shadow" in raised.value.hint
    assert (table_id(engine, "products"), show_create(engine, "products")) == (before, created)
    with engine.connect() as conn:
        assert state.all_migrations(conn)[0].phase == state.ABORTED


def test_instant_through_the_cli_and_a_refusal_the_rules_cannot_foresee(mysql_url: str, tmp_path: Path) -> None:
    engine, _ = connect(mysql_url)
    initial = create_products(engine, 2000)
    before = table_id(engine, "products")
    planned = shadowswap("plan", "products", "--add", "note:varchar(20)", url=mysql_url, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "ALGORITHM=INSTANT" in planned.stdout and "instant" in planned.stdout
    executed = shadowswap("execute", url=mysql_url, cwd=tmp_path)
    assert executed.returncode == 0, executed.stderr
    assert "note" in {c["name"] for c in sa.inspect(engine).get_columns("products")}
    assert table_id(engine, "products") == before
    compare(engine, initial).assert_exact()

    # InnoDB cannot add a column in place to a table with a FULLTEXT index: the rules do not see
    # the table's indexes, the ALGORITHM clause makes the server refuse instead of copying
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE docs (id INT PRIMARY KEY, body TEXT, FULLTEXT KEY ft_body (body))")
        conn.exec_driver_sql("INSERT INTO docs VALUES (1, 'one'), (2, 'two')")
    created, docs_id = show_create(engine, "docs"), table_id(engine, "docs")
    planned = shadowswap("plan", "docs", "--add", "n:int", url=mysql_url, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    refused = shadowswap("execute", url=mysql_url, cwd=tmp_path)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: the server refused to change 'docs' in place: ALGORITHM=INSTANT")
    assert "--strategy shadow" in refused.stderr
    assert (show_create(engine, "docs"), table_id(engine, "docs")) == (created, docs_id)


@pytest.mark.parametrize(
    ("original", "tampered"),
    [
        (("x,y", "z"), ("x", "y,z")),  # a separator inside a value, moved to the next column
        ((None, "z"), ("NULL", "z")),  # NULL against the word NULL
        (("", None), (None, "")),  # an empty string against NULL, swapped between columns
    ],
)
def test_the_checksum_tells_apart_rows_that_spell_alike(
    mysql_url: str, original: tuple[str | None, str | None], tampered: tuple[str | None, str | None]
) -> None:
    engine, dialect = connect(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE pairs (id INT PRIMARY KEY, a VARCHAR(20), b VARCHAR(20), n INT NOT NULL)")
        conn.execute(
            sa.text("INSERT INTO pairs VALUES (1, :a, :b, 1), (2, 'p', 'q', 2)"), {"a": original[0], "b": original[1]}
        )
    plan = build_plan(engine, dialect, "pairs", [parse_alter("n:bigint")])
    Executor(engine, dialect, plan, Options(stop_after=state.INDEXES_BUILT)).run()
    assert verify(engine, dialect, plan).ok
    with engine.begin() as conn:  # row 2 changes; its key waits in the change log, left out of the checksums
        conn.execute(sa.text("UPDATE pairs SET b = 'changed' WHERE id = 2"))
    assert verify(engine, dialect, plan, rechecks=0).ok
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {dialect.q(plan.shadow_table)} SET a = :a, b = :b WHERE id = 1"),
            {"a": tampered[0], "b": tampered[1]},
        )
    with pytest.raises(VerificationFailed, match=r"id=1 \(different\)"):
        verify(engine, dialect, plan, rechecks=0)


def test_the_checksum_tells_apart_two_rows_that_swapped_a_value(mysql_url: str) -> None:
    """Rows 1 and 2 of the shadow trade their values of the same length. A checksum that XORs a
    linear hash of each row (CRC32, pt-table-checksum's default, 2.3 times cheaper here) cannot see
    that: CRC32(a) ^ CRC32(b) = CRC32(a') ^ CRC32(b') whenever a ^ b = a' ^ b' and the lengths
    match (docs/performance.md). The per-row MD5 is why the checksum costs what it does."""
    engine, dialect = connect(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE pairs (id INT PRIMARY KEY, a VARCHAR(20) NOT NULL, n INT NOT NULL)")
        conn.exec_driver_sql("INSERT INTO pairs VALUES (1, 'abc', 1), (2, 'xyz', 2), (3, 'pqr', 3)")
        crc = conn.exec_driver_sql(
            "SELECT (CRC32(\"1,'abc'\") ^ CRC32(\"2,'xyz'\")) = (CRC32(\"1,'xyz'\") ^ CRC32(\"2,'abc'\"))"
        ).scalar()
    assert crc == 1  # the blind spot this test guards against
    plan = build_plan(engine, dialect, "pairs", [parse_alter("n:bigint")])
    Executor(engine, dialect, plan, Options(stop_after=state.INDEXES_BUILT)).run()
    assert verify(engine, dialect, plan).ok
    shadow = dialect.q(plan.shadow_table)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {shadow} SET a = CASE id WHEN 1 THEN 'xyz' ELSE 'abc' END WHERE id IN (1, 2)")
    with pytest.raises(VerificationFailed, match=r"id=1 \(different\).*id=2 \(different\)"):
        verify(engine, dialect, plan, rechecks=0)


def test_change_log_replay_meets_a_stale_unique_value_and_takes_the_whole_log(mysql_url: str) -> None:
    """A MySQL replay reads the original's newest rows, not a snapshot: a batch can apply a row
    whose unique value another row still holds in the shadow, because that row's own move is
    logged later than the batch reaches. The duplicate sends the replay over the whole log."""
    engine, dialect = connect(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL, code VARCHAR(20) NOT NULL, "
            "UNIQUE KEY uq_code (code))"
        )
        conn.exec_driver_sql("INSERT INTO items SELECT seq, seq, CONCAT('c', seq) FROM seq_1_to_20000")
    plan = build_plan(engine, dialect, "items", [parse_alter("v:bigint")])
    assert plan.capture.change_log and [u.name for u in plan.capture.unique_after_copy] == ["uq_code"]
    Executor(engine, dialect, plan, Options(stop_after=state.INDEXES_BUILT)).run()
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE items SET v = -1 WHERE id = 20000")  # logged first
        conn.exec_driver_sql("UPDATE items SET code = 'spare' WHERE id = 1")  # c1 leaves row 1 ...
        conn.exec_driver_sql("UPDATE items SET code = 'c1' WHERE id = 20000")  # ... and reaches row 20000
        conn.exec_driver_sql("DELETE FROM items WHERE id = 5")
        conn.exec_driver_sql("UPDATE items SET id = 30000 WHERE id = 6")
    one_at_a_time = connect(mysql_url)[1]
    one_at_a_time.replay_batch = 1  # the first batch is row 20000's first entry alone: 'c1' is stale in row 1
    assert one_at_a_time.replay(engine, plan) == 6  # retried over the whole log
    Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, v, code FROM items ORDER BY id").all()
        old = conn.exec_driver_sql(f"SELECT id, v, code FROM {dialect.q(plan.old_table)} ORDER BY id").all()
        uniques = {u["name"] for u in sa.inspect(conn).get_unique_constraints("items")}
    assert rows == old and (1, 1, "spare") in rows and (20000, -1, "c1") in rows
    assert (30000, 6, "c6") in rows and all(r[0] not in (5, 6) for r in rows)
    assert uniques == {"uq_code"}


def test_change_log_swap_lets_no_queued_write_reach_the_old_table(mysql_url: str) -> None:
    """The swap holds the table while it applies the last entries; the writes queued behind it must
    land in the new table. Held here for 0.3 s so that every writer is queued: a RENAME that waits
    on the shadow first, or a lock that lets writes wait inside InnoDB, lets them into the old one."""
    engine, dialect = connect(mysql_url)
    initial = create_products(engine, 3000)
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    assert plan.capture.change_log and plan.shadow_table > plan.table
    Executor(engine, dialect, plan, Options(stop_after=state.VERIFIED)).run()
    carry = dialect._carry_auto_increment

    def slow_carry(conn: Any, plan_: Any) -> None:
        carry(conn, plan_)
        time.sleep(0.3)

    dialect._carry_auto_increment = slow_carry  # type: ignore[method-assign]
    with Writers(mysql_url, initial, threads=6, seed=21, pause=0) as writers:
        time.sleep(0.3)
        summary = Executor(engine, dialect, plan, Options(lock_timeout_ms=2000)).run()
        time.sleep(0.3)
    assert summary.cutover_lock_ms is not None and summary.cutover_lock_ms >= 300
    assert writers.total.errors == []
    assert plan.capture.logged_table not in tables(engine)  # kept only when writes got past the swap
    compare(engine, writers.model).assert_exact()


def test_triggers_or_keys_changed_since_the_plan_stop_the_swap(mysql_url: str) -> None:
    """The swap moves the triggers and keys the plan read: one dropped since would come back, one
    added since would stay on the old table. The swap refuses instead, before moving anything."""
    engine, dialect = connect(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE kinds (id INT PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE audit (n INT)")
        conn.exec_driver_sql("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, kind INT, qty INT)")
        conn.exec_driver_sql("INSERT INTO items (qty) SELECT seq FROM seq_1_to_100")
        conn.exec_driver_sql("CREATE TRIGGER trg_a AFTER INSERT ON items FOR EACH ROW INSERT INTO audit VALUES (1)")
    plan = build_plan(engine, dialect, "items", [parse_alter("qty:bigint")])
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER trg_a")
    with pytest.raises(ShadowswapError, match=r"the triggers on 'items' changed since the plan \(none now, trg_a"):
        Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        assert sorted(dialect.existing_triggers(conn, "items")) == sorted(plan.trigger_names)
        assert "items_ss_new" in sa.inspect(conn).get_table_names()  # nothing swapped: abort or plan again

    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE items_ss_new, _items_ss_log")
        for name in plan.trigger_names:
            conn.exec_driver_sql(f"DROP TRIGGER {dialect.q(name)}")
        conn.exec_driver_sql("DELETE FROM shadowswap_migrations")
    plan = build_plan(engine, dialect, "items", [parse_alter("qty:bigint")])
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE orders (id INT PRIMARY KEY, item_id INT,"
            " CONSTRAINT fk_item FOREIGN KEY (item_id) REFERENCES items (id))"
        )
    with pytest.raises(ShadowswapError, match=r"the foreign keys from or to 'items' changed since the plan \(fk_item"):
        Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        assert conn.exec_driver_sql(
            "SELECT table_name, referenced_table_name FROM information_schema.referential_constraints"
            " WHERE constraint_schema = DATABASE()"
        ).fetchall() == [("orders", "items")]
