"""The keyset copy on MySQL/MariaDB (invariants 2, 3, 4) and the helper table's name.

A chunk is read ``LOCK IN SHARE MODE`` so a delete or key change of a row in it waits for the
chunk (no ghost rows), and ``ON DUPLICATE KEY UPDATE`` with a key guard skips only the key
conflict with a row the triggers already wrote. Under ``innodb_autoinc_lock_mode`` 1 the chunk
goes into the helper table ``_<table>_ss_copy`` instead, whose trigger inserts row by row (the
package docstring says why); with a change log the chunk is a plain lock-free insert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from shadowswap.dialects.mysql.base import MySQLBase

if TYPE_CHECKING:
    from shadowswap.plan import Plan


class MySQLCopy(MySQLBase):
    """The chunk statement for each copy route, the duplicate-key guard, and the count of rows really copied."""

    # An UPDATE or DELETE of a row in the chunk being copied waits for that chunk (the share lock
    # blocks writes, not only deletes as PostgreSQL's can): short chunks keep that wait short.
    default_chunk_time = 0.1
    # One chunk at a time (default_copy_workers). A trial with two at once over disjoint key
    # ranges, each emptying only its own rows from the helper, copied 25 % faster here (1M rows),
    # but the application's own writes then met InnoDB deadlocks in the triggers (gap locks on the
    # shadow's key under REPEATABLE READ) in 1 of 12 test runs, against none in 12 with one chunk.

    def helper_name(self, table: str) -> str:
        return self.fit_name(f"_{table}_ss_copy")

    def _key_guard(self, plan: Plan, table: str, keep: bool, count: bool) -> str:
        """The first ``ON DUPLICATE KEY UPDATE`` assignment: the row met must be the same key.

        ON DUPLICATE KEY fires on any unique key; when the new definition makes two rows collide
        on another unique key, setting the key to NULL raises (1048) instead of quietly keeping or
        overwriting the other row (invariant 2: skip on the key conflict only, hide no error).
        """
        keys = [self.q(k.name) for k in plan.shadow_primary_key]
        same = " AND ".join(f"{table}.{k} <=> VALUES({k})" for k in keys)
        if count:
            # the copy counts the rows it skipped, so rows_copied counts only rows it inserted
            same += " AND (@ss_skipped := IFNULL(@ss_skipped, 0) + 1) > 0"
        value = f"{table}.{keys[0]}" if keep else f"VALUES({keys[0]})"
        return f"{table}.{keys[0]} = IF({same}, {value}, NULL)"

    def _copy_update(self, plan: Plan) -> str:
        return "ON DUPLICATE KEY UPDATE " + self._key_guard(plan, self.q(plan.shadow_table), keep=True, count=True)

    def copy_chunk_sql(self, plan: Plan, has_lo: bool) -> str:
        # LOCK IN SHARE MODE (MySQL 8 and MariaDB both take it): a DELETE or key change of a row in
        # the chunk waits until the chunk commits, so none can leave a ghost row behind (invariant 3).
        where = self.range_predicate(plan.primary_key, has_lo, "src.")
        table = self.q(plan.table)
        if plan.capture.change_log:
            # Nothing else writes the shadow during the copy, and every change since this
            # statement's read view is in the log: a consistent read (READ COMMITTED), no locks.
            return (
                f"INSERT INTO {self.q(plan.shadow_table)} ({self.insert_columns(plan.columns)}) "
                f"SELECT {self.select_list(plan.columns)} FROM {table} AS src WHERE {where}"
            )
        if plan.capture.route.via == "helper":
            cols = ", ".join(self.q(c) for c in plan.source_columns)
            src_cols = ", ".join(f"src.{self.q(c)}" for c in plan.source_columns)
            return (
                f"INSERT INTO {self.q(plan.capture.route.helper)} ({cols}) SELECT {src_cols} FROM {table} AS src "
                f"WHERE {where} LOCK IN SHARE MODE"
            )
        return (
            f"INSERT INTO {self.q(plan.shadow_table)} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {table} AS src WHERE {where} LOCK IN SHARE MODE "
            f"{self._copy_update(plan)}"
        )

    # --transform (shadowswap/transform.py): pymysql's executemany sends the chunk as multi-row
    # INSERTs (as many rows a statement as fit in its max_stmt_length)
    paramstyle_mark = "%s"

    def begin_chunk(self, conn: Connection) -> None:
        self.run(conn, "SET @ss_skipped = 0")

    def finish_copy(self, conn: Connection, plan: Plan, result: Any) -> int:
        # With CLIENT_FOUND_ROWS (SQLAlchemy's default) a key the triggers already wrote counts as
        # one affected row, like an insert; the guard counted those, so subtract them.
        read = max(result.rowcount, 0)
        if plan.capture.route.via == "helper":
            self.run(conn, f"DELETE FROM {self.q(plan.capture.route.helper)}")
        skipped = int(conn.exec_driver_sql("SELECT @ss_skipped").scalar() or 0)
        return read - skipped
