"""What planning asks of a MySQL/MariaDB table, and what the plan then tells the operator.

``plan_extra`` reads the application's triggers (moved at the swap, ``app_triggers.py``) and picks
the copy route from ``innodb_autoinc_lock_mode`` (what shadowswap cannot migrate safely here is
refused before, by the checks in ``checks.py``);
``shadow_table_options`` gives the shadow the table's defaults and counter; ``plan_notes`` says
what each route will do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.mysql.base import MySQLBase

if TYPE_CHECKING:
    from shadowswap.plan import Plan


class MySQLPreflight(MySQLBase):
    """The copy route, the shadow's table options, and the plan's notes."""

    def _server_var(self, conn: Connection, name: str) -> Any:
        return conn.exec_driver_sql(f"SELECT @@{name}").scalar()

    def plan_extra(self, conn: Connection, reflection: Any) -> dict[str, Any]:
        # what stops a MySQL table from being migrated is refused before this (dialects/mysql/checks.py)
        table = reflection.table
        autoinc = [c["name"] for c in reflection.columns if c.get("autoincrement") is True]
        # the application's triggers move to the new table inside the swap's lock (app_triggers.py)
        app_triggers = self.app_triggers(conn, table)
        helper = self.helper_name(table)
        mode = int(self._server_var(conn, "innodb_autoinc_lock_mode"))
        via_helper = bool(autoinc) and mode == 1
        return {
            "autoinc_column": autoinc[0] if autoinc else None,
            "autoinc_lock_mode": mode,
            "copy_via": "helper" if via_helper else "direct",
            "helper_table": helper if via_helper else None,
            **({"app_triggers": app_triggers} if app_triggers else {}),
        }

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
        moved = [f"trigger {t['name']}" for t in plan.extra.get("app_triggers") or []]
        moved += [f"foreign key {f['name']}" for f in plan.extra.get("fk_from") or []]
        moved += [f"foreign key {f['table']}.{f['name']}" for f in plan.extra.get("fk_to") or []]
        if moved:
            # the application's triggers and the keys from and to the table (app_triggers.py, foreign_keys.py)
            return [*self._route_notes(plan), f"moved to the new table under the swap's lock: {', '.join(moved)}"]
        return self._route_notes(plan)

    def _route_notes(self, plan: Plan) -> list[str]:
        if plan.extra.get("change_log"):
            return [
                "sessions and triggers run under strict sql_mode: a value the new type cannot hold stops the migration",
                "triggers are created one at a time under lock_wait_timeout (whole seconds) with retries",
                f"the triggers log changed keys in {plan.extra['change_log']}; replays apply them to the shadow",
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
        if plan.extra.get("copy_via") == "helper":
            notes.append(
                f"innodb_autoinc_lock_mode=1: chunks reach the shadow through {plan.extra['helper_table']} and its "
                "trigger, so no statement holds the shadow's table-level AUTO-INC lock"
            )
        elif plan.extra.get("autoinc_column") and plan.extra.get("autoinc_lock_mode") == 0:
            notes.append(
                "innodb_autoinc_lock_mode=0: every insert into the shadow takes its table-level AUTO-INC lock; "
                "keep chunks small (--chunk-time) or run with mode 2"
            )
        return notes
