"""MySQL/MariaDB: a process killed (SIGKILL) at any statement of the swap's moves loses nothing.

The swap moves the application's triggers and the foreign keys from and to the table onto the
shadow, one DDL statement at a time, each committing on its own (app_triggers.py, foreign_keys.py).
The process is killed right before each of those statements, and right after the RENAME; then
``execute`` (resume) or ``abort`` must leave exactly the original's triggers (in their action order)
and keys on whichever table is live.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from harness import Writers, compare, create_products
from test_safety import invoke, price_is_text, tables

from shadowswap import state
from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.executor import Executor, Options
from shadowswap.planner import build_plan

#: the swap's moving statements, in the order they run (two triggers, a key of the table, a key to it)
MOVES = [
    "DROP TRIGGER IF EXISTS `trg_a`",
    "CREATE trg_a",
    "DROP TRIGGER IF EXISTS `trg_b`",
    "CREATE trg_b",
    "DROP FOREIGN KEY `fk_product_category`",
    "ADD CONSTRAINT `fk_product_category`",
    "DROP FOREIGN KEY `fk_review_product`",
    "ADD CONSTRAINT `fk_review_product`",
    "RENAME TABLE",
]

#: run in the child: the CLI, killed with SIGKILL just before (or after) the Nth moving statement
KILLER = r"""
import os, re, runpy, signal, sys, threading
from shadowswap.dialects import base
moving = re.compile(r"TRIGGER (IF EXISTS )?`?trg_|FOREIGN KEY|^RENAME TABLE")
nth, after = int(os.environ["KILL_AT"]), os.environ["KILL_WHEN"] == "after"
seen, lock, original = [0], threading.Lock(), base.Dialect.run
def run(self, conn, sql):
    with lock:
        hit = bool(moving.search(sql)) and seen[0] == nth
        seen[0] += bool(moving.search(sql))
    if hit and not after:
        os.kill(os.getpid(), signal.SIGKILL)
    out = original(self, conn, sql)
    if hit and after:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
base.Dialect.run = run
sys.argv = ["shadowswap", *sys.argv[1:]]
runpy.run_module("shadowswap", run_name="__main__")
"""


def _setup(engine: sa.Engine) -> dict[int, dict[str, Any]]:
    initial = create_products(engine, 200)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what CHAR(1))")
        conn.exec_driver_sql("CREATE TABLE categories (id INT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO categories VALUES (1), (2)")
        conn.exec_driver_sql(
            "ALTER TABLE products ADD COLUMN category_id INT,"
            " ADD CONSTRAINT fk_product_category FOREIGN KEY (category_id) REFERENCES categories (id)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE reviews (id INT AUTO_INCREMENT PRIMARY KEY, product_id INT NOT NULL,"
            " CONSTRAINT fk_review_product FOREIGN KEY (product_id) REFERENCES products (id)"
            " ON DELETE CASCADE ON UPDATE CASCADE)"
        )
        conn.exec_driver_sql("INSERT INTO reviews (product_id) SELECT id FROM products WHERE id <= 20")
        # two triggers of one event and timing: their action order is part of what must survive
        for name in ("trg_a", "trg_b"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name} AFTER INSERT ON products FOR EACH ROW"
                f" INSERT INTO audit (what) VALUES ('{name[-1]}')"
            )
    return initial


def surroundings(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        trigs = conn.exec_driver_sql(
            "SELECT trigger_name, event_object_table, action_order, action_statement FROM information_schema.triggers"
            " WHERE trigger_schema = DATABASE() ORDER BY trigger_name"
        ).fetchall()
        keys = conn.exec_driver_sql(
            "SELECT constraint_name, table_name, referenced_table_name FROM information_schema.referential_constraints"
            " WHERE constraint_schema = DATABASE() ORDER BY constraint_name"
        ).fetchall()
    # the application's triggers, in their order; the reverse capture the swap carried onto the table
    # (shadowswap/revert.py, created before their move) aside
    ours = [r for r in trigs if not r[0].startswith("_products_ss_r")]
    rank = {r[0]: 1 + sorted(o[2] for o in ours if o[1] == r[1]).index(r[2]) for r in ours}
    return {"triggers": [(r[0], r[1], rank[r[0]], r[3]) for r in ours], "keys": [tuple(r) for r in keys]}


def _behaves(engine: sa.Engine) -> None:
    """The triggers fire in their order on the live table, and both keys still refuse an orphan."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit")
        conn.exec_driver_sql("INSERT INTO products (name, sku, price) VALUES ('n', 'new-sku', '1')")
        assert [r[0] for r in conn.exec_driver_sql("SELECT what FROM audit ORDER BY id")] == ["a", "b"]
    for orphan in (
        "INSERT INTO reviews (product_id) VALUES (-1)",
        "INSERT INTO products (name, sku, price, category_id) VALUES ('o', 'orphan', '1', 99)",
    ):
        with engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):
            conn.exec_driver_sql(orphan)


#: (statement index, before/after, follow-up): killed between a drop and its create, both follow-ups;
#: at the boundaries between moves abort (the follow-up that used to lose them), and around the RENAME both
KILLS = [
    *[(i, "before", then) for i in (1, 3, 5, 7) for then in ("execute", "abort")],
    *[(i, "before", "abort") for i in (0, 2, 4, 6)],
    *[(len(MOVES) - 1, when, then) for when in ("before", "after") for then in ("execute", "abort")],
]


@pytest.mark.parametrize(("at", "when", "then"), KILLS, ids=[f"{w} {MOVES[i]}, then {t}" for i, w, t in KILLS])
def test_sigkill_at_each_move_of_the_swap_loses_nothing(
    mysql_url: str, tmp_path: Path, at: int, when: str, then: str
) -> None:
    engine, dialect = connect(mysql_url)
    initial = _setup(engine)
    original = surroundings(engine)
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    assert len(plan.moved_at_swap.triggers) == 2 and plan.moved_at_swap.moves_keys
    plan.write(tmp_path / "plan.json")
    with Writers(mysql_url, initial, threads=2, seed=at) as writers:
        Executor(engine, dialect, plan, Options(stop_after=state.VERIFIED)).run()
        child = subprocess.run(
            [sys.executable, "-c", KILLER, "execute", "plan.json"],
            cwd=tmp_path,
            env={**os.environ, "DATABASE_URL": mysql_url, "KILL_AT": str(at), "KILL_WHEN": when, "COLUMNS": "250"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr
        engine.dispose()
        with contextlib.chdir(tmp_path):
            followed = invoke(then, "plan.json" if then == "execute" else "products", url=mysql_url)
    assert followed.exit_code == 0, followed.output
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    swapped = at == len(MOVES) - 1 and when == "after"  # the RENAME ran: abort finishes the swap instead
    if then == "execute" or swapped:
        assert price_is_text(engine)
        with engine.connect() as conn:
            assert [m.phase for m in state.kept_old(conn, "products")] == [state.CUT_OVER]
    else:
        assert not price_is_text(engine)
    if then == "abort" and swapped:
        said = " ".join(followed.output.split())
        assert "the swap had completed" in said and "cleanup --drop-old" in said
        # the old table is the kept one a finished migration leaves, which cleanup drops
        with contextlib.chdir(tmp_path):
            assert invoke("cleanup", "--drop-old", "--yes", url=mysql_url).exit_code == 0
        assert plan.old_table not in tables(engine)
    assert plan.shadow_table not in tables(engine)
    # exactly the original's triggers and keys, on the live table, the capture triggers gone
    assert surroundings(engine) == original
    _behaves(engine)
