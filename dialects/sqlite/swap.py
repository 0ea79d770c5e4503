"""The swap (invariant 7): one BEGIN IMMEDIATE transaction that renames the tables, moves the
user's triggers and the indexes' names, and carries AUTOINCREMENT's sequence; its statements are
rebuilt from what the schema holds at that moment."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from shadowswap.dialects.sqlite.base import SQLiteBase, literal
from shadowswap.dialects.sqlite.schema import index_name_token, strip_literals
from shadowswap.errors import ShadowswapError, StalePlan

if TYPE_CHECKING:
    from shadowswap.plan import Plan


log = structlog.get_logger("shadowswap.sqlite")


class SQLiteSwap(SQLiteBase):
    #: the swap renames with legacy_alter_table on and foreign_keys off, so other tables' REFERENCES
    #: keep the table's name, which is the new table's once the swap commits (see run_swap); a
    #: self-reference is in the shadow's own text and names the table too
    repoints_referencing_keys = True
    carries_self_references = True

    def swap_facts(self, conn: Connection, plan: Plan, reflection: Any) -> dict[str, Any]:
        # COLLATE, column-level REFERENCES actions and the rest of the table's text need no check
        # here: the shadow's CREATE TABLE is the original's own text (schema.shadow_create_sql).
        return self._live_facts(conn, plan)

    def _referencing_tables(self, conn: Connection, plan: Plan) -> list[str]:
        """Other tables whose foreign keys name the table (SQLite compares the names case-insensitively).

        Not the shadow nor the old table: a self-reference is in their own text, and names the
        table (the new one after the swap) on both sides of it."""
        out = []
        table = plan.table
        names = conn.execute(
            sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN (:t, :s, :o) "
                "AND sql LIKE '%REFERENCES%'"
            ),
            {"t": table, "s": plan.shadow_table, "o": plan.old_table},
        )
        for (other,) in names.fetchall():
            rows = self.run(conn, f"PRAGMA foreign_key_list({self.q(other)})").fetchall()
            if any(str(r[2]).lower() == table.lower() for r in rows):
                out.append(other)
        return out

    def _live_facts(self, conn: Connection, plan: Plan) -> dict[str, Any]:
        """What the swap statements depend on, read again inside the swap's own transaction."""
        user_triggers = [
            (r[0], r[1])
            for r in conn.execute(
                sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t ORDER BY rowid"),
                {"t": plan.table},
            )
            if r[0] not in plan.trigger_names
        ]
        index_sql = self._original_indexes(conn, plan.table)
        carried = {ix.final_name for ix in plan.indexes if not ix.new}
        if not carried <= set(index_sql):
            # reflection-based fingerprints miss expression indexes: check the names here
            raise StalePlan(
                f"the plan is stale: the indexes of {plan.table!r} changed since it was planned",
                hint="`shadowswap abort`, then plan again",
            )
        # the original's name token as the user wrote it, to replace it in its stored SQL
        # (a new index has no original to move out of the way: its token is None)
        renames = [
            (
                ix.final_name,
                None if ix.new else index_name_token(index_sql[ix.final_name]),
                ix.old_name,
                ix.shadow_name,
            )
            for ix in plan.indexes
        ]
        return {
            "user_triggers": user_triggers,
            "index_renames": renames,
            "autoincrement": bool(
                re.search(r"\bAUTOINCREMENT\b", strip_literals(self._table_sql(conn, plan.table)), re.I)
            ),
            "rename_indexes_in_schema": self._can_write_schema(conn),
            "referencing_tables": self._referencing_tables(conn, plan),
        }

    def _can_write_schema(self, conn: Connection) -> bool:
        """Whether sqlite_master may be edited (not in SQLITE_DBCONFIG_DEFENSIVE builds).

        EXPLAIN prepares the probe without running it, so planning still writes nothing.
        """
        raw = conn.connection.dbapi_connection
        assert raw is not None
        before = raw.execute("PRAGMA writable_schema").fetchone()[0]
        try:
            raw.execute("PRAGMA writable_schema = ON")
            raw.execute("EXPLAIN UPDATE sqlite_master SET name = name WHERE 0").fetchall()
            return True
        except sqlite3.DatabaseError:
            return False
        finally:
            raw.execute(f"PRAGMA writable_schema = {int(before)}")

    def swap_sql(self, plan: Plan, reflected: dict[str, Any]) -> tuple[list[str], list[str]]:
        """One BEGIN IMMEDIATE transaction; the statements are rebuilt from live facts at the swap."""
        t, s, o = self.q(plan.table), self.q(plan.shadow_table), self.q(plan.old_table)
        stmts = [
            # before the transaction: foreign_keys cannot change inside one (see run_swap)
            "PRAGMA foreign_keys = OFF",
            "BEGIN IMMEDIATE",
            # Modern ALTER TABLE RENAME rewrites every view and trigger that names the table to the
            # new name, which would leave them on the old table. Legacy mode renames the table
            # alone, so views and other tables' triggers keep meaning `products`: the new table.
            "PRAGMA legacy_alter_table = ON",
            *[f"DROP TRIGGER IF EXISTS {self.q(n)}" for n in plan.trigger_names],
            # a change log (a --transform plan's, a revert's reverse log): its last entries are
            # replayed first, under this write lock (run_swap's replay_locked)
            *([f"DROP TABLE IF EXISTS {self.q(plan.capture.logged_table)}"] if plan.capture.change_log else []),
            # triggers ON the table would move with the rename to the old table: recreated below
            *[f"DROP TRIGGER {self.q(name)}" for name, _sql in reflected["user_triggers"]],
        ]
        renames = reflected["index_renames"]
        by_final = {ix.final_name: ix for ix in plan.indexes}
        if not reflected["rename_indexes_in_schema"]:
            # No way to rename an index: build the final one on the shadow inside the swap.
            # Costs a full index build under the write lock; only for builds that forbid the edit below.
            for final, token, _old, shadow_name in renames:
                ix = by_final[final]
                prefix = "CREATE UNIQUE INDEX " if ix.unique else "CREATE INDEX "
                create = prefix + self.q(final) + ix.create_sql[len(index_name_token(ix.create_sql)) :]
                if token is not None:
                    stmts.append(f"DROP INDEX {self.q(final)}")
                stmts += [create, f"DROP INDEX {self.q(shadow_name)}"]
        stmts += [f"ALTER TABLE {t} RENAME TO {o}", f"ALTER TABLE {s} RENAME TO {t}"]
        stmts += [sql for _name, sql in reflected["user_triggers"]]
        if reflected["autoincrement"]:
            # The shadow's sequence has only seen the keys it holds; the old one may be higher
            # (rows inserted and deleted before the copy). AUTOINCREMENT promises never to reuse them.
            new, old = literal(plan.table), literal(plan.old_table)
            stmts += [
                f"INSERT INTO sqlite_sequence (name, seq) SELECT {new}, 0 "
                f"WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {new})",
                f"UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT max(seq) FROM sqlite_sequence "
                f"WHERE name = {old}), 0)) WHERE name = {new}",
            ]
        if reflected["rename_indexes_in_schema"] and renames:
            # SQLite has no ALTER INDEX … RENAME. An index's name lives only in its sqlite_master row
            # (name and SQL text; the b-tree is found by rootpage), so renaming is editing that row,
            # as ALTER TABLE RENAME itself edits it. Both renames bumped the schema cookie in this
            # transaction, so every other connection reloads the schema after COMMIT.
            stmts.append("PRAGMA writable_schema = ON")
            for final, token, old_name, shadow_name in renames:
                ix = by_final[final]
                prefix = "CREATE UNIQUE INDEX " if ix.unique else "CREATE INDEX "
                shadow_token = index_name_token(ix.create_sql)
                if token is not None:
                    stmts.append(self._rename_index_sql(final, token, old_name, prefix))
                stmts.append(self._rename_index_sql(shadow_name, shadow_token, final, prefix))
            stmts.append("PRAGMA writable_schema = OFF")
        stmts.append("PRAGMA legacy_alter_table = OFF")
        return stmts, []

    def _rename_index_sql(self, name: str, token: str, new_name: str, prefix: str) -> str:
        head = f"{prefix}{self.q(new_name)}"
        return (
            f"UPDATE sqlite_master SET name = {literal(new_name)}, "
            f"sql = {literal(head)} || substr(sql, {len(token) + 1}) "
            f"WHERE type = 'index' AND name = {literal(name)} AND substr(sql, 1, {len(token)}) = {literal(token)}"
        )

    def run_swap(
        self, engine: Engine, plan: Plan, lock_timeout_ms: int, in_swap: Callable[[Connection], None]
    ) -> float:
        conn = engine.connect()
        try:
            with conn.begin():
                # Other tables' foreign keys name the table as text. A RENAME TABLE rewrites them to
                # the new name unless legacy_alter_table is on AND foreign_keys is off (SQLite
                # 3.26+), so with both the children's REFERENCES items stay on `items`, which is the
                # new table after the second rename: the 12-step rebuild's outcome, without its
                # copy under the lock. foreign_keys can only change outside a transaction: here,
                # before BEGIN IMMEDIATE (this PRAGMA does not open the lazy BEGIN, see session.py).
                self.run(conn, "PRAGMA foreign_keys = OFF")  # swap_sql's first statement
                for stmt in self.lock_timeout_sql(lock_timeout_ms):
                    self.run(conn, stmt)
                locked_at = time.perf_counter()
                # rebuilt from what is there now: a trigger added since planning moves along too
                facts = self._live_facts(conn, plan)
                if facts["referencing_tables"] and self.run(conn, "PRAGMA foreign_keys").scalar():
                    raise ShadowswapError(
                        f"the swap could not turn foreign keys off, so the keys referencing {plan.table!r} "
                        "would follow the old table",
                        hint="nothing was swapped; run `shadowswap execute` again or `shadowswap abort`",
                    )
                stmts, _post = self.swap_sql(plan, facts)
                assert stmts[:2] == ["PRAGMA foreign_keys = OFF", "BEGIN IMMEDIATE"]  # both run above
                if plan.capture.change_log:
                    # the writes since the last replay, under the write lock no writer can add to
                    # (changelog.py); the log is dropped by the statements below
                    self.replay_locked(conn, plan)
                for stmt in stmts[2:]:
                    result = self.run(conn, stmt)
                    if stmt.startswith("UPDATE sqlite_master") and result.rowcount != 1:
                        raise ShadowswapError(
                            f"the swap could not rename an index of {plan.table!r} ({stmt[:120]}…)",
                            hint="nothing was swapped; run `shadowswap execute` again or `shadowswap abort`",
                        )
                moved = [t for t in facts["referencing_tables"] if t not in self._referencing_tables(conn, plan)]
                if moved:
                    # cheap (the schema's text only) and decisive: roll back rather than re-point the children
                    raise ShadowswapError(
                        f"the swap would have left the foreign keys of {', '.join(moved)} on the old table",
                        hint="nothing was swapped; run `shadowswap execute` again or `shadowswap abort`",
                    )
                in_swap(conn)  # the phase is recorded in the swap's own transaction
            held = time.perf_counter() - locked_at
            self._check_referencing_rows(conn, plan.table, facts["referencing_tables"])
        finally:
            # This connection's own schema cache predates the sqlite_master edits, and its pragmas
            # were changed for the swap: retire it rather than return it to the pool.
            conn.invalidate()
            conn.close()
        return held

    def _check_referencing_rows(self, conn: Connection, table: str, children: list[str]) -> None:
        """PRAGMA foreign_key_check on the tables referencing the new one, after the swap's commit.

        Outside the lock: it reads every row of each child. The new table holds the rows the old one
        did (verified before the swap, kept in step by the triggers up to it), so a row it reports
        was an orphan before the migration too; it is reported, not undone."""
        for child in children:
            with conn.begin():
                orphans = self.run(conn, f"PRAGMA foreign_key_check({self.q(child)})").fetchall()
            hits = [r for r in orphans if str(r[2]).lower() == table.lower()]
            if hits:
                log.warning(
                    "rows reference missing keys of the new table (they did before the migration too)",
                    table=child,
                    references=table,
                    rows=len(hits),
                )
