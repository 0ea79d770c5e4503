"""The change log on SQLite, for ``--transform`` plans only: its replays, in the copy and after it.

SQLite's dual-write triggers compute the new row in SQL inside the application's write, where
Python cannot run; a ``--transform`` plan takes the change log instead (its triggers, triggers.py,
insert the changed key into ``_<table>_ss_log``), and the rows pass through Python here, in the
copy (transform.py) and in the swap (swap.py). Every other plan keeps dual-write: one write lock
for the file makes its triggers' upserts cheap, and they need no replay.

Why it is exact. SQLite has one writer: a replay runs under ``BEGIN IMMEDIATE``, so the log, the
original and the shadow are one state for its whole transaction, and nothing is written between
its read of the logged rows and its forgetting of their entries. That is the snapshot replay of
shadowswap/changelog.py, with the write lock as the snapshot; a key with no entry has
``shadow = f(original)`` at every commit once the copy has passed it.

Why the copy replays too. SQLite cannot add a constraint to a table, so the shadow keeps its
UNIQUE constraints from its CREATE TABLE (``ShadowLayout.unique_after_copy`` off): a row the copy
writes must never meet a stale row whose change is still in the log. So each chunk, inside its
own BEGIN IMMEDIATE and before its rows, replays every entry of the keys already copied
(``replay_below``): the shadow is then ``f`` of the original's rows up to the chunk's upper key at
that instant, with no stale row. Entries of keys not copied yet stay for later (the chunk copies
the current row anyway; replaying it again later is harmless). After the copy, ``replay`` takes
``replay_batch`` entries at a time so the application's writes wait milliseconds; a batch that
meets a duplicate (a value moved between a key in the batch and one with a later entry) is done
again with the whole log, whose replay leaves no stale row. A resume finds no copied row above
its checkpoint (a chunk's rows commit with it; replays stay below it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.dialects.base import LOG_SEQUENCE
from shadowswap.dialects.sqlite.base import SQLiteBase
from shadowswap.dialects.sqlite.session import SQLITE_CONSTRAINT, _error_code
from shadowswap.dialects.sqlite.tabletext import parse
from shadowswap.strategy import ColumnTypeSQL

if TYPE_CHECKING:
    from shadowswap.plan import Plan
    from shadowswap.transform import Transformer


class SQLiteChangeLog(SQLiteBase):
    supports_change_log = True
    change_log_only_for_transform = True
    replays_in_chunks = True
    #: log entries one replay transaction takes after the copy (each holds the write lock)
    replay_batch = 500
    #: a replay that found the write lock taken is retried this many times
    replay_attempts = 20
    #: full batches one ``replay`` runs before it returns (changelog.catch_up calls it again)
    replay_rounds = 20
    #: pause between two batches, long enough for a writer polling in its busy handler (SQLite's
    #: default handler polls at most 25 ms apart early on) to take the lock: it is not fair
    replay_pause_seconds = 0.025

    def __init__(self, sa_dialect: sa.engine.Dialect) -> None:
        super().__init__(sa_dialect)
        self._transformer: tuple[Plan, Transformer] | None = None

    def log_sequence_column(self) -> sa.Column[Any]:
        # INTEGER PRIMARY KEY: the rowid itself, numbered by SQLite at no cost to the trigger
        return sa.Column(LOG_SEQUENCE, sa.Integer, primary_key=True)

    def log_key_type(
        self, conn: Connection, table: str, column: str, type_: sa.types.TypeEngine[Any]
    ) -> sa.types.TypeEngine[Any]:
        """The key's declared type with its column's COLLATE: ``replay_below`` compares the log's
        keys with the copy's bound, which must happen in the order the copy walks (a NOCASE key
        copies 'a…' before 'B…'; in byte order 'B…' comes first)."""
        try:
            text = parse(self._table_sql(conn, table))
        except ValueError:
            return type_  # shadow_create_sql reports the unreadable statement in one line
        for col in text.columns:
            if col.name.lower() != column.lower():
                continue
            for clause in col.clauses:
                found = re.search(r"\bCOLLATE\s+(.+)$", text.sql[clause.start : clause.end], re.I | re.S)
                if clause.kind == "COLLATE" and found:
                    declared = text.sql[col.type_start : col.type_end]
                    return ColumnTypeSQL(f"{declared} COLLATE {found.group(1).strip()}".strip())
        return type_

    def _transformer_for(self, plan: Plan) -> Transformer:
        from shadowswap.transform import Transformer

        if self._transformer is None or self._transformer[0] is not plan:
            self._transformer = (plan, Transformer.for_plan(self, plan))
        return self._transformer[1]

    def replay(self, engine: Engine, plan: Plan) -> int:
        """Batches of entries until the log is drained (or ``replay_rounds`` full ones), each its own
        short BEGIN IMMEDIATE, with the write lock left free between them."""
        total = 0
        for _ in range(self.replay_rounds):
            started = time.monotonic()
            applied = self._replay_batch(engine, plan)
            total += applied
            if applied < self.replay_batch:
                break
            time.sleep(max(time.monotonic() - started, self.replay_pause_seconds))
        return total

    def _replay_batch(self, engine: Engine, plan: Plan) -> int:
        """One batch of entries in one BEGIN IMMEDIATE (the whole log after a duplicate)."""
        limit: int | None = self.replay_batch
        for attempt in range(self.replay_attempts):
            try:
                with engine.begin() as conn:
                    self.run(conn, "BEGIN IMMEDIATE")
                    return self.replay_locked(conn, plan, limit)
            except DBAPIError as exc:
                if limit is not None and _error_code(exc) == SQLITE_CONSTRAINT:
                    limit = None  # a stale row of a later entry: the whole log takes it along
                    continue
                if not self.is_retryable(exc) or attempt == self.replay_attempts - 1:
                    raise
                time.sleep(min(0.01 * 2**attempt, 0.5))
        raise AssertionError("unreachable")

    def replay_below(self, conn: Connection, plan: Plan, lo: Sequence[Any]) -> int:
        return self._apply(conn, plan, None, lo)

    def replay_locked(self, conn: Connection, plan: Plan, limit: int | None = None) -> int:
        """The first ``limit`` entries (all: None), in the caller's BEGIN IMMEDIATE (the swap's too)."""
        return self._apply(conn, plan, limit, None)

    def _apply(self, conn: Connection, plan: Plan, limit: int | None, below: Sequence[Any] | None) -> int:
        log_table, shadow, seq = self.q(plan.capture.logged_table), self.q(plan.shadow_table), self.q(LOG_SEQUENCE)
        take = f"SELECT l.{seq} FROM {log_table} AS l"
        params: dict[str, Any] = {}
        if below is not None:
            take += f" WHERE {self.key_at_most(plan.primary_key, 'hi', 'l.')}"
            params = {f"hi{i}": v for i, v in enumerate(below)}
        take += f" ORDER BY l.{seq}"
        if limit is not None:
            take += f" LIMIT {int(limit)}"
        seqs = [int(r[0]) for r in conn.execute(sa.text(take), params)]
        if not seqs:
            return 0
        # numbers, not the keys' values, go into the statements; under the write lock no entry
        # can appear between this read and the statements below
        numbers = ", ".join(str(n) for n in seqs)
        entries = f"{seq} <= {seqs[-1]}" if below is None else f"{seq} IN ({numbers})"
        taken = f"l.{entries}"
        shadow_key = ", ".join(self.q(c.name) for c in plan.shadow_primary_key)
        log_key = ", ".join(f"l.{self.q(k)}" for k in plan.primary_key)
        logged_keys = f"SELECT {log_key} FROM {log_table} AS l WHERE {taken}"
        delete_shadow = f"DELETE FROM {shadow} WHERE ({shadow_key}) IN ({logged_keys})"
        delete_entries = f"DELETE FROM {log_table} WHERE {entries}"
        if plan.transform is None:
            # a revert's reverse log (shadowswap/revert.py): the logged keys' rows come back through
            # the plan's SQL expressions, in this one write transaction (invariant 10)
            src_key = ", ".join(f"src.{self.q(k)}" for k in plan.primary_key)
            self.run(conn, delete_shadow)
            self.run(
                conn,
                f"INSERT INTO {shadow} ({self.insert_columns(plan.columns)}) "
                f"SELECT {self.select_list(plan.columns)} FROM {self.q(plan.table)} AS src "
                f"WHERE ({src_key}) IN ({logged_keys})",
            )
            self.run(conn, delete_entries)
            return len(seqs)
        rows = self.logged_rows(plan, f" WHERE {taken}")
        self._transformer_for(plan).replay(conn, delete_shadow, delete_entries, rows)
        return len(seqs)
