"""The AUTO-INC lock, measured: application writes during the copy of an AUTO_INCREMENT table.

Runs the same migration (``price`` decimal -> varchar(20) on a ``products`` table) twice on one
MySQL/MariaDB server while a fixed-rate writer inserts and updates rows (and, as ``none``, the
same writes for 10 s without a migration):

* ``helper``: shadowswap's copy for ``innodb_autoinc_lock_mode=1`` (chunks reach the shadow
  through a helper table's trigger, so only "simple inserts" ever write the shadow);
* ``direct``: the same chunks as ``INSERT … SELECT`` straight into the shadow, which keeps its
  AUTO_INCREMENT column, as a plain trigger-based tool does.

    python -m benchmarks.mysql_autoinc --url mysql+pymysql://root@127.0.0.1:3306/ --rows 300000 --rate 200

It creates and drops its own database. Prints, per variant, the copy time and the writes offered,
completed and failed while the copy ran, with their latency percentiles.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa

from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.executor import Executor, Options, SilentReporter
from shadowswap.planner import build_plan


@dataclass
class Window(SilentReporter):
    started: float = 0.0
    finished: float = 0.0

    def copy_started(self, total_estimate: int, already: int) -> None:
        self.started = time.perf_counter()

    def copy_finished(self) -> None:
        self.finished = time.perf_counter()


@dataclass
class Write:
    due: float
    latency: float
    error: str | None


@dataclass
class FixedRateWriter:
    """Open loop: a write is due every 1/rate s whether or not earlier ones finished (as users are)."""

    url: str
    rate: float
    top_id: int
    workers: int = 16
    writes: list[Write] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.url, pool_size=self.workers, max_overflow=0)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.next_due = 0.0
        self.counter = 0

    def _take(self) -> tuple[float, int] | None:
        with self.lock:
            if self.stop.is_set():
                return None
            due = self.next_due
            self.next_due += 1 / self.rate
            self.counter += 1
            return due, self.counter

    def _work(self) -> None:
        rng = random.Random()
        while (job := self._take()) is not None:
            due, n = job
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            error = None
            try:
                with self.engine.begin() as conn:
                    if n % 2:
                        conn.execute(
                            sa.text("INSERT INTO products (name, sku, price) VALUES (:n, :s, :p)"),
                            {"n": f"bench {n}", "s": f"B-{uuid.uuid4().hex[:12]}", "p": "9.99"},
                        )
                    else:
                        conn.execute(
                            sa.text("UPDATE products SET price = :p WHERE id = :id"),
                            {"p": f"{rng.randrange(100, 99999) / 100:.2f}", "id": rng.randrange(1, self.top_id)},
                        )
            except Exception as exc:  # counted and printed, never hidden
                error = str(exc).splitlines()[0][:120]
            with self.lock:
                self.writes.append(Write(due, time.perf_counter() - due, error))

    def __enter__(self) -> FixedRateWriter:
        self.next_due = time.perf_counter()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        self.engine.dispose()


def seed(url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE products (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255) NOT NULL, "
            "description TEXT, sku VARCHAR(100) NOT NULL UNIQUE, price DECIMAL(10,2) NOT NULL, "
            "stock_quantity INT NOT NULL DEFAULT 0, is_active TINYINT(1) NOT NULL DEFAULT 1, "
            "created_at DATETIME DEFAULT CURRENT_TIMESTAMP, KEY ix_name (name))"
        )
    batch = 10_000
    for start in range(1, rows + 1, batch):
        values = [
            {"name": f"product {i}", "d": f"description of {i}", "sku": f"SKU-{i:09d}", "p": f"{i % 99999 / 100:.2f}"}
            for i in range(start, min(rows, start + batch - 1) + 1)
        ]
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO products (name, description, sku, price) VALUES (:name, :d, :sku, :p)"), values
            )
    engine.dispose()


def run(admin_url: str, rows: int, rate: float, via: str, chunk_time: float) -> None:
    name = f"ss_bench_autoinc_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        seed(url, rows)
        engine, dialect = connect(url)
        plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
        if via == "direct":
            direct = dataclasses.replace(plan.capture.route, via="direct", helper_table=None)
            plan.capture = dataclasses.replace(plan.capture, route=direct)
            plan.trigger_ddl = dialect.trigger_ddl(plan)
            plan.drop_trigger_ddl = dialect.drop_trigger_ddl(plan)
            plan.swap_sql, plan.post_swap_sql = dialect.swap_sql(plan, {})
        window = Window()
        with FixedRateWriter(url, rate, rows) as writer:
            time.sleep(1)
            if via == "none":  # the same writes for 10 s without a migration: the baseline
                window.started = time.perf_counter()
                time.sleep(10)
                window.finished = time.perf_counter()
                summary = None
            else:
                summary = Executor(engine, dialect, plan, Options(chunk_time=chunk_time), reporter=window).run()
            time.sleep(1)
        during = [w for w in writer.writes if window.started <= w.due <= window.finished]
        ok = sorted(w.latency * 1000 for w in during if w.error is None)
        errors = [w.error for w in during if w.error]
        copy_s = window.finished - window.started
        pct = statistics.quantiles(ok, n=100) if len(ok) > 1 else [0.0] * 99
        print(
            f"{via:6} mode={plan.capture.route.autoinc_lock_mode} rows={rows} copy={copy_s:.1f}s "
            f"offered={len(during)} ({len(during) / copy_s:.0f}/s) ok={len(ok)} errors={len(errors)} "
            f"latency ms p50={pct[49]:.1f} p99={pct[98]:.1f} max={max(ok, default=0):.1f} "
            f"swap_lock={(summary.cutover_lock_ms or 0) if summary else 0:.1f}ms"
        )
        for e in sorted(set(errors))[:3]:
            print(f"        error: {e}")
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="mysql+pymysql://root@127.0.0.1:3306/")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--via", choices=["none", "helper", "direct", "all"], default="all")
    parser.add_argument("--chunk-time", type=float, default=Options.chunk_time)
    args = parser.parse_args()
    for via in ["none", "helper", "direct"] if args.via == "all" else [args.via]:
        run(args.url, args.rows, args.rate, via, args.chunk_time)


if __name__ == "__main__":
    main()
