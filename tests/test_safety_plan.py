"""Issue 13, items 1 and 3: user SQL cannot become a statement at plan time, and lossy type changes
are destructive by type alone (and verification says it compares through the cast)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlglot
from conftest import only_dialects
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from shadowswap import checks, logs
from shadowswap.changes import AlterColumn, ChangeSet
from shadowswap.cli import app
from shadowswap.db import connect
from shadowswap.errors import ShadowswapError, UsageError
from shadowswap.planner import build_plan
from shadowswap.sqlguard import one_expression, why_not_one_expression
from shadowswap.strategy import narrowing_reason
from shadowswap.verify import through_cast_notes

READS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}


def cli(*args: str) -> Result:
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        logs.configure()


def engine_name(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "mysql" if url.startswith("mysql") else "sqlite"


def setup_victim(url: str) -> sa.Engine:
    engine, _ = connect(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE u1 (id INT PRIMARY KEY, v VARCHAR(40))")
        conn.exec_driver_sql("INSERT INTO u1 VALUES (1, 'a')")
        conn.exec_driver_sql("CREATE TABLE victim (x INT)")
        conn.exec_driver_sql("INSERT INTO victim VALUES (7)")
    return engine


def victim_intact(engine: sa.Engine) -> bool:
    if not sa.inspect(engine).has_table("victim"):
        return False
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT x FROM victim")] == [(7,)]


# -- item 1: the issue's exploit, per engine ---------------------------------------------------

# Each engine's own way to close a string the old shape check thought still open.
EXPLOITS = {
    "postgresql": [
        r"E'\'') FROM u1 AS src; COMMIT; DROP TABLE victim; SELECT (E'\''",
        r"E'\'') FROM u1 AS src; DROP TABLE victim; SELECT (E'\''",
    ],
    "mysql": [
        r"'\'') FROM u1 AS src; COMMIT; DROP TABLE victim; SELECT ('\''",
        r"'\'') FROM u1 AS src; DROP TABLE victim; SELECT ('\''",
    ],
    "sqlite": [
        "'a') FROM u1 AS src; DROP TABLE victim; SELECT ('b'",
        "v) FROM u1 AS src; DROP TABLE victim; --",
    ],
}


@pytest.mark.parametrize("variant", [0, 1])
def test_issue_exploit_through_using_is_refused(db_url: str, tmp_path: Path, variant: int) -> None:
    engine = setup_victim(db_url)
    try:
        payload = EXPLOITS[engine_name(db_url)][variant]
        result = cli("plan", "u1", "--db", db_url, "--using", f"v={payload}", "--out", str(tmp_path / "p.json"))
        assert result.exit_code == 2, result.output
        assert "invalid --using expression" in result.output
        assert not (tmp_path / "p.json").exists()
        assert victim_intact(engine)
    finally:
        engine.dispose()


def test_validation_runs_one_statement_in_a_read_only_transaction(db_url: str) -> None:
    """The second layer, without the parser: a write, or a second statement, reaching ``checks.prepare``
    inside the planner's transaction is refused by the database and changes nothing."""
    engine = setup_victim(db_url)
    _, dialect = connect(db_url)
    try:
        with engine.connect() as conn:
            dialect.begin_read_only(conn)
            try:
                for sql in ("DELETE FROM victim", "INSERT INTO victim VALUES (8)", "SELECT 1; DELETE FROM victim"):
                    assert checks.prepare(conn, dialect, sql) is not None, sql
            finally:
                conn.rollback()
                dialect.end_read_only(conn)
            # the pooled connection writes again once planning is over
            conn.exec_driver_sql("INSERT INTO u1 VALUES (2, 'b')")
            conn.rollback()
        assert victim_intact(engine)
    finally:
        engine.dispose()


# -- item 1: hostile strings, property-based ---------------------------------------------------

FRAGMENTS = [
    "'", "''", "E'", "e'", "\\", "\\'", "\\\\", "$$", "$x$", "--", "/*", "*/", "#", ";", '"', "`", "(", ")",
    " COMMIT; ", " DROP TABLE victim", ") FROM u1 AS src; DROP TABLE victim; SELECT (", "v", "1", " || ",
    "é", "\u2019", "\u00a0", "N'", "X'", "\n", "::text", " OR 1=1",
]  # fmt: skip
hostile = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), min_size=1, max_size=8).map("".join)


