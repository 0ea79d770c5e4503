"""Fidelity under concurrent writes (issue 14): the things around the table that react to each write
(user triggers, foreign keys to and from it) behave through the whole migration as they do without it.

The application's writers run from before ``execute`` to after the swap; each writer owns the ids
congruent to its number, so the test keeps an exact model of what they committed.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import fresh_database

from shadowswap.changes import parse_options
from shadowswap.db import connect
from shadowswap.executor import Executor
from shadowswap.options import Options
from shadowswap.planner import build_plan


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("sqlite", tmp_path)


@dataclass
class Model:
    """What one writer committed: its items (id → qty), its orders (id → item) and its item writes."""

    items: dict[int, int] = field(default_factory=dict)
    orders: dict[int, int] = field(default_factory=dict)
    item_writes: int = 0
    commits: int = 0
    #: what stopped the writer, if anything but the test did
    failure: BaseException | None = None


SQLITE_ITEMS = 3000
SQLITE_WRITERS = 3


def _sqlite_writer(path: str, n: int, model: Model, stop: threading.Event) -> None:
    try:
        _sqlite_writes(path, n, model, stop)
    except BaseException as exc:  # reported by the test: a thread's exception would vanish
        model.failure = exc


def _sqlite_writes(path: str, n: int, model: Model, stop: threading.Event) -> None:
    """Insert, update and delete items (the delete cascading to orders) and insert orders, each its own
    transaction with foreign keys on, as an application would."""
    rng = random.Random(n)
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    con.execute("PRAGMA foreign_keys = ON")
    next_item = SQLITE_ITEMS + 1 + n
    while next_item % SQLITE_WRITERS != n:
        next_item += 1
    next_order = 10_000_000 + n
    try:
        while not stop.is_set():
            op = rng.random()
            owned = list(model.items)
            try:
                con.execute("BEGIN IMMEDIATE")
                if op < 0.3 or not owned:
                    con.execute("INSERT INTO items (id, name, qty) VALUES (?, ?, ?)", (next_item, f"w{next_item}", 1))
                    change: tuple[str, int, int] = ("insert", next_item, 1)
                elif op < 0.6:
                    item, qty = rng.choice(owned), rng.randrange(100)
                    con.execute("UPDATE items SET qty = ? WHERE id = ?", (qty, item))
                    change = ("update", item, qty)
                elif op < 0.75:
                    item = rng.choice(owned)
                    con.execute("DELETE FROM items WHERE id = ?", (item,))
                    change = ("delete", item, 0)
                else:
                    item = rng.choice(owned)
                    con.execute("INSERT INTO orders (id, item_id) VALUES (?, ?)", (next_order, item))
                    change = ("order", next_order, item)
                con.execute("COMMIT")
            except sqlite3.OperationalError:  # busy past the timeout: not committed, the model unchanged
                if con.in_transaction:
                    con.execute("ROLLBACK")
                continue
            kind, key, value = change
            model.commits += 1
            if kind == "order":
                model.orders[key] = value
                next_order += SQLITE_WRITERS
                continue
            model.item_writes += 1
            if kind == "delete":
                del model.items[key]
                model.orders = {o: i for o, i in model.orders.items() if i != key}  # ON DELETE CASCADE
            else:
                model.items[key] = value
                if kind == "insert":
                    next_item += SQLITE_WRITERS
            time.sleep(0.001)
    finally:
        con.close()


def test_sqlite_triggers_and_foreign_keys_to_and_from_the_table_under_writes(sqlite_url: str) -> None:
    """items references kinds, orders references items ON DELETE CASCADE, and an audit trigger fires on
    each write to items. Through the copy and the swap: every application write is audited exactly once
    (none for the rows the copy moves), orders keep referencing `items` (the new table) and cascade
    from it, and no row is an orphan."""
    engine, dialect = connect(sqlite_url)
    path = sa.make_url(sqlite_url).database
    assert path
    setup = sqlite3.connect(path, isolation_level=None)
    setup.executescript(
        f"""
        CREATE TABLE kinds (id integer primary key);
        INSERT INTO kinds VALUES (1);
        CREATE TABLE items (id integer primary key, name varchar(40) not null unique collate nocase
            default 'x' check (length(name) > 0) , qty integer not null,
            kind integer not null default 1 references kinds on delete restrict);
        CREATE TABLE orders (id integer primary key, item_id integer not null
            references items (id) on delete cascade);
        CREATE TABLE audit (item_id integer, what text);
        CREATE TRIGGER trg_ins AFTER INSERT ON items BEGIN INSERT INTO audit VALUES (NEW.id, 'i'); END;
        CREATE TRIGGER trg_upd AFTER UPDATE ON items BEGIN INSERT INTO audit VALUES (NEW.id, 'u'); END;
        CREATE TRIGGER trg_del AFTER DELETE ON items BEGIN INSERT INTO audit VALUES (OLD.id, 'd'); END;
        INSERT INTO items (id, name, qty) WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s
            WHERE i < {SQLITE_ITEMS}) SELECT i, 'item ' || i, i % 7 FROM s;
        INSERT INTO orders (id, item_id) SELECT id, id FROM items WHERE id % 3 = 0;
        DELETE FROM audit;
        """
    )
    models = [Model() for _ in range(SQLITE_WRITERS)]
    for item_id, qty in setup.execute("SELECT id, qty FROM items"):
        models[item_id % SQLITE_WRITERS].items[item_id] = qty
    for order_id, item_id in setup.execute("SELECT id, item_id FROM orders"):
        models[item_id % SQLITE_WRITERS].orders[order_id] = item_id
    setup.close()

    plan = build_plan(engine, dialect, "items", parse_options(alter=["qty:bigint"], add=["note:text"]))
    stop = threading.Event()
    threads = [
        threading.Thread(target=_sqlite_writer, args=(path, n, models[n], stop), daemon=True)
        for n in range(SQLITE_WRITERS)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        Executor(engine, dialect, plan, Options(chunk_size=200, min_chunk=100, max_chunk=200)).run()
        commits_at_swap = sum(m.commits for m in models)
        time.sleep(0.5)  # writes after the swap reach the new table, its triggers and its children
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert [m.failure for m in models] == [None] * SQLITE_WRITERS
    assert sum(m.commits for m in models) > commits_at_swap > 0

    app = sqlite3.connect(path)
    app.execute("PRAGMA foreign_keys = ON")
    items = dict(app.execute("SELECT id, qty FROM items").fetchall())
    orders = dict(app.execute("SELECT id, item_id FROM orders").fetchall())
    audited = app.execute("SELECT count(*) FROM audit").fetchone()[0]
    expected_items: dict[int, int] = {}
    expected_orders: dict[int, int] = {}
    for m in models:
        expected_items.update(m.items)
        expected_orders.update(m.orders)
    assert items == expected_items
    assert orders == expected_orders
    assert audited == sum(m.item_writes for m in models)  # once per application write, none for the copy
    assert [r[2] for r in app.execute("PRAGMA foreign_key_list(orders)")] == ["items"]
    assert app.execute("PRAGMA foreign_key_check").fetchall() == []
    triggers = {
        r[0] for r in app.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'items'")
    }
    # the application's, and the reverse capture that keeps `revert` possible (issue 16)
    assert triggers == {"trg_ins", "trg_upd", "trg_del", "_items_ss_rins", "_items_ss_rupd", "_items_ss_rdel"}
    # the constraints of the text still hold on the new table
    for bad in (
        "INSERT INTO items (id, name, qty) SELECT 999999, upper(name), 1 FROM items LIMIT 1",  # UNIQUE NOCASE
        "INSERT INTO items (id, name, qty) VALUES (999999, '', 1)",  # CHECK
        "INSERT INTO items (id, name, qty, kind) VALUES (999999, 'k', 1, 2)",  # REFERENCES kinds
        "DELETE FROM kinds",  # ON DELETE RESTRICT from the new table
    ):
        with pytest.raises(sqlite3.IntegrityError):
            app.execute(bad)
    app.close()
