"""The README's workflow through the real command line, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from harness import create_products, shadowswap

from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.errors import MigrationLocked
from shadowswap.executor import Executor
from shadowswap.planner import build_plan


def test_plan_execute_status_cleanup(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    shadow = dialect.shadow_name("products")
    create_products(engine, 3000)

    planned = shadowswap("plan", "products", "--alter", "price:varchar(20)", url=db_url, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "CAST" in planned.stdout and shadow in planned.stdout
    assert (tmp_path / "shadowswap.plan.json").exists()
    assert shadow not in sa.inspect(engine).get_table_names()

    executed = shadowswap("execute", url=db_url, cwd=tmp_path)
    assert executed.returncode == 0, executed.stderr
    assert "old table kept as _products_old" in " ".join(executed.stdout.split())

    status = shadowswap("status", url=db_url, cwd=tmp_path)
    assert status.returncode == 0
    assert "cut_over" in status.stdout and "3,000" in status.stdout and "_products_old" in status.stdout

    refused = shadowswap("cleanup", "--drop-old", url=db_url, cwd=tmp_path, stdin="n\n")
    assert refused.returncode == 1
    assert "_products_old" in sa.inspect(engine).get_table_names()
    cleaned = shadowswap("cleanup", "--drop-old", "--yes", url=db_url, cwd=tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "_products_old" not in sa.inspect(engine).get_table_names()


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["plan", "nope", "--alter", "price:varchar(20)"], "table 'nope' does not exist", 2),
        (["plan", "products", "--alter", "nope:varchar(20)"], "column 'nope' does not exist", 2),
        (["plan", "products", "--alter", "price:varchar(20); DROP TABLE products"], "invalid type", 2),
        (["plan", "products", "--alter", "price"], "is not of the form COLUMN:TYPE", 2),
        (["execute", "missing.json"], "no plan file", 2),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    db_url: str, tmp_path: Path, args: list[str], message: str, code: int
) -> None:
    engine, _ = connect(db_url)
    create_products(engine, 10)
    before = sorted(sa.inspect(engine).get_table_names())
    result = shadowswap(*args, url=db_url, cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(sa.inspect(engine).get_table_names()) == before


def test_unreachable_database_hides_the_password(tmp_path: Path) -> None:
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/nothing"
    result = shadowswap("status", url=url, cwd=tmp_path)
    assert result.returncode == 3
    assert "cannot connect" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_second_concurrent_migration_is_refused(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 100)
    plan = build_plan(engine, dialect, "products", [parse_alter("price:varchar(20)")])
    with dialect.migration_lock(engine, "products") as got:
        assert got
        with pytest.raises(MigrationLocked, match="another shadowswap process is migrating 'products'"):
            Executor(engine, dialect, plan).run()
    assert plan.shadow_table not in sa.inspect(engine).get_table_names()