def assert_one_expression(rendered: str, read: str) -> None:
    statements = [s for s in sqlglot.parse(rendered, read=read) if s is not None]
    assert len(statements) == 1
    assert why_not_one_expression(rendered, read)[0] is None


@settings(max_examples=400, deadline=None)
@given(text=hostile, read=st.sampled_from(sorted(set(READS.values()))))
def test_guard_renders_one_expression_or_refuses(text: str, read: str) -> None:
    try:
        rendered = one_expression(text, read, "x")
    except UsageError:
        return
    assert_one_expression(rendered, read)
    # the rendering is stable: guarding it again changes nothing
    assert one_expression(rendered, read, "x") == rendered


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("1; DROP TABLE victim", "sqlite"),
        ("1 -- hidden", "postgres"),
        ("1 /* hidden */", "mysql"),
        ("(SELECT 1)", "postgres"),
        ("(SELECT x FROM victim FOR UPDATE)", "postgres"),
        ("$$a$$", "postgres"),
        ("", "sqlite"),
        ("1\x00", "sqlite"),
        ("'a\\'", "mysql"),
        ("'abc'::int", "sqlite"),
        ("v ILIKE 'a%'", "mysql"),
    ],
)
def test_guard_refusals(text: str, read: str) -> None:
    with pytest.raises(UsageError, match="invalid x"):
        one_expression(text, read, "x")


@pytest.mark.parametrize(
    ("text", "read", "rendered"),
    [
        ("price::text", "postgres", "CAST(price AS TEXT)"),
        ("E'a\\'b'", "postgres", "e'a''b'"),
        ("upper(v) || '%'", "sqlite", "UPPER(v) || '%'"),
        ("concat(v, 'it''s')", "mysql", "CONCAT(v, 'it''s')"),
    ],
)
def test_guard_renders_from_the_tree(text: str, read: str, rendered: str) -> None:
    assert one_expression(text, read, "x") == rendered


def _plan_hostile(engine: sa.Engine, url: str, text: str) -> None:
    _, dialect = connect(url)
    read = READS[engine_name(url)]
    for changes in (
        ChangeSet(usings={"v": text}),
        ChangeSet(changes=[AlterColumn("v", "varchar(60)", default=text)]),
    ):
        try:
            plan = build_plan(engine, dialect, "u1", changes)
        except ShadowswapError:
            continue
        for column in plan.columns:
            if column.name == "v":
                # the copy expression (our parentheses and cast around the user's) is one expression
                assert_one_expression(column.expression, read)
        for target in plan.change_plans:
            assert "victim" not in target.description or "'" in target.description
    assert victim_intact(engine)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile)
def test_hostile_strings_never_change_the_database(db_url: str, text: str) -> None:
    engine = setup_victim(db_url) if not _victim_exists(db_url) else connect(db_url)[0]
    try:
        _plan_hostile(engine, db_url, text)
    finally:
        engine.dispose()


def _victim_exists(url: str) -> bool:
    engine, _ = connect(url)
    try:
        return sa.inspect(engine).has_table("victim")
    finally:
        engine.dispose()


# -- item 3: lossy type changes are destructive by type ---------------------------------------

