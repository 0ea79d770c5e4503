"""SQLite-only behaviour: other processes, views and triggers across the swap, index names,
AUTOINCREMENT, the write-lock discipline and SQLite's forgiving casts."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import fresh_database
from harness import Writer, WriterPool, Writers, compare, create_products

from shadowswap import state
from shadowswap.changes import parse_alter, parse_options
from shadowswap.db import connect
from shadowswap.dialects.sqlite import SQLiteDialect, index_body
from shadowswap.dialects.sqlite.tabletext import ColumnEdit, parse, rewrite_table
from shadowswap.errors import CopyFailed, CutoverFailed, UsageError, VerificationFailed
from shadowswap.executor import Executor, Options, cleanup
from shadowswap.planner import build_plan

ROWS = int(os.environ.get("SHADOWSWAP_TEST_ROWS", "100000"))
TESTS = Path(__file__).parent


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("sqlite", tmp_path)


def db_path(url: str) -> str:
    database = sa.make_url(url).database
    assert database
    return database


def price_plan(engine: sa.Engine, dialect: Any, table: str = "products") -> Any:
    return build_plan(engine, dialect, table, [parse_alter("price:varchar(20)")])


def schema(engine: sa.Engine, kind: str) -> dict[str, tuple[str, str]]:
    """name -> (table it belongs to, stored SQL) of every object of ``kind`` in sqlite_master."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = :k AND sql IS NOT NULL"), {"k": kind}
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def integrity(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]


def test_writer_in_another_process_keeps_writing(sqlite_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(sqlite_url)
    create_products(engine, ROWS)
    plan = price_plan(engine, dialect)
    out, stop = tmp_path / "writer.json", tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, str(TESTS / "sqlite_writer.py"), sqlite_url, str(out), str(stop), "5"], cwd=TESTS
    )
    try:
        deadline = time.time() + 60
        while not Path(f"{out}.started").exists():
            assert writer.poll() is None and time.time() < deadline, "the writer process did not start"
            time.sleep(0.05)
        time.sleep(0.3)
        started = time.time()
        summary = Executor(engine, dialect, plan, Options(chunk_time=dialect.default_chunk_time)).run()
        finished = time.time()
        time.sleep(0.3)  # and on into the new table
    finally:
        stop.touch()
        writer.wait(timeout=120)
    assert writer.returncode == 0
    result = json.loads(out.read_text())
    assert result["errors"] == []
    assert all(result["counts"].values()), result["counts"]
    during = [t for t in result["commits"] if started < t < finished]
    after = [t for t in result["commits"] if t > finished]
    assert len(during) > 20 and after, (len(during), len(after))
    assert summary.rows_copied > 0
    model = {int(key): row for key, row in result["model"]}
    compare(engine, model).assert_exact()
    assert integrity(engine) == ["ok"]


def test_each_chunk_is_one_begin_immediate_transaction(sqlite_url: str) -> None:
    """What SQLite itself executed, per connection: every chunk (bound query, copy, checkpoint)
    inside its own BEGIN IMMEDIATE … COMMIT (invariants 3 and 4)."""
    engine, dialect = connect(sqlite_url)
    create_products(engine, 3000)
    plan = price_plan(engine, dialect)
    engine.dispose()  # new connections only, each traced
    traces: dict[int, list[str]] = {}

    @sa.event.listens_for(engine, "connect")
    def trace(dbapi_connection: Any, _record: Any) -> None:
        lines = traces.setdefault(id(dbapi_connection), [])
        dbapi_connection.set_trace_callback(lambda sql: lines.append(" ".join(sql.split())))

    Executor(engine, dialect, plan, Options(chunk_size=500, min_chunk=500, max_chunk=500)).run()
    copy_head = f"INSERT INTO {dialect.q(plan.shadow_table)}"
    chunks = 0
    for lines in traces.values():
        transaction: list[str] = []
        for line in lines:
            if line.startswith("BEGIN"):
                transaction = [line]
            elif line.startswith(("COMMIT", "ROLLBACK")):
                if any(s.startswith(copy_head) and "ON CONFLICT" in s and "SELECT" in s for s in transaction):
                    chunks += 1
                    assert transaction[0] == "BEGIN IMMEDIATE", transaction[:3]
                    assert any(s.startswith("SELECT") and "LIMIT 1 OFFSET" in s for s in transaction)
                    assert any(s.startswith(f"UPDATE {state.STATE_TABLE}") for s in transaction)
                    copies = [s for s in transaction if s.startswith(copy_head) and "DO NOTHING" in s]
                    assert len(copies) == 1
                transaction = []
            elif transaction:
                transaction.append(line)
    assert chunks == 6  # 3000 rows in chunks of 500


