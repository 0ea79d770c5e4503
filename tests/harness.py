"""Concurrency harness: writer threads that insert, update (keys too) and delete while a
migration runs, each keeping a model of what it committed; then a row-by-row comparison.

Each writer owns a disjoint set of keys (initial rows by ``id % writers``, and the rows it
inserts or re-keys), so the union of the writers' models is exactly what the table must hold.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shadowswap.sample import COLUMNS, Comparison, compare, normalise, price_for, products_table, seed_rows

__all__ = [
    "COLUMNS",
    "Comparison",
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
    inserts: int = 0
    updates: int = 0
    rekeys: int = 0
    deletes: int = 0
    errors: list[str] = field(default_factory=list)
    #: wall-clock time of each committed write, to show writes landed while a migration ran
    commits: list[float] = field(default_factory=list)


class Writers:
    """``threads`` writers; ``model`` is what they committed, applied to the initial rows."""

    def __init__(
        self,
        url: str,
        initial: dict[int, dict[str, Any]],
        threads: int = 4,
        seed: int = 1,
        pause: float = 0.002,
        table: str = "products",
    ) -> None:
        self.engine = sa.create_engine(url, pool_size=threads + 1)
        self.table = table
        self.threads = threads
        self.seed = seed
        self.pause = pause
        self.stop_event = threading.Event()
        self.models: list[dict[int, dict[str, Any]]] = [
            {k: dict(v) for k, v in initial.items() if k % threads == t} for t in range(threads)
        ]
        self.stats = [WriterStats() for _ in range(threads)]
        self._threads: list[threading.Thread] = []
        self.is_pg = self.engine.dialect.name == "postgresql"

    def __enter__(self) -> Writers:
        for t in range(self.threads):
            thread = threading.Thread(target=self._run, args=(t,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self.engine.dispose()

    @property
    def model(self) -> dict[int, dict[str, Any]]:
        merged: dict[int, dict[str, Any]] = {}
        for m in self.models:
            merged.update(m)
        return merged

    @property
    def total(self) -> WriterStats:
        out = WriterStats()
        for s in self.stats:
            out.ops += s.ops
            out.inserts += s.inserts
            out.updates += s.updates
            out.rekeys += s.rekeys
            out.deletes += s.deletes
            out.errors += s.errors
            out.commits += s.commits
        return out

    def _run(self, t: int) -> None:
        rng = random.Random(self.seed * 1000 + t)
        model = self.models[t]
        stats = self.stats[t]
        counter = 0
        keys = list(model)
        q = self.engine.dialect.identifier_preparer.quote
        table = q(self.table)
        while not self.stop_event.is_set():
            counter += 1
            op = rng.random()
            if counter % 50 == 0:
                keys = list(model)  # forget deleted and re-keyed keys now and then
            try:
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
                    with self.engine.begin() as conn:
                        if self.is_pg:
                            new_id = conn.execute(
                                sa.text(f"INSERT INTO {table} ({cols}) VALUES ({vals}) RETURNING id"), row
                            ).scalar_one()
                        else:
                            new_id = conn.execute(
                                sa.text(f"INSERT INTO {table} ({cols}) VALUES ({vals})"), row
                            ).lastrowid
                    model[int(new_id)] = row
                    keys.append(int(new_id))
                    stats.inserts += 1
                else:
                    key = rng.choice(keys)
                    if key not in model:
                        continue
                    if op < 0.7:
                        changes = {
                            "price": price_for(rng),
                            "stock_quantity": rng.randrange(0, 1000),
                            "name": f"w{t} update {counter}",
                        }
                        with self.engine.begin() as conn:
                            n = conn.execute(
                                sa.text(
                                    f"UPDATE {table} SET price = :price, stock_quantity = :stock_quantity, "
                                    f"name = :name WHERE id = :id"
                                ),
                                {**changes, "id": key},
                            ).rowcount
                        if n != 1:
                            raise AssertionError(f"update of {key} touched {n} rows")
                        model[key].update(changes)
                        stats.updates += 1
                    elif op < 0.8:
                        # negative: SQLite and MySQL generate max(key) + 1, which would reach a positive target
                        new_key = -(REKEY_BASE + self.seed * 1_000_000 + counter * self.threads + t)
                        with self.engine.begin() as conn:
                            n = conn.execute(
                                sa.text(f"UPDATE {table} SET id = :new WHERE id = :id"), {"new": new_key, "id": key}
                            ).rowcount
                        if n != 1:
                            raise AssertionError(f"re-key of {key} touched {n} rows")
                        model[new_key] = model.pop(key)
                        keys.append(new_key)
                        stats.rekeys += 1
                    else:
                        with self.engine.begin() as conn:
                            n = conn.execute(sa.text(f"DELETE FROM {table} WHERE id = :id"), {"id": key}).rowcount
                        if n != 1:
                            raise AssertionError(f"delete of {key} touched {n} rows")
                        del model[key]
                        stats.deletes += 1
                stats.ops += 1
                stats.commits.append(time.time())
            except Exception as exc:  # recorded and asserted on by the test, never swallowed
                stats.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            if self.pause:
                time.sleep(self.pause)


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