LOSSY: list[tuple[str, str, str | None, str | None]] = [
    # (old, new, engine's sqlglot dialect, expected reason fragment or None for lossless)
    ("NUMERIC(10, 2)", "real", "postgres", "single precision keeps 6 significant digits"),
    ("NUMERIC(10, 2)", "double precision", "postgres", None),
    ("NUMERIC(20, 2)", "double precision", "postgres", "double precision keeps 15 significant digits"),
    ("NUMERIC", "double precision", "postgres", "double precision keeps 15"),
    ("BIGINT", "double precision", "postgres", "integers above 2^53"),
    ("INTEGER", "double precision", "postgres", None),
    ("INTEGER", "real", "postgres", "integers above 2^24"),
    ("SMALLINT", "real", "postgres", None),
    ("INTEGER", "float(10)", "postgres", "integers above 2^24"),
    ("INTEGER", "float(53)", "postgres", None),
    ("DOUBLE PRECISION", "real", "postgres", "precision is lost"),
    ("REAL", "double precision", "postgres", None),
    ("TIMESTAMP(6) WITHOUT TIME ZONE", "timestamp(0)", "postgres", "fractions of a second"),
    ("TIMESTAMP WITHOUT TIME ZONE", "timestamp(3)", "postgres", "fractions of a second"),
    ("TIMESTAMP(3) WITHOUT TIME ZONE", "timestamp", "postgres", None),
    ("TIME WITHOUT TIME ZONE", "time(0)", "postgres", "fractions of a second"),
    ("TIMESTAMP WITH TIME ZONE", "timestamptz(2)", "postgres", "fractions of a second"),
    ("NUMERIC(10, 2)", "numeric(10, 1)", "postgres", "rounded away"),
    ("INTEGER", "numeric(5, 0)", "postgres", "large values do not fit"),
    ("INTEGER", "numeric(12, 2)", "postgres", None),
    ("VARCHAR(20)", "varchar(10)", "postgres", "longer values do not fit"),
    ("VARCHAR(20)", "text", "postgres", None),
    ("DATETIME(fsp=6)", "datetime", "mysql", "fractions of a second"),
    ("DATETIME", "datetime(6)", "mysql", None),
    ("TIME(fsp=3)", "time", "mysql", "fractions of a second"),
    ("BIGINT", "double", "mysql", "integers above 2^53"),
    ("BIGINT", "float", "mysql", "integers above 2^24"),
    ("MEDIUMINT", "float", "mysql", None),
    ("INTEGER", "int unsigned", "mysql", "negative values"),
    ("DECIMAL(10, 2)", "float", "mysql", "single precision"),
    ("DOUBLE", "float", "mysql", "precision is lost"),
    ("DOUBLE", "decimal(10, 2)", "mysql", "fractions or magnitude"),
]


@pytest.mark.parametrize(("old", "new", "read", "expected"), LOSSY)
def test_lossiness_rule(old: str, new: str, read: str, expected: str | None) -> None:
    reason = narrowing_reason("c", old, new, read)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason, reason
        assert "\n" not in reason


def _lossy_table(engine: sa.Engine, name: str) -> None:
    with engine.begin() as conn:
        if name == "postgresql":
            conn.exec_driver_sql(
                "CREATE TABLE m (id INT PRIMARY KEY, n NUMERIC(10,2), b BIGINT, t TIMESTAMP(6), ok INT)"
            )
            conn.exec_driver_sql(
                "INSERT INTO m VALUES (1, 12345678.91, 9007199254740993, '2024-01-01 10:00:00.123456', 1),"
                " (2, 1.5, 2, '2024-01-01 10:00:00', 2)"
            )
        elif name == "mysql":
            conn.exec_driver_sql(
                "CREATE TABLE m (id INT PRIMARY KEY, n DECIMAL(10,2), b BIGINT, t DATETIME(6), ok INT)"
            )
            conn.exec_driver_sql(
                "INSERT INTO m VALUES (1, 12345678.91, 9007199254740993, '2024-01-01 10:00:00.123456', 1),"
                " (2, 1.5, 2, '2024-01-01 10:00:00', 2)"
            )
        else:
            conn.exec_driver_sql("CREATE TABLE m (id INTEGER PRIMARY KEY, b INTEGER, ok INTEGER)")
            conn.exec_driver_sql("INSERT INTO m VALUES (1, 9007199254740993, 1), (2, 2, 2)")


LOSSY_ALTERS: dict[str, list[tuple[str, str]]] = {
    "postgresql": [("n", "real"), ("b", "double precision"), ("t", "timestamp(0)")],
    "mysql": [("n", "float"), ("b", "double"), ("t", "datetime")],
}


@only_dialects("postgresql", "mysql")
def test_lossy_change_is_destructive_and_cast_check_counts_rows(db_url: str) -> None:
    engine, dialect = connect(db_url)
    name = engine_name(db_url)
    _lossy_table(engine, name)
    try:
        for column, new_type in LOSSY_ALTERS[name]:
            plan = build_plan(engine, dialect, "m", [AlterColumn(column, new_type)], check_casts=True)
            assert plan.verdict == "destructive", (column, new_type)
            (change,) = plan.change_plans
            assert change.destructive and f"narrows {column}" in change.destructive
            assert plan.cast_check is not None
            (checked,) = plan.cast_check.columns
            assert checked.rows_changed == 1, (column, new_type, checked)
            assert checked.sample_keys == [[1]]
            notes = through_cast_notes(dialect, plan)
            assert len(notes) == 1 and "compared through its cast" in notes[0]
        # a lossless widening stays safe and says nothing about casts
        plan = build_plan(engine, dialect, "m", [AlterColumn("ok", "bigint")])
        assert plan.verdict == "safe"
        assert through_cast_notes(dialect, plan) == []
    finally:
        engine.dispose()


