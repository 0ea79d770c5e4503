"""What the way back costs the application's writes after the swap (issue 16).

``python -m benchmarks.revert_capture --db URL [--rows N] [--seconds S]`` seeds ``products``, then
one closed-loop writer (single-row UPDATEs by random key, each its own transaction) runs through
three windows of S seconds in the same run, on the same table and connection:

* ``before``: the original table, no trigger;
* ``capturing``: after ``execute`` swapped (``stock_quantity`` to bigint) with the reverse capture
  on: each write also inserts its key into ``_products_ss_rlog``;
* ``ended``: after ``cleanup --drop-old`` ended the revert window (no trigger again).

It prints the median and 99th percentile latency and the writes per second of each window, and
the reverse log's entries at the end of ``capturing``. The database is dropped and recreated.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from shadowswap import operator
from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.executor import Executor, Options
from shadowswap.planner import build_plan
from shadowswap.sample import products_table, seed_rows


def _window(engine: sa.Engine, keys: list[int], seconds: float, rng: random.Random) -> dict[str, Any]:
    latencies: list[float] = []
    with engine.connect() as conn:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            key = rng.choice(keys)
            started = time.perf_counter()
            with conn.begin():
                conn.execute(
                    sa.text("UPDATE products SET stock_quantity = stock_quantity + 1 WHERE id = :id"), {"id": key}
                )
            latencies.append(time.perf_counter() - started)
    latencies.sort()
    return {
        "writes": len(latencies),
        "per_second": round(len(latencies) / seconds, 1),
        "median_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


def main(
    db: Annotated[
        str, typer.Option(help="URL of a scratch database (PostgreSQL or SQLite); its products table is replaced")
    ],
    rows: Annotated[int, typer.Option(help="rows seeded")] = 20_000,
    seconds: Annotated[float, typer.Option(help="length of each window")] = 3.0,
) -> None:
    engine, dialect = connect(db)
    with engine.begin() as conn:
        for name in ("_products_reverted", "_products_old", "_products_ss_rlog", "products", "shadowswap_migrations"):
            conn.execute(sa.text(dialect.drop_table_sql(name)))
    metadata = sa.MetaData()
    table = products_table(metadata)
    metadata.create_all(engine)
    data = seed_rows(rows, 1)
    with engine.begin() as conn:
        for start in range(0, len(data), 5000):
            conn.execute(table.insert(), data[start : start + 5000])
    keys = [r["id"] for r in data]
    rng = random.Random(7)
    results = {"before": _window(engine, keys, seconds, rng)}
    plan = build_plan(engine, dialect, "products", [parse_alter("stock_quantity:bigint")], strategy_name="shadow")
    Executor(engine, dialect, plan, Options()).run()
    results["capturing"] = _window(engine, keys, seconds, rng)
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT COUNT(*) FROM _products_ss_rlog")).scalar_one()
    operator.cleanup(engine, dialect, "products")
    results["ended"] = _window(engine, keys, seconds, rng)
    print(f"{dialect.name}, {rows:,} rows, one closed-loop writer, {seconds:g} s per window")
    print(f"{'window':<10} {'writes/s':>9} {'median ms':>10} {'p99 ms':>8}")
    for name, r in results.items():
        print(f"{name:<10} {r['per_second']:>9} {r['median_ms']:>10} {r['p99_ms']:>8}")
    print(f"reverse log entries at the end of 'capturing': {logged:,}")


if __name__ == "__main__":
    typer.run(main)
