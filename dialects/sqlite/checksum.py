"""Verification (invariant 9): both sides read from one WAL snapshot and compared row by row."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from shadowswap.dialects.sqlite.base import SQLiteBase

if TYPE_CHECKING:
    from shadowswap.plan import Plan


class SQLiteChecksum(SQLiteBase):
    def begin_snapshot(self, conn: Connection) -> None:
        # A read transaction in WAL mode: both sides are read from one snapshot.
        self.run(conn, "BEGIN")

    def checksum_sql(self, plan: Plan, source: bool, has_lo: bool) -> str:
        """(rows, rows) of the original's range; (rows, rows matching an original row) of the shadow's.

        SQLite has no md5, and hashing values would also have to mimic how a column's affinity
        converts what is stored (12.0 is stored as 12 in a NUMERIC column, 12 as '12' in a TEXT
        one). A join compares like SQLite itself does: S.c IS f(T) applies the shadow column's
        affinity to the copy expression's value, exactly as storing it did, and COLLATE BINARY keeps
        'A' and 'a' apart. The two tuples are equal only if every original row has its one
        identical row in the shadow and the shadow holds nothing else in the range.
        """
        # with a change log (a --transform plan's, or a revert's reverse log), keys with an entry
        # waiting are the replays' (changelog.py)
        source_range = self.range_predicate(plan.primary_key, has_lo, "src.") + self.unlogged_predicate(plan, True)
        if source:
            return f"SELECT count(*), count(*) FROM {self.q(plan.table)} AS src WHERE {source_range}"
        shadow_pk = [c.name for c in plan.shadow_primary_key]
        same = " AND ".join(f"dst.{self.q(c.name)} IS {c.expression} COLLATE BINARY" for c in plan.columns)
        return (
            f"SELECT (SELECT count(*) FROM {self.q(plan.shadow_table)} AS src "
            f"WHERE {self.range_predicate(shadow_pk, has_lo, 'src.')}{self.unlogged_predicate(plan, False)}), "
            "count(*) "
            f"FROM {self.q(plan.table)} AS src JOIN {self.q(plan.shadow_table)} AS dst "
            f"ON {self.shadow_key_matches(plan)} "
            f"WHERE {source_range} AND {same}"
        )