def test_views_and_triggers_follow_the_new_table(sqlite_url: str) -> None:
    engine, dialect = connect(sqlite_url)
    initial = create_products(engine, 3000)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE VIEW active_products AS SELECT id, name, price FROM products WHERE is_active")
        conn.exec_driver_sql("CREATE TABLE audit (product_id INTEGER, price TEXT)")
        conn.exec_driver_sql(
            "CREATE TRIGGER audit_price AFTER UPDATE ON products BEGIN "
            "INSERT INTO audit (product_id, price) VALUES (NEW.id, NEW.price); END"
        )
        conn.exec_driver_sql("CREATE TABLE restock (product_id INTEGER, qty INTEGER)")
        conn.exec_driver_sql(
            "CREATE TRIGGER restock_products AFTER INSERT ON restock BEGIN "
            "UPDATE products SET stock_quantity = stock_quantity + NEW.qty WHERE id = NEW.product_id; END"
        )
    views_before, triggers_before = schema(engine, "view"), schema(engine, "trigger")
    plan = price_plan(engine, dialect)
    with Writers(sqlite_url, initial, threads=2, seed=4) as writers:
        time.sleep(0.2)
        Executor(engine, dialect, plan, Options(chunk_size=300, chunk_time=0.02)).run()
        time.sleep(0.2)
    stats = writers.total
    assert stats.errors == [] and stats.updates and stats.rekeys
    compare(engine, writers.model).assert_exact()

    # the view's and the triggers' SQL still name `products`, and the trigger sits on the new table
    assert schema(engine, "view") == views_before
    # the application's triggers, as they were; beside them the reverse capture (issue 16, revert.py)
    assert {k: v for k, v in schema(engine, "trigger").items() if "_ss_r" not in k} == triggers_before
    with engine.begin() as conn:
        # every update the writers committed, before, during and after the swap, was audited once
        assert conn.exec_driver_sql("SELECT count(*) FROM audit").scalar_one() == stats.updates + stats.rekeys
        key = next(k for k, row in writers.model.items() if row["is_active"])
        stock = writers.model[key]["stock_quantity"]
        conn.exec_driver_sql(f"INSERT INTO restock (product_id, qty) VALUES ({key}, 7)")
        assert conn.exec_driver_sql(f"SELECT stock_quantity FROM products WHERE id = {key}").scalar_one() == stock + 7
        audited = conn.exec_driver_sql(f"SELECT typeof(price) FROM audit WHERE product_id = {key}").scalar_one()
        view_price = conn.exec_driver_sql(f"SELECT typeof(price) FROM active_products WHERE id = {key}").scalar_one()
        old_triggers = dialect.existing_triggers(conn, plan.old_table)
    assert (audited, view_price) == ("text", "text")  # read from the new table's varchar column
    assert old_triggers == []
    assert integrity(engine) == ["ok"]


