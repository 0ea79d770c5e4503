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
