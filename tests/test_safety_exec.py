"""Issue 13, the execute side: in-place plans obey the safety options; a unique index the data
cannot satisfy is a data failure (exit 6, everything removed, duplicates named, found by
--check-casts); a primary key retyped to text completes, or is refused at plan."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import only_dialects
from harness import create_products
from typer.testing import CliRunner

from shadowswap import state
from shadowswap.cli import app
from shadowswap.db import connect

# -- helpers ---------------------------------------------------------------------------------


def invoke(*args: str, url: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"DATABASE_URL": url, "COLUMNS": "250"})


def spawn(*args: str, url: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shadowswap", *args],
        cwd=cwd,
        env={**os.environ, "DATABASE_URL": url, "COLUMNS": "250"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def migrations(engine: sa.Engine) -> list[state.Migration]:
    if not state.exists(engine):
        return []
    with engine.connect() as conn:
        return state.all_migrations(conn)


def waiting_starts(engine: sa.Engine, prefix: str) -> Callable[[], bool]:
    def check() -> bool:
        found = migrations(engine)
        return bool(found) and (found[0].waiting or "").startswith(prefix)

    return check


def columns(engine: sa.Engine, table: str) -> list[str]:
    return [c["name"] for c in sa.inspect(engine).get_columns(table)]


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs if k.startswith("SHADOWSWAP_")}


# -- item 2: in-place plans obey the safety options ------------------------------------------


def plan_in_place(engine: sa.Engine, url: str, tmp_path: Path) -> Path:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE i1 (id INTEGER PRIMARY KEY, v VARCHAR(20))"))
        conn.execute(sa.text("INSERT INTO i1 (id, v) VALUES (1, 'a'), (2, 'b')"))
    path = tmp_path / "plan.json"
    result = invoke("plan", "i1", "--add", "note:varchar(20)", "--out", str(path), url=url)
    assert result.exit_code == 0, result.output
    assert '"strategy": "instant"' in path.read_text()
    return path


def test_in_place_failing_on_start_hook_exits_10_and_changes_nothing(db_url: str, tmp_path: Path) -> None:
    engine, _ = connect(db_url)
    plan = plan_in_place(engine, db_url, tmp_path)
    result = invoke(
        "execute",
        str(plan),
        "--hook",
        "on-start=exit 1",
        "--hook",
        f"on-failure=env > {tmp_path}/failure.env",
        url=db_url,
    )
    assert result.exit_code == 10, result.output
    assert "note" not in columns(engine, "i1")
    (m,) = migrations(engine)
    assert m.phase == state.ABORTED and "on-start" in (m.error or "")
    env = read_env(tmp_path / "failure.env")
    assert env["SHADOWSWAP_TABLE"] == "i1" and "on-start" in env["SHADOWSWAP_ERROR"]
    # nothing to resume: the same plan runs afresh and completes
    result = invoke("execute", str(plan), url=db_url)
    assert result.exit_code == 0, result.output
    assert "note" in columns(engine, "i1")


def test_in_place_probes_the_replicas_before_any_change(db_url: str, tmp_path: Path) -> None:
    engine, _ = connect(db_url)
    plan = plan_in_place(engine, db_url, tmp_path)
    result = invoke("execute", str(plan), "--max-lag", "5", "--replica", "postgresql://x@127.0.0.1:1/x", url=db_url)
    assert result.exit_code == 2, result.output
    assert "--replica" in result.output
    assert "note" not in columns(engine, "i1")
    assert all(m.phase == state.ABORTED for m in migrations(engine))


def test_in_place_refuses_a_hook_that_could_never_run(db_url: str, tmp_path: Path) -> None:
    engine, _ = connect(db_url)
    plan = plan_in_place(engine, db_url, tmp_path)
    result = invoke("execute", str(plan), "--hook", "on-copy-done=true", url=db_url)
    assert result.exit_code == 2, result.output
    assert "copies nothing" in result.output
    assert "note" not in columns(engine, "i1") and migrations(engine) == []


def test_in_place_waits_for_pause_postponement_and_hook_then_backs_up(db_url: str, tmp_path: Path) -> None:
    engine, _ = connect(db_url)
    plan = plan_in_place(engine, db_url, tmp_path)
    pause, go = tmp_path / "pause", tmp_path / "go"
    pause.touch()
    dump = f"env > {tmp_path}/$SHADOWSWAP_EVENT.env"
    proc = spawn(
        "execute",
        str(plan),
        "--pause-file",
        str(pause),
        "--postpone-cutover",
        "--backup",
        str(tmp_path / "bk"),
        "--hook",
        f"on-before-cutover={dump}; test -e {go}",
        "--hook",
        f"on-success={dump}",
        url=db_url,
        cwd=tmp_path,
    )
    try:
        wait_for("the postponement", waiting_starts(engine, "cut-over postponed"))
        assert "note" not in columns(engine, "i1")
        assert invoke("cutover", "i1", url=db_url).exit_code == 0
        wait_for("the pause file", waiting_starts(engine, f"paused while {pause}"))
        time.sleep(0.5)
        assert "note" not in columns(engine, "i1") and proc.poll() is None
        pause.unlink()
        wait_for("the refusing hook", waiting_starts(engine, "the on-before-cutover hook exited"))
        assert "note" not in columns(engine, "i1")
        go.touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "note" in columns(engine, "i1")
    m = migrations(engine)[0]
    assert m.phase == state.ALTERED and m.backup_path and Path(tmp_path, m.backup_path).exists()
    assert "backup of the original" in out
    before = read_env(tmp_path / "on-before-cutover.env")
    success = read_env(tmp_path / "on-success.env")
    assert before["SHADOWSWAP_TABLE"] == "i1" and before["SHADOWSWAP_MIGRATION_ID"] == str(m.id)
    assert success["SHADOWSWAP_PHASE"] == state.ALTERED


# -- item 4: a unique key the data cannot satisfy is a data failure --------------------------


def create_codes(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t1 (id INTEGER PRIMARY KEY, code VARCHAR(20), v INTEGER)"))
        conn.execute(
            sa.text("INSERT INTO t1 (id, code, v) VALUES (:id, :code, :id)"),
            [{"id": i, "code": f"c{i % 300}" if i != 7 else None} for i in range(1, 401)],
        )


def assert_nothing_left(engine: sa.Engine, dialect: Any) -> None:
    assert tables(engine) <= {"t1", state.STATE_TABLE}, tables(engine)
    with engine.connect() as conn:
        assert dialect.existing_triggers(conn, "t1") == []
    assert sorted(columns(engine, "t1")) == ["code", "id", "v"]
    assert not [i for i in sa.inspect(engine).get_indexes("t1") if i["name"] == "uq"]


def test_unique_index_over_duplicates_exits_6_names_them_and_removes_everything(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    create_codes(engine)
    plan = tmp_path / "plan.json"
    assert invoke("plan", "t1", "--add-unique", "uq:(code)", "--out", str(plan), url=db_url).exit_code == 0
    result = invoke("execute", str(plan), "--chunk-size", "50", url=db_url)
    assert result.exit_code == 6, result.output
    text = " ".join(result.output.split())
    assert "uq (code)" in text and "'c1' (2 rows)" in text and "99 value(s) held by 198 rows" in text, text
    assert "resumes" not in text
    assert_nothing_left(engine, dialect)
    (m,) = migrations(engine)
    assert m.phase == state.FAILED and "uq (code)" in (m.error or "")
    # the same plan fails the same way, without leaving anything behind either
    assert invoke("execute", str(plan), url=db_url).exit_code == 6
    assert_nothing_left(engine, dialect)


def test_check_casts_finds_duplicates_before_anything_starts(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    create_codes(engine)
    plan = tmp_path / "plan.json"
    result = invoke("plan", "t1", "--add-unique", "uq:(code)", "--check-casts", "--out", str(plan), url=db_url)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "verdict: blocked" in text and "duplicates: uq (code): 99 value(s)" in text, text
    result = invoke("execute", str(plan), url=db_url)
    assert result.exit_code == 6, result.output
    assert "'c1' (2 rows)" in " ".join(result.output.split())
    assert_nothing_left(engine, dialect)
    assert migrations(engine) == []
    # distinct values: nothing found, and the index is built
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE t1 SET code = 'x' || CAST(id AS VARCHAR(10)) WHERE id > 300")
            if engine.dialect.name != "mysql"
            else sa.text("UPDATE t1 SET code = CONCAT('x', id) WHERE id > 300")
        )
    result = invoke("plan", "t1", "--add-unique", "uq:(code)", "--check-casts", "--out", str(plan), url=db_url)
    assert result.exit_code == 0 and "duplicates" not in result.output, result.output
    assert invoke("execute", str(plan), url=db_url).exit_code == 0
    assert [i for i in sa.inspect(engine).get_indexes("t1") if i["name"] == "uq"] or [
        u for u in sa.inspect(engine).get_unique_constraints("t1") if u["name"] == "uq"
    ]


# -- item 5: a primary key retyped so that its values compare differently -------------------


@pytest.mark.parametrize("new_type", ["text", "varchar(20)"])
def test_primary_key_retyped_to_text_is_refused_at_plan(db_url: str, tmp_path: Path, new_type: str) -> None:
    engine, _ = connect(db_url)
    with engine.begin() as conn:  # a key without AUTO_INCREMENT: MySQL refuses retyping that one anyway
        conn.execute(sa.text("CREATE TABLE k1 (id SMALLINT PRIMARY KEY, v VARCHAR(20))"))
        conn.execute(sa.text("INSERT INTO k1 (id, v) VALUES (:id, 'x')"), [{"id": i} for i in range(1, 301)])
    before = tables(engine)
    plan = tmp_path / "plan.json"
    result = invoke("plan", "k1", "--alter", f"id:{new_type}", "--out", str(plan), url=db_url)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "part of the primary key" in text and "compares and sorts" in text, text
    assert "hint:" in text and "migration of its own" in text, text
    assert not plan.exists() and tables(engine) == before


@only_dialects("postgresql", "mysql")  # SQLite: retyping the rowid alias is refused (sqlite-rowid-alias-retyped)
def test_primary_key_retyped_within_its_order_is_still_planned(db_url: str, tmp_path: Path) -> None:
    engine, _ = connect(db_url)
    create_products(engine, 50)
    for new_type in ("bigint",):
        result = invoke("plan", "products", "--alter", f"id:{new_type}", url=db_url)
        assert result.exit_code == 0, result.output


# -- a stale plan: table options changed out of band ------------------------------------------

STALE_OPTIONS = [
    pytest.param("mysql", "ALTER TABLE products ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8", id="mysql-row-format"),
    pytest.param("mysql", "ALTER TABLE products COMMENT='changed'", id="mysql-comment"),
    pytest.param("mysql", "ALTER TABLE products DEFAULT CHARSET=latin1", id="mysql-charset"),
    pytest.param("postgresql", "ALTER TABLE products SET (fillfactor = 70)", id="pg-reloptions"),
    pytest.param("postgresql", "ALTER TABLE products SET UNLOGGED", id="pg-persistence"),
]


@pytest.mark.parametrize(("engine_name", "statement"), STALE_OPTIONS)
def test_table_option_changed_after_plan_makes_it_stale(
    engine_name: str, statement: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The new table is created with the options read at plan time: one changed since would be
    undone by the swap, so execute refuses the plan (exit 4) and leaves the table as it is."""
    url = request.getfixturevalue("mysql_url" if engine_name == "mysql" else "pg_url")
    engine, _dialect = connect(url)
    create_products(engine, 50)
    plan = tmp_path / "plan.json"
    assert invoke("plan", "products", "--alter", "price:varchar(20)", "--out", str(plan), url=url).exit_code == 0
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)
        before = sa.inspect(conn).get_table_options("products")
    result = invoke("execute", str(plan), url=url)
    assert result.exit_code == 4, result.output
    assert "stale" in result.output
    assert tables(engine) - {state.STATE_TABLE} == {"products"}
    price = next(c for c in sa.inspect(engine).get_columns("products") if c["name"] == "price")
    assert not isinstance(price["type"], sa.String)
    assert sa.inspect(engine).get_table_options("products") == before


@pytest.mark.parametrize("engine_name", ["mysql", "postgresql"])
def test_inserts_after_plan_leave_it_fresh(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The AUTO_INCREMENT counter (and a sequence) moves with every insert; it is no part of the table's shape."""
    url = request.getfixturevalue("mysql_url" if engine_name == "mysql" else "pg_url")
    engine, _dialect = connect(url)
    create_products(engine, 50)
    plan = tmp_path / "plan.json"
    assert invoke("plan", "products", "--alter", "price:varchar(20)", "--out", str(plan), url=url).exit_code == 0
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO products (sku, name, price) VALUES ('new', 'n', 1)")
    result = invoke("execute", str(plan), url=url)
    assert result.exit_code == 0, result.output