@pytest.mark.parametrize("in_schema", [True, False], ids=["renamed-in-sqlite_master", "rebuilt-in-swap"])
def test_indexes_keep_names_and_definitions(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, in_schema: bool) -> None:
    engine, dialect = connect(sqlite_url)
    initial = create_products(engine, 3000)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_lower_name ON products (lower(name)) WHERE is_active")
        conn.exec_driver_sql(
            'CREATE INDEX "odd ""quoted"" name" ON products (stock_quantity DESC, name COLLATE NOCASE)'
        )
        conn.exec_driver_sql("create unique index [bracketed] on products(sku, price)")
    before = {n: sql for n, (t, sql) in schema(engine, "index").items() if t == "products"}
    assert len(before) == 5
    if not in_schema:  # as on a build whose defensive mode forbids editing sqlite_master
        monkeypatch.setattr(SQLiteDialect, "_can_write_schema", lambda self, conn: False)
    plan = price_plan(engine, dialect)
    assert {ix.final_name for ix in plan.indexes} == set(before)
    observer = sa.create_engine(sqlite_url)  # an application connection opened before the swap
    with observer.connect() as app:
        app.exec_driver_sql("SELECT count(*) FROM products").scalar_one()
        with Writers(sqlite_url, initial, threads=2, seed=6) as writers:
            Executor(engine, dialect, plan, Options(chunk_size=300, chunk_time=0.02)).run()
            time.sleep(0.2)
        assert writers.total.errors == []
        explain = "EXPLAIN QUERY PLAN SELECT id FROM products WHERE lower(name) = 'x' AND is_active"
        query_plan = " ".join(str(r[-1]) for r in app.exec_driver_sql(explain))
    observer.dispose()
    assert "ix_lower_name" in query_plan  # the other connection reloaded the schema and uses the new name

    indexes = schema(engine, "index")
    after = {n: sql for n, (t, sql) in indexes.items() if t == "products"}
    assert set(after) == set(before)
    for name, sql in before.items():
        assert index_body(after[name]) == index_body(sql)
        assert after[name].startswith("CREATE UNIQUE") == sql.startswith("CREATE UNIQUE")
    on_old = {n for n, (t, _sql) in indexes.items() if t == plan.old_table}
    assert on_old == ({ix.old_name for ix in plan.indexes} if in_schema else set())
    compare(engine, writers.model).assert_exact()
    assert integrity(engine) == ["ok"]
    dropped = cleanup(engine, dialect, None)
    assert [m.old_table for m in dropped] == [plan.old_table]
    assert integrity(engine) == ["ok"]


def test_autoincrement_never_reuses_a_key(sqlite_url: str) -> None:
    engine, dialect = connect(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, prio INTEGER)"
        )
        rows = [{"t": f"t{i}", "p": i} for i in range(100)]
        conn.execute(sa.text("INSERT INTO tickets (title, prio) VALUES (:t, :p)"), rows)
        conn.exec_driver_sql("DELETE FROM tickets WHERE id > 90")  # ids 91..100 were handed out
    plan = build_plan(engine, dialect, "tickets", [parse_alter("prio:varchar(10)")])
    assert "AUTOINCREMENT" in plan.shadow_ddl[0]
    Executor(engine, dialect, plan).run()

    def insert() -> int:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tickets (title, prio) VALUES ('new', '1')")
            return int(conn.exec_driver_sql("SELECT max(id) FROM tickets").scalar_one())

    assert "AUTOINCREMENT" in schema(engine, "table")["tickets"][1]
    assert insert() == 101
    cleanup(engine, dialect, None)
    assert insert() == 102
    with engine.connect() as conn:
        names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_sequence")}
    assert names == {"tickets"}


# -- SQLite's casts never fail; shadowswap's do, the same way on both paths (invariants 1 and 8) --

CONVERSIONS = {
    # column: (old type, new type, values that convert)
    "a": ("VARCHAR(20)", "integer", ["12", " 7 ", "-3", "12.0", None]),
    "b": ("NUMERIC(10, 2)", "varchar(20)", [12.5, 3, "text stays", None]),
    "c": ("INTEGER", "real", [3, -1, None]),
    "d": ("TEXT", "datetime", ["2024-01-02 03:04:05", "20240102", None]),
    "e": ("TEXT", "decimal(10, 2)", ["12.50", "7", " 1.25", None]),
    "f": ("INTEGER", "text", [42, 0, None]),
    "g": ("BLOB", "text", [b"\x00\xff", "plain", None]),
}


