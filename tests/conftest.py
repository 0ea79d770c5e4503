"""One parametrized database fixture: every engine test runs on each reachable engine.

Each test gets a fresh, empty database (PostgreSQL/MariaDB: a new database; SQLite: a new file),
so tests never see each other's tables or state rows. A server that does not answer skips its
tests, unless SHADOWSWAP_REQUIRE_DBS is set (as in CI), where it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN = os.environ.get("SHADOWSWAP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN = os.environ.get("SHADOWSWAP_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/")
REQUIRE = bool(os.environ.get("SHADOWSWAP_REQUIRE_DBS"))

# Engines the conformance suite runs on; a dialect joins when its module lands.
DIALECTS = [d for d in os.environ.get("SHADOWSWAP_TEST_DIALECTS", "sqlite,postgresql,mysql").split(",") if d]

_unreachable: dict[str, str] = {}

#: PostgreSQL roles are cluster-wide, not per database: tests that use a fixed role create it with
#: "IF NOT EXISTS", which races (a unique violation on pg_authid) when two xdist workers do it at
#: once. The controller creates them before any worker starts, so the tests' own creation is a no-op.
SHARED_PG_ROLES = {
    "ss_fid_reader": "",
    "ss_fid_app": "",
    "ss_fid_lead": "",
    "ss_fid_writer": "",
    "ss_fid_owner": "LOGIN",
}


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or "postgresql" not in DIALECTS:
        return  # an xdist worker: the controller has done it
    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for role, options in SHARED_PG_ROLES.items():
                conn.exec_driver_sql(
                    f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN"
                    f" CREATE ROLE {role} {options}; END IF; END$$"
                )
        admin.dispose()
    except Exception:  # unreachable: the tests that need the server skip or fail (_server_check) and say why
        pass


def _server_check(name: str, url: str) -> None:
    if name in _unreachable:
        _skip_or_fail(name, _unreachable[name])
    try:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:  # any failure to reach the server means the same thing here
        _unreachable[name] = str(exc).splitlines()[0]
        _skip_or_fail(name, _unreachable[name])


def _skip_or_fail(name: str, reason: str) -> None:
    message = f"{name} server unreachable: {reason}"
    if REQUIRE:
        pytest.fail(message + " (SHADOWSWAP_REQUIRE_DBS is set)")
    pytest.skip(message)


#: The longest tests (each tens of seconds of copying under writers, subprocesses or Celery workers),
#: longest first. pytest-xdist (``-n 3 --dist loadgroup`` in pyproject's addopts) hands tests out in
#: collection order, so these start first and the many short tests fill in around them; left at their
#: place in the files, one would start last and the suite would wait for it alone. Only the order
#: changes: every test still runs, with the same assertions. Ordered by the junit times of a
#: serial and a three-worker run (.ci/run); a name that no longer exists only stops being moved.
SLOW_FIRST = [
    "test_many_changes_in_one_shadow_copy_under_writers",
    "test_a_failing_target_stops_only_what_it_should",
    "test_sigkill_mid_copy_then_resume",
    "test_thread_pool_fleet_under_writers",
    "test_writer_in_another_process_keeps_writing",
    "test_concurrent_writers_lose_nothing",
    "test_gate_holds_every_swap_until_all_are_verified",
    "test_celery_workers_survive_a_worker_killed_mid_copy",
    "test_hostile_strings_never_change_the_database",
    "test_writes_keep_flowing_while_an_auto_increment_table_is_copied",
    "test_cheap_changes_run_in_place_under_writers",
    "test_renamed_primary_key_and_column_with_space",
    "test_plan_execute_status_cleanup",
    "test_benchmark_command_runs_every_approach",
    "test_upgrade_and_downgrade_under_writers",
    "test_demo_migrates_under_writes_and_verifies",
    "test_in_place_waits_for_pause_postponement_and_hook_then_backs_up",
    "test_directory_json_exit_codes_and_fix",
    "test_sigkill_mid_index_build_with_change_log_postgresql",
    "test_check_casts_finds_duplicates_before_anything_starts",
    "test_sigkill_mid_concurrent_index_build_postgresql",
    "test_pause_and_pause_file_hold_the_copy",
    "test_killed_mid_copy_then_upgrade_resumes",
    "test_cli_refuses_lossy_execute_and_verify_says_through_the_cast",
    "test_postgresql_app_trigger_fires_once_per_write",
    "test_unique_index_over_duplicates_exits_6_names_them_and_removes_everything",
    "test_sigkill_in_each_phase",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    last = len(SLOW_FIRST)
    items.sort(key=lambda item: rank.get(getattr(item, "originalname", item.name), last))  # stable


def fresh_database(dialect: str, tmp_path: Path) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    admin_url = PG_ADMIN if dialect == "postgresql" else MYSQL_ADMIN
    _server_check(dialect, admin_url)
    name = f"ss_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.make_url(admin_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if dialect == "postgresql":
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def only_dialects(*names: str) -> pytest.MarkDecorator:
    """Run a conformance test on the named engines only: the others lack the feature it is about.

    The test is then not collected for them at all, so a skip in CI always means an unreachable server.
    """
    return pytest.mark.parametrize("db_url", [d for d in DIALECTS if d in names], indirect=True)


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("postgresql", tmp_path)


@pytest.fixture
def mysql_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("mysql", tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    from shadowswap.db import connect

    eng, _dialect = connect(db_url)
    yield eng
    eng.dispose()
