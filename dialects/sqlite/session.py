"""Every connection shadowswap opens: WAL, busy_timeout, real transactions, and what SQLite's
error codes mean (a lock wait that timed out, a retry, a value that does not fit)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from shadowswap.dialects.sqlite.base import DOES_NOT_FIT, SQLiteBase

SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_TOOBIG = 18
SQLITE_CONSTRAINT = 19
SQLITE_MISMATCH = 20


def _error_code(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


class SQLiteSession(SQLiteBase):
    def prepare_engine(self, engine: Engine) -> None:
        """WAL, a busy timeout and real transactions on every connection shadowswap opens.

        sqlite3's legacy transaction handling begins a transaction only before INSERT/UPDATE/
        DELETE, so a chunk's bound query and its insert would not share one. The driver's own
        BEGIN is switched off and a BEGIN is sent before the first statement of every SQLAlchemy
        transaction instead (lazily, so that ``begin_chunk`` and the strong-lock statements can
        open theirs with ``BEGIN IMMEDIATE``).
        """
        busy = int(self.busy_timeout_ms)
        read_only = self.read_only

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute(f"PRAGMA busy_timeout = {busy}")
            if not read_only:  # journal_mode is stored in the file: a read-only command must not switch it
                dbapi_connection.execute("PRAGMA journal_mode = WAL").fetchall()
            # No fsync at COMMIT (only at checkpoints), so a chunk's hold on the write lock is not
            # stretched by the disk. Still consistent: a power cut loses the last chunks together
            # with their checkpoint row, and the resume copies them again.
            dbapi_connection.execute("PRAGMA synchronous = NORMAL")

        @event.listens_for(engine, "checkin")
        def _checkin(dbapi_connection: Any, _record: Any) -> None:
            # lock_timeout_sql and run_swap shorten the wait for one transaction only
            if dbapi_connection is not None:  # None once invalidated
                dbapi_connection.execute(f"PRAGMA busy_timeout = {busy}")

        @event.listens_for(engine, "before_cursor_execute")
        def _begin(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
            raw = conn.connection.dbapi_connection
            if raw is None or raw.in_transaction or not conn.in_transaction():
                return
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return
            head = statement.lstrip()[:8].upper()
            if head.startswith(("BEGIN", "PRAGMA", "COMMIT", "END", "ROLLBACK")):
                return
            raw.execute("BEGIN")

    def lock_timeout_sql(self, milliseconds: int) -> list[str]:
        # SQLite's one strong lock is the write lock. Wait for it at most this long, and take it
        # up front: a transaction that reads first and writes later cannot wait for the upgrade,
        # it fails at once when another writer committed in between (invariant 5).
        return [f"PRAGMA busy_timeout = {int(milliseconds)}", "BEGIN IMMEDIATE"]

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return _error_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)

    def is_retryable(self, exc: BaseException) -> bool:
        return _error_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)

    def is_data_error(self, exc: BaseException) -> bool:
        if _error_code(exc) in (SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_TOOBIG):
            return True
        return DOES_NOT_FIT in str(getattr(exc, "orig", exc))
