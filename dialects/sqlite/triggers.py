"""The triggers that keep the shadow in step with the original while it is copied."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.base import LOG_SEQUENCE
from shadowswap.dialects.sqlite.base import SQLiteBase

if TYPE_CHECKING:
    from shadowswap.plan import Plan


class SQLiteTriggers(SQLiteBase):
    def existing_triggers(self, conn: Connection, table: str) -> list[str]:
        rows = conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t ORDER BY name"),
            {"t": table},
        )
        return [r[0] for r in rows]

    def upsert_source(self, plan: Plan) -> str:
        # `WHERE true`: without a WHERE, SQLite reads the ON of ON CONFLICT as a join constraint
        return super().upsert_source(plan) + " WHERE true"

    def _log_trigger_ddl(self, plan: Plan) -> list[str]:
        """Change log (a --transform plan, changelog.py; a revert's reverse capture, revert.py): each
        write inserts the keys it touches, the old key and, when an update moves the row, the new
        one; nothing else runs in the application's write."""
        log_table, table = self.q(plan.capture.logged_table), self.q(plan.table)
        columns = ", ".join(self.q(k) for k in plan.primary_key)

        def logged(record: str, where: str = "") -> str:
            values = ", ".join(f"{record}.{self.q(k)}" for k in plan.primary_key)
            return f"INSERT INTO {log_table} ({columns}) SELECT {values}{where};"

        key_changed = " OR ".join(f"OLD.{self.q(k)} IS NOT NEW.{self.q(k)}" for k in plan.primary_key)
        names = dict(zip(("ins", "upd", "del"), plan.trigger_names, strict=True))
        return [
            f"CREATE TRIGGER {self.q(names['ins'])} AFTER INSERT ON {table} FOR EACH ROW BEGIN\n  {logged('NEW')}\nEND",
            f"CREATE TRIGGER {self.q(names['upd'])} AFTER UPDATE ON {table} FOR EACH ROW BEGIN\n"
            f"  {logged('OLD')}\n  {logged('NEW', f' WHERE {key_changed}')}\nEND",
            f"CREATE TRIGGER {self.q(names['del'])} AFTER DELETE ON {table} FOR EACH ROW BEGIN\n  {logged('OLD')}\nEND",
        ]

    def trigger_ddl(self, plan: Plan) -> list[str]:
        if plan.capture.change_log:
            return self._log_trigger_ddl(plan)
        shadow = self.q(plan.shadow_table)
        table = self.q(plan.table)
        upsert = self.capture_upsert_sql(plan)
        key_changed = " OR ".join(f"OLD.{self.q(k)} IS NOT NEW.{self.q(k)}" for k in plan.primary_key)
        names = dict(zip(("ins", "upd", "del"), plan.trigger_names, strict=True))
        return [
            f"CREATE TRIGGER {self.q(names['ins'])} AFTER INSERT ON {table} FOR EACH ROW BEGIN\n  {upsert}\nEND",
            f"CREATE TRIGGER {self.q(names['upd'])} AFTER UPDATE ON {table} FOR EACH ROW BEGIN\n"
            f"  DELETE FROM {shadow} WHERE ({key_changed}) AND {self.capture_delete_where(plan, 'OLD')};\n"
            f"  {upsert}\nEND",
            f"CREATE TRIGGER {self.q(names['del'])} AFTER DELETE ON {table} FOR EACH ROW BEGIN\n"
            f"  DELETE FROM {shadow} WHERE {self.capture_delete_where(plan, 'OLD')};\nEND",
        ]

    def log_sequence_column(self) -> sa.Column[Any]:
        # INTEGER PRIMARY KEY is the rowid: numbered by SQLite itself (a BIGINT key would be NULL)
        return sa.Column(LOG_SEQUENCE, sa.Integer, primary_key=True)
