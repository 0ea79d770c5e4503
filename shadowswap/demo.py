"""``shadowswap demo``: a real online migration on a SQLite file while another process writes to it.

Nothing to install or start: the demo creates the file, seeds the ``products`` table, starts the
"application" (a second Python process with its own SQLite connection, writing at a steady rate
and remembering what it committed), migrates ``price`` to ``varchar(20)`` with the normal plan
and executor, and then checks the table row by row against what the application committed.
"""

from __future__ import annotations

import math
import multiprocessing
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.errors import ShadowswapError, UsageError, VerificationFailed
from shadowswap.executor import Executor, Options, Reporter, Summary
from shadowswap.plan import Plan
from shadowswap.planner import build_plan
from shadowswap.sample import COLUMNS, Comparison, compare, price_for, products_table, seed_rows

#: PRAGMA application_id of a file this demo created ('sSwD'): only such a file is ever replaced
DEMO_APPLICATION_ID = 0x73537744
ALTER = "price:varchar(20)"


@dataclass
class Outcome:
    db_file: Path
    rows: int
    plan: Plan
    summary: Summary
    comparison: Comparison
    #: (commit wall-clock time, seconds the write took) for every write the application committed
    writes: list[tuple[float, float]]
    migration_started: float
    migration_finished: float
    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def during(self) -> list[float]:
        return [s for t, s in self.writes if self.migration_started <= t <= self.migration_finished]

    def before(self) -> list[float]:
        return [s for t, s in self.writes if t < self.migration_started]

    @property
    def exact(self) -> bool:
        c = self.comparison
        return not (c.lost or c.ghost or c.wrong)


# -- the application -----------------------------------------------------------------------


def application(path: str, rate: float, seed: int, stop: Event, ready: Event, out: Pipe, threads: int = 4) -> None:
    """The application: ``threads`` request handlers sharing ``rate`` writes a second, each with its
    own plain sqlite3 connection (Python's default 5 s busy timeout, one statement a transaction).

    Each handler owns a disjoint set of keys (initial rows by ``id % threads``, and the rows it
    inserts or re-keys), so the union of their models is exactly what the table must hold.
    """
    db = sqlite3.connect(path, timeout=5.0)
    cols = ", ".join(COLUMNS)
    initial = {r[0]: dict(zip(COLUMNS, r[1:], strict=True)) for r in db.execute(f"SELECT id, {cols} FROM products")}
    db.close()
    results: list[dict[str, Any]] = [{} for _ in range(threads)]
    handlers = [
        threading.Thread(
            target=_handler,
            args=(path, rate / threads, seed * 100 + t, t, threads, stop, results[t]),
            kwargs={"model": {k: v for k, v in initial.items() if k % threads == t}},
            daemon=True,
        )
        for t in range(threads)
    ]
    for handler in handlers:
        handler.start()
    ready.set()
    for handler in handlers:
        handler.join()
    merged: dict[str, Any] = {"model": {}, "writes": [], "errors": [], "counts": {}}
    for result in results:
        merged["model"].update(result["model"])
        merged["writes"] += result["writes"]
        merged["errors"] += result["errors"]
        for name, n in result["counts"].items():
            merged["counts"][name] = merged["counts"].get(name, 0) + n
    merged["writes"].sort()
    out.send(merged)
    out.close()


