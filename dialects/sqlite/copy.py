"""The keyset copy: one short BEGIN IMMEDIATE a chunk, then a pause that leaves the write lock to
the application's writers."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.sqlite.base import SQLiteBase

if TYPE_CHECKING:
    from shadowswap.plan import Plan


class SQLiteCopy(SQLiteBase):
    #: chunk plus the pause after it; the application's writes wait at most about half of this
    default_chunk_time = 0.05
    #: pause after a chunk, as a multiple of how long it held the write lock, within these bounds
    yield_ratio = 1.0
    min_yield_seconds = 0.025
    max_yield_seconds = 0.5

    def __init__(self, sa_dialect: sa.engine.Dialect) -> None:
        super().__init__(sa_dialect)
        #: when the last chunk took the write lock; begin_chunk pauses in proportion to its hold
        self._chunk_locked_at: float | None = None

    def copy_chunk_sql(self, plan: Plan, has_lo: bool) -> str:
        # One writer at a time: inside the chunk's BEGIN IMMEDIATE no delete can slip between the
        # read and the insert (invariant 3). ON CONFLICT (K) DO NOTHING skips exactly the rows the
        # triggers already wrote; INSERT OR IGNORE would also drop NOT NULL/CHECK failures (invariant 2).
        pk_shadow = ", ".join(self.q(c.name) for c in plan.shadow_primary_key)
        return (
            f"INSERT INTO {self.q(plan.shadow_table)} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {self.q(plan.table)} AS src "
            f"WHERE {self.range_predicate(plan.primary_key, has_lo, 'src.')} "
            f"ON CONFLICT ({pk_shadow}) DO NOTHING"
        )

    def begin_chunk(self, conn: Connection) -> None:
        """Checkpoint, leave the write lock free for a moment, then take it for the next chunk.

        SQLite's lock is not fair: a writer waiting in its busy handler polls it now and then (at
        most 25 ms apart in its first 100 ms of waiting with SQLite's default handler), and a copier
        that starts the next chunk right after COMMIT can win every time. The pause after a chunk is
        ``yield_ratio`` times as long as the chunk held the lock, at least ``min_yield_seconds``.

        The WAL is checkpointed here, while the lock is free, so that the application's commit that
        crosses wal_autocheckpoint does not pay for copying the chunks' pages into the database.
        """
        started = time.monotonic()
        if self._chunk_locked_at is not None:
            held = started - self._chunk_locked_at
            if held < 2 * self.max_yield_seconds:  # else a new run: nobody is waiting on us
                self.run(conn, "PRAGMA wal_checkpoint(PASSIVE)")
                pause = min(max(held * self.yield_ratio, self.min_yield_seconds), self.max_yield_seconds)
                remaining = pause - (time.monotonic() - started)
                if remaining > 0:
                    time.sleep(remaining)
        self.run(conn, "BEGIN IMMEDIATE")
        self._chunk_locked_at = time.monotonic()
