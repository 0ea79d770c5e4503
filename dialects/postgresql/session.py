"""Session and error handling: the SQLSTATEs the engine reacts to, lock_timeout, the advisory
migration lock.

Every retry decision (lock timeout, deadlock, serialization failure, data error) starts from the
SQLSTATE read here; a change to how an error is classified belongs in this room.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.dialects.postgresql.base import PostgresBase

LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK = "40P01"
SERIALIZATION = "40001"
UNIQUE_VIOLATION = "23505"


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None)


#: how much a session of ours writes before asking the kernel to start writing it back (see
#: ``prepare_engine``); the server's own default for the checkpointer's writes
BACKEND_FLUSH_AFTER = "256kB"


class PostgresSession(PostgresBase):
    def prepare_engine(self, engine: Engine) -> None:
        """Our sessions' buffer writes are written back as they go, not at the next checkpoint.

        The copy fills the shadow through a small ring of shared buffers, so its pages are written
        by our own backend, and backend_flush_after is 0 by default: the kernel may keep a whole
        shadow heap dirty (1 GB at 5M rows) until a checkpoint's sync phase fsyncs it, while every
        application commit waits behind that flush for its WAL fsync. With writeback requested every
        256 kB the kernel writes the heap as it is filled: the checkpoint syncs during the 5M-row
        benchmark took 0.03-0.33 s instead of 0.70 s (docs/performance.md, issue 20). A hint for our
        sessions only: it changes neither what is written nor when it is durable.
        """

        @event.listens_for(engine, "connect")
        def _session(dbapi_conn: Any, record: Any) -> None:
            with dbapi_conn.cursor() as cursor:
                cursor.execute(f"SET backend_flush_after = '{BACKEND_FLUSH_AFTER}'")
            dbapi_conn.commit()  # a session SET in a transaction the pool rolls back would be undone

    @contextmanager
    def migration_lock(self, engine: Engine, table: str) -> Iterator[bool]:
        # A session-level advisory lock on its own connection: it dies with the process, so a
        # crashed run never leaves the table locked against the resume.
        key = zlib.crc32(f"shadowswap:{table}".encode()) - 2**31
        with engine.connect() as conn:
            got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    def begin_read_only(self, conn: Connection) -> None:
        # the first statement of the transaction; afterwards no statement in it can make it
        # read-write again ("must be called before any query"), and COMMIT cannot be reached (run_one)
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")

    def volatile_functions(self, conn: Connection, expression: str) -> list[str]:
        # Every name called in the expression (a word before a parenthesis, as tokenized in
        # PostgreSQL's dialect), looked up by name over all overloads and schemas: wider than
        # the call resolved, never narrower. Operators and casts backed by volatile functions
        # are not seen; those are the user's own definitions.
        from sqlglot.dialects.dialect import Dialect as SqlglotDialect
        from sqlglot.tokens import TokenType

        def _name(token: Any) -> str:  # a quoted name keeps its case, a bare one folds to lower case
            return str(token.text) if token.token_type == TokenType.IDENTIFIER else str(token.text).lower()

        tokens = SqlglotDialect.get_or_raise("postgres").tokenize(expression)
        called = sorted({_name(t) for t, after in itertools.pairwise(tokens) if after.token_type == TokenType.L_PAREN})
        if not called:
            return []
        rows = conn.execute(
            sa.text("SELECT DISTINCT proname FROM pg_proc WHERE proname = ANY(:n) AND provolatile = 'v' ORDER BY 1"),
            {"n": called},
        )
        return [str(r[0]) for r in rows]

    def run_one(self, conn: Connection, sql: str) -> Any:
        # psycopg sends a statement without parameters by the simple query protocol, which runs
        # every ';'-separated statement in it; a prepared statement is one statement or an error.
        raw = conn.connection.driver_connection
        assert raw is not None
        try:
            with raw.cursor() as cursor:
                cursor.execute(sql, prepare=True)
        except psycopg.Error as exc:
            raise DBAPIError.instance(sql, None, exc, psycopg.Error) from None
        return None

    def lock_timeout_sql(self, milliseconds: int) -> list[str]:
        return [f"SET LOCAL lock_timeout = '{int(milliseconds)}ms'"]

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return sqlstate(exc) == LOCK_NOT_AVAILABLE

    def lock_blocker(self, conn: Connection, table: str) -> str | None:
        # Modes from SHARE UPDATE EXCLUSIVE up: (auto)vacuum, ANALYZE, CREATE INDEX [CONCURRENTLY],
        # DDL. Each conflicts with CREATE TRIGGER's SHARE ROW EXCLUSIVE and with the swap's ACCESS
        # EXCLUSIVE, and is held for as long as its scan takes. The server cancels an autovacuum
        # that blocks a lock request only after deadlock_timeout (1 s), longer than our lock timeout,
        # so without this look every attempt would queue, stop every writer for the lock timeout,
        # and give up (invariant 5). Writers' ROW EXCLUSIVE locks are short and are waited for.
        row = conn.execute(
            sa.text(
                "SELECT l.mode, coalesce(nullif(a.backend_type, 'client backend'), 'a session'), a.pid"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'relation' AND l.relation = to_regclass(:t) AND l.granted"
                " AND l.pid <> pg_backend_pid() AND l.mode IN ('ShareUpdateExclusiveLock', 'ShareLock',"
                " 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')"
                " ORDER BY a.pid LIMIT 1"
            ),
            {"t": self.q(table)},
        ).first()
        return None if row is None else f"{row[1]} (pid {row[2]}) holds {row[0]} on {table}"

    def is_retryable(self, exc: BaseException) -> bool:
        return sqlstate(exc) in (DEADLOCK, SERIALIZATION)

    def is_data_error(self, exc: BaseException) -> bool:
        state = sqlstate(exc) or ""
        # class 22 = data exception, 23 = integrity constraint violation
        return state.startswith("22") or state.startswith("23")