def _handler(
    path: str, rate: float, seed: int, me: int, threads: int, stop: Event, result: dict[str, Any], model: dict[int, Any]
) -> None:
    """Inserts, updates, primary-key changes and deletes at ``rate`` a second. The model changes
    only after COMMIT returned, so it is exactly what this handler's keys must hold."""
    db = sqlite3.connect(path, timeout=5.0)
    cols = ", ".join(COLUMNS)
    rng = random.Random(seed)
    writes: list[tuple[float, float]] = []
    errors: list[str] = []
    counts = {"inserts": 0, "updates": 0, "key changes": 0, "deletes": 0}
    keys = list(model)
    interval = 1.0 / rate
    due = time.perf_counter() + rng.random() * interval
    counter = 0
    while not stop.is_set():
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due = max(due + interval, time.perf_counter() - 1.0)  # requests that waited are served late, not dropped
        counter += 1
        if counter % 100 == 0:
            keys = list(model)
        op = rng.random()
        key = rng.choice(keys) if keys else None
        started = time.perf_counter()
        try:
            if op < 0.3 or key is None or key not in model:
                row = {
                    "name": f"app insert {me}-{counter}",
                    "description": rng.choice([None, "inserted ünïcode ✓", "x" * rng.randrange(1, 200)]),
                    "sku": f"APP-{seed}-{counter}",
                    "price": price_for(rng),
                    "stock_quantity": rng.randrange(0, 100),
                    "is_active": rng.random() < 0.5,
                }
                with db:
                    cursor = db.execute(
                        f"INSERT INTO products ({cols}) VALUES ({', '.join('?' * len(COLUMNS))})",
                        [row[c] for c in COLUMNS],
                    )
                new_id = cursor.lastrowid
                if new_id is None:
                    raise RuntimeError("insert returned no key")
                model[new_id] = row
                keys.append(new_id)
                counts["inserts"] += 1
            elif op < 0.7:
                change = {"price": price_for(rng), "stock_quantity": rng.randrange(0, 1000)}
                with db:
                    n = db.execute(
                        "UPDATE products SET price = ?, stock_quantity = ? WHERE id = ?",
                        (change["price"], change["stock_quantity"], key),
                    ).rowcount
                _expect_one(n, "update", key)
                model[key].update(change)
                counts["updates"] += 1
            elif op < 0.8:
                # negative keys: the table generates max(id) + 1, which never reaches them
                new_key = -(counter * threads + me + 1)
                with db:
                    n = db.execute("UPDATE products SET id = ? WHERE id = ?", (new_key, key)).rowcount
                _expect_one(n, "key change", key)
                model[new_key] = model.pop(key)
                keys.append(new_key)
                counts["key changes"] += 1
            else:
                with db:
                    n = db.execute("DELETE FROM products WHERE id = ?", (key,)).rowcount
                _expect_one(n, "delete", key)
                del model[key]
                counts["deletes"] += 1
            writes.append((time.time(), time.perf_counter() - started))
        except (sqlite3.Error, RuntimeError) as exc:  # reported by the demo, which then fails
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    db.close()
    result.update(model=model, writes=writes, errors=errors, counts=counts)


def _expect_one(n: int, what: str, key: Any) -> None:
    if n != 1:
        raise RuntimeError(f"{what} of key {key} touched {n} rows")


# -- the demo ------------------------------------------------------------------------------


def prepare_file(db_file: Path) -> None:
    """Start from a new file; replace an old one only if this demo created it."""
    if db_file.exists():
        try:
            with sqlite3.connect(db_file) as probe:
                app_id = probe.execute("PRAGMA application_id").fetchone()[0]
            probe.close()
        except sqlite3.DatabaseError:
            app_id = None
        if app_id != DEMO_APPLICATION_ID:
            raise UsageError(
                f"{db_file} exists and was not made by shadowswap demo",
                hint="give another --db-file; the demo never overwrites other files",
            )
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    db_file.parent.mkdir(parents=True, exist_ok=True)


