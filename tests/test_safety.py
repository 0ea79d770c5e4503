"""Production safety on every engine: throttling and pause, verification that names keys, a
controlled cut-over, hooks, backups, and SIGKILL in every phase. Real databases, with concurrent
writers wherever the table is live, and a row-by-row comparison at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
import structlog.testing
from conftest import DIALECTS, fresh_database
from harness import Writer, WriterPool, Writers, compare, create_products
from rich.console import Console
from typer.testing import CliRunner

from shadowswap import state
from shadowswap.backup import take_backup
from shadowswap.changes import parse_alter, parse_options
from shadowswap.cli import RichReporter, app
from shadowswap.copier import ChunkSizer
from shadowswap.db import connect
from shadowswap.errors import BackupFailed, CutoverFailed, HookFailed, UsageError
from shadowswap.executor import Executor, Options, SilentReporter
from shadowswap.hooks import Hooks
from shadowswap.planner import build_plan
from shadowswap.throttle import Throttler, ThrottleSettings

ROWS = int(os.environ.get("SHADOWSWAP_TEST_ROWS", "100000"))
SMALL = min(ROWS, 5000)  # tests about control flow, not volume


# -- helpers ---------------------------------------------------------------------------------


def backend(url: str) -> str:
    return sa.make_url(url).get_backend_name()


def plan_price(engine: sa.Engine, dialect: Any, table: str = "products") -> Any:
    return build_plan(engine, dialect, table, [parse_alter("price:varchar(20)")])


def latest(engine: sa.Engine) -> state.Migration:
    with engine.connect() as conn:
        return state.all_migrations(conn, limit=1)[0]


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def waiting_starts(engine: sa.Engine, prefix: str) -> Callable[[], bool]:
    def check() -> bool:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(state.STATE_TABLE):
                return False
            rows = state.all_migrations(conn, limit=1)
        return bool(rows) and (rows[0].waiting or "").startswith(prefix)

    return check


def spawn(*args: str, url: str, cwd: Path) -> subprocess.Popen[str]:
    """The CLI in its own process (so it can be killed), the database in the environment, not argv."""
    return subprocess.Popen(
        [sys.executable, "-m", "shadowswap", *args],
        cwd=cwd,
        env={**os.environ, "DATABASE_URL": url, "COLUMNS": "250"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def invoke_any(*args: str, url: str) -> Any:
    """The CLI in this process (quick, for commands whose timing matters): same code, own connections."""
    return CliRunner().invoke(app, list(args), env={"DATABASE_URL": url})


def invoke(*args: str, url: str) -> Any:
    result = invoke_any(*args, url=url)
    assert result.exit_code == 0, result.output
    return result


def triggers(engine: sa.Engine, dialect: Any) -> list[str]:
    """The migration's triggers on the table; not the reverse capture a swap leaves for `revert`."""
    with engine.connect() as conn:
        return [t for t in dialect.existing_triggers(conn, "products") if "_ss_r" not in t]


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def price_is_text(engine: sa.Engine, table: str = "products") -> bool:
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(table)}
    return isinstance(columns["price"], sa.String)


def sleep_sql(url: str) -> str:
    return {"postgresql": "SELECT pg_sleep(:s)", "mysql": "SELECT SLEEP(:s)", "mariadb": "SELECT SLEEP(:s)"}[
        backend(url)
    ]


#: engines where the only lock the swap can be kept from is the one every writer needs too
ONE_WRITE_LOCK = {"sqlite"}


@contextlib.contextmanager
def swap_blocker(url: str) -> Iterator[None]:
    """Another connection holding a lock the swap needs: where there is one, a lock the application's
    writes do not need (an open transaction that has read the table: PostgreSQL ACCESS SHARE, MySQL a
    shared metadata lock); on SQLite the database's one write lock."""
    if backend(url) in ONE_WRITE_LOCK:
        import sqlite3

        raw = sqlite3.connect(sa.make_url(url).database or "", isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            raw.execute("ROLLBACK")
            raw.close()
        return
    engine = sa.create_engine(url)
    conn = engine.connect()
    try:
        conn.execute(sa.text("SELECT count(*) FROM products WHERE id < 10"))
        yield
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()


class LatencyWriter(WriterPool):
    """Updates one row it owns as fast as it can, remembering the slowest statement and the count."""

    def __init__(self, url: str, key: int) -> None:
        super().__init__(url, self._update, pause=0.005)
        self.key = key
        self.max_latency = 0.0

    @property
    def updates(self) -> int:
        return self.total.updates

    @property
    def errors(self) -> list[str]:
        return self.total.errors

    def _update(self, engine: sa.Engine, w: Writer) -> str:
        started = time.perf_counter()
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE products SET stock_quantity = stock_quantity + 1 WHERE id = :id"), {"id": self.key}
                )
        finally:  # a statement that failed after a long wait counts too
            self.max_latency = max(self.max_latency, time.perf_counter() - started)
        return "updates"


