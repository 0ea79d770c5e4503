"""Table-level migrations under concurrent writers (issue 15): ``--rebuild`` on every engine (the
space it gives back reported), ``--order-by`` on PostgreSQL (the new heap in the index's order), and
PostgreSQL tablespaces (set, and carried over when not changed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN, fresh_database
from differential import ITEMS_ROWS, PG, Case, migrate_both, per_engine
from harness import Writers, compare, create_products, shadowswap

from shadowswap.changes import parse_options
from shadowswap.db import connect
from shadowswap.executor import Executor
from shadowswap.options import Options
from shadowswap.planner import build_plan

ROWS = 3000


def _delete_two_thirds(engine: sa.Engine, initial: dict[int, dict[str, object]]) -> dict[int, dict[str, object]]:
    """Mass deletes, the reason one rebuilds: a third of the rows left, the pages they filled kept."""
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM products WHERE id % 3 <> 0"))
    return {k: v for k, v in initial.items() if k % 3 == 0}


def test_rebuild_under_writers_keeps_every_row_and_gives_space_back(db_url: str) -> None:
    engine, dialect = connect(db_url)
    initial = _delete_two_thirds(engine, create_products(engine, ROWS))
    plan = build_plan(engine, dialect, "products", parse_options(rebuild=True))
    assert plan.strategy == "shadow" and plan.changes == ["rebuild"]
    assert [c.expression for c in plan.columns] == [dialect.column_reference(c.name) for c in plan.columns]
    with Writers(db_url, initial, threads=3, seed=15) as writers:
        time.sleep(0.3)
        summary = Executor(engine, dialect, plan, Options(chunk_size=200, max_chunk=200)).run()
        time.sleep(0.3)  # writes after the swap go to the new table
    assert writers.total.errors == []
    assert writers.total.inserts and writers.total.updates and writers.total.rekeys and writers.total.deletes
    compare(engine, writers.model).assert_exact()
    # the space report: the old table still holds the pages of the deleted rows, the new one does not
    assert summary.bytes_before is not None and summary.bytes_after is not None, summary
    assert 0 < summary.bytes_after < summary.bytes_before, summary


def test_execute_reports_the_space_in_its_summary_and_in_json(tmp_path: Path) -> None:
    for url in fresh_database("sqlite", tmp_path):
        engine, _ = connect(url)
        _delete_two_thirds(engine, create_products(engine, 1000))
        engine.dispose()
        assert shadowswap("plan", "products", "--rebuild", url=url, cwd=tmp_path).returncode == 0
        done = shadowswap("--log-format", "json", "execute", url=url, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        space = [e for e in map(json.loads, done.stderr.splitlines()) if e.get("event") == "space"]
        assert len(space) == 1 and 0 < space[0]["bytes_after"] < space[0]["bytes_before"], done.stderr
        assert "space on disk:" in done.stdout and "before," in done.stdout, done.stdout


def _heap_order(engine: sa.Engine, keys: set[int]) -> list[tuple[int, int]]:
    """(stock_quantity, id) of the rows ``keys`` names, in the order they lie in the heap."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, stock_quantity FROM products ORDER BY ctid").all()
    return [(int(q), int(k)) for k, q in rows if k in keys]


def _in_index_order(rows: list[tuple[int, int]]) -> bool:
    """In the order of ix_products_stock (stock_quantity DESC, id)."""
    return rows == sorted(rows, key=lambda r: (-r[0], r[1]))


def test_pg_order_by_writes_the_new_heap_in_the_index_order_under_writers(pg_url: str) -> None:
    """As CLUSTER: the rows present when the copy starts are written in the index's order; rows
    written during the copy (and after) land where the engine puts them, as they do after CLUSTER.
    So every row no writer touched lies in the heap in the index's order."""
    engine, dialect = connect(pg_url)
    initial = create_products(engine, ROWS)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_products_stock ON products (stock_quantity DESC, id)")
    assert not _in_index_order(_heap_order(engine, set(initial)))  # seeded at random: no order yet
    plan = build_plan(engine, dialect, "products", parse_options(), order_by="ix_products_stock")
    assert plan.order_by == ["stock_quantity DESC NULLS FIRST", "id NULLS LAST"]
    with Writers(pg_url, initial, threads=3, seed=16) as writers:
        time.sleep(0.3)
        Executor(engine, dialect, plan, Options(chunk_size=200, max_chunk=200)).run()
        time.sleep(0.3)
    assert writers.total.errors == []
    assert writers.total.updates and writers.total.deletes
    compare(engine, writers.model).assert_exact()
    untouched = {k for k, row in writers.model.items() if initial.get(k) == row}
    assert len(untouched) > ROWS // 2
    assert _in_index_order(_heap_order(engine, untouched))


@pytest.fixture
def tablespace() -> Iterator[str]:
    """A tablespace in a directory of its own, owned by the server's user (the server runs here)."""
    if os.geteuid() != 0 or shutil.which("psql") is None:
        pytest.skip("creating a tablespace needs a directory owned by the server's user: run as root beside it")
    try:
        owner = shutil.chown
        location = tempfile.mkdtemp(prefix="ss_ts_", dir="/tmp")
        owner(location, "postgres", "postgres")
    except (LookupError, OSError) as exc:
        pytest.skip(f"no local postgres user to own a tablespace directory: {exc}")
    name = f"ss_ts_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE TABLESPACE {name} LOCATION '{location}'")
    except sa.exc.DBAPIError as exc:
        admin.dispose()
        pytest.skip(f"the server cannot create a tablespace here: {str(exc.orig).splitlines()[0]}")
    yield name
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP TABLESPACE IF EXISTS {name}")
    admin.dispose()
    subprocess.run(["rm", "-rf", location], check=False)


ITEMS_PG = {PG: "CREATE TABLE items (id serial primary key, name varchar(40) not null, qty integer not null default 0)"}


def test_pg_set_tablespace_and_its_carry_over(tablespace: str, tmp_path: Path) -> None:
    """``SET TABLESPACE`` moves the table (not its indexes, as the blocking ALTER); a table in a
    tablespace stays there through any other change."""
    moved = Case(
        name="pg_set_tablespace",
        engines=(PG,),
        table="items",
        setup=per_engine(ITEMS_PG, ITEMS_ROWS),
        flags=("--ddl", f"ALTER TABLE items SET TABLESPACE {tablespace}"),
        alter={PG: [f"ALTER TABLE items SET TABLESPACE {tablespace}"]},
        probes={
            PG: [
                "SELECT spcname FROM pg_class c JOIN pg_tablespace s ON s.oid = c.reltablespace"
                " WHERE c.relname = 'items'"
            ]
        },
    )
    kept = Case(
        name="pg_tablespace_kept",
        engines=(PG,),
        table="items",
        setup=per_engine(ITEMS_PG, ITEMS_ROWS, {PG: [f"ALTER TABLE items SET TABLESPACE {tablespace}"]}),
        flags=("--add", "note:varchar(50)", "--strategy", "shadow"),
        alter={PG: ["ALTER TABLE items ADD COLUMN note varchar(50)"]},
        probes=moved.probes,
    )
    for case in (moved, kept):
        (tmp_path / case.name).mkdir()
        assert migrate_both(case, PG, tmp_path / case.name) == [], case.name
