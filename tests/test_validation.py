"""Issue 13, items 6-9: bad plan files, bad options and secrets in URLs are refused or masked
before the first change to the database: one line, a non-zero exit, the database as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import only_dialects
from harness import create_products
from test_cli_errors import cli, snapshot

from shadowswap.db import connect
from shadowswap.urls import mask_secrets, mask_url

SECRET = "Zq9-hunter2-secret"


def planned(db_url: str, tmp_path: Path, *changes: str) -> tuple[Path, sa.Engine, dict[str, Any]]:
    """products with rows, a plan for it written to tmp_path, and the snapshot of the database."""
    engine, dialect = connect(db_url)
    create_products(engine, 50)
    plan_file = tmp_path / "plan.json"
    # --strategy shadow: an in-place plan ignores some options (issue 13 item 2, not tested here)
    changes = changes or ("--add", "note:varchar(20)")
    made = cli("plan", "products", *changes, "--strategy", "shadow", "--out", str(plan_file), "--db", db_url)
    assert made.exit_code == 0, made.stderr
    return plan_file, engine, snapshot(engine, dialect)


def one_line_error(result: Any, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: "), result.stderr
    return first


# -- item 6: every field of a hand-edited plan file is checked before anything changes -------------

Edit = Callable[[dict[str, Any]], None]


def _set(key: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data[key] = value

    return edit


def _nested(outer: str, key: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data[outer][key] = value

    return edit


def _column(key: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data["columns"][0][key] = value

    return edit


HAND_EDITS: list[tuple[str, Edit, str]] = [
    ("primary key as a string", _set("primary_key", "id"), "primary_key must be a list"),
    ("table null", _set("table", None), "table must be a string"),
    ("version as a string", _set("version", "2"), "version is str '2'"),
    ("version missing", lambda d: d.pop("version"), "version is missing"),
    ("key not a column", _set("primary_key", ["nope"]), "'nope' are not among source_columns"),
    ("row count a string", _set("estimated_rows", "50"), "estimated_rows must be a whole number"),
    ("column name a number", _column("name", 7), "columns[0].name must be a string"),
    ("nullable a string", _column("new_nullable", "yes"), "columns[0].new_nullable must be true or false"),
    ("copied from nowhere", _column("source_column", "ghost"), "copied from 'ghost'"),
    ("unknown field", _set("tabel", "products"), "unknown field(s) tabel"),
    ("bad strategy", _set("strategy", "yolo"), "strategy 'yolo'"),
    ("empty shadow name", _set("shadow_table", " "), "shadow_table is empty"),
    ("triggers not a list", _set("trigger_ddl", "DROP TABLE products"), "trigger_ddl must be a list"),
    # the typed capture and swap moves: a Literal field takes only its values, a tuple field a list
    ("unknown capture mode", _nested("capture", "mode", "yolo"), "capture.mode must be one of 'change_log'"),
    ("unknown copy route", _nested("capture", "route", {"via": "pipe"}), "capture.route.via must be one of"),
    ("moved triggers an object", _nested("moved_at_swap", "triggers", {}), "moved_at_swap.triggers must be a list"),
    (
        "moved key without its SQL",
        _nested("moved_at_swap", "keys_from", [{"name": "fk"}]),
        "moved_at_swap.keys_from[0].sql is missing",
    ),
]


@pytest.mark.parametrize(("edit", "message"), [(e, m) for _n, e, m in HAND_EDITS], ids=[n for n, _e, _m in HAND_EDITS])
def test_hand_edited_plan_is_refused_before_any_change(db_url: str, tmp_path: Path, edit: Edit, message: str) -> None:
    plan_file, engine, before = planned(db_url, tmp_path)
    data = json.loads(plan_file.read_text())
    edit(data)
    plan_file.write_text(json.dumps(data))
    result = cli("execute", str(plan_file), "--db", db_url)
    line = one_line_error(result)
    assert message in line, line
    _dialect = connect(db_url)[1]
    assert snapshot(engine, _dialect) == before  # no shadow, no triggers, no state table
    # and a fresh plan runs: nothing was stored that would poison a resume
    made = cli("plan", "products", "--add", "note:varchar(20)", "--out", str(plan_file), "--db", db_url)
    assert made.exit_code == 0, made.stderr
    done = cli("execute", str(plan_file), "--db", db_url)
    assert done.exit_code == 0, done.stderr


def test_version_string_is_not_called_the_same_version(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"version": "4"}))
    line = one_line_error(cli("execute", str(plan_file), "--db", f"sqlite:///{tmp_path / 'x.db'}"))
    assert "reads version 4" not in line and '"version": 4' in line


# -- item 7: options refused before the first change, one line each ---------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-rows-per-second", "nan"], "--max-rows-per-second must be a finite number"),
        (["--max-rows-per-second", "inf"], "--max-rows-per-second must be a finite number"),
        (["--chunk-time", "nan"], "--chunk-time must be a finite number"),
        (["--max-lag", "inf"], "--max-lag must be a finite number"),
        (["--lock-timeout", "99999999999"], "--lock-timeout 99999999999: must be between 1 and"),
        (["--postpone-cutover-file", "/missing/dir/flag"], "the directory /missing/dir does not exist"),
    ],
)
def test_bad_execute_options_change_nothing(db_url: str, tmp_path: Path, options: list[str], message: str) -> None:
    plan_file, engine, before = planned(db_url, tmp_path)
    line = one_line_error(cli("execute", str(plan_file), *options, "--db", db_url))
    assert message in line, line
    assert snapshot(engine, connect(db_url)[1]) == before


def test_postpone_file_that_is_a_directory(db_url: str, tmp_path: Path) -> None:
    plan_file, engine, before = planned(db_url, tmp_path)
    line = one_line_error(cli("execute", str(plan_file), "--postpone-cutover-file", str(tmp_path), "--db", db_url))
    assert "is a directory" in line
    assert snapshot(engine, connect(db_url)[1]) == before


def test_plan_out_to_a_missing_directory_or_a_directory(db_url: str, tmp_path: Path) -> None:
    engine, _dialect = connect(db_url)
    create_products(engine, 10)
    missing = one_line_error(
        cli("plan", "products", "--add", "n:integer", "--out", str(tmp_path / "no" / "x.json"), "--db", db_url)
    )
    assert "does not exist" in missing
    directory = one_line_error(cli("plan", "products", "--add", "n:integer", "--out", str(tmp_path), "--db", db_url))
    assert "is a directory" in directory


def test_unreadable_plan_files(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert "is a directory" in one_line_error(cli("execute", str(tmp_path), "--db", db))
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"table": "caf\u00e9"}'.encode("latin-1"))
    assert "not UTF-8" in one_line_error(cli("execute", str(latin1), "--db", db))
    assert not (tmp_path / "x.db").exists()


def test_non_numeric_port_is_one_line() -> None:
    result = cli("plan", "t", "--add", "n:integer", "--db", f"postgresql://u:{SECRET}@127.0.0.1:abc/db")
    line = one_line_error(result)
    assert "is not valid" in line and "port must be a number" in result.stderr
    assert SECRET not in result.stderr


@only_dialects("mysql")
@pytest.mark.parametrize("parameter", ["charset=bogus", "read_timeout=abc", "bogus_param=1"])
def test_mysql_url_parameter_typos_are_one_line(db_url: str, parameter: str) -> None:
    line = one_line_error(cli("plan", "t", "--add", "n:integer", "--db", f"{db_url}?{parameter}"))
    assert "a query parameter is not valid" in line and parameter.split("=")[0] in line


# -- item 8: a password given as a URL parameter is masked wherever the URL is shown -----------------


def test_mask_url_covers_every_way_of_giving_a_password() -> None:
    for url in (
        f"postgresql://u:{SECRET}@h/db",
        f"postgresql://u@h/db?password={SECRET}",
        f"mysql+pymysql://u@h/db?charset=utf8mb4&passwd={SECRET}",
        f"mysql://u@h/db?PASSWORD={SECRET}&x=1",
        f"postgresql://u:{SECRET}@h:abc/db",  # not parsable: still masked
    ):
        shown = mask_url(url)
        assert SECRET not in shown and "***" in shown, shown
    assert SECRET not in mask_secrets(f"connection to host=h password={SECRET} failed")


@only_dialects("postgresql", "mysql")
def test_cannot_connect_never_shows_a_query_password(db_url: str) -> None:
    url = sa.make_url(db_url).set(username="ss_no_such_user").update_query_dict({"password": SECRET})
    result = cli("plan", "products", "--add", "n:integer", "--db", url.render_as_string(hide_password=False))
    assert result.exit_code == 3
    assert "password=***" in result.stderr
    assert SECRET not in result.output and SECRET not in result.stderr


@only_dialects("postgresql", "mysql")
def test_replica_errors_never_show_a_query_password(db_url: str, tmp_path: Path) -> None:
    plan_file, engine, before = planned(db_url, tmp_path)
    replica = sa.make_url(db_url).set(username="ss_no_such_user").update_query_dict({"password": SECRET})
    result = cli(
        "execute",
        str(plan_file),
        "--max-lag",
        "5",
        "--replica",
        replica.render_as_string(hide_password=False),
        "--db",
        db_url,
    )
    assert result.exit_code == 2, result.output
    assert "--replica" in result.stderr
    # the replica is probed once the state table exists (bookkeeping), before the table is touched
    assert snapshot(engine, connect(db_url)[1])["products"] == before["products"]
    assert SECRET not in result.output and SECRET not in result.stderr


@only_dialects("postgresql")  # trust authentication ignores the password, so the migration runs with it
def test_hooks_and_json_log_never_see_a_query_password(db_url: str, tmp_path: Path) -> None:
    url = sa.make_url(db_url).update_query_dict({"password": SECRET}).render_as_string(hide_password=False)
    engine, _dialect = connect(db_url)
    create_products(engine, 20)
    plan_file = tmp_path / "plan.json"
    made = cli("plan", "products", "--add", "n:integer", "--strategy", "shadow", "--out", str(plan_file), "--db", url)
    assert made.exit_code == 0, made.stderr
    seen = tmp_path / "seen.txt"
    result = cli(
        "--log-format",
        "json",
        "execute",
        str(plan_file),
        "--hook",
        f'on-start=echo "$SHADOWSWAP_DATABASE_URL" > {seen}; echo "$SHADOWSWAP_DATABASE_URL"',
        "--db",
        url,
    )
    assert result.exit_code == 0, result.output
    assert "password=***" in seen.read_text()
    assert SECRET not in seen.read_text()
    assert SECRET not in result.output and SECRET not in result.stderr


# -- item 9: messages that do not mislead ----------------------------------------------------------


def _all_json(stderr: str) -> list[dict[str, Any]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not JSON on stderr in json mode: {line!r}")
    return records


def test_json_mode_writes_only_json_to_stderr(db_url: str, tmp_path: Path) -> None:
    plan_file, _engine, _before = planned(db_url, tmp_path)
    done = cli("--log-format", "json", "execute", str(plan_file), "--db", db_url)
    assert done.exit_code == 0, done.output
    events = {r["event"] for r in _all_json(done.stderr)}
    assert "phase" in events and "copy started" in events
    failed = cli("--log-format", "json", "execute", str(tmp_path / "missing.json"), "--db", db_url)
    assert failed.exit_code == 2
    (record,) = _all_json(failed.stderr)
    assert record["level"] == "error" and "no plan file" in record["event"] and record["exit_code"] == 2


def test_bogus_log_level_is_refused() -> None:
    result = cli("--log-level", "bogus", "status", "--db", "sqlite://")
    assert result.exit_code == 2 and "--log-level must be one of" in result.stderr


def test_a_failing_status_does_not_promise_a_resume(db_url: str) -> None:
    engine, _dialect = connect(db_url)
    with engine.begin() as conn:  # a state table this shadowswap cannot read: status fails in the database
        conn.exec_driver_sql("CREATE TABLE shadowswap_migrations (id integer PRIMARY KEY)")
    result = cli("status", "--db", db_url)
    assert result.exit_code == 1 and result.stderr.startswith("error: database error")
    assert "resumes" not in result.stderr and "nothing was changed" in result.stderr


def test_status_creates_nothing(db_url: str) -> None:
    engine, _dialect = connect(db_url)
    result = cli("status", "--db", db_url)
    assert result.exit_code == 0 and "no migrations recorded" in result.output
    verified = cli("verify", "products", "--db", db_url)
    assert verified.exit_code == 2 and "nothing to verify" in verified.stderr
    assert "shadowswap_migrations" not in sa.inspect(engine).get_table_names()


@only_dialects("postgresql")
def test_a_read_only_role_can_look(db_url: str) -> None:
    import uuid

    role = f"ss_ro_{uuid.uuid4().hex[:8]}"
    engine, _dialect = connect(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    try:
        result = cli("status", "--db", sa.make_url(db_url).set(username=role).render_as_string(hide_password=False))
        assert result.exit_code == 0, result.output
        assert "no migrations recorded" in result.output
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE {role}")
        engine.dispose()


def test_read_only_commands_leave_sqlite_files_alone(tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    result = cli("status", "--db", f"sqlite:///{typo}")
    assert result.exit_code == 2 and "no SQLite database at" in result.stderr
    assert not typo.exists()
    path = tmp_path / "app.db"
    plain = sa.create_engine(f"sqlite:///{path}")  # not shadowswap's connect: the file keeps its rollback journal
    with plain.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id integer PRIMARY KEY, v text)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1, 'a')")
    plain.dispose()
    made = cli("plan", "t", "--add", "n:integer", "--out", str(tmp_path / "p.json"), "--db", f"sqlite:///{path}")
    assert made.exit_code == 0, made.output
    assert cli("status", "--db", f"sqlite:///{path}").exit_code == 0
    plain = sa.create_engine(f"sqlite:///{path}")
    with plain.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "delete"
    plain.dispose()


def test_a_qualified_table_name_mentions_schemas(db_url: str) -> None:
    connect(db_url)[0].dispose()  # the database exists (a SQLite file too)
    result = cli("plan", "app.orders", "--add", "n:integer", "--db", db_url)
    assert result.exit_code == 2 and "schema" in result.stderr


def test_help_texts_survive_rich_markup() -> None:
    import typer.main
    from rich.emoji import Emoji

    from shadowswap.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert "plan" in commands
    for name, command in commands.items():
        for param in command.params:
            text = getattr(param, "help", None) or ""
            assert Emoji.replace(text) == text, f"{name} {param.name}: {text!r} is eaten by rich's emoji codes"
    result = cli("plan", "--help")
    assert "OLD:NEW" in result.output


def test_rerunning_an_instant_plan_says_already_done(db_url: str, tmp_path: Path) -> None:
    engine, _dialect = connect(db_url)
    create_products(engine, 10)
    plan_file = tmp_path / "plan.json"
    made = cli("plan", "products", "--add", "n:int", "--strategy", "instant", "--out", str(plan_file), "--db", db_url)
    assert made.exit_code == 0, made.output
    assert cli("execute", str(plan_file), "--db", db_url).exit_code == 0
    again = cli("execute", str(plan_file), "--db", db_url)
    assert again.exit_code == 4
    assert "already applied" in again.stderr and "stale" not in again.stderr
