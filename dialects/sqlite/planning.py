"""What the planner hears from SQLite: which changes its ALTER TABLE makes in place, and the notes
a plan shows about how SQLite runs the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shadowswap.dialects.sqlite.base import SQLiteBase

if TYPE_CHECKING:
    from shadowswap.plan import Plan
    from shadowswap.strategy import ChangeFacts


class SQLitePlanning(SQLiteBase):
    def instant_reason(self, change: ChangeFacts) -> tuple[bool, str]:
        """What SQLite's ALTER TABLE does by editing the schema alone, without touching a row.

        Everything else (types, nullability, defaults, dropping a column: SQLite 3.35's DROP
        COLUMN rewrites every row) takes the shadow copy."""
        if change.kind == "add" and change.generated == "stored":
            # an implementation limit of SQLite's ALTER, not of the table: the copy computes it
            return False, "SQLite's ADD COLUMN cannot add a STORED generated column; the copy computes it"
        if change.kind == "add" and change.generated == "virtual" and not change.has_using:
            return True, "ADD COLUMN of a VIRTUAL generated column edits the stored CREATE TABLE only"
        if change.kind == "add" and not change.has_using:
            if change.default is None:
                return True, "ADD COLUMN edits the stored CREATE TABLE only; existing rows read NULL"
            if change.default_is_constant:
                return True, "ADD COLUMN edits the stored CREATE TABLE only; existing rows read the constant default"
            return False, "SQLite adds a column in place only with a constant default"
        if change.kind == "rename":
            return True, "RENAME COLUMN edits the schema, and the indexes, triggers and views that name the column"
        if change.kind == "drop_index" and not change.unique:
            return True, "DROP INDEX frees the index's pages without touching the table"
        return super().instant_reason(change)

    def instant_plan_notes(self) -> list[str]:
        return [
            "the ALTERs run in one BEGIN IMMEDIATE transaction, waiting at most --lock-timeout for the write "
            "lock, retried with backoff; they edit the schema only"
        ]

    def plan_notes(self, plan: Plan) -> list[str]:
        return [
            "secondary indexes are built on the empty shadow before the copy (a SQLite index build holds the "
            "write lock)",
            "each chunk holds the database's write lock for about half of --chunk-time, then leaves it free "
            "as long again",
            "the swap is one BEGIN IMMEDIATE transaction of a few milliseconds; views, triggers and other "
            "tables' foreign keys that name the table follow the new table",
            "the new table's CREATE TABLE is the original's stored text with only the changed columns rewritten",
        ]