def seed(engine: sa.Engine, rows: int, console: Console) -> None:
    metadata = sa.MetaData()
    table = products_table(metadata)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
    batch = 10_000
    with Progress(
        TextColumn("seeding products"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task("seed", total=rows)
        for start in range(0, rows, batch):
            data = seed_rows(min(batch, rows - start), seed=start + 1)
            for offset, row in enumerate(data):
                row["id"] = start + offset + 1
                row["sku"] = f"SKU-{row['id']:08d}"
            with engine.begin() as conn:
                conn.execute(table.insert(), data)
            progress.advance(task, len(data))


def run(
    db_file: Path,
    rows: int,
    console: Console,
    reporter: Reporter | None = None,
    rate: float = 200.0,
    settle: float = 1.0,
) -> Outcome:
    if rows < 1:
        raise UsageError("--rows must be at least 1")
    if rate <= 0:
        raise UsageError("--writes-per-second must be positive")
    prepare_file(db_file)
    engine, dialect = connect(f"sqlite:///{db_file}")
    try:
        seed(engine, rows, console)
        console.print(f"created [bold]{db_file}[/bold]: products with {rows:,} rows")

        context = multiprocessing.get_context("spawn")  # a fresh interpreter, like a real application
        stop, ready = context.Event(), context.Event()
        receive, send = context.Pipe(duplex=False)
        app = context.Process(
            target=application, args=(str(db_file), rate, 7, stop, ready, send), name="shadowswap-demo-app"
        )
        app.start()
        send.close()
        try:
            deadline = time.monotonic() + 60
            while not ready.wait(0.1):
                if not app.is_alive() or time.monotonic() > deadline:
                    raise ShadowswapError("the demo's application process did not start")
            console.print(
                f"application started: process {app.pid}, 4 connections writing about {rate:,.0f} times a second"
            )
            time.sleep(settle)

            plan = build_plan(engine, dialect, "products", [parse_alter(ALTER)])
            console.print(f"\n[bold]$ shadowswap plan products --alter {ALTER}[/bold]")
            render_plan_summary(plan, console)
            console.print("\n[bold]$ shadowswap execute[/bold]")
            migration_started = time.time()
            summary = Executor(
                engine, dialect, plan, Options(chunk_time=dialect.default_chunk_time), reporter
            ).run()
            migration_finished = time.time()
            time.sleep(settle)  # the application goes on writing, now into the new table
        finally:
            stop.set()
            try:
                result = receive.recv() if app.is_alive() or receive.poll() else None
            except EOFError:
                result = None
            app.join(timeout=30)
            if app.is_alive():
                app.terminate()
        if result is None:
            raise ShadowswapError("the demo's application process died", hint="run the demo again with --rows 1000")
        model = result["model"]
        comparison = compare(engine, model)
    finally:
        engine.dispose()
    return Outcome(
        db_file=db_file,
        rows=rows,
        plan=plan,
        summary=summary,
        comparison=comparison,
        writes=result["writes"],
        migration_started=migration_started,
        migration_finished=migration_finished,
        errors=result["errors"],
        counts=result["counts"],
    )


# -- output --------------------------------------------------------------------------------


def render_plan_summary(plan: Plan, console: Console) -> None:
    changed = [c for c in plan.columns if c.changed]
    for c in changed:
        change = f"{c.old_type} → [bold yellow]{c.new_type}[/bold yellow]"
        console.print(f"  {plan.table}.{c.name}: {change}", highlight=False)
        console.print(f"  copy expression (copy and triggers): {c.expression}", highlight=False, soft_wrap=True)
    console.print(
        f"  shadow {plan.shadow_table} with {len(plan.indexes)} secondary indexes, triggers "
        f"{', '.join(plan.trigger_names)}; about {plan.estimated_rows:,} rows to copy; "
        f"old table kept as {plan.old_table}",
        highlight=False,
    )
    for note in plan.notes:
        console.print(f"  • {note}", highlight=False)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def render_outcome(o: Outcome, console: Console) -> None:
    s = o.summary
    during, before = o.during(), o.before()
    elapsed = o.migration_finished - o.migration_started
    phases = s.phases
    table = Table(title="what happened", title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "migration",
        f"{elapsed:.1f} s for {s.rows_copied:,} rows (copy {phases.get('copied', 0):.1f} s, "
        f"verify {phases.get('verified', 0):.1f} s); the swap held the write lock "
        f"{s.cutover_lock_ms or 0:.1f} ms",
    )
    warmup = o.migration_started - o.writes[0][0] if o.writes else 0.0
    table.add_row(
        "writes during it",
        f"{len(during):,} committed by the application ({len(during) / elapsed if elapsed else 0:,.0f}/s; "
        f"{len(before) / warmup if warmup > 0 else 0:,.0f}/s before), {len(o.errors)} failed",
    )
    table.add_row(
        "longest write stall",
        f"{_ms(max(during, default=0))} during the migration (p99 {_ms(percentile(during, 0.99))}); "
        f"{_ms(max(before, default=0))} before it",
    )
    c = o.comparison
    verdict = "[green]exact[/green]" if o.exact else "[red]DIFFERENT[/red]"
    table.add_row(
        "verification",
        f"{verdict}: products compared row by row with the {sum(o.counts.values()):,} writes the application "
        f"committed ({', '.join(f'{n:,} {k}' for k, n in o.counts.items())}): "
        f"{len(c.lost)} lost, {len(c.ghost)} ghost, {len(c.wrong)} wrong",
    )
    console.print()
    console.print(table)
    for error in o.errors[:5]:
        console.print(f"  [red]application error:[/red] {error}", highlight=False)
    url = f"sqlite:///{o.db_file}"
    console.print("\nthe file is yours to look at:")
    console.print(f"  sqlite3 {o.db_file} '.schema products'", highlight=False)
    console.print(f"  shadowswap status --db {url}", highlight=False)
    console.print(f"  shadowswap cleanup --drop-old --db {url}   # drop {o.plan.old_table}", highlight=False)


def check(o: Outcome) -> None:
    """Fail the command when the application lost a write or the table differs from what it committed."""
    c = o.comparison
    if not o.exact:
        raise VerificationFailed(
            f"the migrated table differs from what the application committed: {len(c.lost)} lost "
            f"(e.g. {c.lost[:3]}), {len(c.ghost)} ghost (e.g. {c.ghost[:3]}), {len(c.wrong)} wrong"
        )
    if o.errors:
        raise ShadowswapError(f"{len(o.errors)} of the application's writes failed during the demo: {o.errors[0]}")
