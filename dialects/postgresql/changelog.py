"""The change log's replay: how the keys the triggers logged (triggers.py) are applied to the shadow.

With a change log the triggers stay small (one insert of a key); the shadow is brought up to date
in batches here, and a last time inside the swap's lock (swap.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shadowswap.dialects.postgresql.base import PostgresBase

if TYPE_CHECKING:
    from shadowswap.plan import Plan


class PostgresChangeLog(PostgresBase):
    supports_change_log = True

    def replay_sql(self, plan: Plan) -> list[str]:
        # Delete, then insert: with the shadow's unique indexes built, a key whose value moved to
        # another logged key must be gone before that one arrives. The insert reads the rows as
        # they are now; an entry that commits later is replayed again later (replay is idempotent).
        log_table, shadow = self.q(plan.capture.logged_table), self.q(plan.shadow_table)
        pairs = zip(plan.shadow_primary_key, plan.primary_key, strict=True)
        matches = " AND ".join(f"dst.{self.q(c.name)} = l.{self.q(k)}" for c, k in pairs)
        src_key = ", ".join(f"src.{self.q(k)}" for k in plan.primary_key)
        log_key = ", ".join(f"l.{self.q(k)}" for k in plan.primary_key)
        return [
            f"DELETE FROM {shadow} AS dst USING {log_table} AS l WHERE {matches}",
            f"INSERT INTO {shadow} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {self.q(plan.table)} AS src "
            f"WHERE ({src_key}) IN (SELECT {log_key} FROM {log_table} AS l)",
            f"DELETE FROM {log_table}",
        ]