def test_conversions_are_identical_in_copy_and_triggers(sqlite_url: str) -> None:
    engine, dialect = connect(sqlite_url)
    columns = ", ".join(f"{c} {old}" for c, (old, _new, _values) in CONVERSIONS.items())
    n = max(len(values) for _old, _new, values in CONVERSIONS.values())
    rows = [{c: values[i % len(values)] for c, (_o, _n, values) in CONVERSIONS.items()} for i in range(n)]
    names, params = ", ".join(CONVERSIONS), ", ".join(f":{c}" for c in CONVERSIONS)
    insert = sa.text(f"INSERT INTO vals (id, {names}) VALUES (:id, {params})")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE vals (id INTEGER PRIMARY KEY, {columns})")
        conn.execute(insert, [{"id": i + 1, **row} for i, row in enumerate(rows)])  # these go through the copy
    plan = build_plan(engine, dialect, "vals", [parse_alter(f"{c}:{new}") for c, (_o, new, _v) in CONVERSIONS.items()])
    Executor(engine, dialect, plan, Options(stop_after=state.TRIGGERS_INSTALLED)).run()
    with engine.begin() as conn:  # the same values through the insert trigger, and through the update trigger
        conn.execute(insert, [{"id": 100 + i, **row} for i, row in enumerate(rows)])
        conn.execute(insert, [{"id": 200 + i, **{c: None for c in CONVERSIONS}} for i in range(n)])
        for i, row in enumerate(rows):
            sets = ", ".join(f"{c} = :{c}" for c in CONVERSIONS)
            conn.execute(sa.text(f"UPDATE vals SET {sets} WHERE id = :id"), {"id": 200 + i, **row})
    Executor(engine, dialect, plan).run()  # resumes: copy, verify (the digest agrees), swap
    stored = ", ".join(f"{c}, typeof({c})" for c in CONVERSIONS)
    with engine.connect() as conn:
        got = {r[0]: tuple(r[1:]) for r in conn.exec_driver_sql(f"SELECT id, {stored} FROM vals")}
    for i in range(n):
        assert got[i + 1] == got[100 + i] == got[200 + i]
    a_column = [got[i + 1][0:2] for i in range(len(CONVERSIONS["a"][2]))]
    assert a_column == [(12, "integer"), (7, "integer"), (-3, "integer"), (12, "integer"), (None, "null")]
    assert [got[i + 1][2] for i in range(4)] == ["12.5", "3", "text stays", None]
    assert [got[i + 1][6:8] for i in range(3)] == [
        ("2024-01-02 03:04:05", "text"),
        (20240102, "integer"),
        (None, "null"),
    ]
    assert got[1][12:14] == (b"\x00\xff", "blob")  # text affinity leaves blobs alone


@pytest.mark.parametrize(
    ("old", "new", "bad"),
    [
        ("VARCHAR(20)", "integer", "abc"),
        ("VARCHAR(20)", "integer", "12abc"),
        ("NUMERIC(10, 2)", "integer", 12.5),
        ("TEXT", "decimal(10, 2)", "twelve"),
        ("TEXT", "real", "1.5x"),
    ],
)
def test_a_value_that_does_not_fit_stops_the_copy_and_the_write(sqlite_url: str, old: str, new: str, bad: Any) -> None:
    engine, dialect = connect(sqlite_url)
    rows = [{"id": i, "v": i} for i in range(1, 50)] + [{"id": 50, "v": bad}]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE vals (id INTEGER PRIMARY KEY, v {old})")
        conn.execute(sa.text("INSERT INTO vals (id, v) VALUES (:id, :v)"), rows)
    plan = build_plan(engine, dialect, "vals", [parse_alter(f"v:{new}")])
    Executor(engine, dialect, plan, Options(stop_after=state.TRIGGERS_INSTALLED)).run()
    # the application writes a value the new type cannot hold: the trigger refuses the write
    with pytest.raises(sa.exc.OperationalError, match="does not fit"), engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO vals (id, v) VALUES (51, :v)"), {"v": bad})
    with pytest.raises(CopyFailed, match="does not fit"):
        Executor(engine, dialect, plan, Options(chunk_size=10)).run()
    assert plan.shadow_table not in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert dialect.existing_triggers(conn, "vals") == []
        assert conn.exec_driver_sql("SELECT count(*) FROM vals").scalar_one() == 50


