"""A table's space in the database file, for the space report of a rebuild."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from shadowswap.dialects.sqlite.base import SQLiteBase


class SQLiteSpace(SQLiteBase):
    def table_bytes(self, conn: Connection, table: str) -> int | None:
        # dbstat (the virtual table of SQLITE_ENABLE_DBSTAT_VTAB builds, Python's among them) sums the
        # pages of the table's b-tree and of each of its indexes; without it nothing per table is known
        # (page_count covers the whole file).
        try:
            size = conn.execute(
                sa.text(
                    "SELECT sum(pgsize) FROM dbstat WHERE name IN"
                    " (SELECT name FROM sqlite_master WHERE tbl_name = :t AND type IN ('table', 'index'))"
                ),
                {"t": table},
            ).scalar()
        except DBAPIError:
            return None
        return int(size) if size is not None else None
