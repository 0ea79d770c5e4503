"""``--backup DIR`` on SQLite: a copy of the whole database file by the online backup API."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shadowswap.dialects.sqlite.base import SQLiteBase, database_file
from shadowswap.errors import BackupFailed

if TYPE_CHECKING:
    from pathlib import Path

    from shadowswap.backup import Backup
    from shadowswap.plan import Plan


class SQLiteBackup(SQLiteBase):
    def backup_table(self, engine: Engine, plan: Plan, directory: Path, stem: str) -> Backup:
        """SQLite's online backup API copies the whole database file in one step: one read snapshot,
        which in WAL mode holds up no writer. The copy is then made what the application knew before
        the migration: shadowswap's triggers and shadow dropped (the engine marks the migration
        aborted in it, through ``database_url``)."""
        from shadowswap.backup import Backup

        if database_file(engine) is None:
            raise BackupFailed("an in-memory database has no file to back up")
        target = directory / f"{stem}.sqlite3"
        copy = sqlite3.connect(target, isolation_level=None)
        source = engine.raw_connection()
        try:
            source.driver_connection.backup(copy)  # type: ignore[union-attr]
            copy.execute("BEGIN")
            for stmt in [*plan.drop_trigger_ddl, self.drop_table_sql(plan.shadow_table)]:
                copy.execute(stmt)
            copy.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BackupFailed(f"the SQLite backup failed: {exc}") from None
        finally:
            source.close()
            copy.close()
        return Backup(
            path=target,
            restore=f"stop the application, then copy {target} over the database file (and delete its -wal and "
            "-shm files); it holds the whole database",
            database_url=sa.engine.URL.create("sqlite", database=str(target)),
        )
