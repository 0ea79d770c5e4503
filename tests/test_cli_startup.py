"""Start-up cost: every command is a new process, so what the CLI imports at start every command pays.

``--help``, ``checks`` and the operator commands must not load SQLAlchemy or the drivers, and no
command path may load what only another room uses (sqlglot for parsing, Alembic for lint, Celery
for the fleet). Checked in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NEVER_AT_START = ("sqlalchemy", "psycopg", "pymysql", "sqlglot", "alembic", "celery", "structlog", "pygments")
NEVER_IN_EXECUTE = ("sqlglot", "alembic", "celery", "redis", "matplotlib")


def loaded(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_database_or_parsing_library() -> None:
    assert loaded("import shadowswap.cli") & set(NEVER_AT_START) == set()


@pytest.mark.parametrize("engine", ["postgresql", "mysql", "sqlite"])
def test_the_execute_path_loads_no_other_rooms_library(engine: str) -> None:
    modules = loaded(f"import shadowswap.cli, shadowswap.executor, shadowswap.dialects.{engine}")
    assert "sqlalchemy" in modules  # the probe does reach the execute path
    assert modules & set(NEVER_IN_EXECUTE) == set()
