"""Concurrency harness: writer threads that insert, update (keys too) and delete while a
migration runs, each keeping a model of what it committed; then a row-by-row comparison.

``WriterPool`` is the one way a test runs application writers: N threads each calling a step
(one committed transaction, recorded in that writer's model) until stopped, errors recorded for
the test to assert on. ``Writers`` is its products mix. Each writer owns a disjoint set of keys
(initial rows by ``owner(key)``, and the rows it inserts or re-keys), so the union of the
writers' models is exactly what the table must hold.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa

from shadowswap.sample import COLUMNS, Comparison, compare, normalise, price_for, products_table, seed_rows

__all__ = [
    "COLUMNS",
    "Comparison",
    "Writer",
    "WriterPool",
    "Writers",
    "compare",
    "create_products",
    "normalise",
    "price_for",
    "products_table",
    "seed_rows",
]

REKEY_BASE = 50_000_000


def create_products(engine: sa.Engine, rows: int, seed: int = 1) -> dict[int, dict[str, Any]]:
    metadata = sa.MetaData()
    table = products_table(metadata)
    metadata.create_all(engine)
    data = seed_rows(rows, seed)
    with engine.begin() as conn:
        for start in range(0, len(data), 5000):
            conn.execute(table.insert(), data[start : start + 5000])
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT setval('products_id_seq', (SELECT max(id) FROM products))")
            conn.exec_driver_sql("ANALYZE products")
    return {r["id"]: {k: r[k] for k in COLUMNS} for r in data}


@dataclass
class WriterStats:
    ops: int = 0
    #: committed writes by kind, as the step named them ("inserts", "updates", ...)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    #: wall-clock time of each committed write, to show writes landed while a migration ran
    commits: list[float] = field(default_factory=list)

    @property
    def inserts(self) -> int:
        return self.counts["inserts"]

    @property
    def updates(self) -> int:
        return self.counts["updates"]

    @property
    def rekeys(self) -> int:
        return self.counts["rekeys"]

    @property
    def deletes(self) -> int:
        return self.counts["deletes"]


@dataclass
class Writer:
    """What one writer thread's step sees: its own random numbers, counter and part of the model.

    ``model`` holds only the keys this writer owns, so no two writers ever touch one row and the
    union of the models is what the table must hold; ``keys`` is the step's own list to pick from."""

    index: int
    rng: random.Random
    model: dict[Any, Any]
    keys: list[Any] = field(default_factory=list)
    counter: int = 0


#: one write: runs and commits one transaction on the engine, then records it in ``writer.model``;
#: returns the kind of write it committed, or None when it chose to do nothing this turn
Step = Callable[[sa.Engine, Writer], "str | None"]


