"""The operator API (shadowswap/operator.py) on real databases: what the CLI's pause, resume,
cutover, status, verify, abort and cleanup do, called as functions on a migration another thread runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from harness import create_products

from shadowswap import operator, state
from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.dialects import Dialect
from shadowswap.errors import UsageError
from shadowswap.executor import Executor, Options
from shadowswap.plan import Plan
from shadowswap.planner import build_plan
from shadowswap.throttle import ThrottleSettings


def plan_price(engine: sa.Engine, dialect: Dialect) -> Plan:
    return build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def newest(engine: sa.Engine) -> operator.Status:
    return operator.status(engine)[0]


def waiting(engine: sa.Engine) -> str:
    """Why the newest migration stands still ("" while it runs, or before it is recorded)."""
    found = operator.status(engine)
    return (found[0].migration.waiting or "") if found else ""


class Running:
    """An Executor run in a thread; ``join`` raises its exception, if any, in the test."""

    def __init__(self, executor: Executor) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(executor,), daemon=True)
        self.thread.start()

    def _run(self, executor: Executor) -> None:
        try:
            executor.run()
        except BaseException as exc:  # handed to the test thread by join()
            self.error = exc

    def join(self) -> None:
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the migration did not finish"
        if self.error is not None:
            raise self.error


def test_pause_holds_a_running_copy_until_resume(db_url: str) -> None:
    engine, dialect = connect(db_url)
    rows = 6000
    create_products(engine, rows)
    plan = plan_price(engine, dialect)
    # a slow copy (a rate cap), so it is still copying when paused
    settings = ThrottleSettings(max_rows_per_second=3000, interval=0.05)
    assert operator.status(engine) == []  # (and the state table exists before two threads would create it)
    run = Running(Executor(engine, dialect, plan, Options(chunk_size=200, throttle=settings)))
    wait_for("the copy to start", lambda: bool(operator.status(engine)) and newest(engine).migration.rows_copied > 0)

    found = operator.pause(engine, "products")
    assert not found.paused and found.table_name == "products"  # the migration as it was found
    wait_for("the copy to notice the pause", lambda: waiting(engine).startswith("paused"))
    held = newest(engine)
    time.sleep(1.0)  # held: nothing is copied meanwhile
    still = newest(engine)
    assert still.phase == state.TRIGGERS_INSTALLED and not still.finished
    assert still.migration.rows_copied == held.migration.rows_copied < rows
    assert still.migration.paused and "paused by `shadowswap pause`" in still.notes
    assert still.kept_old_table is None

    resumed = operator.resume(engine)  # no table named: the only unfinished migration
    assert resumed.id == found.id and resumed.paused
    run.join()
    done = newest(engine)
    assert done.phase == state.CUT_OVER and done.finished and not done.migration.paused
    assert done.migration.rows_copied == rows and done.kept_old_table == plan.old_table
    if plan.way_back is not None and plan.way_back.possible:  # the revert window opens at the swap
        assert done.notes.startswith("revertible since") and done.revertible
    else:
        assert not done.revertible
    assert done.elapsed_seconds >= 1.0
    with pytest.raises(UsageError, match="no unfinished migration of 'products'"):
        operator.pause(engine, "products")


def test_postponed_cutover_is_released_by_cutover(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 500)
    plan = plan_price(engine, dialect)
    options = Options(postpone_cutover=True, throttle=ThrottleSettings(interval=0.05))
    assert operator.status(engine) == []
    run = Running(Executor(engine, dialect, plan, options))
    wait_for("the postponed cut-over", lambda: "postponed" in waiting(engine))
    time.sleep(0.3)
    held = newest(engine)
    assert held.phase == state.VERIFIED and held.migration.cutover_postponed
    assert "cut-over postponed: `shadowswap cutover products` to swap" in held.notes
    assert run.thread.is_alive()

    released = operator.cutover(engine, "products")
    assert released.cutover_postponed  # it was held
    run.join()
    done = newest(engine)
    assert done.phase == state.CUT_OVER and not done.migration.cutover_postponed
    assert done.migration.cutover_lock_ms is not None


def test_postpone_holds_a_migration_stopped_before_the_swap(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 300)
    plan = plan_price(engine, dialect)
    Executor(engine, dialect, plan, Options(stop_after=state.VERIFIED)).run()
    assert not operator.postpone(engine, "products").cutover_postponed
    run = Running(Executor(engine, dialect, plan, Options(throttle=ThrottleSettings(interval=0.05))))
    wait_for("the hold to be noticed", lambda: "postponed" in waiting(engine))
    assert newest(engine).phase == state.VERIFIED
    operator.cutover(engine)
    run.join()
    assert newest(engine).phase == state.CUT_OVER


def test_verify_before_and_after_the_swap(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 800)
    plan = plan_price(engine, dialect)
    with pytest.raises(UsageError, match="nothing to verify"):
        operator.verify(engine, dialect)
    Executor(engine, dialect, plan, Options(stop_after=state.COPIED)).run()
    before = operator.verify(engine, dialect, "products", chunk_size=100)
    assert before.ok and before.result.rows == 800 and before.migration.phase == state.COPIED
    assert before.compared == f"products against the shadow {plan.shadow_table}"
    with pytest.raises(UsageError, match="--chunk-size must be at least 1"):
        operator.verify(engine, dialect, "products", chunk_size=0)

    Executor(engine, dialect, plan).run()
    after = operator.verify(engine, dialect)
    assert after.ok and after.result.rows == 800 and after.migration.phase == state.CUT_OVER
    assert after.compared == f"products against the kept {plan.old_table}"
    with engine.begin() as conn:  # the application writes the new table after the swap
        conn.execute(sa.text("UPDATE products SET name = 'changed' WHERE id = 5"))
    changed = operator.verify(engine, dialect, "products")
    assert not changed.ok and changed.result.differing_keys == 1


def test_abort_and_cleanup(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 400)
    plan = plan_price(engine, dialect)
    with pytest.raises(UsageError, match=r"^no unfinished migration$"):
        operator.resume(engine)
    Executor(engine, dialect, plan, Options(stop_after=state.TRIGGERS_INSTALLED)).run()
    assert newest(engine).phase == state.TRIGGERS_INSTALLED
    aborted = operator.abort(engine, dialect, "products")
    assert aborted.phase == state.ABORTED
    assert plan.shadow_table not in sa.inspect(engine).get_table_names()
    assert newest(engine).finished and operator.kept_old(engine) == []

    plan = plan_price(engine, dialect)
    Executor(engine, dialect, plan).run()
    assert [m.old_table for m in operator.kept_old(engine, "products")] == [plan.old_table]
    cleaned = operator.cleanup(engine, dialect, "products")
    assert [m.phase for m in cleaned] == [state.CLEANED_UP]
    assert plan.old_table not in sa.inspect(engine).get_table_names()
    assert [s.phase for s in operator.status(engine, "products")] == [state.CLEANED_UP, state.ABORTED]
    assert operator.kept_old(engine) == []