@only_dialects("postgresql")
def test_cli_refuses_lossy_execute_and_verify_says_through_the_cast(db_url: str, tmp_path: Path) -> None:
    engine, _ = connect(db_url)
    _lossy_table(engine, "postgresql")
    plan_file = str(tmp_path / "p.json")
    try:
        planned = cli("plan", "m", "--db", db_url, "--alter", "n:real", "--out", plan_file, "--json")
        assert planned.exit_code == 0, planned.output
        shown = json.loads(planned.output)
        assert shown["verdict"] == "destructive"
        assert "single precision keeps 6 significant digits" in shown["change_plans"][0]["destructive"]
        refused = cli("execute", plan_file, "--db", db_url)
        assert refused.exit_code == 2, refused.output
        assert "allow-destructive" in refused.output
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT n FROM m WHERE id = 1").scalar_one() == Decimal("12345678.91")
        done = cli("execute", plan_file, "--db", db_url, "--allow-destructive")
        assert done.exit_code == 0, done.output
        verified = cli("verify", "m", "--plan", plan_file, "--db", db_url)
        assert verified.exit_code == 0, verified.output
        assert "compared through its cast to real" in verified.output.replace("\n", " ")
    finally:
        engine.dispose()


@only_dialects("sqlite")
def test_sqlite_integer_to_real_does_not_round_silently(db_url: str) -> None:
    """SQLite stores values whole whatever the declared type, but REAL affinity turns an integer into a
    float: the guarded cast must refuse a value it would round, so the change is not lossy in practice."""
    engine, dialect = connect(db_url)
    _lossy_table(engine, "sqlite")
    try:
        plan = build_plan(engine, dialect, "m", [AlterColumn("b", "REAL")], check_casts=True)
        assert plan.cast_check is not None
        (checked,) = [c for c in plan.cast_check.columns if c.column == "b"]
        # the guarded cast refuses 2^53 + 1 (it does not compare equal to its REAL): blocked, not rounded
        assert (checked.rows_failing, checked.sample_keys) == (1, [[1]]), checked
        assert plan.verdict == "blocked"
    finally:
        engine.dispose()


def test_plan_time_checks_do_not_evaluate_volatile_functions_postgresql(pg_url: str) -> None:
    """A read-only transaction stops a write of this session, not one a function makes elsewhere:
    dblink_exec writes through its own connection. ``--check-casts`` evaluates --using on every row,
    so on PostgreSQL an expression calling a volatile function is not evaluated at plan time (the
    plan says so); an expression of stable and immutable functions still is."""
    engine, dialect = connect(pg_url)
    url = sa.make_url(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION dblink")
        conn.exec_driver_sql("CREATE TABLE hits (n int)")
        conn.exec_driver_sql("CREATE TABLE items (id int PRIMARY KEY, qty text)")
        conn.exec_driver_sql("INSERT INTO items SELECT i, i::text FROM generate_series(1, 20) i")
    remote = f"host={url.host} port={url.port or 5432} dbname={url.database} user={url.username}"
    side_effect = f"length(dblink_exec('{remote}', 'INSERT INTO hits VALUES (1)'))"
    dblinked = ChangeSet([AlterColumn("qty", type_sql="int", nullable=False)], {"qty": side_effect})
    plan = build_plan(engine, dialect, "items", dblinked, check_casts=True)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM hits").scalar() == 0
    assert any("dblink_exec" in note and "volatile" in note for note in plan.notes), plan.notes
    assert plan.cast_check is not None and not plan.cast_check.columns[0].exact
    # stable and immutable functions are still evaluated: 'x' fails the cast in row 3 only
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE items SET qty = 'x' WHERE id = 3")
    converted = ChangeSet([AlterColumn("qty", type_sql="int", nullable=False)], {"qty": "upper(trim(qty))::int"})
    plan = build_plan(engine, dialect, "items", converted, check_casts=True)
    assert plan.cast_check is not None and plan.cast_check.rows_failing == 1
    engine.dispose()
