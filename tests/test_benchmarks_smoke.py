"""The benchmark harness works: a tiny run of every approach, checked row by row. Nothing is timed here."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import DIALECTS, fresh_database
from harness import products_table as harness_products_table
from sqlalchemy.dialects import mysql, postgresql

from benchmarks.profiles import profile_for
from benchmarks.runner import phase_seconds
from benchmarks.seed import check_table, products_table, seed_row
from benchmarks.stats import window_stats

ROOT = Path(__file__).resolve().parent.parent
SERVER_DIALECTS = [d for d in DIALECTS if d != "sqlite"]


@pytest.fixture(params=SERVER_DIALECTS)
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


def test_seed_table_is_the_harness_table() -> None:
    for dialect in (postgresql.dialect(), mysql.dialect()):
        ours = str(sa.schema.CreateTable(products_table(sa.MetaData())).compile(dialect=dialect))
        theirs = str(sa.schema.CreateTable(harness_products_table(sa.MetaData())).compile(dialect=dialect))
        assert ours == theirs


def test_window_stats_count_writes_a_blocked_writer_never_issued() -> None:
    # 10 writes/s scheduled over 0..2 s; the writer is blocked from 0.5 s to 1.5 s, then works
    # through its backlog at once: each late write's driver latency is short, its real wait is not.
    ops = []
    for k in range(20):
        intended = k / 10
        started = intended if not 0.5 <= intended < 1.5 else 1.5
        ops.append([0, "update", intended, started, started + 0.002, True])
    stats = window_stats(ops, 0.0, 2.0, offered_rate=10)
    assert stats["p99_ms"] == pytest.approx(2.0)
    assert stats["corrected_max_ms"] == pytest.approx(1002.0)
    assert stats["corrected_p99_ms"] == pytest.approx(1002.0)
    assert stats["longest_stall_ms"] == pytest.approx(1100.0, abs=0.2)  # 0.402 → 1.502
    assert stats["scheduled"] == 20 and stats["completed"] == 20 and stats["errors"] == 0


def test_phase_seconds_count_each_phase_from_its_first_line() -> None:
    # execute --log-format json logs every phase twice (its log line, then the reporter's)
    def line(event: str, at: float, **facts: str) -> str:
        stamp = dt.datetime.fromtimestamp(1_000_000 + at, dt.UTC).isoformat().replace("+00:00", "Z")
        return json.dumps({"event": event, "timestamp": stamp, **facts})

    output = "\n".join(
        [
            line("migration claimed", 0.5),
            *[line("phase", 0.75, phase="shadow_created")] * 2,
            *[line("phase", 1.0, phase="triggers_installed")] * 2,
            line("phase", 3.0, phase="copied", table="products"),
            line("phase", 3.0, phase="copied"),
        ]
    )
    phases = phase_seconds(output, 1_000_000, 3.5)
    assert phases == {"start": 0.5, "shadow_created": 0.25, "triggers_installed": 0.25, "copied": 2.0, "exit": 0.5}


def test_check_finds_lost_ghost_and_wrong_rows(server_url: str) -> None:
    profile = profile_for(sa.make_url(server_url))
    engine = profile.engine()
    profile.seed(engine, 50)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM products WHERE id = 7"))
        conn.execute(sa.text("UPDATE products SET stock_quantity = stock_quantity + 1 WHERE id = 8"))
        conn.execute(sa.text("UPDATE products SET id = 1000 WHERE id = 9"))
    assert check_table(engine, "products", 50, {}).lost == 2  # 7 and 9
    touched = {7: None, 8: {**seed_row(8), "stock_quantity": seed_row(8)["stock_quantity"] + 1}, 9: None}
    check = check_table(engine, "products", 50, touched)
    assert (check.lost, check.ghost, check.wrong, check.rows) == (0, 1, 0, 49), check.examples  # 1000 is a ghost
    check = check_table(engine, "products", 50, {**touched, 1000: seed_row(9), 8: seed_row(8)})
    assert (check.lost, check.ghost, check.wrong) == (0, 0, 1), check.examples
    engine.dispose()


def test_benchmark_command_runs_every_approach(server_url: str, tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "benchmarks",
        "--dialect", sa.make_url(server_url).get_backend_name(),
        "--rows", "3000", "--rate", "40", "--lead-in", "0.3", "--tail", "0.3",
        "--approaches", "raw-copy,alter,shadowswap",
        "--db", server_url, "--out", str(tmp_path / "results"),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run_dir,) = (tmp_path / "results").iterdir()
    report = json.loads((run_dir / "results.json").read_text())
    by_name = {r["approach"]: r for r in report["results"]}
    assert list(by_name) == ["raw copy", "blocking ALTER", "shadowswap"]
    for r in by_name.values():
        assert "failed" not in r, r.get("failed")
        assert (r["check"]["lost"], r["check"]["ghost"], r["check"]["wrong"]) == (0, 0, 0), r["check"]
    assert by_name["raw copy"]["check"]["rows"] == 3000
    for name in ("blocking ALTER", "shadowswap"):
        writer = by_name[name]["writer"]
        assert writer["errors_total"] == 0
        assert len(by_name[name]["latency"]) >= writer["scheduled"]
    # a 3,000-row ALTER can finish between two scheduled writes; shadowswap's process run cannot
    assert by_name["shadowswap"]["writer"]["scheduled"] > 0
    swap = by_name["shadowswap"]
    assert swap["swap_lock_ms"] is not None and swap["peak_rss_mb"] > 0 and swap["rows_copied"] > 0
    assert swap["cpu_s"] > 0
    assert {"copied", "verified", "cut_over"} <= set(swap["phases_s"])
    table = (run_dir / "results.md").read_text()
    assert "| shadowswap | 3,000 |" in table and "Targets (issue 20)" in table and "raw copy steps (s)" in table


def test_transform_benchmark_seed_and_offset_loop(server_url: str) -> None:
    """benchmarks.transform's server-side seed is its ``seed_row``, and the seed's OFFSET loop skips
    about half of an idle table, which its check counts (the rows --transform never skips)."""
    from benchmarks import transform as bench

    engine = sa.create_engine(server_url)
    bench.seed(engine, 300)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, name, description, old_spec_field FROM products ORDER BY id").all()
    assert [dict(r._mapping) for r in rows] == [bench.seed_row(i) for i in range(1, 301)]
    bench.offset_loop(engine, batch=50)
    idle = bench.Writer(engine, 300, 1.0)  # never started: nothing written
    found = bench.check(engine, bench.expected(idle, 300))
    assert found == {"skipped": 150, "stale": 0}
    engine.dispose()
