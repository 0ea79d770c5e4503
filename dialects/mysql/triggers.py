"""The triggers on the table, in their two families, and how they are installed and dropped.

Direct dual-write (a plan that changes the primary key): AFTER DELETE/UPDATE/INSERT triggers
write the shadow with ``INSERT … VALUES`` (a "simple insert", so no table-level AUTO-INC lock),
plus, under ``innodb_autoinc_lock_mode`` 1, the copy's helper table with its own insert trigger.
Change log (the usual plan): the triggers only insert the changed key into the log
(``changelog.py`` replays it). MySQL DDL commits one statement at a time, so installing creates
what is missing and never drops-then-creates (a dropped trigger, however briefly, is writes lost).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.mysql.base import MySQLBase
from shadowswap.errors import ShadowswapError

if TYPE_CHECKING:
    from shadowswap.plan import Plan


@dataclass(frozen=True)
class _Object:
    """One thing ``install_triggers`` creates: a table (idempotent DDL) or a trigger (checked by name)."""

    kind: str
    name: str
    table: str
    body: str
    sql: str


class MySQLTriggers(MySQLBase):
    """Trigger definitions (dual-write and change-log), their install, the check of existing ones, and the drop."""

    def existing_triggers(self, conn: Connection, table: str) -> list[str]:
        return list(self._triggers_on(conn, table))

    def _triggers_on(self, conn: Connection, table: str) -> dict[str, str]:
        rows = conn.execute(
            sa.text(
                "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                "WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = :t ORDER BY TRIGGER_NAME"
            ),
            {"t": table},
        )
        return {r[0]: r[1] for r in rows}

    def _upsert_update(self, plan: Plan) -> str:
        shadow = self.q(plan.shadow_table)
        keys = plan.shadow_primary_key
        sets = [self._key_guard(plan, shadow, keep=False, count=False)]
        sets += [f"{shadow}.{self.q(c.name)} = VALUES({self.q(c.name)})" for c in keys[1:]]
        sets += [f"{shadow}.{self.q(c.name)} = VALUES({self.q(c.name)})" for c in plan.columns if c not in keys]
        return "ON DUPLICATE KEY UPDATE " + ", ".join(sets)

    def _insert_values(self, plan: Plan, record: str, update: str) -> str:
        values = ", ".join(self._trigger_value(plan, c, record) for c in plan.columns)
        columns = self.insert_columns(plan.columns)
        return f"INSERT INTO {self.q(plan.shadow_table)} ({columns}) VALUES ({values}) {update}"

    def _objects(self, plan: Plan) -> list[_Object]:
        """What ``install_triggers`` creates, in order: the copy helper, then the triggers DELETE,
        UPDATE, INSERT. MySQL DDL commits one statement at a time; in this order no write falls
        between two triggers unseen (a row inserted while only the UPDATE and DELETE triggers exist
        is in the table, and the copy, which starts after all three, takes it)."""
        table, shadow = self.q(plan.table), self.q(plan.shadow_table)
        names = dict(zip(("ins", "upd", "del"), plan.trigger_names, strict=True))
        if plan.capture.change_log:
            return self._log_objects(plan, names)
        keys = plan.shadow_primary_key
        delete_where = " AND ".join(f"{shadow}.{self.q(c.name)} = {self._trigger_value(plan, c, 'OLD')}" for c in keys)
        delete = f"DELETE FROM {shadow} WHERE {delete_where}"
        upsert = self._insert_values(plan, "NEW", self._upsert_update(plan))
        key_changed = " AND ".join(f"OLD.{self.q(k)} <=> NEW.{self.q(k)}" for k in plan.primary_key)
        update = f"BEGIN\n  IF NOT ({key_changed}) THEN\n    {delete};\n  END IF;\n  {upsert};\nEND"
        bodies = [("del", "DELETE", delete), ("upd", "UPDATE", update), ("ins", "INSERT", upsert)]
        objects = []
        helper = plan.capture.route.helper_table
        if helper:
            q_helper = self.q(helper)
            cols = ", ".join(f"src.{self.q(c)}" for c in plan.source_columns)
            pk = ", ".join(self.q(k) for k in plan.primary_key)
            objects.append(
                _Object(
                    "table",
                    helper,
                    helper,
                    "",
                    f"CREATE TABLE IF NOT EXISTS {q_helper} (PRIMARY KEY ({pk})) "
                    f"SELECT {cols} FROM {table} AS src WHERE 1 = 0",
                )
            )
            copy = self._insert_values(plan, "NEW", self._copy_update(plan))
            helper_trigger = self.fit_name(f"_{plan.table}_ss_copy_ins")
            objects.append(
                _Object(
                    "trigger",
                    helper_trigger,
                    helper,
                    copy,
                    f"CREATE TRIGGER {self.q(helper_trigger)} AFTER INSERT ON {q_helper} FOR EACH ROW {copy}",
                )
            )
        return objects + self._table_triggers(plan, names, bodies)

    def _table_triggers(self, plan: Plan, names: dict[str, str], bodies: list[tuple[str, str, str]]) -> list[_Object]:
        """The AFTER DELETE, UPDATE, INSERT triggers on the table, from (kind, event, body)."""
        return [
            _Object(
                "trigger",
                names[kind],
                plan.table,
                body,
                f"CREATE TRIGGER {self.q(names[kind])} AFTER {event_name} ON {self.q(plan.table)} FOR EACH ROW {body}",
            )
            for kind, event_name, body in bodies
        ]

    def _log_objects(self, plan: Plan, names: dict[str, str]) -> list[_Object]:
        """The change-log triggers: one small insert of the key (both keys on a key change)."""
        log_table = self.q(plan.capture.logged_table)
        columns = ", ".join(self.q(k) for k in plan.primary_key)

        def logged(record: str) -> str:
            values = ", ".join(f"{record}.{self.q(k)}" for k in plan.primary_key)
            return f"INSERT INTO {log_table} ({columns}) VALUES ({values})"

        key_changed = " AND ".join(f"OLD.{self.q(k)} <=> NEW.{self.q(k)}" for k in plan.primary_key)
        update = f"IF NOT ({key_changed}) THEN\n    {logged('OLD')};\n  END IF;\n  {logged('NEW')};"
        prelock = self._prelock_reverse_log(plan)
        if prelock is None:
            bodies = [
                ("del", "DELETE", logged("OLD")),
                ("upd", "UPDATE", f"BEGIN\n  {update}\nEND"),
                ("ins", "INSERT", logged("NEW")),
            ]
        else:
            bodies = [
                ("del", "DELETE", f"BEGIN\n  {logged('OLD')};\n  {prelock('OLD')}\nEND"),
                ("upd", "UPDATE", f"BEGIN\n  {update}\n  {prelock('NEW')}\nEND"),
                ("ins", "INSERT", f"BEGIN\n  {logged('NEW')};\n  {prelock('NEW')}\nEND"),
            ]
        return self._table_triggers(plan, names, bodies)

    def _prelock_reverse_log(self, plan: Plan) -> Callable[[str], str] | None:
        """A forward plan's triggers name the reverse log (shadowswap/revert.py) in a branch that never
        runs. MariaDB computes a statement's prelocking set (the tables its table's triggers use)
        once, from the table it first opened; a write queued behind the swap's lock can keep that
        set when it is let in and opens the new table, whose reverse capture triggers insert into
        the reverse log: without the log in the set, the write fails with 1146 (it was seen to, 3
        swaps in 6 under writers). Named here, the log is in the set whichever table the write
        opens (a table that does not exist yet is left out of the set silently)."""
        if plan.reverts is not None or not plan.capture.change_log:
            return None
        from shadowswap.revert import log_name

        rlog = self.q(log_name(self, plan.table))
        names = {c.source_column: c.name for c in plan.columns if c.source_column is not None}
        columns = ", ".join(self.q(names.get(k, k)) for k in plan.primary_key)

        def prelock(record: str) -> str:
            values = ", ".join(f"{record}.{self.q(k)}" for k in plan.primary_key)
            return f"IF FALSE THEN\n    INSERT INTO {rlog} ({columns}) VALUES ({values});\n  END IF;"

        return prelock

    def trigger_ddl(self, plan: Plan) -> list[str]:
        return [o.sql for o in self._objects(plan)]

    def install_triggers(self, conn: Connection, plan: Plan) -> None:
        """Create what is missing, never drop-then-create: each DDL commits by itself here, and a
        dropped trigger, however briefly, is writes lost. A trigger of ours that exists with another
        body is refused, not replaced."""
        objects = self._objects(plan)
        if [o.sql for o in objects] != plan.trigger_ddl:
            raise ShadowswapError(
                "the plan's trigger definitions differ from what this version of shadowswap generates",
                hint="plan again with this version",
            )
        existing: dict[str, dict[str, str]] = {}
        for obj in objects:
            if obj.kind == "table":
                self.run(conn, obj.sql)
                continue
            if obj.table not in existing:
                existing[obj.table] = self._triggers_on(conn, obj.table)
            found = existing[obj.table].get(obj.name)
            if found is None:
                self.run(conn, obj.sql)
            elif " ".join(found.split()) != " ".join(obj.body.split()):
                raise ShadowswapError(
                    f"trigger {obj.name!r} on {obj.table!r} exists with a different definition",
                    hint="`shadowswap abort` removes a previous migration's triggers",
                )

    def drop_trigger_ddl(self, plan: Plan) -> list[str]:
        stmts = [f"DROP TRIGGER IF EXISTS {self.q(n)}" for n in plan.trigger_names]
        if plan.capture.route.helper_table:
            stmts.append(self.drop_table_sql(plan.capture.route.helper))  # its trigger goes with it
        return stmts
