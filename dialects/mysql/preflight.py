"""What planning asks of a MySQL/MariaDB table, and what the plan then tells the operator.

``copy_route`` picks the copy route from ``innodb_autoinc_lock_mode`` (what shadowswap cannot
migrate safely here is refused before, by the checks in ``checks.py``); ``moved_at_swap`` reads
the application's triggers (``app_triggers.py``) and the foreign keys from and to the table
(``foreign_keys.py``), which the swap moves to the new table;
``shadow_table_options`` gives the shadow the table's defaults and counter; ``plan_notes`` says
what each route will do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.mysql.base import MySQLBase
from shadowswap.plan import CHANGE_LOG, CopyRoute, MovedAtSwap

if TYPE_CHECKING:
    from shadowswap.plan import CaptureMode, Plan


class MySQLPreflight(MySQLBase):
    """The copy route, the shadow's table options, and the plan's notes."""

    def _server_var(self, conn: Connection, name: str) -> Any:
        return conn.exec_driver_sql(f"SELECT @@{name}").scalar()

    def copy_route(self, conn: Connection, reflection: Any, mode: CaptureMode) -> CopyRoute:
        # what stops a MySQL table from being migrated is refused before this (dialects/mysql/checks.py)
        table = reflection.table
        autoinc = [c["name"] for c in reflection.columns if c.get("autoincrement") is True]
        helper = self.helper_name(table)
        lock_mode = int(self._server_var(conn, "innodb_autoinc_lock_mode"))
        # with a change log the triggers write the log, so a chunk's AUTO-INC lock on the shadow
        # queues nobody: the helper is for dual-write triggers only
        via_helper = bool(autoinc) and lock_mode == 1 and mode != CHANGE_LOG
        return CopyRoute(
            via="helper" if via_helper else "direct",
            helper_table=helper if via_helper else None,
            autoinc_column=autoinc[0] if autoinc else None,
            autoinc_lock_mode=lock_mode,
        )

    def moved_at_swap(self, conn: Connection, plan: Plan, reflection: Any) -> MovedAtSwap:
        # the application's triggers move to the new table inside the swap's lock (app_triggers.py),
        # and so do the keys from and to the table (foreign_keys.py), or the plan is refused there
        triggers = self.app_triggers(conn, plan.table)
        keys_from, keys_to = self.foreign_key_facts(conn, plan, reflection)
        return MovedAtSwap(triggers=tuple(triggers), keys_from=tuple(keys_from), keys_to=tuple(keys_to))

    def shadow_table_options(self, conn: Connection, table: str) -> dict[str, Any]:
        # Columns whose character set equals the table's default are reflected without one, so the
        # shadow must have the same default (and engine, row format, partitioning) to keep them so.
        options = dict(sa.inspect(conn).get_table_options(table))
        counter = conn.execute(
            sa.text(
                "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = :t"
            ),
            {"t": table},
        ).scalar()
        if counter and any(c.get("autoincrement") is True for c in sa.inspect(conn).get_columns(table)):
            options["mysql_auto_increment"] = str(counter)
        return {k: v for k, v in options.items() if k.startswith("mysql_")}

    def plan_notes(self, plan: Plan) -> list[str]:
        moved = [f"trigger {t.name}" for t in plan.moved_at_swap.triggers]
        moved += [f"foreign key {f.name}" for f in plan.moved_at_swap.keys_from]
        moved += [f"foreign key {f.table}.{f.name}" for f in plan.moved_at_swap.keys_to]
        if moved:
            # the application's triggers and the keys from and to the table (app_triggers.py, foreign_keys.py)
            return [*self._route_notes(plan), f"moved to the new table under the swap's lock: {', '.join(moved)}"]
        return self._route_notes(plan)

    def _route_notes(self, plan: Plan) -> list[str]:
        capture = plan.capture
        if capture.change_log:
            return [
                "sessions and triggers run under strict sql_mode: a value the new type cannot hold stops the migration",
                "triggers are created one at a time under lock_wait_timeout (whole seconds) with retries",
                f"the triggers log changed keys in {capture.log_table}; replays apply them to the shadow",
                "the copy reads without locks into a shadow holding only its primary key; unique and other "
                "indexes are added after it with ALGORITHM=INPLACE, LOCK=NONE",
                "the swap holds LOCK TABLES … WRITE for a few milliseconds (the last replay), with the "
                "RENAME TABLE queued behind it from a second connection",
            ]
        notes = [
            "sessions and triggers run under strict sql_mode: a value the new type cannot hold stops the copy",
            "triggers are created one at a time under lock_wait_timeout (whole seconds) with retries",
            "secondary indexes are added after the copy with ALGORITHM=INPLACE, LOCK=NONE",
            "the swap is one RENAME TABLE under lock_wait_timeout; the triggers are dropped after it",
        ]
        if capture.route.via == "helper":
            notes.append(
                f"innodb_autoinc_lock_mode=1: chunks reach the shadow through {capture.route.helper_table} and its "
                "trigger, so no statement holds the shadow's table-level AUTO-INC lock"
            )
        elif capture.route.autoinc_column and capture.route.autoinc_lock_mode == 0:
            notes.append(
                "innodb_autoinc_lock_mode=0: every insert into the shadow takes its table-level AUTO-INC lock; "
                "keep chunks small (--chunk-time) or run with mode 2"
            )
        return notes
