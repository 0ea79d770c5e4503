"""What every SQLite concern shares: the engine's identity, its minimum version, and the few
facts one concern reads from another (declared here, so mypy checks each call across rooms).

The concerns are cooperative mixins of ``SQLiteBase``, composed in ``__init__.py``; a method one
of them needs from another is declared here abstract, or is a ``Dialect`` method.
"""

from __future__ import annotations

import sqlite3
from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shadowswap.dialects.base import Dialect
from shadowswap.errors import UsageError

if TYPE_CHECKING:
    from shadowswap.plan import Plan

#: UPSERT (3.24) and PRAGMA legacy_alter_table with the rename semantics of 3.26
MIN_VERSION = (3, 26, 0)
#: marks the error a copy expression raises for a value that does not fit its new type
DOES_NOT_FIT = "shadowswap: value"


def literal(text: str) -> str:
    """An SQL string literal (for sqlite_master and sqlite_sequence, which hold names as text)."""
    return "'" + text.replace("'", "''") + "'"


def database_file(engine: Engine) -> str | None:
    """The path of the engine's database file as its URL gives it; None for an in-memory database."""
    database = engine.url.database or ""
    if engine.url.query.get("uri") in ("true", "1") or database.startswith("file:"):
        parsed = urlparse(database)
        if "mode=memory" in parsed.query:
            return None
        database = parsed.path
    if database in ("", ":memory:"):
        return None
    return database


class SQLiteBase(Dialect, metaclass=ABCMeta):
    name = "sqlite"
    #: SQLite has no identifier limit; this only keeps generated names readable
    max_identifier_bytes = 255
    #: sqlglot reads --ddl and --using expressions in SQLite's syntax
    sqlglot_dialect = "sqlite"
    #: how long shadowswap's own connections wait for the write lock outside the swap
    busy_timeout_ms = 5000

    def __init__(self, sa_dialect: sa.engine.Dialect) -> None:
        super().__init__(sa_dialect)
        if sqlite3.sqlite_version_info < MIN_VERSION:
            raise UsageError(
                f"SQLite {sqlite3.sqlite_version} is too old for shadowswap",
                hint="SQLite 3.26 or later is needed (UPSERT and ALTER TABLE RENAME semantics)",
            )

    # -- provided by schema.py, read by the swap ---------------------------------------------

    @abstractmethod
    def _table_sql(self, conn: Connection, table: str) -> str:
        """The table's stored CREATE TABLE statement ('' if there is none)."""

    @abstractmethod
    def _original_indexes(self, conn: Connection, table: str) -> dict[str, str]:
        """Name → stored SQL of the table's own indexes (not the automatic ones behind UNIQUE/PK)."""

    # -- provided by changelog.py, run by the swap -------------------------------------------

    @abstractmethod
    def replay_locked(self, conn: Connection, plan: Plan, limit: int | None = None) -> int:
        """A --transform plan's log entries applied in the caller's BEGIN IMMEDIATE (all: no limit)."""