class WriterPool:
    """``threads`` application writers running ``step`` in a loop until stopped.

    Each writer's model starts with the initial rows it owns (``owner(key)``, by default the key's
    hash modulo ``threads``); an exception from a step is recorded in the writer's ``errors``, for
    the test to assert on, and the writer goes on. ``model`` is the union of what they committed.
    """

    def __init__(
        self,
        url: str | sa.Engine,
        step: Step,
        initial: dict[Any, Any] | None = None,
        threads: int = 1,
        seed: int = 1,
        pause: float = 0.002,
        owner: Callable[[Any], int] | None = None,
    ) -> None:
        # a URL gets an engine (and pool) of its own, as an application would have
        self.own_engine = isinstance(url, str)
        self.engine = sa.create_engine(url, pool_size=threads + 1) if isinstance(url, str) else url
        self.step = step
        self.threads = threads
        self.seed = seed
        self.pause = pause
        self.stop_event = threading.Event()
        owner = owner or (lambda key: hash(key) % threads)
        self.writers = [
            Writer(
                t, random.Random(seed * 1000 + t), {k: _copy(v) for k, v in (initial or {}).items() if owner(k) == t}
            )
            for t in range(threads)
        ]
        for writer in self.writers:
            writer.keys = list(writer.model)
        self.stats = [WriterStats() for _ in range(threads)]
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for t in range(self.threads):
            thread = threading.Thread(target=self._run, args=(t,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self._threads), "a writer did not stop"
        if self.own_engine:
            self.engine.dispose()

    @property
    def models(self) -> list[dict[Any, Any]]:
        return [writer.model for writer in self.writers]

    @property
    def model(self) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        for writer in self.writers:
            merged.update(writer.model)
        return merged

    @property
    def total(self) -> WriterStats:
        out = WriterStats()
        for s in self.stats:
            out.ops += s.ops
            out.counts.update(s.counts)
            out.errors += s.errors
            out.commits += s.commits
        return out

    def _run(self, t: int) -> None:
        writer, stats = self.writers[t], self.stats[t]
        while not self.stop_event.is_set():
            writer.counter += 1
            try:
                kind = self.step(self.engine, writer)
                if kind is not None:
                    stats.ops += 1
                    stats.counts[kind] += 1
                    stats.commits.append(time.time())
            except Exception as exc:  # recorded and asserted on by the test, never swallowed
                stats.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            if self.pause:
                time.sleep(self.pause)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


class Writers(WriterPool):
    """The products mix: inserts, updates, primary-key updates and deletes, keys owned by ``id % threads``."""

    def __init__(
        self,
        url: str,
        initial: dict[int, dict[str, Any]],
        threads: int = 4,
        seed: int = 1,
        pause: float = 0.002,
        table: str = "products",
    ) -> None:
        super().__init__(url, self._write, initial, threads, seed, pause, owner=lambda key: key % threads)
        self.table = table
        self.is_pg = self.engine.dialect.name == "postgresql"

    def _write(self, engine: sa.Engine, w: Writer) -> str | None:
        rng, model, t, counter = w.rng, w.model, w.index, w.counter
        q = engine.dialect.identifier_preparer.quote
        table = q(self.table)
        op = rng.random()
        if counter % 50 == 0:
            w.keys = list(model)  # forget deleted and re-keyed keys now and then
        if op < 0.3 or not model:
            row = {
                "name": f"w{t} insert {counter}",
                "description": rng.choice([None, "inserted ünïcode ✓", "x" * rng.randrange(1, 300)]),
                "sku": f"W{t}-{self.seed}-{counter}",
                "price": price_for(rng),
                "stock_quantity": rng.randrange(0, 100),
                "is_active": rng.random() < 0.5,
            }
            cols = ", ".join(q(c) for c in COLUMNS)
            vals = ", ".join(f":{c}" for c in COLUMNS)
            with engine.begin() as conn:
                if self.is_pg:
                    new_id = conn.execute(
                        sa.text(f"INSERT INTO {table} ({cols}) VALUES ({vals}) RETURNING id"), row
                    ).scalar_one()
                else:
                    new_id = conn.execute(sa.text(f"INSERT INTO {table} ({cols}) VALUES ({vals})"), row).lastrowid
            model[int(new_id)] = row
            w.keys.append(int(new_id))
            return "inserts"
        key = rng.choice(w.keys)
        if key not in model:
            return None
        if op < 0.7:
            changes = {
                "price": price_for(rng),
                "stock_quantity": rng.randrange(0, 1000),
                "name": f"w{t} update {counter}",
            }
            with engine.begin() as conn:
                n = conn.execute(
                    sa.text(
                        f"UPDATE {table} SET price = :price, stock_quantity = :stock_quantity, name = :name "
                        "WHERE id = :id"
                    ),
                    {**changes, "id": key},
                ).rowcount
            if n != 1:
                raise AssertionError(f"update of {key} touched {n} rows")
            model[key].update(changes)
            return "updates"
        if op < 0.8:
            # negative: SQLite and MySQL generate max(key) + 1, which would reach a positive target
            new_key = -(REKEY_BASE + self.seed * 1_000_000 + counter * self.threads + t)
            with engine.begin() as conn:
                n = conn.execute(
                    sa.text(f"UPDATE {table} SET id = :new WHERE id = :id"), {"new": new_key, "id": key}
                ).rowcount
            if n != 1:
                raise AssertionError(f"re-key of {key} touched {n} rows")
            model[new_key] = model.pop(key)
            w.keys.append(new_key)
            return "rekeys"
        with engine.begin() as conn:
            n = conn.execute(sa.text(f"DELETE FROM {table} WHERE id = :id"), {"id": key}).rowcount
        if n != 1:
            raise AssertionError(f"delete of {key} touched {n} rows")
        del model[key]
        return "deletes"


def shadowswap(*args: str, url: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: its own process, the database from DATABASE_URL."""
    env = {**os.environ, "DATABASE_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "shadowswap", *args],
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        input=stdin,
        timeout=300,
    )
