"""`shadowswap demo`: a fresh file, a writing application in another process, an exact verdict."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from shadowswap import demo, logs
from shadowswap.cli import app


@pytest.fixture(autouse=True)
def _logs_back_to_stderr() -> Iterator[None]:
    """CliRunner swaps sys.stderr for a buffer it closes; the command configured logging onto it."""
    yield
    logs.configure()


def flat(text: str) -> str:
    return " ".join(text.split())


def run_demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # `python -m shadowswap`, as the README says: the application process is started with spawn,
    # which re-imports the main module, so this also proves that import starts nothing
    return subprocess.run(
        [sys.executable, "-m", "shadowswap", "demo", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_demo_migrates_under_writes_and_verifies(tmp_path: Path) -> None:
    done = run_demo("--rows", "3000", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    output = flat(done.stdout)
    assert "0 lost, 0 ghost, 0 wrong" in output
    during = re.search(r"writes during it ([\d,]+) committed by the application", output)
    assert during and int(during.group(1).replace(",", "")) > 0, output
    assert "sqlite3 shadowswap-demo.db '.schema products'" in output
    assert "shadowswap status --db sqlite:///shadowswap-demo.db" in output

    db = tmp_path / "shadowswap-demo.db"  # left for the user, migrated
    engine = sa.create_engine(f"sqlite:///{db}")
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("products")}
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert str(columns["price"]["type"]) == "VARCHAR(20)"
    assert {"products", "_products_old"} <= tables and "_products_new" not in tables

    status = CliRunner().invoke(app, ["status", "--db", f"sqlite:///{db}"])
    assert status.exit_code == 0 and "cut_over" in status.output

    again = run_demo("--rows", "500", cwd=tmp_path)  # its own file is replaced, not refused
    assert again.returncode == 0, again.stderr
    assert "products with 500 rows" in flat(again.stdout)


def test_demo_never_overwrites_someone_elses_file(tmp_path: Path) -> None:
    mine = tmp_path / "mine.db"
    with sqlite3.connect(mine) as conn:
        conn.execute("CREATE TABLE precious (x INTEGER)")
    conn.close()
    before = mine.read_bytes()
    refused = CliRunner().invoke(app, ["demo", "--rows", "10", "--db-file", str(mine)])
    assert refused.exit_code == 2
    assert "was not made by shadowswap demo" in flat(refused.output)
    assert mine.read_bytes() == before


def test_demo_exits_non_zero_when_the_table_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real fault, not a mocked verdict: one committed row is deleted behind the demo's back."""
    real_compare = demo.compare

    def lose_a_row(engine: sa.Engine, model: dict[int, dict[str, object]]) -> demo.Comparison:
        victim = max(model)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM products WHERE id = :id"), {"id": victim})
        return real_compare(engine, model)

    monkeypatch.setattr(demo, "compare", lose_a_row)
    result = CliRunner().invoke(app, ["demo", "--rows", "500", "--db-file", str(tmp_path / "d.db")])
    assert result.exit_code == 8, result.output
    assert "1 lost" in flat(result.output)