def test_null_into_not_null_stops_the_copy(sqlite_url: str) -> None:
    """INSERT OR IGNORE would have skipped these rows and lost them (invariant 2)."""
    engine, dialect = connect(sqlite_url)
    create_products(engine, 500)  # every 7th description is NULL
    plan = build_plan(engine, dialect, "products", [parse_alter("description:text not null")])
    with pytest.raises(CopyFailed, match="NOT NULL"):
        Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM products").scalar_one() == 500
    assert plan.shadow_table not in sa.inspect(engine).get_table_names()


def test_second_migration_is_refused_while_the_lock_is_held(sqlite_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(sqlite_url)
    create_products(engine, 200)
    price_plan(engine, dialect).write(tmp_path / "plan.json")
    env = {**os.environ, "DATABASE_URL": sqlite_url}
    command = [sys.executable, "-m", "shadowswap", "execute", "plan.json"]
    with dialect.migration_lock(engine, "products") as got:
        assert got
        locks = list(Path(db_path(sqlite_url)).parent.glob("*.lock"))
        assert len(locks) == 1
        refused = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 5, refused.stderr
        assert "another shadowswap process" in refused.stderr
    assert not locks[0].exists()  # released and removed
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not locks[0].exists()


def test_swap_gives_way_to_a_writer_holding_the_lock(sqlite_url: str) -> None:
    engine, dialect = connect(sqlite_url)
    initial = create_products(engine, 500)
    plan = price_plan(engine, dialect)
    Executor(engine, dialect, plan, Options(stop_after=state.VERIFIED)).run()
    blocker = sqlite3.connect(db_path(sqlite_url), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("UPDATE products SET stock_quantity = 1 WHERE id = 1")
    try:
        with pytest.raises(CutoverFailed, match="could not lock"):
            Executor(engine, dialect, plan, Options(lock_timeout_ms=20, lock_retries=3)).run()
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    initial[1]["stock_quantity"] = 1
    with engine.connect() as conn:
        assert len(dialect.existing_triggers(conn, "products")) == 3  # dual-write stays on
        assert state.all_migrations(conn)[0].phase == state.VERIFIED
    Executor(engine, dialect, plan).run()
    compare(engine, initial).assert_exact()


def test_key_changes_under_a_long_running_reader(sqlite_url: str) -> None:
    """WAL: a reader holding one snapshot for the whole migration blocks neither the copy nor the swap."""
    engine, dialect = connect(sqlite_url)
    initial = create_products(engine, 2000)
    plan = price_plan(engine, dialect)
    reader = sqlite3.connect(db_path(sqlite_url), isolation_level=None)
    reader.execute("BEGIN")
    seen = reader.execute("SELECT count(*) FROM products").fetchone()[0]
    first = list(initial)[:200]

    def rekey(engine: sa.Engine, w: Writer) -> str | None:
        if not first:
            return None  # all 200 re-keyed: idle until the migration ends
        old, key = first[0], -(201 - len(first))
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE products SET id = :new WHERE id = :old"), {"new": key, "old": old})
        first.pop(0)
        w.model[key] = w.model.pop(old)
        return "rekeys"

    # an engine of its own, as the application would have; pysqlite waits 5 s for the write lock
    with WriterPool(sqlite_url, rekey, initial) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=200, chunk_time=0.02)).run()
    assert reader.execute("SELECT count(*) FROM products").fetchone()[0] == seen
    reader.execute("ROLLBACK")
    reader.close()
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE {s} SET name = name || ' ' WHERE id = 10",
        "UPDATE {s} SET name = upper(name) WHERE id = 10",  # equal under NOCASE, not under BINARY
        "UPDATE {s} SET price = price || '0' WHERE id = 10",  # '12.340' is not the text '12.34'
        "DELETE FROM {s} WHERE id = 10",
        "INSERT INTO {s} (id, name, sku, price, stock_quantity, is_active) VALUES (0, 'x', 'x', '1', 1, 1)",
    ],
    ids=["changed", "case", "numeric-text", "missing", "extra"],
)
def test_verification_finds_a_shadow_that_differs(sqlite_url: str, tamper: str) -> None:
    engine, dialect = connect(sqlite_url)
    create_products(engine, 1000)
    plan = price_plan(engine, dialect)
    Executor(engine, dialect, plan, Options(stop_after=state.INDEXES_BUILT)).run()
    with engine.begin() as conn:  # behind the triggers' back
        conn.exec_driver_sql(tamper.format(s=dialect.q(plan.shadow_table)))
    with pytest.raises(VerificationFailed, match="differs"):
        Executor(engine, dialect, plan).run()
    assert plan.old_table not in sa.inspect(engine).get_table_names()  # nothing was swapped


