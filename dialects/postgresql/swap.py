"""The swap: what must be true before it (sequences and identities to move; dependent views and
referencing keys, see dependents.py) and the one transaction that renames the tables, drops the
triggers, applies the last change-log entries, hands the sequences over and redefines the views and
keys on the new table, holding ACCESS EXCLUSIVE for milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shadowswap.dialects.postgresql import surroundings
from shadowswap.dialects.postgresql.dependents import PostgresDependents

if TYPE_CHECKING:
    from shadowswap.plan import Plan


# the swap composes the dependents' statements into its transaction, so it builds on that room
class PostgresSwap(PostgresDependents):
    def swap_facts(self, conn: Connection, plan: Plan, reflection: Any) -> dict[str, Any]:
        surroundings.refuse_unmigratable(self, conn, plan.table)
        surroundings.refuse_what_cannot_be_carried(self, conn, plan.table)
        surroundings.refuse_dependents_on_changed_columns(self, conn, plan, [c["name"] for c in reflection.columns])
        # views and other tables' keys follow the table by OID: redefined on the new table inside
        # the swap's transaction (dependents.py), or refused here
        views = self.dependent_views(conn, plan)
        keys = self.referencing_keys(conn, plan)
        owned: list[tuple[str, str]] = []
        identities: list[dict[str, Any]] = []
        # a sequence follows its column to the new table, under the column's new name; a dropped
        # column's sequence stays with the old table
        target = {c.source_column: c.name for c in plan.columns if c.source_column is not None}
        for col in reflection.columns:
            if col["name"] not in target:
                continue
            row = conn.execute(
                sa.text(
                    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.oid = pg_get_serial_sequence(:t, :c)::regclass"
                ),
                {"t": self.q(plan.table), "c": col["name"]},
            ).first()
            if row is None:
                continue
            qualified = f"{self.q(row[0])}.{self.q(row[1])}"
            identity = col.get("identity")
            if identity:
                identities.append(
                    {
                        "column": target[col["name"]],
                        "schema": row[0],
                        "sequence": row[1],
                        "always": bool(identity.get("always")),
                        "increment": int(identity.get("increment") or 1),
                    }
                )
            else:
                owned.append((target[col["name"]], qualified))
        return {
            "owned_sequences": owned,
            "identities": identities,
            "views": views,
            "referencing_keys": keys,
            "owner": surroundings.owner_sql(self, conn, plan),
        }

    def swap_sql(self, plan: Plan, reflected: dict[str, Any]) -> tuple[list[str], list[str]]:
        """One transaction: both renames, trigger removal, index/constraint names, sequence owner."""
        t, s, o = self.q(plan.table), self.q(plan.shadow_table), self.q(plan.old_table)
        # With a change log, the lock leaves its last entries (the writes since the last replay)
        # final: they are applied inside the swap, and the log goes with the triggers.
        log_table = plan.capture.log_table
        views, keys = reflected.get("views", []), reflected.get("referencing_keys", [])
        # The tables whose keys are re-pointed are locked up front with ours (DROP CONSTRAINT needs
        # ACCESS EXCLUSIVE on them): one lock_timeout covers all, none is taken mid-transaction.
        children = "".join(f", {name}" for name in dict.fromkeys(k["table"] for k in keys))
        stmts = [
            f"LOCK TABLE {t}, {s}{children} IN ACCESS EXCLUSIVE MODE",
            self.dependents_guard_sql(plan, views, keys),
            # a --transform's last replay runs in Python right after the LOCK (run_swap)
            *(self.replay_sql(plan) if log_table and plan.transform is None else []),
            *[f"DROP TRIGGER IF EXISTS {self.q(n)} ON {t}" for n in plan.trigger_names],
            *([f"DROP TABLE {self.q(log_table)}"] if log_table else []),
            f"ALTER TABLE {t} RENAME TO {o}",
            f"ALTER TABLE {s} RENAME TO {t}",
            # before any sequence is linked to the new table: both must have one owner
            *reflected.get("owner", []),
        ]
        for old_name, shadow_name, final_name in reflected["constraint_renames"]:
            stmts.append(f"ALTER TABLE {o} RENAME CONSTRAINT {self.q(final_name)} TO {self.q(old_name)}")
            stmts.append(f"ALTER TABLE {t} RENAME CONSTRAINT {self.q(shadow_name)} TO {self.q(final_name)}")
        for ix in plan.indexes:
            if not ix.new:
                stmts.append(f"ALTER INDEX {self.q(ix.final_name)} RENAME TO {self.q(ix.old_name)}")
            stmts.append(f"ALTER INDEX {self.q(ix.shadow_name)} RENAME TO {self.q(ix.final_name)}")
        for column, sequence in reflected["owned_sequences"]:
            # The shadow's default already calls nextval() on this sequence; moving ownership keeps
            # `DROP TABLE old` from dropping the sequence the live table now depends on.
            stmts.append(f"ALTER SEQUENCE {sequence} OWNED BY {t}.{self.q(column)}")
        for ident in reflected.get("identities", []):
            # The old identity sequence keeps the old table; a new one, named as the original and
            # positioned where the original stands, is attached to the live column.
            seq = f"{self.q(ident['schema'])}.{self.q(ident['sequence'])}"
            old_seq_name = self.fit_name(f"_{ident['sequence']}_old")
            old_seq = f"{self.q(ident['schema'])}.{self.q(old_seq_name)}"
            kind = "ALWAYS" if ident["always"] else "BY DEFAULT"
            stmts.append(f"ALTER SEQUENCE {seq} RENAME TO {self.q(old_seq_name)}")
            stmts.append(
                f"ALTER TABLE {t} ALTER COLUMN {self.q(ident['column'])} ADD GENERATED {kind} AS IDENTITY "
                f"(SEQUENCE NAME {seq} INCREMENT BY {int(ident['increment'])})"
            )
            literal = seq.replace("'", "''")
            stmts.append(f"SELECT setval('{literal}', last_value, is_called) FROM {old_seq}")
        stmts += self.recreate_views_sql(views)
        repoint, validate = self.repoint_keys_sql(keys)
        stmts += repoint
        post = [f"DROP FUNCTION IF EXISTS {self.q(self.function_name(plan))}()", *validate]
        return stmts, post

    def run_swap(
        self, engine: Engine, plan: Plan, lock_timeout_ms: int, in_swap: Callable[[Connection], None]
    ) -> float:
        with engine.connect() as conn:
            with conn.begin():
                for stmt in self.lock_timeout_sql(lock_timeout_ms):
                    self.run(conn, stmt)
                self.run(conn, plan.swap_sql[0])
                locked_at = time.perf_counter()
                if plan.transform is not None and plan.capture.change_log:
                    self.transform_replay(conn, plan)  # the last entries, under the lock
                for stmt in plan.swap_sql[1:]:
                    self.run(conn, stmt)
                # triggers, grants, comments, policies... read and recreated under the lock (surroundings.py)
                surroundings.carry_over(self, conn, plan)
                # the plan's changed storage parameters, over the old ones just carried (tableoptions.py)
                for stmt in plan.table_option_sql:
                    self.run(conn, stmt)
                for stmt in plan.column_settings_sql:
                    self.run(conn, stmt)  # the plan's own settings, over the carried ones
                in_swap(conn)
            held = time.perf_counter() - locked_at
            for stmt in plan.post_swap_sql:
                with conn.begin():
                    for s in self.lock_timeout_sql(lock_timeout_ms):
                        self.run(conn, s)
                    self.run(conn, stmt)
        return held
