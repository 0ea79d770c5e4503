"""MySQL/MariaDB column order (issue 15): the shadow's columns are in the order the blocking ALTER gives.

A property test against the server itself: random ``ADD … [FIRST | AFTER c]``, ``MODIFY … FIRST |
AFTER c``, ``CHANGE`` and ``DROP`` clauses in one statement; where the engine's own ALTER accepts the
statement, shadowswap's plan must accept it too and declare the shadow's columns in the same order.
Planning only (rows and the copy are the differential suite's: tests/differential.py ``my_reorder``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shadowswap.changes import parse_ddl
from shadowswap.db import connect
from shadowswap.planner import build_plan

COLUMNS = ["a", "b", "c", "d"]
CREATE = "CREATE TABLE {t} (id int primary key, a int, b varchar(10), c text, d int DEFAULT 3)"


@pytest.fixture
def mysql_engine(mysql_url: str) -> Iterator[tuple[sa.Engine, object]]:
    engine, dialect = connect(mysql_url)
    yield engine, dialect
    engine.dispose()


def _position(draw: st.DrawFn, names: list[str]) -> str:
    return draw(st.sampled_from(["", " FIRST", *[f" AFTER {n}" for n in names]]))


@st.composite
def statements(draw: st.DrawFn) -> str:
    names = ["id", *COLUMNS]
    clauses = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["add", "modify", "change", "drop"]))
        column = draw(st.sampled_from(COLUMNS))
        if kind == "add":
            clauses.append(f"ADD COLUMN n{i} int{_position(draw, names)}")
        elif kind == "modify":
            clauses.append(f"MODIFY {column.upper() if draw(st.booleans()) else column} int{_position(draw, names)}")
        elif kind == "change":
            clauses.append(f"CHANGE {column} {column}{i} bigint{_position(draw, names)}")
        else:
            clauses.append(f"DROP COLUMN {column}")
    return ", ".join(clauses)


def _shadow_order(ddl: str) -> list[str]:
    create = next(s for s in ddl if s.startswith("CREATE TABLE"))
    found = [m.group(1) for m in re.finditer(r"^\t(`[^`]+`|\S+) ", create, re.MULTILINE)]
    return [n.strip("`") for n in found if n not in ("PRIMARY", "UNIQUE", "KEY", "INDEX", "CONSTRAINT", "CHECK")]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clauses=statements())
def test_the_shadow_has_the_blocking_alters_column_order(mysql_engine: tuple[sa.Engine, object], clauses: str) -> None:
    engine, dialect = mysql_engine
    with engine.begin() as conn:
        for t in ("blocking", "online"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {t}")
            conn.exec_driver_sql(CREATE.format(t=t))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE blocking {clauses}")
    except sa.exc.DBAPIError:
        assume(False)  # the engine refuses it (AFTER a dropped column, a column changed twice, ...)
    with engine.connect() as conn:
        expected = [r[0] for r in conn.exec_driver_sql("SHOW COLUMNS FROM blocking")]
    plan = build_plan(
        engine, dialect, "online", parse_ddl(f"ALTER TABLE online {clauses}", "mysql"), strategy_name="shadow"
    )  # type: ignore[arg-type]
    assert _shadow_order(plan.shadow_ddl) == expected, clauses
