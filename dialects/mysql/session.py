"""Sessions on MySQL/MariaDB: what every connection is set to, the migration's lock, and what an error means.

Strict ``sql_mode`` on every session is invariant 8 here (a value the new type cannot hold raises
instead of being truncated), READ COMMITTED keeps a chunk's share lock off the gaps, and the
error numbers below are how the engine and the retry loop (``shadowswap/retry.py``) tell a lock
timeout, a deadlock victim and a refused value apart.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from shadowswap.dialects.mysql.base import (
    _BINLOG_SQL,
    ER_LOCK_DEADLOCK,
    ER_LOCK_NOWAIT,
    ER_LOCK_WAIT_TIMEOUT,
    ER_TABLE_DEF_CHANGED,
    MySQLBase,
    _errno,
    _statement_binlog,
)
from shadowswap.errors import UsageError

# Values that do not fit the new definition (invariant 8): out of range, truncated, not a value of
# the type, NULL into NOT NULL, a key the new definition makes collide, a failing CHECK.
DATA_ERRORS = {
    1048,  # column cannot be null (also the copy's guard against a unique-key collision)
    1062,  # duplicate entry
    1263,  # NULL supplied to NOT NULL column
    1264,  # out of range
    1265,  # data truncated
    1292,  # truncated incorrect value / incorrect datetime
    1364,  # field has no default
    1365,  # division by 0
    1366,  # incorrect value for column
    1367,  # illegal value
    1406,  # data too long
    1411,  # incorrect value for function
    1416,  # cannot get geometry object
    1441,  # datetime function overflow
    1690,  # value out of range
    3140,  # invalid JSON
    3819,  # MySQL: check constraint violated
    4025,  # MariaDB: CONSTRAINT failed
}
#: pymysql.constants.CLIENT.MULTI_STATEMENTS
MULTI_STATEMENTS = 1 << 16

# NO_AUTO_VALUE_ON_ZERO: a row whose AUTO_INCREMENT key is 0 is copied (and replayed, and written
# by the triggers, which keep their creator's sql_mode) as 0, not given the next id.
STRICT_MODES = ("STRICT_ALL_TABLES", "ERROR_FOR_DIVISION_BY_ZERO", "NO_AUTO_VALUE_ON_ZERO")


#: how lock_timeout_sql starts, and the connection-info key that says a pooled connection ran it
_LOCK_TIMEOUT_PREFIX = "SET SESSION lock_wait_timeout"
_LOCK_TIMEOUT_SET = "shadowswap_lock_wait_timeout_set"


class MySQLSession(MySQLBase):
    """Connection setup, the per-table migration lock, lock timeouts and error classification."""

    def prepare_engine(self, engine: Engine) -> None:
        """Strict sql_mode on every session (invariant 8). Triggers keep the sql_mode of the session
        that creates them, so the dual-write triggers are strict even for a lax application."""
        modes = ", ".join(f"'{m}'" for m in STRICT_MODES)

        @event.listens_for(engine, "connect")
        def _session(dbapi_conn: Any, record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), {modes})")
            # READ COMMITTED: a chunk's share lock then covers the rows it reads and no gaps, so the
            # application can insert beside it. Statement-based binary logging refuses that level.
            cursor.execute(_BINLOG_SQL)
            if not _statement_binlog(*cursor.fetchone()):
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cursor.close()

        @event.listens_for(engine, "before_cursor_execute")
        def _note_lock_timeout(conn: Connection, cursor: Any, statement: str, *_args: Any) -> None:
            if statement.startswith(_LOCK_TIMEOUT_PREFIX):
                conn.info[_LOCK_TIMEOUT_SET] = True

        @event.listens_for(engine, "reset")
        def _forget_lock_timeout(dbapi_conn: Any, record: Any, reset_state: Any) -> None:
            # lock_timeout_sql sets a session value; a pooled connection must not carry it on. Only
            # a connection that set it pays the round trip: every copy and checksum chunk checks
            # its connection in, and that statement was 0.4 s of a 1M-row copy's main thread.
            if record.info.pop(_LOCK_TIMEOUT_SET, False):
                cursor = dbapi_conn.cursor()
                cursor.execute("SET SESSION lock_wait_timeout = DEFAULT")
                cursor.close()

    @contextmanager
    def migration_lock(self, engine: Engine, table: str) -> Iterator[bool]:
        # GET_LOCK names are server-wide, so the database is part of the name; the lock belongs to
        # this connection's session and dies with it, so a crashed run never blocks its resume.
        with engine.connect() as conn:
            database = conn.exec_driver_sql("SELECT DATABASE()").scalar()
            digest = hashlib.sha1(f"{database}.{table}".encode()).hexdigest()
            name = f"shadowswap:{digest}"
            got = conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar() == 1
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
                    conn.commit()

    def begin_read_only(self, conn: Connection) -> None:
        # explicit, so that no statement before it opened a read-write transaction implicitly
        conn.exec_driver_sql("START TRANSACTION READ ONLY")

    def run_one(self, conn: Connection, sql: str) -> Any:
        # PyMySQL sends one COM_QUERY, which the server splits at ';' only for a client that asked
        # for CLIENT.MULTI_STATEMENTS; a URL's client_flag could ask for it, so look before running.
        raw = conn.connection.driver_connection
        if int(getattr(raw, "client_flag", 0)) & MULTI_STATEMENTS:
            raise UsageError(
                "the connection allows several statements per call (CLIENT.MULTI_STATEMENTS)",
                hint="remove client_flag from the database URL",
            )
        return self.run(conn, sql)

    def lock_timeout_sql(self, milliseconds: int) -> list[str]:
        # lock_wait_timeout (metadata locks: triggers, RENAME, ALTER) counts whole seconds, and
        # MySQL's minimum is 1 (invariant 5: waiting long behind a lock is itself an outage).
        return [f"{_LOCK_TIMEOUT_PREFIX} = {max(1, math.ceil(milliseconds / 1000))}"]

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return _errno(exc) in (ER_LOCK_WAIT_TIMEOUT, ER_LOCK_NOWAIT)

    def is_retryable(self, exc: BaseException) -> bool:
        # a chunk that waited out innodb_lock_wait_timeout on an application's row lock is rolled
        # back whole, like a deadlock victim, and simply runs again; a verification chunk whose snapshot
        # predates an index build on the shadow (InnoDB: "Table definition has changed") reads again
        return _errno(exc) in (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, ER_TABLE_DEF_CHANGED)

    def is_data_error(self, exc: BaseException) -> bool:
        return _errno(exc) in DATA_ERRORS
