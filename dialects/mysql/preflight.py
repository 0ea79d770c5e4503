"""What planning asks of a MySQL/MariaDB table, and what the plan then tells the operator.

``copy_route`` refuses what shadowswap cannot migrate safely here (a non-InnoDB engine, an
AUTO_INCREMENT column not leading a key, the application's own triggers, prefix indexes, a
leftover helper table) and picks the copy route from ``innodb_autoinc_lock_mode``;
``shadow_table_options`` gives the shadow the table's defaults and counter; ``plan_notes`` says
what each route will do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.mysql.base import MySQLBase
from shadowswap.errors import UsageError
from shadowswap.plan import CHANGE_LOG, CopyRoute

if TYPE_CHECKING:
    from shadowswap.plan import CaptureMode, Plan


class MySQLPreflight(MySQLBase):
    """Plan-time checks, the copy route, the shadow's table options, and the plan's notes."""

    def _server_var(self, conn: Connection, name: str) -> Any:
        return conn.exec_driver_sql(f"SELECT @@{name}").scalar()

    def copy_route(self, conn: Connection, reflection: Any, mode: CaptureMode) -> CopyRoute:
        table = reflection.table
        engine = str(sa.inspect(conn).get_table_options(table).get("mysql_engine", "InnoDB"))
        if engine.lower() != "innodb":
            raise UsageError(
                f"table {table!r} uses the {engine} engine; shadowswap needs InnoDB's transactions and row locks",
            )
        autoinc = [c["name"] for c in reflection.columns if c.get("autoincrement") is True]
        pk = list(reflection.primary_key.get("constrained_columns") or [])
        leading = {pk[0]} if pk else set()
        leading |= {u["column_names"][0] for u in reflection.unique_constraints if u.get("column_names")}
        if autoinc and (autoinc[0] not in pk or autoinc[0] not in leading):
            raise UsageError(
                f"AUTO_INCREMENT column {autoinc[0]!r} of {table!r} must be in the primary key and lead it or a "
                "unique key for shadowswap",
                hint="the shadow is created with its primary and unique keys only; other indexes come after the copy",
            )
        theirs = [t for t in self.existing_triggers(conn, table) if not t.startswith(f"_{table}_ss_")]
        if theirs:
            raise UsageError(
                f"table {table!r} has triggers ({', '.join(theirs)}); RENAME TABLE would leave them on the old table",
                hint="drop them before migrating and create them again after the swap",
            )
        for ix in reflection.indexes:
            kind = (ix.get("dialect_options") or {}).get("mysql_prefix")
            if kind:
                raise UsageError(
                    f"{kind} index {ix['name']!r}: InnoDB cannot build it while writes go on (LOCK=NONE)",
                    hint="drop it before migrating and add it back after",
                )
        helper = self.helper_name(table)
        if sa.inspect(conn).has_table(helper):
            raise UsageError(
                f"table {helper!r} already exists",
                hint="a previous migration left it (`shadowswap status`, `shadowswap abort`), or rename yours",
            )
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
