"""What one pool check-out and check-in costs around one statement, as each copy and checksum chunk
pays it: ``python -m benchmarks.pool_checkin``.

Through ``shadowswap.db.connect``, so the dialect's pool events apply (the ping on check-out, the
MySQL session reset on check-in). Prints wall and client CPU per check-in and, on MySQL/MariaDB,
the statements the server counted per check-in (its session ``Questions``: exact however busy the
machine is). Run the old and the new tree alternately to compare (``PYTHONPATH=old-checkout``).

    python -m benchmarks.pool_checkin --db mysql://root@127.0.0.1:3306/mysql --n 1000 --runs 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import sqlalchemy as sa

from shadowswap.db import connect


def questions(engine: sa.Engine) -> int | None:
    if engine.dialect.name != "mysql":
        return None
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Questions'").one()[1])


def one_run(engine: sa.Engine, n: int) -> tuple[float, float, float | None]:
    """Seconds of wall and of CPU per check-in, and statements per check-in (MySQL)."""
    before = questions(engine)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = questions(engine)
    # the two SHOW STATUS reads count themselves; a single thread reuses one pooled connection
    statements = None if before is None or after is None else (after - before - 2) / n
    return wall / n, cpu / n, statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="mysql://root@127.0.0.1:3306/mysql")
    parser.add_argument("--n", type=int, default=1000, help="check-ins per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    engine, _dialect = connect(args.db)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    runs = [one_run(engine, args.n) for _ in range(args.runs)]
    for wall, cpu, statements in runs:
        counted = f", {statements:.2f} statements" if statements is not None else ""
        print(f"per check-in: {wall * 1e6:.0f} µs wall, {cpu * 1e6:.0f} µs CPU{counted}")
    print(
        f"median: {statistics.median(r[0] for r in runs) * 1e6:.0f} µs wall, "
        f"{statistics.median(r[1] for r in runs) * 1e6:.0f} µs CPU (load {os.getloadavg()[0]:.1f})"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
