"""The change-log route on MySQL/MariaDB: when it is allowed, and replaying the log into the shadow.

InnoDB's DML reads the newest rows, not a snapshot, so a replay is not consistent by itself
(its ``schedule`` retries unique builds): it takes its entries with a locking read, and
``_replay_batch`` says why that is exact. The swap (``swap.py``) runs the last replay under its
lock. The log table itself is built by ``shadowswap/changelog.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.dialects.base import LOG_SEQUENCE, Schedule, ShadowLayout
from shadowswap.dialects.mysql.base import (
    _BINLOG_SQL,
    ER_DUP_ENTRY,
    MySQLBase,
    _errno,
    _statement_binlog,
)

if TYPE_CHECKING:
    from shadowswap.plan import Capture, CaptureMode, Plan


class MySQLChangeLog(MySQLBase):
    """Whether a table may use the change log, the log's sequence column, and the replay."""

    supports_change_log = True
    #: log entries one replay transaction takes
    replay_batch = 5000

    def change_log_allowed(self, conn: Connection, reflection: Any) -> bool:
        # Under statement-based binary logging the sessions stay REPEATABLE READ, where a replay's
        # reads of the original would take next-key locks that the triggers' log inserts queue
        # behind; and an AUTO_INCREMENT column that is not the key's first column must lead a
        # unique key in CREATE TABLE, which the change log builds only after the copy.
        if _statement_binlog(*conn.exec_driver_sql(_BINLOG_SQL).one()):
            return False
        pk = list(reflection.primary_key.get("constrained_columns") or [])
        autoinc = [c["name"] for c in reflection.columns if c.get("autoincrement") is True]
        if autoinc and autoinc[0] != pk[0]:
            return False
        # a name shortened to fit may no longer sort after the table's (see shadow_name in swap.py)
        table, shadow = reflection.table, self.shadow_name(reflection.table)
        spellings = [(shadow, table), (shadow.lower(), table.lower())]
        return all(f"{later}\0".encode() > f"{first}\0".encode() for later, first in spellings)

    def schedule(self, capture: Capture) -> Schedule:
        """With a change log the verification starts beside the copy: nothing but the copy writes the
        shadow until the first replay, and a chunk the copy has committed can be compared at once.
        A replay here cannot read the log and the original at one instant, so the shadow can hold a
        row that is stale until a later entry is applied: a unique build that meets it as a
        duplicate is retried after another replay."""
        return Schedule(
            verify_beside_copy=capture.change_log,
            verify_while_indexing=capture.change_log,
            unique_build_retries=5,
        )

    def shadow_layout(self, mode: CaptureMode) -> ShadowLayout:
        """The log gets an index on its key columns: the verification asks it once per row, and
        InnoDB's rows live in the primary key, so the shadow's key comes with the table."""
        return ShadowLayout(index_log_keys=True)

    def log_sequence_column(self) -> sa.Column[Any]:
        return sa.Column(LOG_SEQUENCE, sa.BigInteger, primary_key=True, autoincrement=True)

    def _log_aliases(self, plan: Plan) -> tuple[str, str, str, str]:
        return self.q(plan.capture.logged_table), self.q(plan.shadow_table), self.q(plan.table), self.q(LOG_SEQUENCE)

    def replay(self, engine: Engine, plan: Plan) -> int:
        """One batch of log entries; a duplicate is retried with the whole log (see ``schedule``)."""
        limit: int | None = self.replay_batch
        attempts = 20
        for attempt in range(attempts):
            try:
                with engine.connect() as conn:
                    applied = self._replay_batch(conn, plan, limit)
                    conn.commit()
                    return applied
            except DBAPIError as exc:
                if attempt == attempts - 1:
                    raise
                if _errno(exc) == ER_DUP_ENTRY:
                    # A row this batch applied met a stale row whose own entry is later in the log
                    # (the one that moved the value away): the whole log takes it along.
                    limit = None
                elif not self.is_retryable(exc):
                    raise
        raise AssertionError("unreachable")

    def _replay_batch(self, conn: Connection, plan: Plan, limit: int | None) -> int:
        """Apply up to ``limit`` log entries in one transaction (the caller commits).

        Why it is exact without a snapshot: the entries are taken with a locking read, which waits
        for any uncommitted entry it meets, so every entry taken has committed, and with it the
        write it logs (the trigger runs in the writer's transaction). The shadow's rows of those
        keys are then replaced by ``f`` of the original's rows as a consistent read sees them
        after that, which includes those writes, and exactly the taken entries (by sequence
        number: one allocated earlier can still be uncommitted) are deleted in the same
        transaction. A write the read missed has an entry of its own, left for the next replay.
        So, as with PostgreSQL, a key with no entry has shadow = f(original) at any snapshot. No
        lock is taken on the original, so application writes never wait for a replay.
        """
        log_table, shadow, table, seq = self._log_aliases(plan)
        take = f"SELECT l.{seq} FROM {log_table} AS l ORDER BY l.{seq}"
        if limit is not None:
            take += f" LIMIT {int(limit)}"
        seqs = [int(r[0]) for r in self.run(conn, take + " FOR UPDATE")]
        if not seqs:
            return 0
        taken = f"l.{seq} IN ({', '.join(str(n) for n in seqs)})"
        pairs = zip(plan.shadow_primary_key, plan.primary_key, strict=True)
        matches = " AND ".join(f"dst.{self.q(c.name)} = l.{self.q(k)}" for c, k in pairs)
        src_key = ", ".join(f"src.{self.q(k)}" for k in plan.primary_key)
        log_key = ", ".join(f"l.{self.q(k)}" for k in plan.primary_key)
        if plan.transform is not None:
            from shadowswap.transform import Transformer

            Transformer.for_plan(self, plan).replay(
                conn,
                f"DELETE dst FROM {shadow} AS dst JOIN {log_table} AS l ON {matches} WHERE {taken}",
                f"DELETE l FROM {log_table} AS l WHERE {taken}",
                self.logged_rows(plan, f" WHERE {taken}"),
            )
            return len(seqs)
        for sql in (
            f"DELETE dst FROM {shadow} AS dst JOIN {log_table} AS l ON {matches} WHERE {taken}",
            f"INSERT INTO {shadow} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {table} AS src "
            f"WHERE ({src_key}) IN (SELECT {log_key} FROM {log_table} AS l WHERE {taken})",
            f"DELETE l FROM {log_table} AS l WHERE {taken}",
        ):
            conn.execute(self.statement(sql))
        return len(seqs)