class BackgroundRun:
    """An Executor run in a thread; its exception, if any, is raised again in the test by ``join``."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.executor.run()
        except BaseException as exc:  # handed to the test thread by join()
            self.error = exc

    def __enter__(self) -> BackgroundRun:
        self.thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # after a failed assertion the run may be held (paused, postponed) for good: leave it to
        # die with the test's database rather than wait for it
        self.thread.join(timeout=120 if exc_type is None else 1)

    def join(self) -> None:
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the migration did not finish"
        if self.error is not None:
            raise self.error


class RecordingReporter(SilentReporter):
    def __init__(self) -> None:
        self.reasons: list[str | None] = []

    def waiting(self, reason: str | None) -> None:
        self.reasons.append(reason)


# -- pace ------------------------------------------------------------------------------------


def test_chunk_sizer_is_not_collapsed_by_one_slow_chunk() -> None:
    sizer = ChunkSizer(size=1000, target_seconds=0.5, minimum=100, maximum=100_000)
    cost = 0.5 / 4000  # seconds per row: 4000-row chunks meet the target
    for _ in range(5):
        sizer.record(sizer.size, sizer.size * cost)
    assert sizer.size == 4000  # grew 2x a chunk at most, then settled
    sizer.record(sizer.size, 30.0)  # one chunk stuck behind a lock for half a minute
    assert sizer.size == 4000
    sizer.record(sizer.size, sizer.size * cost * 4)  # the server really got slower: now it shrinks,
    assert sizer.size == 2000  # at most halving per chunk
    sizer.record(sizer.size, sizer.size * cost * 4)
    assert sizer.size == 1000
    for _ in range(20):
        sizer.record(sizer.size, 60.0)
    assert sizer.size == 100  # never below --min-chunk
    for _ in range(30):
        sizer.record(sizer.size, 0.0001)
    assert sizer.size == 100_000  # never above --max-chunk
    sizer.record(10, 5.0)  # the short last chunk of a table says nothing
    assert sizer.size == 100_000


def test_rate_cap_and_load_throttle(db_url: str) -> None:
    """--max-rows-per-second holds the copy to the cap; --max-load holds it while the server is busy."""
    engine, dialect = connect(db_url)
    rows = 3000
    initial = create_products(engine, rows)
    plan = plan_price(engine, dialect)
    busy = 6
    settings = ThrottleSettings(max_rows_per_second=2500, interval=0.1, probe_interval=0.1)
    with engine.connect() as conn:
        try:
            dialect.server_load(conn, None)
            settings.max_load = (None, busy - 1)
        except NotImplementedError:
            pass  # an engine without a load metric still gets the rate cap
    sleepers: list[threading.Thread] = []
    if settings.max_load is not None:
        # `busy` other sessions running a statement: the load is above the threshold until they end
        def sleeper() -> None:
            with sa.create_engine(db_url).connect() as conn:
                conn.execute(sa.text(sleep_sql(db_url)), {"s": 2})

        sleepers = [threading.Thread(target=sleeper) for _ in range(busy)]
        for t in sleepers:
            t.start()
        wait_for("the sleepers to be active", lambda: _load(engine, dialect) >= busy, timeout=10)
    reporter = RecordingReporter()
    with Writers(db_url, initial, threads=2, seed=4) as writers:
        started = time.perf_counter()
        options = Options(chunk_size=500, chunk_time=0.1, throttle=settings)
        Executor(engine, dialect, plan, options, reporter).run()
        copy_seconds = time.perf_counter() - started
        time.sleep(0.2)
    for t in sleepers:
        t.join()
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    # a correctness bound of the cap, not a speed test: rows/cap is the least the copy can take
    assert copy_seconds >= 0.8 * rows / 2500
    if settings.max_load is not None:
        assert any(r and r.startswith("load ") and "--max-load" in r for r in reporter.reasons), reporter.reasons
        assert reporter.reasons[-1] is None


def _load(engine: sa.Engine, dialect: Any) -> float:
    with engine.connect() as conn:
        return dialect.server_load(conn, None)


def test_max_lag_probes_the_replicas(db_url: str) -> None:
    """--max-lag reads the primary's view of its replicas (or each --replica); a server that is not a
    replica, or an engine without replication, is refused before anything changes."""
    engine, dialect = connect(db_url)
    initial = create_products(engine, 500)
    plan = plan_price(engine, dialect)
    not_a_replica = ThrottleSettings(max_lag=1.0, replicas=[db_url])
    with pytest.raises(UsageError, match=r"--replica|--max-lag"):
        Executor(engine, dialect, plan, Options(throttle=not_a_replica)).run()
    assert plan.shadow_table not in tables(engine)
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table(state.STATE_TABLE) or state.all_migrations(conn) == []
        try:
            lag = dialect.replication_lag(conn)
        except NotImplementedError:
            lag = "needs --replica"
    settings = ThrottleSettings(max_lag=30.0, probe_interval=0.0)
    if lag == "needs --replica":
        with pytest.raises(UsageError, match="--max-lag"):
            Executor(engine, dialect, plan, Options(throttle=settings)).run()
        return
    # this test server has no replicas (lag None): nothing to hold for, the migration completes
    assert lag is None or lag >= 0
    Executor(engine, dialect, plan, Options(throttle=settings)).run()
    assert price_is_text(engine)
    compare(engine, initial).assert_exact()


def test_progress_line_shows_the_throttle_reason() -> None:
    buffer = StringIO()
    reporter = RichReporter(Console(file=buffer, force_terminal=True, width=200))
    reporter.copy_started(1000, 0)
    reporter.copied(100)
    reporter.waiting("paused by `shadowswap pause`")
    reporter.copy_finished()
    assert "paused by `shadowswap pause`" in buffer.getvalue()


# -- pause -----------------------------------------------------------------------------------


def test_pause_and_pause_file_hold_the_copy(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    rows = min(ROWS, 10_000)
    initial = create_products(engine, rows)
    plan = plan_price(engine, dialect)
    pause_file = tmp_path / "hold"
    reporter = RecordingReporter()
    settings = ThrottleSettings(max_rows_per_second=4000, pause_file=pause_file, interval=0.1)
    runner = BackgroundRun(Executor(engine, dialect, plan, Options(chunk_size=500, throttle=settings), reporter))
    with Writers(db_url, initial, threads=4, seed=5) as writers, runner:
        wait_for("the copy to start", lambda: _copied(engine) >= 1500)
        invoke("pause", "products", url=db_url)  # what another host would run
        wait_for("the copy to notice the pause", waiting_starts(engine, "paused by `shadowswap pause`"))
        held_at = latest(engine)
        time.sleep(2.0)  # held a few seconds: nothing is copied meanwhile
        still = latest(engine)
        assert still.rows_copied == held_at.rows_copied < rows
        assert still.checkpoint == held_at.checkpoint and still.phase == state.TRIGGERS_INSTALLED
        status = " ".join(invoke("status", url=db_url).output.split())
        assert "paused by `shadowswap pause`" in status, status

        pause_file.touch()  # the file holds it too, once the flag is lifted
        invoke("resume", "products", url=db_url)
        wait_for("the copy to notice the pause file", waiting_starts(engine, f"paused while {pause_file}"))
        held_at = latest(engine)
        time.sleep(1.0)
        assert latest(engine).rows_copied == held_at.rows_copied < rows
        pause_file.unlink()
        runner.join()
        time.sleep(0.2)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    final = latest(engine)
    assert final.phase == state.CUT_OVER and final.waiting is None and not final.paused
    reasons = [r for r in reporter.reasons if r]
    assert reasons[0].startswith("paused by `shadowswap pause`") and reasons[-1].startswith("paused while")
    assert reporter.reasons[-1] is None


def _copied(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(state.STATE_TABLE):
            return 0
        rows = state.all_migrations(conn, limit=1)
    return rows[0].rows_copied if rows else 0


# -- verification ----------------------------------------------------------------------------


# damage made before the index builds is found by a verification that may run beside them
@pytest.mark.parametrize("damaged_after", [state.COPIED, state.INDEXES_BUILT])
def test_difference_behind_the_tools_back_stops_before_the_swap(
    db_url: str, tmp_path: Path, damaged_after: str
) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, SMALL)
    plan = plan_price(engine, dialect)
    plan.write(tmp_path / "plan.json")
    untouched = {17, 42}  # rows the writers leave alone, so nothing repairs the damage
    with Writers(db_url, {k: v for k, v in initial.items() if k not in untouched}, threads=4, seed=6) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=1000, stop_after=damaged_after)).run()
        shadow = dialect.q(plan.shadow_table)
        ghost = 90_000_000  # above every key the original has: the checksum must still look there
        with engine.begin() as conn:  # writes the triggers never made
            conn.execute(sa.text(f"UPDATE {shadow} SET price = '0.01' WHERE id = 17"))
            conn.execute(sa.text(f"DELETE FROM {shadow} WHERE id = 42"))
            conn.execute(
                sa.text(f"INSERT INTO {shadow} (id, name, sku, price, stock_quantity, is_active) "
                        f"VALUES ({ghost}, 'ghost', 'SKU-ghost', '1.11', 1, true)")
            )  # fmt: skip
        with contextlib.chdir(tmp_path):
            result = invoke_any("execute", "plan.json", url=db_url)
        time.sleep(0.2)
        # dual-write is still on: the original takes writes and the shadow follows
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE products SET stock_quantity = 7 WHERE id = 17"))
    initial[17]["stock_quantity"] = 7
    assert result.exit_code == 8, result.output
    message = " ".join(result.output.split())
    assert "id=17 (different)" in message and "id=42 (missing from the new table)" in message
    assert f"id={ghost} (only in the new table)" in message
    assert "Traceback" not in result.output
    m = latest(engine)
    assert m.phase == state.INDEXES_BUILT and "differs" in (m.error or "")
    assert not price_is_text(engine) and len(triggers(engine, dialect)) == 3
    with engine.connect() as conn:
        if plan.capture.change_log:  # logged, applied by the next replay
            log_table = dialect.q(plan.capture.logged_table)
            assert conn.execute(sa.text(f"SELECT count(*) FROM {log_table} WHERE id = 17")).scalar_one() >= 1
        else:
            assert conn.execute(sa.text(f"SELECT stock_quantity FROM {shadow} WHERE id = 17")).scalar_one() == 7

    invoke("abort", "products", url=db_url)
    assert triggers(engine, dialect) == [] and plan.shadow_table not in tables(engine)
    assert writers.total.errors == []
    compare(engine, {**writers.model, **{k: initial[k] for k in untouched}}).assert_exact()


def test_verify_command_after_the_swap(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, SMALL)
    Executor(engine, dialect, plan_price(engine, dialect)).run()
    same = " ".join(invoke("verify", "products", url=db_url).output.split())
    assert "identical" in same and f"{SMALL:,} rows" in same
    with engine.begin() as conn:  # the application writes to the new table after the swap
        conn.execute(sa.text("UPDATE products SET name = 'renamed' WHERE id = 5"))
        conn.execute(sa.text("DELETE FROM products WHERE id = 6"))
    differs = invoke_any("verify", "products", url=db_url)
    assert differs.exit_code == 8, differs.output
    message = " ".join(differs.output.split())
    assert "2 rows differ" in message and "id=5 (different)" in message
    assert "id=6 (missing from the new table)" in message


# -- cut-over control ------------------------------------------------------------------------


def test_conflicting_lock_during_the_swap_then_execute_again(db_url: str) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, SMALL)
    plan = plan_price(engine, dialect)
    lock_timeout_ms = 500
    latency_key = 3
    with Writers(db_url, {k: v for k, v in initial.items() if k != latency_key}, threads=4, seed=7) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=1000, stop_after=state.VERIFIED)).run()
        with LatencyWriter(db_url, latency_key) as latency:
            with swap_blocker(db_url), pytest.raises(CutoverFailed) as failure:
                Executor(engine, dialect, plan, Options(lock_timeout_ms=lock_timeout_ms, lock_retries=3)).run()
            # a clean give-up: not swapped, dual-write still on, the original writable
            m = latest(engine)
            assert m.phase == state.VERIFIED
            if backend(db_url) not in ONE_WRITE_LOCK:  # SQLite: the blocker also kept the error from being written
                assert "could not lock" in (m.error or "")
            assert "dual-write stays on" in (failure.value.hint or "")
            assert not price_is_text(engine) and len(triggers(engine, dialect)) == 3
            assert plan.shadow_table in tables(engine) and plan.old_table not in tables(engine)
            blocked_for = latency.max_latency
            # execute again retries the swap, now that nothing holds the table
            summary = Executor(engine, dialect, plan, Options(lock_timeout_ms=lock_timeout_ms)).run()
            time.sleep(0.3)
        time.sleep(0.2)
    # writers queue behind a waiting swap, but never longer than the lock timeout (invariant 5);
    # a generous bound: this checks the tool gives way, it does not measure speed. (On SQLite the
    # blocker itself holds the writers for as long as it holds the lock: nothing to measure there.)
    if backend(db_url) not in ONE_WRITE_LOCK:
        assert blocked_for < lock_timeout_ms / 1000 + 1.0, blocked_for
    assert latency.errors == [] and latency.updates > 0
    assert writers.total.errors == []
    assert summary.cutover_lock_ms is not None and latest(engine).error is None
    expected = {**writers.model, latency_key: dict(initial[latency_key])}
    expected[latency_key]["stock_quantity"] += latency.updates
    compare(engine, expected).assert_exact()
    assert price_is_text(engine)


def test_postponed_cutover_waits_for_the_cutover_command(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, SMALL)
    plan_price(engine, dialect).write(tmp_path / "plan.json")
    with Writers(db_url, initial, threads=4, seed=8) as writers:
        proc = spawn("execute", "plan.json", "--postpone-cutover", url=db_url, cwd=tmp_path)
        wait_for("the postponed cut-over", waiting_starts(engine, "cut-over postponed"))
        time.sleep(1.0)
        m = latest(engine)
        assert m.phase == state.VERIFIED and m.cutover_postponed and proc.poll() is None
        status = " ".join(invoke("status", url=db_url).output.split())
        assert "cut-over postponed: `shadowswap cutover products` to swap" in status, status
        with contextlib.chdir(tmp_path):
            invoke("cutover", url=db_url)  # no table named: the only unfinished migration
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        time.sleep(0.2)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    m = latest(engine)
    assert m.phase == state.CUT_OVER and m.cutover_lock_ms is not None and m.waiting is None
    assert f"swap lock held {m.cutover_lock_ms:.1f} ms" in out.replace("\n", " ")
    status = " ".join(invoke("status", url=db_url).output.split())
    assert f"{m.cutover_lock_ms:.1f} ms" in status, status


def test_postpone_file_removed_releases_the_swap(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 500)
    plan = plan_price(engine, dialect)
    flag = tmp_path / "postpone.flag"
    options = Options(postpone_file=flag, throttle=ThrottleSettings(interval=0.05))
    with BackgroundRun(Executor(engine, dialect, plan, options)) as runner:
        wait_for("the postponed cut-over", waiting_starts(engine, "cut-over postponed"))
        assert flag.exists() and f"remove {flag}" in (latest(engine).waiting or "")
        time.sleep(0.5)
        assert latest(engine).phase == state.VERIFIED
        flag.unlink()
        runner.join()
    m = latest(engine)
    assert m.phase == state.CUT_OVER and not m.cutover_postponed


# -- hooks -----------------------------------------------------------------------------------


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs if k.startswith("SHADOWSWAP_")}


def test_hooks_receive_their_facts_and_before_cutover_postpones(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, SMALL)
    plan = plan_price(engine, dialect)
    go = tmp_path / "go"
    dump = f"env > {tmp_path}/$SHADOWSWAP_EVENT.env"
    hooks = Hooks(
        {
            "on-start": [dump],
            "on-copy-done": [dump],
            "on-before-cutover": [f"{dump}; test -e {go}"],
            "on-success": [dump],
        }
    )
    options = Options(chunk_size=1000, hooks=hooks, hook_retry_seconds=0.2, throttle=ThrottleSettings(interval=0.05))
    runner = BackgroundRun(Executor(engine, dialect, plan, options))
    with Writers(db_url, initial, threads=4, seed=10) as writers, runner:
        wait_for("the refusing hook", waiting_starts(engine, "the on-before-cutover hook exited with status 1"))
        time.sleep(0.5)  # asked again and again, refused each time: no swap
        assert latest(engine).phase == state.VERIFIED and not price_is_text(engine)
        go.touch()
        runner.join()
        time.sleep(0.2)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()

    start = read_env(tmp_path / "on-start.env")
    copied = read_env(tmp_path / "on-copy-done.env")
    before = read_env(tmp_path / "on-before-cutover.env")
    success = read_env(tmp_path / "on-success.env")
    m = latest(engine)
    for env in (start, copied, before, success):
        assert env["SHADOWSWAP_TABLE"] == "products"
        assert env["SHADOWSWAP_OLD_TABLE"] == plan.old_table
        assert env["SHADOWSWAP_SHADOW_TABLE"] == plan.shadow_table
        assert env["SHADOWSWAP_MIGRATION_ID"] == str(m.id)
        assert env["SHADOWSWAP_CHANGES"] == "; ".join(plan.changes)
    assert start["SHADOWSWAP_EVENT"] == "on-start" and start["SHADOWSWAP_PHASE"] == state.PLANNED
    assert copied["SHADOWSWAP_PHASE"] == state.COPIED and 0 < int(copied["SHADOWSWAP_ROWS_COPIED"]) <= SMALL
    assert before["SHADOWSWAP_PHASE"] == state.VERIFIED
    assert success["SHADOWSWAP_PHASE"] == state.CUT_OVER
    assert float(success["SHADOWSWAP_CUTOVER_LOCK_MS"]) == pytest.approx(m.cutover_lock_ms, abs=0.01)


def test_on_start_refusal_changes_nothing_and_on_failure_is_told(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, 200)
    plan = plan_price(engine, dialect)
    hooks = Hooks({"on-start": ["exit 3"], "on-failure": [f"env > {tmp_path}/failure.env"]})
    with pytest.raises(HookFailed, match="status 3"):
        Executor(engine, dialect, plan, Options(hooks=hooks)).run()
    assert triggers(engine, dialect) == [] and plan.shadow_table not in tables(engine)
    compare(engine, initial).assert_exact()
    failure = read_env(tmp_path / "failure.env")
    assert failure["SHADOWSWAP_EVENT"] == "on-failure" and "on-start hook exited" in failure["SHADOWSWAP_ERROR"]


# -- backups ---------------------------------------------------------------------------------


def restore_into(url: str, backup: Path) -> None:
    """Restore a backup file with the engine's own client, as an operator would."""
    parsed = sa.make_url(url)
    kind = backend(url)
    if kind == "postgresql":
        listing = backup.with_suffix(".list")
        env = {
            **os.environ,
            "PGHOST": parsed.host or "",
            "PGPORT": str(parsed.port or 5432),
            "PGUSER": parsed.username or "",
        }
        subprocess.run(
            ["pg_restore", "--exit-on-error", f"--use-list={listing}", f"--dbname={parsed.database}", str(backup)],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        return
    if kind in ("mysql", "mariadb"):
        client = shutil.which("mariadb") or shutil.which("mysql") or "mysql"
        with backup.open("rb") as dump:
            subprocess.run(
                [client, f"--host={parsed.host}", f"--port={parsed.port or 3306}", f"--user={parsed.username}",
                 parsed.database or ""],
                stdin=dump, check=True, capture_output=True,
            )  # fmt: skip
        return
    if kind == "sqlite":  # a copy of the whole database file
        shutil.copyfile(backup, parsed.database or "")
        return
    raise NotImplementedError(kind)


def test_backup_restores_and_a_failed_backup_stops_before_the_swap(db_url: str, tmp_path: Path) -> None:
    secret = "s3cret-pw"  # the test PostgreSQL trusts local connections, so any password works; it must never show
    url = sa.make_url(db_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(password=secret)
    secret_url = url.render_as_string(hide_password=False)
    engine, dialect = connect(secret_url)
    initial = create_products(engine, SMALL)
    plan = plan_price(engine, dialect)
    plan.write(tmp_path / "plan.json")

    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the backup directory should be")
    with pytest.raises(BackupFailed):
        Executor(engine, dialect, plan, Options(backup_dir=blocked / "backups")).run()
    m = latest(engine)
    assert m.phase == state.VERIFIED and m.backup_path is None and not price_is_text(engine)
    assert len(triggers(engine, dialect)) == 3

    backups = tmp_path / "backups"
    with contextlib.chdir(tmp_path):
        result = invoke(
            "--log-format", "json", "execute", "plan.json", "--backup", str(backups),
            "--hook", f"on-success=env > {tmp_path}/success.env", url=secret_url,
        )  # fmt: skip
    m = latest(engine)
    assert m.phase == state.CUT_OVER and m.backup_path is not None
    backup = Path(m.backup_path)
    assert backup.parent == backups and backup.exists()
    assert str(backup) in "".join(result.output.split())
    hook_env = read_env(tmp_path / "success.env")
    assert hook_env["SHADOWSWAP_BACKUP"] == str(backup)
    assert '"backup written"' in result.output  # the logs (with the tool's arguments, where there is a tool)
    for text in (result.output, *hook_env.values()):
        assert secret not in text

    (tmp_path / "restore").mkdir()
    restored = fresh_database(backend(db_url), tmp_path / "restore")
    restored_url = next(restored)
    try:
        restore_into(restored_url, backup)
        check = sa.create_engine(restored_url)
        compare(check, initial).assert_exact()  # the original, as it was before the swap
        assert not price_is_text(check) and plan.shadow_table not in tables(check)
        with check.connect() as conn:
            assert dialect.existing_triggers(conn, "products") == []
            if sa.inspect(conn).has_table(state.STATE_TABLE):  # a whole-database copy: nothing left running
                assert state.active(conn, "products") is None
        check.dispose()
    finally:
        restored.close()


if "mysql" in DIALECTS:  # defined only where the MySQL dialect is under test (a password is checked there)

    @pytest.fixture
    def mysql_url(tmp_path: Path) -> Iterator[str]:
        yield from fresh_database("mysql", tmp_path)

    def test_mysql_backup_password_goes_to_an_option_file_never_the_arguments(mysql_url: str, tmp_path: Path) -> None:
        """A wrong password must reach mysqldump (the server says `using password: YES`) without ever
        appearing in its arguments, the logs or the error."""
        engine, dialect = connect(mysql_url)
        create_products(engine, 10)
        plan = plan_price(engine, dialect)
        secret = "wr0ng-s3cret"
        wrong = sa.create_engine(sa.make_url(mysql_url).set(password=secret))
        with structlog.testing.capture_logs() as logs, pytest.raises(BackupFailed) as failure:
            take_backup(wrong, dialect, plan, 1, tmp_path / "backups")
        assert "using password: YES" in str(failure.value)
        assert secret not in str(failure.value) and secret not in repr(logs)
        assert any(entry.get("event") == "running backup tool" for entry in logs)
        assert list((tmp_path / "backups").iterdir()) == []  # nothing half-written is left behind
        wrong.dispose()


# -- SIGKILL in every phase ------------------------------------------------------------------

# Every phase is killed once; each follow-up is exercised on several phases, both on the mid-copy kill.
KILLS = [
    (state.PLANNED, "abort"),
    (state.SHADOW_CREATED, "execute"),
    (state.TRIGGERS_INSTALLED, "execute"),  # mid-copy
    (state.TRIGGERS_INSTALLED, "abort"),
    (state.COPIED, "abort"),
    (state.INDEXES_BUILT, "execute"),
    (state.VERIFIED, "abort"),
    (state.VERIFIED, "execute"),
]


@pytest.mark.parametrize(("phase", "then"), KILLS)
def test_sigkill_in_each_phase(db_url: str, tmp_path: Path, phase: str, then: str) -> None:
    """The process is killed while it holds the migration in ``phase`` (parked there by a pause
    file, or paused mid-copy); ``execute`` then finishes it exactly, or ``abort`` leaves the
    original as the writers made it, with no triggers and no shadow."""
    engine, dialect = connect(db_url)
    initial = create_products(engine, SMALL)
    plan = plan_price(engine, dialect)
    plan.write(tmp_path / "plan.json")
    hold = tmp_path / "hold"
    with Writers(db_url, initial, threads=2, seed=11) as writers:
        if phase != state.PLANNED:
            Executor(engine, dialect, plan, Options(stop_after=phase)).run()
        if phase == state.TRIGGERS_INSTALLED:
            proc = spawn(
                "execute", "plan.json", "--pause-file", str(hold), "--chunk-size", "200", "--max-chunk", "200",
                "--max-rows-per-second", "4000", url=db_url, cwd=tmp_path,
            )  # fmt: skip
            wait_for("some chunks", lambda: _copied(engine) >= 600)
            hold.touch()
        else:
            hold.touch()
            proc = spawn("execute", "plan.json", "--pause-file", str(hold), url=db_url, cwd=tmp_path)
        wait_for("the process to hold", waiting_starts(engine, "paused while"))
        killed = latest(engine)
        assert killed.phase == phase
        if phase == state.TRIGGERS_INSTALLED:
            assert 0 < killed.rows_copied < SMALL
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        hold.unlink()
        time.sleep(0.2)  # the table stays writable while nothing runs
        with contextlib.chdir(tmp_path):
            invoke(then, "plan.json" if then == "execute" else "products", url=db_url)
        time.sleep(0.2)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    final = latest(engine)
    assert final.id == killed.id
    if then == "execute":
        assert final.phase == state.CUT_OVER and price_is_text(engine)
        assert plan.shadow_table not in tables(engine)
    else:
        assert final.phase == state.ABORTED and not price_is_text(engine)
        assert plan.shadow_table not in tables(engine) and plan.old_table not in tables(engine)
    assert triggers(engine, dialect) == []


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-load", "lots"], "is not [METRIC=]NUMBER"),
        (["--hook", "on-lunch=true"], "unknown event 'on-lunch'"),
        (["--hook", "on-start"], "is not EVENT=COMMAND"),
        (["--max-rows-per-second", "0"], "must be positive"),
        (["--replica", "postgresql://127.0.0.1/x"], "--replica is only used with --max-lag"),
        (["--max-load", "nosuch_metric=5"], "--max-load"),
    ],
)
def test_bad_safety_options_are_one_line_errors(db_url: str, tmp_path: Path, args: list[str], message: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 100)
    plan_price(engine, dialect).write(tmp_path / "plan.json")
    with contextlib.chdir(tmp_path):
        result = invoke_any("execute", "plan.json", *args, url=db_url)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert triggers(engine, dialect) == [] and plan_price(engine, dialect).shadow_table not in tables(engine)


