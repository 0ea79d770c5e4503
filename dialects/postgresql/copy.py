"""The keyset copy: each chunk's INSERT … SELECT from the table into the shadow, the row locks it
takes (invariant 3), its fast path and the race that sends a chunk back to the careful path
(invariant 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowswap.dialects.postgresql.base import PostgresBase
from shadowswap.dialects.postgresql.session import UNIQUE_VIOLATION, sqlstate

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection

    from shadowswap.plan import ColumnPlan, Plan


class PostgresCopy(PostgresBase):
    # Chunks over disjoint key ranges share no row locks; a second one uses the server's second
    # core, which a single INSERT … SELECT leaves idle.
    default_copy_workers = 2
    max_copy_workers = 16

    def copy_chunk_sql(self, plan: Plan, has_lo: bool) -> str:
        if plan.capture.change_log:
            # Nothing else writes the shadow during the copy, and every change since the copy's
            # snapshot is in the log: a plain INSERT … SELECT, no row locks, no conflict checks.
            order = f" ORDER BY {', '.join(plan.order_by)}" if plan.order_by else ""
            # --order-by: the rows go into the fresh heap in the index's order (one chunk, Copier)
            return self._chunk_insert(plan, has_lo, "", lock=False) + order
        # FOR SHARE (invariant 3): a DELETE or key change committing between this chunk's
        # snapshot and its insert would leave a ghost row. FOR KEY SHARE would stop only those,
        # but it lets an ordinary UPDATE's trigger insert the same key into the shadow at the
        # same instant as this chunk; ON CONFLICT arbitrates only the primary key, so the race
        # surfaces as a unique violation on another unique index (sku, say) in the
        # application's own UPDATE. FOR SHARE makes the two take turns on the row instead; an
        # update waits at most one chunk (--chunk-time).
        pk_shadow = ", ".join(self.q(c.name) for c in plan.shadow_primary_key)
        return self._chunk_insert(plan, has_lo, "") + f" ON CONFLICT ({pk_shadow}) DO NOTHING"

    def _chunk_insert(self, plan: Plan, has_lo: bool, also_where: str, lock: bool = True) -> str:
        """The chunk's INSERT … SELECT of f(src) over (lo, hi], share-locking what it reads."""
        return (
            f"INSERT INTO {self.q(plan.shadow_table)} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {self.q(plan.table)} AS src "
            f"WHERE {self.range_predicate(plan.primary_key, has_lo, 'src.')}{also_where}"
            + (" FOR SHARE OF src" if lock else "")
        )

    def copy_chunk_fast_sql(self, plan: Plan, has_lo: bool) -> str | None:
        if plan.capture.change_log:
            return None
        # ON CONFLICT inserts every row speculatively (about 40 % of the chunk's cost at 1M rows);
        # a probe of the shadow's key skips the rows the triggers wrote before this statement's
        # snapshot. It is a scalar subquery, not NOT EXISTS: the growing shadow has no statistics,
        # and an anti-join would hash all of it for every chunk. A row updated between the
        # snapshot and our share lock is returned in its new version (READ COMMITTED re-reads it),
        # and that update's trigger has already put the key in the shadow: the insert then fails
        # with a unique violation, and the chunk is rerun with copy_chunk_sql (invariant 2).
        probe = f"SELECT 1 FROM {self.q(plan.shadow_table)} AS dst WHERE {self.shadow_key_matches(plan)}"
        return self._chunk_insert(plan, has_lo, f" AND ({probe}) IS NULL")

    # --transform (shadowswap/transform.py): rows through Python, written with COPY
    transform_streams = True
    takes_sequences = True

    def transform_passthrough(self, column: ColumnPlan) -> str | None:
        # Read as text and written back as text through COPY: the column's input function reads
        # its own output exactly (a json value keeps its spelling, a float its digits), where a
        # round trip through a Python type need not.
        return f"CAST(({column.expression}) AS text)"

    def write_rows(self, conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        cols = ", ".join(self.q(c) for c in columns)
        with raw.cursor() as cursor, cursor.copy(f"COPY {self.q(table)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def is_copy_race(self, exc: BaseException) -> bool:
        # Any unique violation: one that is not a race fails the careful rerun too, and is
        # reported from there as the data error it is.
        return sqlstate(exc) == UNIQUE_VIOLATION
