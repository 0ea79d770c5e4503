"""Writers' stalls around the start of ``execute`` on PostgreSQL: ``python -m benchmarks.pg_start_stall``.

Seeds ``products`` (``--rows``, without VACUUM or CHECKPOINT, as a harness that seeds and starts at
once does), runs four writer threads at 200 updates/s, then ``plan`` and ``execute`` as processes,
optionally with a cost-limited ``VACUUM (FREEZE)`` of the table started just before ``execute``
(``--vacuum``: what an autovacuum of a freshly loaded table holds). Prints when each step happened,
the longest gaps between completed writes, and every 10 ms poll in which a writer of this database
waited on a lock or a background process (checkpointer, walwriter) was busy.

    python -m benchmarks.pg_start_stall --rows 1000000
    python -m benchmarks.pg_start_stall --rows 1000000 --vacuum
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg

SEED = """
CREATE TABLE products (id serial PRIMARY KEY, name varchar(255) NOT NULL, description text,
  sku varchar(100) NOT NULL UNIQUE, price numeric(10,2) NOT NULL, stock_quantity int NOT NULL DEFAULT 0,
  is_active boolean NOT NULL DEFAULT true, created_at timestamp DEFAULT now(), updated_at timestamp DEFAULT now());
CREATE INDEX ix_products_name ON products (name);
CREATE INDEX ix_products_active_created ON products (is_active, created_at);
INSERT INTO products (name, description, sku, price, stock_quantity, is_active)
  SELECT 'product ' || i, 'description of ' || i, 'SKU-' || lpad(i::text, 8, '0'),
         (i::bigint * 7919 % 9999900 + 100) / 100.0, i % 1000, i % 5 <> 0
  FROM generate_series(1, %(rows)s) i
"""
POLL = """
SELECT pid, wait_event_type, wait_event, left(query, 40), backend_type FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND wait_event_type IS NOT NULL AND wait_event_type <> 'Activity'
  AND ((datname = current_database() AND wait_event_type = 'Lock') OR backend_type IN ('checkpointer', 'walwriter'))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="shadowswap_start_stall")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--vacuum", action="store_true", help="VACUUM (FREEZE) the table as execute starts")
    args = parser.parse_args()
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        admin.execute(f'CREATE DATABASE "{args.database}"')
    url = f"{args.server}/{args.database}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED.replace("%(rows)s", str(int(args.rows))))
    t0 = time.monotonic()
    stop = threading.Event()
    done: list[float] = []
    polls: list[tuple[float, list[Any]]] = []
    marks: dict[str, float] = {}

    def writer() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            due = time.monotonic()
            while not stop.is_set():
                due += 0.02
                time.sleep(max(0.0, due - time.monotonic()))
                key = random.randint(1, args.rows)
                conn.execute("UPDATE products SET stock_quantity = stock_quantity + 1 WHERE id = %s", (key,))
                done.append(time.monotonic() - t0)

    def poller() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                polls.append((time.monotonic() - t0, conn.execute(POLL).fetchall()))
                time.sleep(0.01)

    def vacuum() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            marks["vacuum started"] = time.monotonic() - t0
            conn.execute("SET vacuum_cost_delay = 20")
            conn.execute("VACUUM (FREEZE) products")
            marks["vacuum ended"] = time.monotonic() - t0

    threads = [threading.Thread(target=writer) for _ in range(4)] + [threading.Thread(target=poller)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    env = {**os.environ, "DATABASE_URL": url}
    tool = [sys.executable, "-m", "shadowswap"]
    plan_file = f"/tmp/{args.database}.plan.json"
    marks["plan launched"] = time.monotonic() - t0
    subprocess.run(
        [*tool, "plan", "products", "--alter", "price:varchar(20)", "--out", plan_file],
        env=env,
        check=True,
        capture_output=True,
    )
    vacuuming = threading.Thread(target=vacuum) if args.vacuum else None
    if vacuuming is not None:
        vacuuming.start()
        time.sleep(0.3)
    marks["execute launched"] = time.monotonic() - t0
    wall_t0 = time.time() - marks["execute launched"]
    executed = subprocess.run(
        [*tool, "--log-format", "json", "execute", plan_file], env=env, capture_output=True, text=True
    )
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    if vacuuming is not None:
        vacuuming.join()
    attempts = 0
    for line in executed.stderr.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        at = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp() - wall_t0
        if event["event"] == "lock not available, retrying":
            attempts += 1
            marks.setdefault("first lock retry", at)
        elif event["event"] in ("migration claimed", "phase"):
            marks.setdefault(f"{event['event']} {event.get('phase', '')}".strip(), at)
    print(f"execute exited {executed.returncode}; lock retries {attempts}; load {os.getloadavg()[0]:.1f}")
    for name, at in sorted(marks.items(), key=lambda kv: kv[1]):
        print(f"{at:8.3f} s  {name}")
    done.sort()
    gaps = sorted(((b - a, a) for a, b in itertools.pairwise(done)), reverse=True)[:8]
    print("longest gaps between completed writes:", ", ".join(f"{g * 1000:.0f} ms at {a:.2f} s" for g, a in gaps))
    waits = [(at, rows) for at, rows in polls if rows]
    print(f"polls with a writer waiting on a lock: {sum(any(r[1] == 'Lock' for r in rows) for _, rows in waits)}")
    for at, rows in waits:
        print(f"{at:8.3f}", [(r[1], r[2], r[3], r[4]) for r in rows])


if __name__ == "__main__":
    main()
