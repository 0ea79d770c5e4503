"""The swap (invariant 7): one atomic ``RENAME TABLE``, and with a change log the locked last replay.

Plain route: ``RENAME TABLE t TO old, shadow TO t`` under a short lock_wait_timeout; the triggers
move with the old table and are dropped after. Change-log route: this connection holds
``LOCK TABLES … WRITE``, applies the last entries, and a renamer thread on a second connection
queues the RENAME behind that lock before it is released (``_swap_with_change_log`` says why the
order, and the shadow's name sorting after the table's, keep every write out of the old table).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shadowswap import state
from shadowswap.dialects.mysql.app_triggers import refuse_on_plain_swap
from shadowswap.dialects.mysql.base import (
    MySQLBase,
    log,
)
from shadowswap.errors import ShadowswapError

if TYPE_CHECKING:
    from shadowswap.plan import Plan


class MySQLSwap(MySQLBase):
    """The shadow's name, the swap statements, the renamer thread, and the AUTO_INCREMENT counter carried over."""

    def shadow_name(self, table: str) -> str:
        # After the table's own name in byte order: the swap's RENAME then asks for the table's
        # metadata lock before the shadow's (``_swap_with_change_log`` says why that matters).
        return self.fit_name(f"{table}_ss_new")

    def swap_facts(self, conn: Connection, plan: Plan, reflection: Any) -> dict[str, Any]:
        # the last look at the whole plan before it is written (after ``moved_at_swap``, which
        # read the triggers and foreign keys that move at the swap): each key from its own text (indexes.py)
        self._carry_key_text(conn, plan)
        return {}

    def swap_sql(self, plan: Plan, reflected: dict[str, Any]) -> tuple[list[str], list[str]]:
        """One RENAME TABLE swaps both names atomically. The triggers move with the renamed table
        and are dropped after it: dropping them first would lose the writes in between."""
        refuse_on_plain_swap(plan)
        t, s, o = self.q(plan.table), self.q(plan.shadow_table), self.q(plan.old_table)
        post = [f"DROP TRIGGER IF EXISTS {self.q(n)}" for n in plan.trigger_names]
        if plan.capture.route.helper_table:
            post.append(self.drop_table_sql(plan.capture.route.helper))
        rename = f"RENAME TABLE {t} TO {o}, {s} TO {t}"
        if plan.capture.change_log:
            post.append(self.drop_table_sql(plan.capture.logged_table))
            return [self._swap_lock_sql(plan), rename, "UNLOCK TABLES"], post
        return [rename], post

    def _swap_lock_sql(self, plan: Plan) -> str:
        # every alias the replay uses must be locked under that alias too
        log_table, shadow, table, _seq = self._log_aliases(plan)
        children = "".join(f", {self.q(t)} WRITE" for t in self.swap_lock_tables(plan))
        return (
            f"LOCK TABLES {table} WRITE, {table} AS src WRITE, {shadow} WRITE, {shadow} AS dst WRITE, "
            f"{log_table} WRITE, {log_table} AS l WRITE{children}"
        )

    def run_swap(
        self, engine: Engine, plan: Plan, lock_timeout_ms: int, in_swap: Callable[[Connection], None]
    ) -> float:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            renamed = inspector.has_table(plan.old_table) and not inspector.has_table(plan.shadow_table)
            held = 0.0
            keep_log = False
            if not renamed and plan.capture.change_log:
                held, keep_log = self._swap_with_change_log(engine, conn, plan, lock_timeout_ms)
            elif not renamed:  # else an earlier attempt renamed, then failed after
                for stmt in self.lock_timeout_sql(lock_timeout_ms):
                    self.run(conn, stmt)
                self._carry_auto_increment(conn, plan)
                started = time.perf_counter()
                self.run(conn, plan.swap_sql[0])
                held = time.perf_counter() - started
            # RENAME commits by itself; a crash before this record is found and finished on resume
            in_swap(conn)
            conn.commit()
            for stmt in plan.post_swap_sql:
                if keep_log and stmt == self.drop_table_sql(plan.capture.logged_table):
                    continue
                self.run(conn, stmt)
            conn.commit()
        return held

    def _swap_with_change_log(
        self, engine: Engine, conn: Connection, plan: Plan, lock_timeout_ms: int
    ) -> tuple[float, bool]:
        """Lock, apply the last entries, queue the RENAME behind the lock, unlock.

        Returns the seconds the lock was held, and whether the log must be kept (writes reached
        the old table after the last replay, which the lock order below rules out).

        MariaDB refuses RENAME TABLE under LOCK TABLES, and two ALTER … RENAMEs there leave a
        moment with no table of that name. So this connection locks the table, the shadow and the
        log (``LOCK TABLES … WRITE``: reads and writes of the table wait), applies the last
        entries, and a second connection issues the RENAME. A waiting RENAME's exclusive metadata
        lock is granted before the application's queued writes, so none of them reaches the old
        table (gh-ost's cut-over relies on the same rule), but only if the RENAME waits on the
        table itself: it takes its locks in name order, and waiting on the shadow first it would
        ask for the table only after the unlock, behind the writes. Hence the shadow's name sorts
        after the table's (``shadow_name``). ``LOCK TABLES … READ`` would not do: on InnoDB it
        lets writes take their metadata lock and wait inside the engine, ahead of the RENAME.
        If this connection dies before the RENAME is queued, the lock goes with it and nothing
        is renamed; once it is queued, the last replay has committed.
        """
        lock_sql, rename_sql, unlock_sql = plan.swap_sql
        moves = bool(plan.moved_at_swap.triggers or plan.moved_at_swap.moves_keys)
        # Each move below (DROP/CREATE TRIGGER, ALTER … FOREIGN KEY) commits on its own: recorded
        # first, so a run killed between a drop and its create is finished by the next execute or
        # undone by abort from the plan's texts, and a trigger found missing is not taken for one
        # the user dropped (``resumed``: an earlier run may have begun them).
        resumed = moves and self._mark_moving(engine, plan, True)
        for stmt in self.lock_timeout_sql(lock_timeout_ms):
            self.run(conn, stmt)
        conn.commit()
        with engine.connect() as renamer:
            renamer_id = int(renamer.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())
            renamer.commit()
            outcome: dict[str, BaseException | None] = {}

            def rename() -> None:
                try:
                    # Queued, it holds the application's writes back; if another session's
                    # transaction still has the table open, that wait counts too (invariant 5).
                    for stmt in self.lock_timeout_sql(lock_timeout_ms):
                        self.run(renamer, stmt)
                    self.run(renamer, rename_sql)
                    outcome["error"] = None
                except BaseException as exc:  # handed to the swapping thread below
                    outcome["error"] = exc

            self.run(conn, lock_sql)
            started = time.perf_counter()
            worker: threading.Thread | None = None
            try:
                self._replay_batch(conn, plan, None)
                conn.commit()
                self._carry_auto_increment(conn, plan)
                # After the last replay and before the RENAME lets writes through: the application's
                # triggers then fire for its writes only, never for the copy's or a replay's rows.
                self.move_app_triggers(conn, plan, plan.shadow_table, resumed)
                # and the foreign keys from and to it (foreign_keys.py): the RENAME carries them
                self.move_foreign_keys(conn, plan, plan.shadow_table, resumed)
                worker = threading.Thread(target=rename, name="shadowswap-rename", daemon=True)
                worker.start()
                if not self._await_queued(conn, renamer_id, worker):
                    # Not queued yet: it must not run after the unlock, behind the writes it lets in.
                    self.run(conn, f"KILL {renamer_id}")
                    worker.join()
                    # still under the lock: no write missed them
                    self.move_app_triggers(conn, plan, plan.table)
                    self.move_foreign_keys(conn, plan, plan.table)
                    if moves:
                        self._mark_moving(engine, plan, False)
                    raise ShadowswapError(
                        "the swap's RENAME TABLE did not queue behind the lock within 5 s",
                        hint="the server is overloaded; run execute again to retry",
                    )
            finally:
                self.run(conn, unlock_sql)
                if worker is not None:
                    worker.join()
                # until the RENAME is done: the writes queued behind the lock wait for it too
                held = time.perf_counter() - started
            if outcome.get("error") is not None:
                # the RENAME failed after the unlock: the table is still the live one, so its
                # triggers go back on it (writes between the unlock and this missed them; logged)
                if plan.moved_at_swap.triggers:
                    log.error("the swap's RENAME failed; moving the application's triggers back", table=plan.table)
                    self.move_app_triggers(conn, plan, plan.table)
                    conn.commit()
                if plan.moved_at_swap.moves_keys:
                    log.error("the swap's RENAME failed; moving the foreign keys back", table=plan.table)
                    self.move_foreign_keys(conn, plan, plan.table)
                    conn.commit()
                if moves:
                    self._mark_moving(engine, plan, False)
                raise outcome["error"]  # type: ignore[misc]
        leftover = conn.execute(sa.text(f"SELECT COUNT(*) FROM {self.q(plan.capture.logged_table)}")).scalar()
        conn.commit()
        if leftover:
            log.error(
                "writes reached the old table after the swap's last replay; their keys are kept in the log",
                writes=leftover,
                log_table=plan.capture.logged_table,
                old_table=plan.old_table,
            )
        return held, bool(leftover)

    def _mark_moving(self, engine: Engine, plan: Plan, moving: bool) -> bool:
        """Set the state table's mark (on its own connection: under LOCK TABLES this one may only
        touch the locked tables); returns the mark as it was."""
        with engine.begin() as other:
            return state.moving_at_swap(other, plan.table, moving)

    def restore_moved(self, engine: Engine, plan: Plan, lock_timeout_ms: int) -> None:
        """Before an abort drops the shadow: put the triggers and keys a killed swap had begun to
        move back on the table, in their order, under the same kind of lock the swap moved them
        under (no write runs between a drop and its create). After the RENAME they went with it."""
        if not (plan.moved_at_swap.triggers or plan.moved_at_swap.moves_keys):
            return
        with engine.connect() as conn:
            moving = state.moving_at_swap(conn, plan.table)
            swapped = not sa.inspect(conn).has_table(plan.shadow_table)
            conn.commit()
            if not moving or swapped:
                return
            if self.app_triggers_on(conn, plan, plan.table) and self.foreign_keys_on(conn, plan, plan.table):
                return  # killed before its first move, or moved back already
            for stmt in self.lock_timeout_sql(lock_timeout_ms):
                self.run(conn, stmt)
            children = "".join(f", {self.q(t)} WRITE" for t in self.swap_lock_tables(plan))
            self.run(conn, f"LOCK TABLES {self.q(plan.table)} WRITE, {self.q(plan.shadow_table)} WRITE{children}")
            try:
                log.warning("putting back the triggers and keys a killed swap had begun to move", table=plan.table)
                self.move_app_triggers(conn, plan, plan.table)
                self.move_foreign_keys(conn, plan, plan.table)
            finally:
                self.run(conn, "UNLOCK TABLES")
        self._mark_moving(engine, plan, False)

    def _await_queued(self, conn: Connection, renamer_id: int, worker: threading.Thread) -> bool:
        """Whether the RENAME now waits for this connection's lock (or has already failed)."""
        deadline = time.monotonic() + 5
        while worker.is_alive() and time.monotonic() < deadline:
            state = conn.execute(
                sa.text("SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = :id"), {"id": renamer_id}
            ).scalar()
            if state and "metadata lock" in str(state).lower():
                return True
            time.sleep(0.001)
        return not worker.is_alive()

    def _carry_auto_increment(self, conn: Connection, plan: Plan) -> None:
        """The shadow's counter follows the ids it was given; the original's can be further on
        (rows deleted at the top before the triggers existed). New ids must not reuse those."""
        if not plan.capture.route.autoinc_column:
            return
        if any(c.kind == "table_option" and c.column == "AUTO_INCREMENT" for c in plan.change_plans):
            # the plan sets the counter (ALTER TABLE … AUTO_INCREMENT=N): the shadow was created with
            # N and the ids it was given moved it on from there, as the server's own ALTER would
            return
        if not self.is_mariadb:
            self.run(conn, "SET SESSION information_schema_stats_expiry = 0")  # MySQL 8 caches these
        rows = conn.execute(
            sa.text(
                "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (:t, :s)"
            ),
            {"t": plan.table, "s": plan.shadow_table},
        )
        counters = {r[0]: r[1] for r in rows}
        original, shadow = counters.get(plan.table), counters.get(plan.shadow_table)
        conn.commit()
        if original and (shadow is None or int(original) > int(shadow)):
            self.run(conn, f"ALTER TABLE {self.q(plan.shadow_table)} AUTO_INCREMENT = {int(original)}")
