"""What every MySQL/MariaDB room shares: error numbers, the binlog probe, names, and the cross-room contract.

``MySQLBase`` is the one base class of the rooms in this package; each room (``session.py``,
``copy.py``, ``swap.py``, …) is a ``MySQLBase`` subclass holding one concern, and
``MySQLDialect`` in ``__init__.py`` composes them. A room that calls a method another room
defines finds it declared here (a typed stub that raises until the composed class supplies the
real one), so mypy checks each such call against one signature and a newcomer sees, in one place,
what the rooms ask of one another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.engine import Connection

from shadowswap.dialects.base import Dialect

if TYPE_CHECKING:
    from shadowswap.plan import CarriedTrigger, ColumnPlan, KeyFromTable, KeyToTable, Plan

ER_DUP_KEYNAME = 1061
ER_DUP_ENTRY = 1062
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
#: a consistent snapshot older than an ALTER of a table it then reads (an online index build on the shadow)
ER_TABLE_DEF_CHANGED = 1412
ER_LOCK_NOWAIT = 3572
# the ALTER's ALGORITHM= or LOCK= clause cannot be honoured: the server refuses instead of copying
ER_ALTER_OPERATION_NOT_SUPPORTED = 1845
ER_ALTER_OPERATION_NOT_SUPPORTED_REASON = 1846
log = structlog.get_logger("shadowswap.mysql")


def _errno(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class MySQLBase(Dialect):
    """The MySQL/MariaDB dialect's identity and the methods its rooms call across one another."""

    name = "mysql"
    max_identifier_bytes = 64
    # index and constraint names are per table here: the shadow carries the original names
    names_constraints = False
    # keys of other tables referencing the table are re-pointed under the swap's lock (foreign_keys.py)
    repoints_referencing_keys = True
    sqlglot_dialect = "mysql"
    text_type = "CHAR"
    # `MODIFY C2 …` names column c2: column names are case-insensitive on every platform
    column_names_fold_case = True
    maps_column_attributes = True

    @property
    def is_mariadb(self) -> bool:
        """MariaDB and MySQL share a driver but differ in DDL (ALGORITHM=INSTANT, sequences, the renamer's wait)."""
        return bool(getattr(self.sa_dialect, "is_mariadb", False))

    def shadow_index_name(self, table: str, index: str) -> str:
        return index

    def old_index_name(self, table: str, index: str) -> str:
        return index

    # -- what one room asks of another (the composed MySQLDialect supplies each) --------------

    def helper_name(self, table: str) -> str:
        """The copy's helper table (``copy.py``); planning checks it does not exist yet."""
        raise NotImplementedError

    def app_triggers(self, conn: Connection, table: str) -> list[CarriedTrigger]:
        """The application's triggers on ``table`` (``app_triggers.py``), read at plan time."""
        raise NotImplementedError

    def move_app_triggers(self, conn: Connection, plan: Plan, to: str, resumed: bool = False) -> None:
        """Move the plan's application triggers onto ``to`` (``app_triggers.py``), under the swap's lock."""
        raise NotImplementedError

    def app_triggers_on(self, conn: Connection, plan: Plan, table: str) -> bool:
        """Whether all the plan's application triggers are on ``table`` (``app_triggers.py``)."""
        raise NotImplementedError

    def foreign_key_facts(
        self, conn: Connection, plan: Plan, reflection: Any
    ) -> tuple[list[KeyFromTable], list[KeyToTable]]:
        """The foreign keys to move at the swap (``foreign_keys.py``), read at plan time."""
        raise NotImplementedError

    def swap_lock_tables(self, plan: Plan) -> list[str]:
        """Other tables the swap's LOCK TABLES must hold (``foreign_keys.py``)."""
        raise NotImplementedError

    def move_foreign_keys(self, conn: Connection, plan: Plan, to: str, resumed: bool = False) -> None:
        """Move the plan's foreign keys from and to the table onto ``to`` (``foreign_keys.py``)."""
        raise NotImplementedError

    def foreign_keys_on(self, conn: Connection, plan: Plan, table: str) -> bool:
        """Whether all the plan's moved foreign keys are from and to ``table`` (``foreign_keys.py``)."""
        raise NotImplementedError

    def _carry_key_text(self, conn: Connection, plan: Plan) -> None:
        """Each key of the shadow from SHOW CREATE TABLE's text (``indexes.py``), at plan time."""
        raise NotImplementedError

    def _trigger_value(self, plan: Plan, column: ColumnPlan, record: str) -> str:
        """A column's copy expression over a trigger's NEW/OLD row (``types.py``), for ``triggers.py``."""
        raise NotImplementedError

    def _key_guard(self, plan: Plan, table: str, keep: bool, count: bool) -> str:
        """The duplicate-key guard (``copy.py``), shared by the copy and the dual-write upsert."""
        raise NotImplementedError

    def _copy_update(self, plan: Plan) -> str:
        """The copy's ON DUPLICATE KEY clause (``copy.py``), also the helper table's trigger's."""
        raise NotImplementedError

    def _log_aliases(self, plan: Plan) -> tuple[str, str, str, str]:
        """Quoted (log, shadow, table, sequence column) of the change log (``changelog.py``)."""
        raise NotImplementedError

    def _replay_batch(self, conn: Connection, plan: Plan, limit: int | None) -> int:
        """One replay transaction (``changelog.py``); the swap runs the last one under its lock."""
        raise NotImplementedError


_BINLOG_SQL = "SELECT @@log_bin, @@binlog_format"


def _statement_binlog(log_bin: Any, binlog_format: Any) -> bool:
    """Statement-based binary logging, which refuses READ COMMITTED writes."""
    return bool(int(log_bin or 0)) and str(binlog_format).upper() == "STATEMENT"