def test_pause_without_a_migration_is_a_one_line_error(db_url: str, tmp_path: Path) -> None:
    with contextlib.chdir(tmp_path):
        for command in ("pause", "resume", "cutover"):
            result = invoke_any(command, url=db_url)
            assert result.exit_code == 2 and "no unfinished migration" in result.output, result.output


@pytest.mark.parametrize("then", ["execute", "abort"])
def test_sigkill_mid_concurrent_index_build_postgresql(pg_url: str, tmp_path: Path, then: str) -> None:
    """Killed inside CREATE INDEX CONCURRENTLY, the one non-transactional step: an INVALID index stays
    behind (and the server may still be building it for the dead client); resume rebuilds, abort drops.
    A plan that changes the key's type keeps direct dual-write, and with it the concurrent builds."""
    engine, dialect = connect(pg_url)
    initial = create_products(engine, SMALL)
    # the key through an expression (a no-op one) keeps direct dual-write
    plan = build_plan(engine, dialect, "products", parse_options(alter=["price:varchar(20)"], using=["id=id + 0"]))
    assert not plan.capture.change_log
    plan.write(tmp_path / "plan.json")
    with Writers(pg_url, initial, threads=2, seed=12) as writers:
        Executor(engine, dialect, plan, Options(stop_after=state.COPIED)).run()
        # an open snapshot in this database: the build waits for it after creating the index INVALID
        snapshot = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        snapshot.execute(sa.text("SELECT 1"))
        proc = spawn("execute", "plan.json", url=pg_url, cwd=tmp_path)

        def invalid_index() -> bool:
            with engine.connect() as conn:
                return bool(
                    conn.execute(
                        sa.text("SELECT count(*) FROM pg_index WHERE NOT indisvalid AND indrelid = to_regclass(:t)"),
                        {"t": dialect.q(plan.shadow_table)},
                    ).scalar_one()
                )

        wait_for("an index build in progress", invalid_index)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        snapshot.rollback()
        snapshot.close()
        assert latest(engine).phase == state.COPIED
        with contextlib.chdir(tmp_path):
            invoke(then, "plan.json" if then == "execute" else "products", url=pg_url)
        time.sleep(0.2)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        invalid = conn.execute(sa.text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar_one()
    assert invalid == 0
    if then == "execute":
        assert latest(engine).phase == state.CUT_OVER
        assert {ix["name"] for ix in sa.inspect(engine).get_indexes("products")} >= {
            "ix_products_name",
            "ix_products_active_created",
        }
    else:
        assert latest(engine).phase == state.ABORTED and plan.shadow_table not in tables(engine)
    assert triggers(engine, dialect) == []


def test_a_throttle_wait_given_up_leaves_the_reason_standing(tmp_path: Path) -> None:
    """A background verification told to stop while the operator's pause holds returns at once,
    and does not tell everyone else that the throttle lifted."""
    engine, dialect = connect(f"sqlite:///{tmp_path / 'x.db'}")
    pause = tmp_path / "hold"
    pause.touch()
    notes: list[str | None] = []
    throttler = Throttler(engine, dialect, ThrottleSettings(pause_file=pause), note=notes.append)
    deadline = time.monotonic() + 0.3
    waiter = threading.Thread(target=throttler.wait, kwargs={"given_up": lambda: time.monotonic() > deadline})
    waiter.start()
    waiter.join(timeout=5)
    held = waiter.is_alive()
    pause.unlink()  # lets a waiter that ignored given_up finish
    waiter.join()
    assert not held
    assert notes and notes[-1] is not None and "pause" in notes[-1]


@pytest.mark.parametrize("then", ["execute", "abort"])
def test_sigkill_mid_index_build_with_change_log_postgresql(pg_url: str, tmp_path: Path, then: str) -> None:
    """With a change log the shadow's indexes are plain builds, each in its own transaction: killed
    inside one (held up here by a lock on the shadow), nothing half-built remains; resume or abort."""
    engine, dialect = connect(pg_url)
    initial = create_products(engine, SMALL)
    plan = plan_price(engine, dialect)
    assert plan.capture.change_log
    plan.write(tmp_path / "plan.json")
    with Writers(pg_url, initial, threads=2, seed=13) as writers:
        Executor(engine, dialect, plan, Options(stop_after=state.COPIED)).run()
        holder = engine.connect()
        holder.execute(sa.text(f"LOCK TABLE {dialect.q(plan.shadow_table)} IN ROW EXCLUSIVE MODE"))
        proc = spawn("execute", "plan.json", url=pg_url, cwd=tmp_path)

        def build_waiting() -> bool:
            with engine.connect() as conn:
                return bool(
                    conn.execute(
                        sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = to_regclass(:t)"),
                        {"t": dialect.q(plan.shadow_table)},
                    ).scalar_one()
                )

        wait_for("an index build waiting on the shadow", build_waiting)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        holder.rollback()
        holder.close()
        assert latest(engine).phase == state.COPIED
        with contextlib.chdir(tmp_path):
            invoke(then, "plan.json" if then == "execute" else "products", url=pg_url)
        time.sleep(0.2)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    if then == "execute":
        assert latest(engine).phase == state.CUT_OVER
        assert {u["name"] for u in sa.inspect(engine).get_unique_constraints("products")} >= {"products_sku_key"}
    else:
        assert latest(engine).phase == state.ABORTED
        assert plan.shadow_table not in tables(engine) and plan.capture.logged_table not in tables(engine)
    assert triggers(engine, dialect) == []
