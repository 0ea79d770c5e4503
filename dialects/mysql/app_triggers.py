"""The application's own triggers: carried to the new table inside the swap's lock.

MariaDB/MySQL keep a trigger with its table through ``RENAME TABLE``, so after the swap the
application's triggers would sit on the old table and stop firing. They must reach the new table
firing once per application write and never for a row the copy or a replay moves, so they are
created on the shadow only at the swap: under the swap's ``LOCK TABLES … WRITE`` (no application
write runs), after the last replay (nothing of ours writes the shadow afterwards), and before the
queued ``RENAME TABLE`` lets the application's writes through to it. Trigger names are per
database, so each is dropped from the table and created on the shadow, one after another in their
action order, each under the ``sql_mode`` it was created with (a trigger keeps its creator's mode)
and with its DEFINER. The extra time under the lock is two metadata statements per trigger.

Only the change-log route swaps under such a lock; the plain route (a plan that changes the
primary key, or statement-based binary logging) swaps with one bare RENAME: there a trigger could
only be moved after the RENAME, missing the writes in between, so such plans are refused.
A run that stops after a trigger was moved and before the RENAME is queued moves it back to the
table before unlocking. The swap first checks that the table's triggers are still the planned ones
(one dropped since the plan would come back, one added would stay behind on the old table). Each
DROP/CREATE TRIGGER commits on its own, so a process killed between a drop and its create (both
under the lock, microseconds apart) leaves that trigger missing: the swap marks the migration
(``moving_at_swap`` in the state table) before its first move, and with that mark the next
``execute`` creates a missing one again from the plan's text, and ``abort`` moves them all back to
the table under a lock (swap.py ``restore_moved``), in their action order.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.mysql.base import MySQLBase
from shadowswap.errors import StalePlan, UsageError
from shadowswap.plan import CarriedTrigger

if TYPE_CHECKING:
    from shadowswap.plan import Plan

_IDENT = r"(?:`(?:[^`]|``)*`|[^\s`.]+)"
#: the head of a stored CREATE TRIGGER up to its table name, then the table name (maybe qualified)
_HEAD = re.compile(
    r"^(\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:DEFINER\s*=\s*\S+\s+)?TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?:{_IDENT}\.)?{_IDENT}\s+(?:BEFORE|AFTER)\s+(?:INSERT|UPDATE|DELETE)\s+ON\s+)((?:{_IDENT}\.)?{_IDENT})"
    r"(\s+FOR\s+EACH\s+ROW)(\s+(?:FOLLOWS|PRECEDES)\s+" + _IDENT + r")?",
    re.IGNORECASE | re.DOTALL,
)


class MySQLAppTriggers(MySQLBase):
    """The application's triggers: read at plan time, moved to the shadow under the swap's lock."""

    def app_triggers(self, conn: Connection, table: str) -> list[CarriedTrigger]:
        """Each user trigger of ``table`` in action order: its name, sql_mode and its CREATE statement
        cut around the table's name (FOLLOWS/PRECEDES dropped: recreated one by one in action order,
        each new one goes last, which is that order again)."""
        rows = conn.execute(
            sa.text(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() "
                "AND EVENT_OBJECT_TABLE = :t ORDER BY EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER"
            ),
            {"t": table},
        ).fetchall()
        out = []
        for (name,) in rows:
            if str(name).startswith(f"_{table}_ss_"):
                continue
            row = conn.exec_driver_sql(f"SHOW CREATE TRIGGER {self.q(name)}").fetchone()
            assert row is not None
            statement = str(row[2])
            match = _HEAD.match(statement)
            if match is None:
                raise UsageError(
                    f"trigger {name!r} on {table!r}: shadowswap cannot read its definition to carry it over",
                    hint="drop it before migrating and create it again after the swap",
                )
            head, tail = match.group(1), match.group(3) + statement[match.end() :]
            out.append(CarriedTrigger(name=str(name), sql_mode=str(row[1]), head=head, tail=tail))
        return out

    def _create_app_trigger(self, conn: Connection, trigger: CarriedTrigger, table: str) -> None:
        mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
        conn.execute(sa.text("SET SESSION sql_mode = :m"), {"m": trigger.sql_mode})
        try:
            self.run(conn, trigger.head + self.q(table) + trigger.tail)
        finally:
            conn.execute(sa.text("SET SESSION sql_mode = :m"), {"m": mode})

    def app_triggers_on(self, conn: Connection, plan: Plan, table: str) -> bool:
        on_table = set(self.existing_triggers(conn, table))
        return all(t.name in on_table for t in plan.moved_at_swap.triggers)

    def move_app_triggers(self, conn: Connection, plan: Plan, to: str, resumed: bool = False) -> None:
        """Drop each of the plan's user triggers wherever it is and create it on ``to``, in order.
        Runs under the swap's LOCK TABLES, which holds both tables WRITE (CREATE TRIGGER needs it).
        ``resumed``: an earlier swap was killed mid-move, so a planned trigger found nowhere is one
        it dropped, and is created again from the plan's text."""
        if to == plan.shadow_table:
            # a trigger created or dropped since the plan would be left behind or brought back
            theirs = {t for t in self.existing_triggers(conn, plan.table) if not t.startswith(f"_{plan.table}_ss_")}
            # (the shadow's own: the reverse capture, shadowswap/revert.py, named as ours are)
            theirs |= {
                t for t in self.existing_triggers(conn, plan.shadow_table) if not t.startswith(f"_{plan.table}_ss_")
            }
            planned = {t.name for t in plan.moved_at_swap.triggers}
            if theirs != planned and not (resumed and theirs < planned):
                raise StalePlan(
                    f"the triggers on {plan.table!r} changed since the plan ({', '.join(sorted(theirs)) or 'none'} "
                    f"now, {', '.join(sorted(planned)) or 'none'} planned)",
                    hint="`shadowswap abort`, then plan again",
                )
        for trigger in plan.moved_at_swap.triggers:
            self.run(conn, f"DROP TRIGGER IF EXISTS {self.q(trigger.name)}")
            self._create_app_trigger(conn, trigger, to)


def refuse_on_plain_swap(plan: Plan) -> None:
    triggers = plan.moved_at_swap.triggers
    if triggers and not plan.capture.change_log:
        raise UsageError(
            f"table {plan.table!r} has triggers ({', '.join(t.name for t in triggers)}) and this plan swaps "
            "without a change log (its primary key changes, or statement-based binlog), so no lock to move them under",
            hint="drop them before migrating and create them again after the swap",
        )