def test_foreign_keys_come_with_the_new_table(sqlite_url: str) -> None:
    engine, dialect = connect(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("INSERT INTO categories (id, name) VALUES (1, 'a'), (2, 'b')")
        conn.exec_driver_sql(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, category_id INTEGER, qty INTEGER, "
            "FOREIGN KEY (category_id) REFERENCES categories (id) ON DELETE CASCADE)"
        )
        conn.exec_driver_sql(  # reflection loses a column-level action; the table's own text keeps it
            "CREATE TABLE lines (id INTEGER PRIMARY KEY, item INTEGER REFERENCES items (id) ON DELETE CASCADE, n INT)"
        )
        conn.execute(
            sa.text("INSERT INTO items (id, category_id, qty) VALUES (:i, :c, :q)"),
            [{"i": i, "c": 1 + i % 2, "q": i} for i in range(1, 200)],
        )
        conn.exec_driver_sql("INSERT INTO lines (item, n) SELECT id, id FROM items")
    plan = build_plan(engine, dialect, "lines", [parse_alter("n:bigint")])
    assert "item INTEGER REFERENCES items (id) ON DELETE CASCADE" in plan.shadow_ddl[0]
    Executor(engine, dialect, plan).run()
    # items is referenced by lines: the swap leaves lines' key on `items`, the new table
    plan = build_plan(engine, dialect, "items", [parse_alter("qty:bigint")])
    assert plan.foreign_key_ddl == [] and "REFERENCES categories (id) ON DELETE CASCADE" in plan.shadow_ddl[0]
    Executor(engine, dialect, plan).run()
    app = sqlite3.connect(db_path(sqlite_url))
    app.execute("PRAGMA foreign_keys = ON")
    assert [r[2] for r in app.execute("PRAGMA foreign_key_list(lines)")] == ["items"]
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        app.execute("INSERT INTO items (id, category_id, qty) VALUES (500, 99, 1)")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        app.execute("INSERT INTO lines (item, n) VALUES (500, 1)")
    app.execute("DELETE FROM categories WHERE id = 2")  # cascades into the new items, then into lines
    app.commit()
    assert app.execute("SELECT count(*) FROM items").fetchone()[0] == 99  # the odd ids were in category 2
    assert app.execute("SELECT count(*) FROM lines").fetchone()[0] == 99
    assert app.execute("PRAGMA foreign_key_check").fetchall() == []
    app.close()


def _rootpage(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        page = conn.execute(sa.text("SELECT rootpage FROM sqlite_master WHERE name = :n"), {"n": name}).scalar_one()
    return int(page)


def test_sqlite_rules_for_what_is_instant(sqlite_url: str) -> None:
    engine, dialect = connect(sqlite_url)
    create_products(engine, 10)

    def strategy(**options: Any) -> str:
        return build_plan(engine, dialect, "products", parse_options(**options)).strategy

    assert strategy(add=["note:text"]) == "instant"
    assert strategy(add=["n:integer not null default 0"]) == "instant"
    assert strategy(rename=["price:unit_price"]) == "instant"
    assert strategy(drop_index=["ix_products_name"]) == "instant"
    assert strategy(add=["seen:timestamp default CURRENT_TIMESTAMP"]) == "shadow"  # SQLite refuses it in place
    assert strategy(add=["n:integer"], using=["n=stock_quantity * 2"]) == "shadow"
    assert strategy(drop=["description"]) == "shadow"  # DROP COLUMN rewrites every row
    assert strategy(alter=["stock_quantity:default 5"]) == "shadow"  # SQLite cannot change a default
    assert strategy(alter=["price:varchar(20)"]) == "shadow"
    assert strategy(add_index=["ix_new:(sku, name)"]) == "shadow"


def test_sqlite_instant_changes_touch_no_row_while_writers_write(sqlite_url: str) -> None:
    """Columns added and an index dropped in place: the table's b-tree stays where it was (no
    rewrite), the other index too, and every write the application committed is there."""
    engine, dialect = connect(sqlite_url)
    initial = create_products(engine, 20_000, seed=8)
    plan = build_plan(
        engine, dialect, "products",
        parse_options(add=["note:text default 'n/a'", "rating:integer"], drop_index=["ix_products_name"]),
    )  # fmt: skip
    assert plan.strategy == "instant", plan.strategy_reason
    table_page, index_page = _rootpage(engine, "products"), _rootpage(engine, "ix_products_active_created")
    with Writers(sqlite_url, initial, threads=2, seed=8) as writers:
        time.sleep(0.3)
        summary = Executor(engine, dialect, plan, Options(allow_destructive=True)).run()
        time.sleep(0.3)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    assert summary.strategy == "instant" and summary.rows_copied == 0
    assert (_rootpage(engine, "products"), _rootpage(engine, "ix_products_active_created")) == (table_page, index_page)
    with engine.connect() as conn:
        assert conn.execute(
            sa.text("SELECT count(*) FROM products WHERE note = 'n/a' AND rating IS NULL")
        ).scalar_one() == len(writers.model)
        assert conn.execute(sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'ix_products_name'")).scalar() == 0


def test_sqlite_instant_rename_carries_views_and_indexes_along(sqlite_url: str) -> None:
    engine, dialect = connect(sqlite_url)
    create_products(engine, 500)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE VIEW cheap AS SELECT id, name FROM products WHERE price < 10"))
        before = conn.execute(sa.text("SELECT count(*) FROM cheap")).scalar_one()
    plan = build_plan(engine, dialect, "products", parse_options(rename=["price:unit_price", "name:title"]))
    assert plan.strategy == "instant"
    Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cheap")).scalar_one() == before
        view_sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'cheap'")).scalar_one()
        index_sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'ix_products_name'")).scalar_one()
    assert "unit_price" in view_sql and "title" in index_sql
    assert {"unit_price", "title"} <= {c["name"] for c in sa.inspect(engine).get_columns("products")}


def test_the_new_table_is_the_original_text_with_only_the_changes(sqlite_url: str) -> None:
    """The 12-step way: the stored CREATE TABLE with the changed columns rewritten, the rest as written."""
    engine, dialect = connect(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE kinds (id integer primary key)")
        conn.exec_driver_sql("INSERT INTO kinds VALUES (1), (2)")
        conn.exec_driver_sql(
            "CREATE TABLE gear (\n  id bigint primary key, -- no NOT NULL, as SQLite allows\n"
            "  label varchar(20) collate nocase not null unique default 'a, (b)',\n"
            '  "kind" integer constraint fk_kind references kinds (id) on delete cascade,\n'
            "  shape widget, old_col, qty integer check (qty >= 0),\n"
            "  constraint ck_label check (length(label) < 99)\n) WITHOUT ROWID"
        )
        conn.exec_driver_sql(
            "INSERT INTO gear VALUES (-5, 'x', 1, 'round', 1, 3), (9223372036854775807, 'y', 2, NULL, 2, 4)"
        )
    changes = parse_options(
        alter=["qty:bigint not null default 7"], drop=["old_col"], rename=["kind:kind_id"], add=["note:text"]
    )
    plan = build_plan(engine, dialect, "gear", changes)
    Executor(engine, dialect, plan, Options(allow_destructive=True)).run()
    assert schema(engine, "table")["gear"][1] == (
        'CREATE TABLE "gear" (\n  id bigint primary key, -- no NOT NULL, as SQLite allows\n'
        "  label varchar(20) collate nocase not null unique default 'a, (b)',\n"
        '  "kind_id" integer constraint fk_kind references kinds (id) on delete cascade,\n'
        "  shape widget, qty bigint check (qty >= 0) NOT NULL DEFAULT 7, note text,\n"
        "  constraint ck_label check (length(label) < 99)\n) WITHOUT ROWID"
    )
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, label, kind_id, shape, qty, note FROM gear ORDER BY id").fetchall()
    assert rows == [(-5, "x", 1, "round", 3, None), (9223372036854775807, "y", 2, None, 4, None)]


def test_plan_refuses_a_new_table_sqlite_would_not_create(sqlite_url: str) -> None:
    """A STRICT table takes only its five type names: the rewritten statement is tried at plan time, rolled back."""
    engine, dialect = connect(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE s (id integer primary key, qty integer not null) STRICT")
    with pytest.raises(UsageError, match=r"the new table of 's' would not be valid: unknown datatype for s\.qty"):
        build_plan(engine, dialect, "s", [parse_alter("qty:varchar(20)")])
    assert set(schema(engine, "table")) == {"s"}  # nothing left behind by the trial


def test_the_table_text_is_cut_where_sqlite_cuts_it() -> None:
    sql = (
        "CREATE TABLE [t] (a /* x, y */ int default -1 not null, \"b,c\" text check (b IN ('1,2', ')')) "
        "collate rtrim, d as (a + 1) stored, e references p on update set null not deferrable, "
        'primary key (a), unique ("b,c") on conflict replace) STRICT'
    )
    parsed = parse(sql)
    got = [(c.name, sql[c.type_start : c.type_end], [k.kind for k in c.clauses]) for c in parsed.columns]
    assert got == [
        ("a", "int", ["DEFAULT", "NOT"]),
        ("b,c", "text", ["CHECK", "COLLATE"]),
        ("d", "", ["AS"]),
        ("e", "", ["REFERENCES"]),
    ]
    assert len(parsed.items) == 6
    out = rewrite_table(parsed, '"n"', {"A": ColumnEdit(type_sql="bigint", not_null=False)}, {"d"}, set(), [])
    assert out == (
        "CREATE TABLE \"n\" (a /* x, y */ bigint default -1, \"b,c\" text check (b IN ('1,2', ')')) "
        "collate rtrim, e references p on update set null not deferrable, "
        'primary key (a), unique ("b,c") on conflict replace) STRICT'
    )


def test_a_create_table_without_a_space_before_its_column_list_is_read() -> None:
    """SQLite stores the statement as the user wrote it: ``CREATE TABLE codes(id …)`` is as common as
    ``CREATE TABLE codes (id …)``, and the shadow's text is cut from it (tabletext.py)."""
    from shadowswap.dialects.sqlite.tabletext import parse

    for sql in ('CREATE TABLE codes(id integer primary key, code text)', 'CREATE TABLE "co des"(id int, code text)'):
        assert [c.name for c in parse(sql).columns] == ["id", "code"], sql
