"""The conformance suite: every engine behaviour, on every engine, under concurrent writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from harness import Writer, WriterPool, Writers, compare, create_products
from sqlalchemy.dialects.mysql import LONGTEXT

from shadowswap import state
from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.errors import CopyFailed, StalePlan
from shadowswap.executor import Executor, Options, abort, cleanup
from shadowswap.planner import build_plan

ROWS = int(os.environ.get("SHADOWSWAP_TEST_ROWS", "100000"))


def plan_price(url: str, table: str = "products") -> Any:
    engine, dialect = connect(url)
    return engine, dialect, build_plan(engine, dialect, table, [parse_alter("price:varchar(20)")])


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_concurrent_writers_lose_nothing(db_url: str, seed: int) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, ROWS, seed)
    _, _, plan = plan_price(db_url)
    with Writers(db_url, initial, threads=4, seed=seed) as writers:
        time.sleep(0.3)
        summary = Executor(engine, dialect, plan, Options(chunk_size=2000, chunk_time=0.05)).run()
        time.sleep(0.3)  # writes after the swap go to the new table
    stats = writers.total
    assert stats.errors == []
    assert stats.inserts and stats.updates and stats.rekeys and stats.deletes
    assert summary.rows_copied > 0
    compare(engine, writers.model).assert_exact()
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("products")}
    assert isinstance(columns["price"]["type"], sa.String)
    assert plan.old_table in table_names(engine)


def test_after_swap_keys_indexes_and_cleanup(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 1000)
    before = {ix["name"] for ix in sa.inspect(engine).get_indexes("products")}
    unique_before = {u["name"] for u in sa.inspect(engine).get_unique_constraints("products")}
    _, _, plan = plan_price(db_url)
    Executor(engine, dialect, plan).run()

    inspector = sa.inspect(engine)
    assert {ix["name"] for ix in inspector.get_indexes("products")} == before
    assert {u["name"] for u in inspector.get_unique_constraints("products")} == unique_before
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO products (name, sku, price) VALUES ('after', 'SKU-after', '1.50')"))
        new_id = conn.execute(sa.text("SELECT id FROM products WHERE sku = 'SKU-after'")).scalar_one()
        triggers = dialect.existing_triggers(conn, "products")
    assert new_id == 1001
    # only the reverse capture that keeps the way back open (issue 16), until cleanup
    back = plan.way_back
    assert sorted(triggers) == sorted(back.trigger_names if back is not None and back.possible else [])
    assert plan.old_table in table_names(engine)
    assert plan.shadow_table not in table_names(engine)

    dropped = cleanup(engine, dialect, None)
    assert [m.old_table for m in dropped] == [plan.old_table]
    assert plan.old_table not in table_names(engine)
    with engine.connect() as conn:
        assert dialect.existing_triggers(conn, "products") == []
    with engine.begin() as conn:  # the key generator survived dropping the old table
        conn.execute(sa.text("INSERT INTO products (name, sku, price) VALUES ('later', 'SKU-later', '2.50')"))
        assert conn.execute(sa.text("SELECT max(id) FROM products")).scalar_one() == 1002


def test_composite_primary_key_under_writers(db_url: str) -> None:
    engine, dialect = connect(db_url)
    metadata = sa.MetaData()
    table = sa.Table(
        "order_lines",
        metadata,
        sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("note", sa.String(50)),
    )
    metadata.create_all(engine)
    rows = [
        {"order_id": o, "line_no": ln, "qty": o * ln % 97, "note": f"n{o}"}
        for o in range(1, 2001)
        for ln in range(1, 6)
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    expected = {(r["order_id"], r["line_no"]): (r["qty"], r["note"]) for r in rows}
    plan = build_plan(engine, dialect, "order_lines", [parse_alter("qty:bigint")])

    def write(engine: sa.Engine, w: Writer) -> str:
        key = w.rng.choice(list(w.model))
        where = {"o": key[0], "l": key[1]}
        with engine.begin() as conn:
            if w.counter % 3 == 0:
                conn.execute(sa.text("DELETE FROM order_lines WHERE order_id = :o AND line_no = :l"), where)
            elif w.counter % 3 == 1:
                conn.execute(
                    sa.text("UPDATE order_lines SET qty = :q WHERE order_id = :o AND line_no = :l"),
                    {"q": w.counter, **where},
                )
            else:  # a key update inside the composite key
                conn.execute(
                    sa.text("UPDATE order_lines SET line_no = :n WHERE order_id = :o AND line_no = :l"),
                    {"n": 100 + w.counter, **where},
                )
        if w.counter % 3 == 0:
            del w.model[key]
            return "deletes"
        if w.counter % 3 == 1:
            w.model[key] = (w.counter, w.model[key][1])
            return "updates"
        w.model[(key[0], 100 + w.counter)] = w.model.pop(key)
        return "rekeys"

    with WriterPool(engine, write, expected, seed=7, pause=0.001) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=300, chunk_time=0.01)).run()
        time.sleep(0.2)
    assert writers.total.errors == []
    expected = writers.model
    with engine.connect() as conn:
        got = {
            (r[0], r[1]): (r[2], r[3])
            for r in conn.execute(sa.text("SELECT order_id, line_no, qty, note FROM order_lines"))
        }
    assert got == expected


def test_nulls_unicode_and_large_values(db_url: str) -> None:
    engine, dialect = connect(db_url)
    metadata = sa.MetaData()
    table = sa.Table(
        "docs",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(200)),
        sa.Column("body", sa.Text().with_variant(LONGTEXT(), "mysql", "mariadb")),  # MySQL's TEXT holds 64 KiB
        sa.Column("score", sa.Integer),
    )
    metadata.create_all(engine)
    values = [
        {"title": None, "body": None, "score": None},
        {"title": "naïve café — 東京 🚀", "body": "ünïcödé " * 1000, "score": 1},
        {"title": "quote ' and \" and \\ backslash", "body": "x" * 1_000_000, "score": -5},
        {"title": "", "body": "", "score": 0},
    ] * 50
    with engine.begin() as conn:
        conn.execute(table.insert(), values)
    plan = build_plan(engine, dialect, "docs", [parse_alter("score:varchar(20)")])
    Executor(engine, dialect, plan, Options(chunk_size=7)).run()
    with engine.connect() as conn:
        got = [tuple(r) for r in conn.execute(sa.text("SELECT title, body, score FROM docs ORDER BY id"))]
    want = [(v["title"], v["body"], None if v["score"] is None else str(v["score"])) for v in values]
    assert got == want


def test_plan_touches_nothing_and_stale_plan_is_refused(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 100)
    tables_before = table_names(engine)
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    assert table_names(engine) == tables_before
    with engine.connect() as conn:
        assert dialect.existing_triggers(conn, "products") == []
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE products ADD COLUMN extra INTEGER"))
    with pytest.raises(StalePlan):
        Executor(engine, dialect, plan).run()
    assert plan.shadow_table not in table_names(engine)


def test_cast_existing_data_cannot_survive(db_url: str) -> None:
    engine, dialect = connect(db_url)
    metadata = sa.MetaData()
    table = sa.Table(
        "codes",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(20), nullable=False),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(), [{"id": i, "code": "abc" if i == 2742 else str(i)} for i in range(1, 3001)]
        )
    plan = build_plan(engine, dialect, "codes", [parse_alter("code:integer")])
    # the message names the row by its key and value, not the chunk it was in (issue 13, item 9)
    with pytest.raises(CopyFailed, match="the row id=2742: column 'code' holds 'abc' cannot be copied"):
        Executor(engine, dialect, plan, Options(chunk_size=500)).run()
    names = table_names(engine)
    assert plan.shadow_table not in names and plan.old_table not in names
    with engine.begin() as conn:
        assert dialect.existing_triggers(conn, "codes") == []
        conn.execute(sa.text("INSERT INTO codes (id, code) VALUES (3001, 'still writable')"))
        assert conn.execute(sa.text("SELECT count(*) FROM codes")).scalar_one() == 3001
        migration = state.all_migrations(conn)[0]
    assert migration.phase == state.FAILED and "cannot be copied" in (migration.error or "")


def _shadowswap(*args: str, url: str, cwd: Path, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "shadowswap", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_sigkill_mid_copy_then_resume(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, ROWS)
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    plan.write(tmp_path / "plan.json")
    with Writers(db_url, initial, threads=4, seed=9) as writers:
        proc = _shadowswap(
            "execute", "plan.json", "--chunk-size", "500", "--max-chunk", "500", url=db_url, cwd=tmp_path
        )
        deadline = time.time() + 60
        copied = 0
        while time.time() < deadline:
            with engine.connect() as conn:
                rows = state.all_migrations(conn) if sa.inspect(conn).has_table(state.STATE_TABLE) else []
            if rows and rows[0].phase == state.TRIGGERS_INSTALLED and rows[0].rows_copied >= 2000:
                copied = rows[0].rows_copied
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert copied > 0, "the copy never started"
        with engine.connect() as conn:
            killed_at = state.all_migrations(conn)[0]
        assert killed_at.phase == state.TRIGGERS_INSTALLED and killed_at.rows_copied < ROWS
        time.sleep(0.3)  # the table stays writable, through the triggers, while nothing runs
        resumed = _shadowswap("execute", "plan.json", url=db_url, cwd=tmp_path)
        _output, errors = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, errors
        time.sleep(0.2)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        final = state.all_migrations(conn)[0]
    assert final.phase == state.CUT_OVER and final.id == killed_at.id


def test_abort_restores_the_original(db_url: str) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, 2000)
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    # stop where a crash after installing the triggers would leave things
    Executor(engine, dialect, plan, Options(chunk_size=100, stop_after=state.TRIGGERS_INSTALLED)).run()
    with engine.connect() as conn:
        assert len(dialect.existing_triggers(conn, "products")) == 3
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE products SET price = '9.99' WHERE id = 1"))
    initial[1]["price"] = "9.99"
    aborted = abort(engine, dialect, "products")
    assert aborted.phase == state.ABORTED
    assert plan.shadow_table not in table_names(engine)
    with engine.connect() as conn:
        assert dialect.existing_triggers(conn, "products") == []
    compare(engine, initial).assert_exact()
