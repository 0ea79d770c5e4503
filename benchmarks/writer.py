"""The application: a separate process offering a fixed rate of writes on a fixed schedule.

Each thread owns the schedule ``t0 + (k * threads + t) / rate`` and records, for every operation,
its *intended* start, its actual start and its end. A thread blocked by a lock issues nothing, but
its schedule runs on: when it is released it works through the backlog, and each of those writes
counts its latency from the time it should have started (coordinated omission corrected, as in
wrk2/HdrHistogram). So a stall is seen as what the application's users see.

Writes: 30 % inserts, 40 % updates (price, stock, name), 10 % primary-key changes, 20 % deletes.
Thread ``t`` owns the initial keys ``id % threads == t`` plus the rows it inserts or re-keys, so
the union of the threads' models is what the table must hold. Re-keyed rows move to negative keys,
which neither the sequence nor AUTO_INCREMENT ever hands out.

Protocol: prints ``ready`` once connected; ``stop`` on stdin ends the schedule; the results (every
operation, the errors, and the final state of every key it touched) go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from typing import Any

import sqlalchemy as sa

from benchmarks.seed import COLUMNS, price_of, seed_row

INSERT, UPDATE, REKEY, DELETE = "insert", "update", "rekey", "delete"
#: how long a stopped writer may keep working through a backlog before the rest counts as never issued
DRAIN_SECONDS = 30.0


class Thread:
    def __init__(self, writer: Writer, t: int) -> None:
        self.w = writer
        self.t = t
        self.rng = random.Random(writer.seed * 1000 + t)
        self.touched: dict[int, dict[str, Any] | None] = {}
        self.created: list[int] = []
        self.ops: list[list[Any]] = []
        self.errors: list[str] = []
        self.counter = 0

    # -- the model -------------------------------------------------------------------------

    def alive(self, key: int) -> dict[str, Any] | None:
        if key in self.touched:
            return self.touched[key]
        if 1 <= key <= self.w.rows:
            return seed_row(key)
        return None

    def pick(self) -> int | None:
        """A key this thread owns that still exists, or None (the caller then inserts)."""
        first = self.t if self.t > 0 else self.w.threads
        for _ in range(8):
            if self.created and (self.rng.random() < 0.3 or first > self.w.rows):
                key = self.rng.choice(self.created)
            elif first <= self.w.rows:
                key = self.rng.randrange(first, self.w.rows + 1, self.w.threads)
            else:
                return None
            if self.alive(key) is not None:
                return key
        return None

    # -- one write -------------------------------------------------------------------------

    def write(self, conn: sa.Connection) -> str:
        self.counter += 1
        op = self.rng.random()
        key = None if op < 0.3 else self.pick()
        table = self.w.table
        if key is None:
            row = {
                "name": f"w{self.t} insert {self.counter}",
                "description": self.rng.choice([None, "inserted ünïcode ✓", "x" * self.rng.randrange(1, 300)]),
                "sku": f"W{self.t}-{self.w.seed}-{self.counter}",
                "price": price_of(self.rng.randrange(100, 9_999_999)),
                "stock_quantity": self.rng.randrange(0, 100),
                "is_active": self.rng.random() < 0.5,
            }
            cols = ", ".join(COLUMNS)
            vals = ", ".join(f":{c}" for c in COLUMNS)
            if self.w.returning:
                sql = f"INSERT INTO {table} ({cols}) VALUES ({vals}) RETURNING id"
                new_id = int(conn.execute(sa.text(sql), row).scalar_one())
            else:
                new_id = int(conn.execute(sa.text(f"INSERT INTO {table} ({cols}) VALUES ({vals})"), row).lastrowid)
            self.touched[new_id] = row
            self.created.append(new_id)
            return INSERT
        current = self.alive(key)
        assert current is not None
        if op < 0.7:
            changes = {
                "price": price_of(self.rng.randrange(100, 9_999_999)),
                "stock_quantity": self.rng.randrange(0, 1000),
                "name": f"w{self.t} update {self.counter}",
            }
            n = conn.execute(
                sa.text(
                    f"UPDATE {table} SET price = :price, stock_quantity = :stock_quantity, name = :name WHERE id = :id"
                ),
                {**changes, "id": key},
            ).rowcount
            self._one(n, UPDATE, key)
            self.touched[key] = {**current, **changes}
            return UPDATE
        if op < 0.8:
            new_key = -(self.counter * self.w.threads + self.t + 1)
            n = conn.execute(
                sa.text(f"UPDATE {table} SET id = :new WHERE id = :id"), {"new": new_key, "id": key}
            ).rowcount
            self._one(n, REKEY, key)
            self.touched[key] = None
            self.touched[new_key] = current
            self.created.append(new_key)
            return REKEY
        n = conn.execute(sa.text(f"DELETE FROM {table} WHERE id = :id"), {"id": key}).rowcount
        self._one(n, DELETE, key)
        self.touched[key] = None
        return DELETE

    @staticmethod
    def _one(n: int, what: str, key: int) -> None:
        if n != 1:
            raise LookupError(f"{what} of id {key} touched {n} rows")

    # -- the schedule ----------------------------------------------------------------------

    def run(self) -> None:
        w = self.w
        k = 0
        with w.engine.connect() as conn:
            w.connected.release()
            w.go.wait()
            while True:
                intended = w.t0 + (k * w.threads + self.t) / w.rate
                stop_at = w.stop_at
                if stop_at is not None and intended >= stop_at:
                    break
                now = time.monotonic()
                if stop_at is not None and now > stop_at + DRAIN_SECONDS:
                    # never issued: count them, so a writer stuck to the end is not flattered
                    while intended < stop_at:
                        self.ops.append([self.t, "unissued", intended, None, None, False])
                        k += 1
                        intended = w.t0 + (k * w.threads + self.t) / w.rate
                    break
                if intended > now:
                    w.stop_event.wait(intended - now)
                    continue
                started = time.monotonic()
                try:
                    kind = self.write(conn)
                    ok = True
                except Exception as exc:  # every failure is the application's failure: recorded, reported
                    kind, ok = "error", False
                    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
                    self.errors.append(f"{type(exc).__name__}: {text[0][:200] if text else ''}")
                    try:
                        conn.rollback()
                    except Exception as again:  # a dead connection: the next op reconnects or fails too
                        self.errors.append(f"rollback failed: {type(again).__name__}")
                ended = time.monotonic()
                self.ops.append([self.t, kind, intended, started, ended, ok])
                k += 1


class Writer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.engine = sa.create_engine(args.url, isolation_level="AUTOCOMMIT", pool_size=args.threads)
        self.returning = self.engine.dialect.name == "postgresql"
        self.table = self.engine.dialect.identifier_preparer.quote(args.table)
        self.rows = args.rows
        self.rate = args.rate
        self.threads = args.threads
        self.seed = args.seed
        self.t0 = 0.0
        self.stop_at: float | None = None
        self.stop_event = threading.Event()
        self.go = threading.Event()
        self.connected = threading.Semaphore(0)
        self.workers = [Thread(self, t) for t in range(args.threads)]

    def run(self, out: str) -> None:
        threads = [threading.Thread(target=w.run, daemon=True) for w in self.workers]
        for thread in threads:
            thread.start()
        for _ in threads:
            self.connected.acquire()
        self.t0 = time.monotonic() + 0.05
        self.go.set()
        print("ready", self.t0, flush=True)
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        self.stop_at = time.monotonic()
        self.stop_event.set()
        for thread in threads:
            thread.join()
        touched: dict[str, Any] = {}
        for w in self.workers:
            touched.update({str(k): v for k, v in w.touched.items()})
        result = {
            "t0": self.t0,
            "stop_at": self.stop_at,
            "rate": self.rate,
            "threads": self.threads,
            "ops": [op for w in self.workers for op in w.ops],
            "errors": [e for w in self.workers for e in w.errors],
            "touched": touched,
        }
        with open(out, "w") as f:
            json.dump(result, f)
        self.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rows", type=int, required=True, help="initial rows: keys 1..rows exist")
    parser.add_argument("--rate", type=float, default=200.0, help="offered operations per second, all threads")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--table", default="products")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    Writer(args).run(args.out)


if __name__ == "__main__":
    main()
