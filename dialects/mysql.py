"""MySQL and MariaDB: strict triggers, share-locked chunks, online indexes, one RENAME TABLE swap.

InnoDB's AUTO-INC lock shapes this module. Under ``innodb_autoinc_lock_mode`` 0 or 1 (MariaDB's
default, and what many MySQL primaries run) an ``INSERT … SELECT`` into a table with an
AUTO_INCREMENT column takes a table-level AUTO-INC lock on it and keeps it until the statement
ends. A shadow that keeps its AUTO_INCREMENT (so ids continue after the swap) and is filled by
``INSERT … SELECT`` chunks would make every trigger insert, that is every application write, wait
for the chunk in progress, and deadlock with it now and then (pt-online-schema-change's problem).
Taking AUTO_INCREMENT off the shadow for the copy does not help: adding it back is a blocking
table rebuild (ALGORITHM=COPY) on MariaDB 10.11 and MySQL 8 alike.

So nothing ever bulk-inserts into such a shadow. InnoDB treats an ``INSERT … VALUES`` statement
as a "simple insert", which only takes the AUTO-INC mutex for a moment; and it classifies a
statement run by a trigger by that statement itself, not by what fired the trigger. Every insert
into the shadow therefore is an ``INSERT … VALUES`` inside a trigger: the dual-write triggers on
the table, and, for the copy, a trigger on a helper table ``_<table>_ss_copy`` (no keys besides the
primary key, no AUTO_INCREMENT) into which each chunk is ``INSERT … SELECT``-ed under a share lock
and deleted again in the same transaction. Where the AUTO-INC lock cannot arise (no AUTO_INCREMENT
column, or ``innodb_autoinc_lock_mode = 2``) the chunk goes straight into the shadow.

That is the path for plans that change the primary key. The usual plan keeps the key, and then
the triggers write no shadow at all: they insert the changed key into a change log
(``shadowswap/changelog.py``), the copy bulk-inserts into a shadow nobody else writes (its AUTO-INC
lock then queues no one), and replays apply the log. InnoDB's DML reads the newest rows, not a
snapshot, so a replay here takes its log entries with a locking read (``_replay_batch`` says why
that is exact), and the swap applies the last entries under ``LOCK TABLES`` with the
``RENAME TABLE`` already queued behind it (``_swap_with_change_log``).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles

from shadowswap.dialects.base import LOG_SEQUENCE, Dialect
from shadowswap.errors import ShadowswapError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from shadowswap.backup import Backup
    from shadowswap.plan import ColumnPlan, IndexPlan, Plan
    from shadowswap.strategy import ChangeFacts

ER_DUP_KEYNAME = 1061
ER_DUP_ENTRY = 1062
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
ER_LOCK_NOWAIT = 3572
# the ALTER's ALGORITHM= or LOCK= clause cannot be honoured: the server refuses instead of copying
ER_ALTER_OPERATION_NOT_SUPPORTED = 1845
ER_ALTER_OPERATION_NOT_SUPPORTED_REASON = 1846
# Values that do not fit the new definition (invariant 8): out of range, truncated, not a value of
# the type, NULL into NOT NULL, a key the new definition makes collide, a failing CHECK.
DATA_ERRORS = {
    1048,  # column cannot be null (also the copy's guard against a unique-key collision)
    1062,  # duplicate entry
    1263,  # NULL supplied to NOT NULL column
    1264,  # out of range
    1265,  # data truncated
    1292,  # truncated incorrect value / incorrect datetime
    1364,  # field has no default
    1365,  # division by 0
    1366,  # incorrect value for column
    1367,  # illegal value
    1406,  # data too long
    1411,  # incorrect value for function
    1416,  # cannot get geometry object
    1441,  # datetime function overflow
    1690,  # value out of range
    3140,  # invalid JSON
    3819,  # MySQL: check constraint violated
    4025,  # MariaDB: CONSTRAINT failed
}
log = structlog.get_logger("shadowswap.mysql")
STRICT_MODES = ("STRICT_ALL_TABLES", "ERROR_FOR_DIVISION_BY_ZERO")
_INTEGER_TYPES = {
    "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "int1", "int2", "int3", "int4", "int8",
    "middleint", "bool", "boolean", "serial",
}  # fmt: skip
_TEXT_TYPES = {
    "char", "varchar", "character", "nchar", "nvarchar", "national", "tinytext", "text", "mediumtext", "longtext",
    "long",
}  # fmt: skip
_BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_TYPE_RE = re.compile(r"^\s*([a-z_][a-z0-9_]*(?:\s+[a-z_][a-z0-9_]*)*?)\s*(\([^)]*\))?\s*([a-z0-9_ ]*)$")


def _errno(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class _IntegerSpec(sa.types.Integer):
    """An integer type exactly as the user wrote it, so SQLAlchemy still emits AUTO_INCREMENT for it."""

    def __init__(self, spec: str) -> None:
        self.spec = spec


@compiles(_IntegerSpec)
def _compile_integer_spec(type_: _IntegerSpec, compiler: Any, **kw: Any) -> str:
    return type_.spec


@dataclass(frozen=True)
class _Object:
    """One thing ``install_triggers`` creates: a table (idempotent DDL) or a trigger (checked by name)."""

    kind: str
    name: str
    table: str
    body: str
    sql: str


class MySQLDialect(Dialect):
    name = "mysql"
    max_identifier_bytes = 64
    # index and constraint names are per table here: the shadow carries the original names
    names_constraints = False
    can_stack_triggers = True
    sqlglot_dialect = "mysql"
    text_type = "CHAR"
    # An UPDATE or DELETE of a row in the chunk being copied waits for that chunk (the share lock
    # blocks writes, not only deletes as PostgreSQL's can): short chunks keep that wait short.
    default_chunk_time = 0.1
    # One chunk at a time (default_copy_workers). A trial with two at once over disjoint key
    # ranges, each emptying only its own rows from the helper, copied 25 % faster here (1M rows),
    # but the application's own writes then met InnoDB deadlocks in the triggers (gap locks on the
    # shadow's key under REPEATABLE READ) in 1 of 12 test runs, against none in 12 with one chunk.

    supports_change_log = True
    indexes_change_log_keys = True
    replay_is_consistent = False
    #: log entries one replay transaction takes
    replay_batch = 5000

    # -- names -------------------------------------------------------------------------------

    @property
    def is_mariadb(self) -> bool:
        """MariaDB and MySQL share a driver but differ in DDL (ALGORITHM=INSTANT, sequences, the renamer's wait)."""
        return bool(getattr(self.sa_dialect, "is_mariadb", False))

    def shadow_index_name(self, table: str, index: str) -> str:
        return index

    def old_index_name(self, table: str, index: str) -> str:
        return index

    def shadow_name(self, table: str) -> str:
        # After the table's own name in byte order: the swap's RENAME then asks for the table's
        # metadata lock before the shadow's (``_swap_with_change_log`` says why that matters).
        return self.fit_name(f"{table}_ss_new")

    def helper_name(self, table: str) -> str:
        return self.fit_name(f"_{table}_ss_copy")

    # -- connections -------------------------------------------------------------------------

    def prepare_engine(self, engine: Engine) -> None:
        """Strict sql_mode on every session (invariant 8). Triggers keep the sql_mode of the session
        that creates them, so the dual-write triggers are strict even for a lax application."""
        modes = ", ".join(f"'{m}'" for m in STRICT_MODES)

        @event.listens_for(engine, "connect")
        def _session(dbapi_conn: Any, record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), {modes})")
            # READ COMMITTED: a chunk's share lock then covers the rows it reads and no gaps, so the
            # application can insert beside it. Statement-based binary logging refuses that level.
            cursor.execute(_BINLOG_SQL)
            if not _statement_binlog(*cursor.fetchone()):
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cursor.close()

        @event.listens_for(engine, "reset")
        def _forget_lock_timeout(dbapi_conn: Any, record: Any, reset_state: Any) -> None:
            # lock_timeout_sql sets a session value; a pooled connection must not carry it on
            cursor = dbapi_conn.cursor()
            cursor.execute("SET SESSION lock_wait_timeout = DEFAULT")
            cursor.close()

    @contextmanager
    def migration_lock(self, engine: Engine, table: str) -> Iterator[bool]:
        # GET_LOCK names are server-wide, so the database is part of the name; the lock belongs to
        # this connection's session and dies with it, so a crashed run never blocks its resume.
        with engine.connect() as conn:
            database = conn.exec_driver_sql("SELECT DATABASE()").scalar()
            digest = hashlib.sha1(f"{database}.{table}".encode()).hexdigest()
            name = f"shadowswap:{digest}"
            got = conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar() == 1
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
                    conn.commit()

    def lock_timeout_sql(self, milliseconds: int) -> list[str]:
        # lock_wait_timeout (metadata locks: triggers, RENAME, ALTER) counts whole seconds, and
        # MySQL's minimum is 1 (invariant 5: waiting long behind a lock is itself an outage).
        return [f"SET SESSION lock_wait_timeout = {max(1, math.ceil(milliseconds / 1000))}"]

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return _errno(exc) in (ER_LOCK_WAIT_TIMEOUT, ER_LOCK_NOWAIT)

    def is_retryable(self, exc: BaseException) -> bool:
        # a chunk that waited out innodb_lock_wait_timeout on an application's row lock is rolled
        # back whole, like a deadlock victim, and simply runs again
        return _errno(exc) in (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT)

    def is_data_error(self, exc: BaseException) -> bool:
        return _errno(exc) in DATA_ERRORS

    # -- strategy: what runs in place -----------------------------------------------------------
    #
    # Every in-place plan is ONE ``ALTER TABLE`` carrying an explicit algorithm clause: MySQL DDL is
    # not transactional, so two ALTERs could leave half a plan behind (and a lock-timeout retry
    # would rerun the half that was done). ``ALGORITHM=INSTANT`` when every change is
    # instant-capable; otherwise MariaDB's ``ALGORITHM=NOCOPY, LOCK=NONE`` (stricter than INPLACE:
    # it refuses a rebuild too, and still lets INSTANT operations happen instantly) or MySQL's
    # ``ALGORITHM=INPLACE, LOCK=NONE``. A server that would need more refuses the statement (1845,
    # 1846) and the table is unchanged; that refusal becomes a one-line error (instant_refusal).

    def _in_place_algorithm(self, operation: str) -> str | None:
        """How this server makes ``operation`` without copying the table: ``instant``, ``inplace``
        (no rebuild, writes go on), or None (only a copy: the shadow then)."""
        version = tuple(self.sa_dialect.server_version_info or (0,))
        if self.is_mariadb:
            if version < (10, 3):
                return None
            return {
                "add": "instant",  # 10.3: appended; 10.4: anywhere
                "drop": "instant" if version >= (10, 4) else None,
                "rename": "instant" if version >= (10, 5) else None,  # RENAME COLUMN: no restated definition
                "default": "instant",
                "widen": "instant" if version >= (10, 4) else None,
                "drop_index": "inplace",
            }.get(operation)
        if version < (8, 0):
            return None
        return {
            "add": "instant" if version >= (8, 0, 12) else None,  # appended; anywhere from 8.0.29
            "drop": "instant" if version >= (8, 0, 29) else None,
            "rename": "instant" if version >= (8, 0, 28) else "inplace",
            "default": "instant" if version >= (8, 0, 12) else "inplace",
            "widen": "inplace",  # metadata only, but not INSTANT on MySQL 8
            "drop_index": "inplace",
        }.get(operation)

    def _server(self) -> str:
        version = ".".join(str(v) for v in (self.sa_dialect.server_version_info or ())[:3])
        return f"{'MariaDB' if self.is_mariadb else 'MySQL'} {version}".strip()

    def _in_place(self, operation: str, why: str) -> tuple[bool, str]:
        algorithm = self._in_place_algorithm(operation)
        if algorithm is None:
            return False, f"{self._server()} cannot do this without copying the table"
        clause = "ALGORITHM=INSTANT" if algorithm == "instant" else "LOCK=NONE, no rebuild"
        return True, f"{why} ({clause})"

    def instant_reason(self, change: ChangeFacts) -> tuple[bool, str]:
        kind = change.kind
        if kind in ("add_index", "add_unique"):
            return False, "building an index reads the whole table; the shadow gets it online after the copy"
        if kind == "using" or change.has_using:
            return False, "recomputing values rewrites every row"
        if kind == "drop":
            return self._in_place("drop", "DROP COLUMN changes the data dictionary only")
        if kind == "rename":
            return self._in_place("rename", "RENAME COLUMN changes the data dictionary only")
        if kind == "drop_index":
            return self._in_place("drop_index", "dropping an index leaves the rows alone")
        if kind == "add":
            if not change.default_is_constant:
                return False, "a non-constant default is computed for every row"
            if change.new_nullable is False and change.default is None:
                return False, "a NOT NULL column without a default: the copy fills it explicitly"
            if not _plain_type(change.new_type or ""):
                return False, f"type {change.new_type!r} is more than a plain column type"
            return self._in_place("add", "the column is added in the data dictionary, existing rows untouched")
        if kind == "alter":
            reasons = []
            operations = []
            if change.new_nullable is not None and change.new_nullable != change.old_nullable:
                if change.new_nullable:
                    return False, "dropping NOT NULL rebuilds an InnoDB table"
                return False, "SET NOT NULL rebuilds the table and checks every row"
            if change.new_type is not None:
                widened, why = _widening(change.old_type or "", change.new_type)
                if not widened:
                    return False, why
                reasons.append(why)
                operations.append("widen")
            if change.default_changed:
                if not change.default_is_constant:
                    return False, "a non-constant default is not set in place here"
                reasons.append("a default applies to future inserts only")
                operations.append("default")
            for operation in operations:
                if self._in_place_algorithm(operation) is None:
                    return False, f"{self._server()} cannot do this without copying the table"
            instant = all(self._in_place_algorithm(o) == "instant" for o in operations)
            clause = "ALGORITHM=INSTANT" if instant else "LOCK=NONE, no rebuild"
            return True, f"{'; '.join(reasons) or 'nothing to rewrite'} ({clause})"
        return super().instant_reason(change)

    def instant_plan_notes(self) -> list[str]:
        return [
            "one ALTER TABLE with an explicit ALGORITHM clause: the server refuses a change it could only make "
            "by rebuilding the table, and nothing changes",
            "its metadata lock is waited for at most --lock-timeout (whole seconds), retried with backoff",
        ]

    def instant_statements(self, table: str, statements: list[str]) -> list[str]:
        """alembic's statements folded into one ``ALTER TABLE … , ALGORITHM=…`` (see above)."""
        quoted = self.unescape_percents(self.preparer.quote(table))
        clauses: list[tuple[str, str, str]] = []  # (operation, column it touches, clause)
        renames: dict[str, tuple[str, str]] = {}  # old name → (old as written, new as written)
        for stmt in statements:
            drop_index = re.fullmatch(rf"DROP INDEX ({_IDENT}) ON {re.escape(quoted)}", stmt)
            if drop_index:
                clauses.append(("drop_index", "", f"DROP INDEX {drop_index.group(1)}"))
                continue
            prefix = f"ALTER TABLE {quoted} "
            body = stmt[len(prefix) :]
            head = re.match(rf"(ADD COLUMN|DROP COLUMN|DROP INDEX|ALTER COLUMN|MODIFY|CHANGE) ({_IDENT}) ?", body)
            if not stmt.startswith(prefix) or head is None:
                raise _not_in_place(f"unexpected in-place statement {stmt!r}")
            verb, written, rest = head.group(1), head.group(2), body[head.end() :]
            if verb == "CHANGE":  # alembic's rename restates the column; RENAME COLUMN need not
                new = re.match(rf"({_IDENT}) ", rest)
                if new is None:
                    raise _not_in_place(f"unexpected in-place statement {stmt!r}")
                renames[_unquote(written)] = (written, new.group(1))
                continue
            operation = {
                "ADD COLUMN": "add",
                "DROP COLUMN": "drop",
                "DROP INDEX": "drop_index",
                "ALTER COLUMN": "default",
                "MODIFY": "widen",
            }[verb]
            clauses.append((operation, _unquote(written) if operation != "add" else "", body))
        for old, (old_written, new_written) in renames.items():
            touching = [i for i, (_, column, _) in enumerate(clauses) if column == old]
            if not touching:
                clauses.append(("rename", old, f"RENAME COLUMN {old_written} TO {new_written}"))
                continue
            operation, _, body = clauses[touching[0]]
            if len(touching) > 1 or operation != "widen":
                raise _not_in_place(
                    f"column {old!r} is renamed and its default changed in one plan, which one in-place ALTER "
                    "TABLE cannot do here (rename it in a plan of its own)"
                )
            # one clause per column: MODIFY old <definition> becomes CHANGE old new <definition>
            definition = body[len(f"MODIFY {old_written} ") :]
            clauses[touching[0]] = (operation, old, f"CHANGE {old_written} {new_written} {definition}")
        algorithms = {self._in_place_algorithm(operation) for operation, _, _ in clauses}
        if not clauses:
            return []
        if None in algorithms:
            raise _not_in_place(f"{self._server()} cannot make every change of this plan without a copy")
        if algorithms == {"instant"}:
            algorithm = "ALGORITHM=INSTANT"
        elif self.is_mariadb:
            algorithm = "ALGORITHM=NOCOPY, LOCK=NONE"
        else:
            algorithm = "ALGORITHM=INPLACE, LOCK=NONE"
        return [f"ALTER TABLE {quoted} {', '.join(body for _, _, body in clauses)}, {algorithm}"]

    def instant_refusal(self, exc: BaseException) -> str | None:
        if _errno(exc) not in (ER_ALTER_OPERATION_NOT_SUPPORTED, ER_ALTER_OPERATION_NOT_SUPPORTED_REASON):
            return None
        args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", exc), "args", ()))
        return str(args[1]).splitlines()[0] if len(args) > 1 else "the algorithm clause cannot be honoured"

    # -- reading -----------------------------------------------------------------------------

    def estimated_rows(self, conn: Connection, table: str) -> int:
        est = conn.execute(
            sa.text(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
            ),
            {"t": table},
        ).scalar()
        if not est:  # statistics not gathered yet
            return super().estimated_rows(conn, table)
        return int(est)

    def validate_type_sql(self, type_sql: str) -> str:
        # MySQL's CAST knows a handful of types, so ask the server to parse a column definition:
        # PREPARE checks the type (names, lengths, precisions, character sets) without creating
        # anything; the statement handle is replaced by the next check and ends with the session.
        literal = type_sql.replace("\\", "\\\\").replace("'", "''")
        return f"PREPARE _shadowswap_type_check FROM 'CREATE TEMPORARY TABLE _shadowswap_type_check (c {literal})'"

    def validate_default_sql(self, default: str, type_sql: str) -> str:
        # The same server-side parse as for a type: the default must be one expression a column of
        # that type accepts as its DEFAULT (a value of the wrong type is caught creating the shadow).
        column = f"c {type_sql} DEFAULT {default}".replace("\\", "\\\\").replace("'", "''")
        return f"PREPARE _shadowswap_type_check FROM 'CREATE TEMPORARY TABLE _shadowswap_type_check ({column})'"

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

    def _server_var(self, conn: Connection, name: str) -> Any:
        return conn.exec_driver_sql(f"SELECT @@{name}").scalar()

    def plan_extra(self, conn: Connection, reflection: Any) -> dict[str, Any]:
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
        mode = int(self._server_var(conn, "innodb_autoinc_lock_mode"))
        via_helper = bool(autoinc) and mode == 1
        return {
            "autoinc_column": autoinc[0] if autoinc else None,
            "autoinc_lock_mode": mode,
            "copy_via": "helper" if via_helper else "direct",
            "helper_table": helper if via_helper else None,
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

    # -- expressions -------------------------------------------------------------------------

    def cast_expression(self, column: str, type_sql: str) -> str:
        return self.cast_sql(self.column_reference(column), type_sql)

    def cast_sql(self, expression: str, type_sql: str) -> str:
        """The copy expression into ``type_sql``: MySQL converts a value when it stores it, and under
        strict sql_mode that conversion fails rather than truncates (invariant 8); a blocking ALTER
        converts the same way. A CAST is added only where it cannot lose anything (text, bytes):
        ``CAST(x AS CHAR(5))`` would truncate silently, the store into varchar(5) raises, and
        ``CAST(-1 AS UNSIGNED)`` wraps around where storing -1 into an unsigned column raises."""
        target = _lossless_cast(type_sql)
        # otherwise the bare value in parentheses: still a conversion, to the eye and to the cast check
        return f"CAST({expression} AS {target})" if target else f"({expression})"

    def cast_check_predicates(self, column: ColumnPlan, plain_cast: bool) -> tuple[str, str | None]:
        """MySQL's conversions warn instead of failing outside a write, so "the new column refuses
        the value" is spelled out for the types whose limits are known: NULL into NOT NULL, text or
        bytes longer than the column, a number out of range, text that is not a number."""
        stored = self.cast_sql(column.expression, column.new_type)
        fails = ["1 = 0"] if column.new_nullable else [f"({column.expression}) IS NULL"]
        source_is_text = _family(column.old_type or "") in ("text", "binary") if plain_cast else True
        fails += _refusals(stored, column.new_type, source_is_text)
        changes = None
        if plain_cast and column.source_column is not None and column.old_type:
            back = _as_stored(_as_stored(stored, column.new_type), column.old_type)
            src = self.column_reference(column.source_column)
            changes = f"NOT (BINARY CAST({back} AS CHAR) <=> BINARY CAST({src} AS CHAR))"
        return " OR ".join(f"({f})" for f in fails), changes

    def _trigger_value(self, plan: Plan, column: ColumnPlan, record: str) -> str:
        """``column``'s copy expression over a trigger's NEW/OLD row (invariant 1: the same expression).

        A one-row derived table per row is expensive here (MariaDB materializes it, on disk when a
        TEXT column is in it), so our own casts and plain columns read the record directly and a
        user's ``--using`` expression gets a derived table holding only the columns it mentions.
        """
        source = column.source_column
        if source is not None and column.expression == self.column_reference(source):
            return f"{record}.{self.q(source)}"
        if source is not None and column.expression == self.cast_expression(source, column.new_type):
            return self.cast_sql(f"{record}.{self.q(source)}", column.new_type)
        mentioned = [c for c in plan.source_columns if self._mentions(column.expression, c)]
        if not mentioned:  # a constant (an added column's value, say)
            return f"({column.expression})"
        cols = ", ".join(f"{record}.{self.q(c)} AS {self.q(c)}" for c in mentioned)
        return f"(SELECT {column.expression} FROM (SELECT {cols}) AS src)"

    def _mentions(self, expression: str, column: str) -> bool:
        text = expression.lower()
        if self.q(column).lower() in text:
            return True
        return re.search(rf"(?<![\w$]){re.escape(column.lower())}(?![\w$])", text) is not None

    # -- copy (invariants 2, 3, 4) -----------------------------------------------------------

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

    def copy_chunk_sql(self, plan: Plan, has_lo: bool) -> str:
        # LOCK IN SHARE MODE (MySQL 8 and MariaDB both take it): a DELETE or key change of a row in
        # the chunk waits until the chunk commits, so none can leave a ghost row behind (invariant 3).
        where = self.range_predicate(plan.primary_key, has_lo, "src.")
        table = self.q(plan.table)
        if plan.extra.get("change_log"):
            # Nothing else writes the shadow during the copy, and every change since this
            # statement's read view is in the log: a consistent read (READ COMMITTED), no locks.
            return (
                f"INSERT INTO {self.q(plan.shadow_table)} ({self.insert_columns(plan.columns)}) "
                f"SELECT {self.select_list(plan.columns)} FROM {table} AS src WHERE {where}"
            )
        if plan.extra.get("copy_via") == "helper":
            cols = ", ".join(self.q(c) for c in plan.source_columns)
            src_cols = ", ".join(f"src.{self.q(c)}" for c in plan.source_columns)
            return (
                f"INSERT INTO {self.q(plan.extra['helper_table'])} ({cols}) SELECT {src_cols} FROM {table} AS src "
                f"WHERE {where} LOCK IN SHARE MODE"
            )
        return (
            f"INSERT INTO {self.q(plan.shadow_table)} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {table} AS src WHERE {where} LOCK IN SHARE MODE "
            f"{self._copy_update(plan)}"
        )

    def begin_chunk(self, conn: Connection) -> None:
        self.run(conn, "SET @ss_skipped = 0")

    def finish_copy(self, conn: Connection, plan: Plan, result: Any) -> int:
        # With CLIENT_FOUND_ROWS (SQLAlchemy's default) a key the triggers already wrote counts as
        # one affected row, like an insert; the guard counted those, so subtract them.
        read = max(result.rowcount, 0)
        if plan.extra.get("copy_via") == "helper":
            self.run(conn, f"DELETE FROM {self.q(plan.extra['helper_table'])}")
        skipped = int(conn.exec_driver_sql("SELECT @ss_skipped").scalar() or 0)
        return read - skipped

    # -- change log (shadowswap/changelog.py) ------------------------------------------------

    def change_log_allowed(self, conn: Connection, reflection: Any) -> bool:
        # Under statement-based binary logging the sessions stay REPEATABLE READ, where a replay's
        # reads of the original would take next-key locks that the triggers' log inserts queue
        # behind; and an AUTO_INCREMENT column that is not the key's first column must lead a
        # unique key in CREATE TABLE, which the change log builds only after the copy.
        if _statement_binlog(*conn.exec_driver_sql(_BINLOG_SQL).one()):
            return False
        pk = list(reflection.primary_key.get("constrained_columns") or [])
        autoinc = [c["name"] for c in reflection.columns if c.get("autoincrement") is True]
        if autoinc and autoinc[0] != pk[0]:
            return False
        # a name shortened to fit may no longer sort after the table's (see shadow_name)
        table, shadow = reflection.table, self.shadow_name(reflection.table)
        spellings = [(shadow, table), (shadow.lower(), table.lower())]
        return all(f"{later}\0".encode() > f"{first}\0".encode() for later, first in spellings)

    def change_log_extra(self, extra: dict[str, Any]) -> dict[str, Any]:
        # the triggers write the log, so a chunk's AUTO-INC lock on the shadow queues nobody
        return {**extra, "copy_via": "direct", "helper_table": None}

    def log_sequence_column(self) -> sa.Column[Any]:
        return sa.Column(LOG_SEQUENCE, sa.BigInteger, primary_key=True, autoincrement=True)

    def unique_constraint_sql(self, shadow_table: str, index_sql: str, name: str, primary: bool = False) -> list[str]:
        return [index_sql]  # a unique index is the constraint here

    def _log_aliases(self, plan: Plan) -> tuple[str, str, str, str]:
        return self.q(plan.extra["change_log"]), self.q(plan.shadow_table), self.q(plan.table), self.q(LOG_SEQUENCE)

    def replay(self, engine: Engine, plan: Plan) -> int:
        """One batch of log entries; a duplicate is retried with the whole log (replay_is_consistent)."""
        limit: int | None = self.replay_batch
        attempts = 20
        for attempt in range(attempts):
            try:
                with engine.connect() as conn:
                    applied = self._replay_batch(conn, plan, limit)
                    conn.commit()
                    return applied
            except DBAPIError as exc:
                if attempt == attempts - 1:
                    raise
                if _errno(exc) == ER_DUP_ENTRY:
                    # A row this batch applied met a stale row whose own entry is later in the log
                    # (the one that moved the value away): the whole log takes it along.
                    limit = None
                elif not self.is_retryable(exc):
                    raise
        raise AssertionError("unreachable")

    def _replay_batch(self, conn: Connection, plan: Plan, limit: int | None) -> int:
        """Apply up to ``limit`` log entries in one transaction (the caller commits).

        Why it is exact without a snapshot: the entries are taken with a locking read, which waits
        for any uncommitted entry it meets, so every entry taken has committed, and with it the
        write it logs (the trigger runs in the writer's transaction). The shadow's rows of those
        keys are then replaced by ``f`` of the original's rows as a consistent read sees them
        after that, which includes those writes, and exactly the taken entries (by sequence
        number: one allocated earlier can still be uncommitted) are deleted in the same
        transaction. A write the read missed has an entry of its own, left for the next replay.
        So, as with PostgreSQL, a key with no entry has shadow = f(original) at any snapshot. No
        lock is taken on the original, so application writes never wait for a replay.
        """
        log_table, shadow, table, seq = self._log_aliases(plan)
        take = f"SELECT l.{seq} FROM {log_table} AS l ORDER BY l.{seq}"
        if limit is not None:
            take += f" LIMIT {int(limit)}"
        seqs = [int(r[0]) for r in self.run(conn, take + " FOR UPDATE")]
        if not seqs:
            return 0
        taken = f"l.{seq} IN ({', '.join(str(n) for n in seqs)})"
        pairs = zip(plan.shadow_primary_key, plan.primary_key, strict=True)
        matches = " AND ".join(f"dst.{self.q(c.name)} = l.{self.q(k)}" for c, k in pairs)
        src_key = ", ".join(f"src.{self.q(k)}" for k in plan.primary_key)
        log_key = ", ".join(f"l.{self.q(k)}" for k in plan.primary_key)
        for sql in (
            f"DELETE dst FROM {shadow} AS dst JOIN {log_table} AS l ON {matches} WHERE {taken}",
            f"INSERT INTO {shadow} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {table} AS src "
            f"WHERE ({src_key}) IN (SELECT {log_key} FROM {log_table} AS l WHERE {taken})",
            f"DELETE l FROM {log_table} AS l WHERE {taken}",
        ):
            conn.execute(self.statement(sql))
        return len(seqs)

    # -- DDL ---------------------------------------------------------------------------------

    def shadow_column(
        self, reflected: dict[str, Any], type_: sa.types.TypeEngine[Any], nullable: bool, default: str | None
    ) -> sa.Column[Any]:
        if reflected.get("autoincrement") is not True:
            return super().shadow_column(reflected, type_, nullable, default)
        # The shadow keeps AUTO_INCREMENT (and the counter, see shadow_table_options), so ids go on
        # after the swap; the copy never bulk-inserts into it (module docstring).
        spec = getattr(type_, "spec", None)
        if spec is not None:
            words = spec.lower().split("(")[0].split()
            if not words or words[0] not in _INTEGER_TYPES:
                raise UsageError(
                    f"column {reflected['name']!r} is AUTO_INCREMENT, so its new type must be an integer type",
                    hint="e.g. bigint or int unsigned",
                )
            type_ = _IntegerSpec(spec)
        return sa.Column(
            reflected["name"],
            type_,
            nullable=nullable,
            autoincrement=True,
            comment=reflected.get("comment"),
        )

    def create_index_sql(self, index: sa.Index, online: bool = True) -> str:
        # built while the triggers write the shadow: online, never blocking them (invariant 6)
        return f"{super().create_index_sql(index)} ALGORITHM=INPLACE LOCK=NONE"

    def build_index(self, engine: Engine, plan: Plan, index: IndexPlan) -> None:
        # The build itself lets writes through; it takes the shadow's metadata lock only briefly at
        # its start and end, and there it must not queue the triggers' writes (invariant 5).
        from shadowswap.retry import with_lock_retries

        def build() -> None:
            with engine.connect() as conn:
                if self.index_exists(conn, plan.shadow_table, index.shadow_name):
                    return
                for stmt in self.lock_timeout_sql(1000):
                    self.run(conn, stmt)
                try:
                    self.run(conn, index.create_sql)
                except DBAPIError as exc:
                    if _errno(exc) != ER_DUP_KEYNAME:  # finished by a run that was interrupted
                        raise

        with_lock_retries(self, f"build index {index.final_name}", build, retries=30)

    def indexes_together_sql(self, plan: Plan, statements: list[str]) -> list[str] | None:
        # One ALTER adds them all from one scan of the clustered index, as a DBA would.
        clauses = [_add_index_clause(sql) for sql in statements]
        if len(clauses) < 2 or any(c is None for c in clauses):
            return None
        return [c for c in clauses if c is not None]

    def build_indexes_together(self, engine: Engine, plan: Plan, names: list[str], clauses: list[str]) -> None:
        from shadowswap.retry import with_lock_retries

        def build() -> None:
            with engine.connect() as conn:
                existing = {ix["name"] for ix in sa.inspect(conn).get_indexes(plan.shadow_table)}
                missing = [clause for name, clause in zip(names, clauses, strict=True) if name not in existing]
                if not missing:
                    return  # built by a run that was interrupted after
                for stmt in self.lock_timeout_sql(1000):
                    self.run(conn, stmt)
                self.run(
                    conn, f"ALTER TABLE {self.q(plan.shadow_table)} {', '.join(missing)}, ALGORITHM=INPLACE, LOCK=NONE"
                )

        with_lock_retries(self, "build indexes", build, retries=30)

    def add_foreign_key_sql(self, constraint: sa.ForeignKeyConstraint) -> list[str]:
        raise UsageError(
            f"the table has a foreign key ({constraint.name}), which shadowswap does not migrate on MySQL yet",
            hint="InnoDB foreign key names are per database and cascaded changes do not fire triggers; drop the "
            "key before migrating and add it back after",
        )

    def _objects(self, plan: Plan) -> list[_Object]:
        """What ``install_triggers`` creates, in order: the copy helper, then the triggers DELETE,
        UPDATE, INSERT. MySQL DDL commits one statement at a time; in this order no write falls
        between two triggers unseen (a row inserted while only the UPDATE and DELETE triggers exist
        is in the table, and the copy, which starts after all three, takes it)."""
        table, shadow = self.q(plan.table), self.q(plan.shadow_table)
        names = dict(zip(("ins", "upd", "del"), plan.trigger_names, strict=True))
        if plan.extra.get("change_log"):
            return self._log_objects(plan, names)
        keys = plan.shadow_primary_key
        delete_where = " AND ".join(f"{shadow}.{self.q(c.name)} = {self._trigger_value(plan, c, 'OLD')}" for c in keys)
        delete = f"DELETE FROM {shadow} WHERE {delete_where}"
        upsert = self._insert_values(plan, "NEW", self._upsert_update(plan))
        key_changed = " AND ".join(f"OLD.{self.q(k)} <=> NEW.{self.q(k)}" for k in plan.primary_key)
        update = f"BEGIN\n  IF NOT ({key_changed}) THEN\n    {delete};\n  END IF;\n  {upsert};\nEND"
        bodies = [("del", "DELETE", delete), ("upd", "UPDATE", update), ("ins", "INSERT", upsert)]
        objects = []
        helper = plan.extra.get("helper_table")
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

    def _table_triggers(
        self, plan: Plan, names: dict[str, str], bodies: list[tuple[str, str, str]]
    ) -> list[_Object]:
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
        log_table = self.q(plan.extra["change_log"])
        columns = ", ".join(self.q(k) for k in plan.primary_key)

        def logged(record: str) -> str:
            values = ", ".join(f"{record}.{self.q(k)}" for k in plan.primary_key)
            return f"INSERT INTO {log_table} ({columns}) VALUES ({values})"

        key_changed = " AND ".join(f"OLD.{self.q(k)} <=> NEW.{self.q(k)}" for k in plan.primary_key)
        update = f"BEGIN\n  IF NOT ({key_changed}) THEN\n    {logged('OLD')};\n  END IF;\n  {logged('NEW')};\nEND"
        bodies = [("del", "DELETE", logged("OLD")), ("upd", "UPDATE", update), ("ins", "INSERT", logged("NEW"))]
        return self._table_triggers(plan, names, bodies)

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
        if plan.extra.get("helper_table"):
            stmts.append(self.drop_table_sql(plan.extra["helper_table"]))  # its trigger goes with it
        return stmts

    # -- swap (invariant 7) ------------------------------------------------------------------

    def swap_facts(self, conn: Connection, plan: Plan, reflection: Any) -> dict[str, Any]:
        return {}

    def plan_notes(self, plan: Plan) -> list[str]:
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

    def swap_sql(self, plan: Plan, reflected: dict[str, Any]) -> tuple[list[str], list[str]]:
        """One RENAME TABLE swaps both names atomically. The triggers move with the renamed table
        and are dropped after it: dropping them first would lose the writes in between."""
        t, s, o = self.q(plan.table), self.q(plan.shadow_table), self.q(plan.old_table)
        post = [f"DROP TRIGGER IF EXISTS {self.q(n)}" for n in plan.trigger_names]
        if plan.extra.get("helper_table"):
            post.append(self.drop_table_sql(plan.extra["helper_table"]))
        rename = f"RENAME TABLE {t} TO {o}, {s} TO {t}"
        if plan.extra.get("change_log"):
            post.append(self.drop_table_sql(plan.extra["change_log"]))
            return [self._swap_lock_sql(plan), rename, "UNLOCK TABLES"], post
        return [rename], post

    def _swap_lock_sql(self, plan: Plan) -> str:
        # every alias the replay uses must be locked under that alias too
        log_table, shadow, table, _seq = self._log_aliases(plan)
        return (
            f"LOCK TABLES {table} WRITE, {table} AS src WRITE, {shadow} WRITE, {shadow} AS dst WRITE, "
            f"{log_table} WRITE, {log_table} AS l WRITE"
        )

    def run_swap(
        self, engine: Engine, plan: Plan, lock_timeout_ms: int, in_swap: Callable[[Connection], None]
    ) -> float:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            renamed = inspector.has_table(plan.old_table) and not inspector.has_table(plan.shadow_table)
            held = 0.0
            keep_log = False
            if not renamed and plan.extra.get("change_log"):
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
                if keep_log and stmt == self.drop_table_sql(plan.extra["change_log"]):
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
                worker = threading.Thread(target=rename, name="shadowswap-rename", daemon=True)
                worker.start()
                if not self._await_queued(conn, renamer_id, worker):
                    # Not queued yet: it must not run after the unlock, behind the writes it lets in.
                    self.run(conn, f"KILL {renamer_id}")
                    worker.join()
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
                raise outcome["error"]  # type: ignore[misc]
        leftover = conn.execute(sa.text(f"SELECT COUNT(*) FROM {self.q(plan.extra['change_log'])}")).scalar()
        conn.commit()
        if leftover:
            log.error(
                "writes reached the old table after the swap's last replay; their keys are kept in the log",
                writes=leftover,
                log_table=plan.extra["change_log"],
                old_table=plan.old_table,
            )
        return held, bool(leftover)

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
        if not plan.extra.get("autoinc_column"):
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

    # -- verification (invariant 9) ----------------------------------------------------------

    def begin_snapshot(self, conn: Connection) -> None:
        self.run(conn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        self.run(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT")

    def _row_values(self, plan: Plan, source: bool) -> list[str]:
        """Each column as the shadow holds it: the original's side converts each changed value the
        way storing it in the new column did, so equal rows read equal."""
        values = []
        for c in plan.columns:
            if not source:
                values.append(f"src.{self.q(c.name)}")
            elif c.changed:
                values.append(_as_stored(c.expression, c.new_type))
            else:
                values.append(c.expression)
        return values

    def row_image(self, plan: Plan, source: bool) -> str:
        return ", ".join(self._row_values(plan, source))

    def checksum_sql(self, plan: Plan, source: bool, has_lo: bool) -> str:
        """COUNT and an order-free 64-bit XOR of per-row MD5s. Each row is spelled with QUOTE() per
        column: a quoted, escaped string or the bare word NULL, so neither NULLs nor separators
        inside values can make two different rows spell the same. (A length prefix per column and
        both MD5 halves through a derived table cost 2.2 times as much at 1M rows.)"""
        values = ", ".join(f"QUOTE({v})" for v in self._row_values(plan, source))
        row = f"MD5(CONVERT(CONCAT_WS(',', {values}) USING utf8mb4))"
        if source:
            table, keys = self.q(plan.table), plan.primary_key
        else:
            table, keys = self.q(plan.shadow_table), [c.name for c in plan.shadow_primary_key]
        where = self.range_predicate(keys, has_lo, "src.")
        folded = f"BIT_XOR(CAST(CONV(LEFT({row}, 16), 16, 10) AS UNSIGNED))"
        every = f"SELECT COUNT(*) AS n, {folded} AS h FROM {table} AS src WHERE {where}"
        if not plan.extra.get("change_log"):
            return every
        # Rows whose key is in the log are left out. A NOT EXISTS probe of the log for every row
        # costs a quarter more; instead the few logged rows are folded again, and XOR takes them out.
        key_names = plan.primary_key if source else [c.name for c in plan.shadow_primary_key]
        src_key = ", ".join(f"src.{self.q(k)}" for k in key_names)
        log_key = ", ".join(f"l.{self.q(k)}" for k in plan.primary_key)
        logged = f"{every} AND ({src_key}) IN (SELECT {log_key} FROM {self.q(plan.extra['change_log'])} AS l)"
        return f"SELECT a.n - b.n, a.h ^ b.h FROM ({every}) AS a, ({logged}) AS b"

    # -- throttling probes -------------------------------------------------------------------

    def replica_lag(self, conn: Connection) -> float:
        # A primary does not know how far its replicas are behind: each is asked (--replica URL).
        for statement in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):  # MySQL 8.4 knows only the first
            try:
                row = conn.exec_driver_sql(statement).mappings().first()
                break
            except DBAPIError:
                continue
        else:
            raise ValueError("cannot read the replication status (needs the REPLICATION CLIENT privilege)")
        if row is None:
            raise ValueError("this server is not a replica (SHOW REPLICA STATUS is empty)")
        lag = row.get("Seconds_Behind_Source", row.get("Seconds_Behind_Master"))
        if lag is None:
            raise ValueError("replication is not running on this replica")
        return float(lag)

    def server_load(self, conn: Connection, metric: str | None) -> float:
        # Threads_running by default (statements running right now, this probe included), or any
        # numeric global status variable named with --max-load NAME=N.
        name = metric or "Threads_running"
        if not re.fullmatch(r"[A-Za-z_]+", name):
            raise ValueError(f"{name!r} is not a global status variable")
        row = conn.execute(sa.text("SHOW GLOBAL STATUS LIKE :n"), {"n": name}).first()
        if row is None:
            raise ValueError(f"{name!r} is not a global status variable")
        value = float(row[1])
        return value - 1 if name.lower() == "threads_running" else value

    # -- backups -----------------------------------------------------------------------------

    def backup_table(self, engine: Engine, plan: Plan, directory: Path, stem: str) -> Backup:
        """mysqldump of the original in one consistent snapshot, without shadowswap's triggers. The
        password goes in an option file readable only by us (never an argument: ``ps`` shows those)."""
        from shadowswap.backup import Backup, run_tool

        url = engine.url
        tool = "mysqldump" if shutil.which("mysqldump") else "mariadb-dump"
        dump = directory / f"{stem}.sql"
        with tempfile.TemporaryDirectory(prefix="shadowswap-") as private:
            options = os.path.join(private, "client.cnf")
            with open(os.open(options, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
                f.write("[client]\n")
                if url.password is not None:
                    secret = str(url.password).replace("\\", "\\\\").replace('"', '\\"')
                    f.write(f'password="{secret}"\n')
            argv = [tool, f"--defaults-extra-file={options}"]  # must come first
            argv += [f"--host={url.host or 'localhost'}", f"--port={url.port or 3306}"]
            if url.username:
                argv.append(f"--user={url.username}")
            argv += [
                "--single-transaction",
                "--skip-triggers",
                "--no-tablespaces",
                f"--result-file={dump}",
                str(url.database),
                plan.table,
            ]
            run_tool(argv, {}, secret=None if url.password is None else str(url.password))
        return Backup(path=dump, restore=f"mysql DBNAME < {dump}")


_BINLOG_SQL = "SELECT @@log_bin, @@binlog_format"


def _statement_binlog(log_bin: Any, binlog_format: Any) -> bool:
    """Statement-based binary logging, which refuses READ COMMITTED writes."""
    return bool(int(log_bin or 0)) and str(binlog_format).upper() == "STATEMENT"


_IDENTIFIER = r"(?:`(?:[^`]|``)*`|[^\s`(]+)"
_CREATE_INDEX_RE = re.compile(
    rf"^CREATE (UNIQUE )?INDEX ({_IDENTIFIER}) ON {_IDENTIFIER} (\(.*\))(?: ALGORITHM=INPLACE LOCK=NONE)?$", re.DOTALL
)


def _add_index_clause(create_sql: str) -> str | None:
    """``ADD [UNIQUE] INDEX name (…)`` from our own ``CREATE INDEX`` (None: a form it does not know)."""
    match = _CREATE_INDEX_RE.match(create_sql.strip())
    if match is None:
        return None
    unique, name, columns = match.groups()
    return f"ADD {unique or ''}INDEX {name} {columns}"


def _split_type(type_sql: str) -> tuple[str, str, str]:
    match = _TYPE_RE.match(type_sql.lower())
    if not match:
        return "", "", ""
    return match.group(1), match.group(2) or "", match.group(3).strip()


def _charset(rest: str) -> str:
    match = re.search(r"(?:character\s+set|charset)\s+([a-z0-9_]+)", rest)
    return f" CHARACTER SET {match.group(1)}" if match else ""


def _lossless_cast(type_sql: str) -> str | None:
    name, _args, rest = _split_type(type_sql)
    first = name.split()[0] if name else ""
    if first in _TEXT_TYPES:
        return "CHAR" + _charset(f"{name} {rest}")
    if first in _BINARY_TYPES:
        return "BINARY"
    return None


def _as_stored(expression: str, type_sql: str) -> str:
    """``expression`` as a column of ``type_sql`` would give it back, for the checksum only."""
    name, args, rest = _split_type(type_sql)
    words = name.split()
    first = words[0] if words else ""
    if first in _INTEGER_TYPES and first != "serial":
        return f"CAST({expression} AS {'UNSIGNED' if 'unsigned' in rest.split() else 'SIGNED'})"
    if first in ("decimal", "numeric", "dec", "fixed"):
        return f"CAST({expression} AS DECIMAL{args.replace(' ', '')})"
    if first in ("double", "real") and not args:
        return f"CAST({expression} AS DOUBLE)"
    if first == "float" and not args:
        return f"CAST({expression} AS FLOAT)"
    if first == "date":
        return f"CAST({expression} AS DATE)"
    if first in ("datetime", "timestamp"):
        return f"CAST({expression} AS DATETIME{args})"
    if first == "time":
        return f"CAST({expression} AS TIME{args})"
    if first in ("char", "character", "nchar", "national") and "varying" not in words and "varchar" not in words:
        return f"RTRIM({expression})"  # CHAR(n) comes back without its trailing spaces
    return expression


def _family(type_sql: str) -> str:
    name, _args, _rest = _split_type(type_sql)
    first = name.split()[0] if name else ""
    if first in _INTEGER_TYPES:
        return "integer"
    if first in ("decimal", "numeric", "dec", "fixed"):
        return "decimal"
    if first in _TEXT_TYPES:
        return "text"
    if first in _BINARY_TYPES:
        return "binary"
    if first in ("date", "datetime", "timestamp", "time"):
        return "temporal"
    return "other"


_INT_RANGES = {
    "tinyint": 8, "int1": 8, "bool": 8, "boolean": 8, "smallint": 16, "int2": 16, "mediumint": 24, "int3": 24,
    "middleint": 24, "int": 32, "integer": 32, "int4": 32, "bigint": 64, "int8": 64,
}  # fmt: skip
_TEXT_BYTES = {"tinytext": 255, "text": 65_535, "mediumtext": 16_777_215, "tinyblob": 255, "blob": 65_535}
_NUMBER_TEXT = r"'^[[:space:]]*[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?[[:space:]]*$'"
_INTEGER_TEXT = r"'^[[:space:]]*[-+]?[0-9]+[[:space:]]*$'"


def _refusals(value: str, type_sql: str, source_is_text: bool) -> list[str]:
    """Conditions under which storing ``value`` into a ``type_sql`` column raises in strict mode."""
    name, args, rest = _split_type(type_sql)
    first = name.split()[0] if name else ""
    sizes = [int(n) for n in re.findall(r"\d+", args)]
    family = _family(type_sql)
    out = []
    if family == "text" and sizes and first not in _TEXT_BYTES:
        out.append(f"CHAR_LENGTH({value}) > {sizes[0]}")
    elif family == "text" and first in _TEXT_BYTES:
        out.append(f"LENGTH(CONVERT({value} USING utf8mb4)) > {_TEXT_BYTES[first]}")
    elif family == "binary" and sizes:
        out.append(f"LENGTH({value}) > {sizes[0]}")
    elif family == "integer" and first in _INT_RANGES:
        bits = _INT_RANGES[first]
        low, high = (0, 2**bits - 1) if "unsigned" in rest.split() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        if source_is_text:
            out.append(f"CAST({value} AS CHAR) NOT REGEXP {_INTEGER_TEXT}")
        out.append(f"ROUND(CAST({value} AS DECIMAL(65, 10))) NOT BETWEEN {low} AND {high}")
    elif family == "decimal":
        precision = sizes[0] if sizes else 10
        scale = sizes[1] if len(sizes) > 1 else 0
        if source_is_text:
            out.append(f"CAST({value} AS CHAR) NOT REGEXP {_NUMBER_TEXT}")
        out.append(f"ABS(ROUND(CAST({value} AS DECIMAL(65, 30)), {scale})) >= 1e{precision - scale}")
    elif family == "temporal" and source_is_text:
        target = {"date": "DATE", "time": "TIME"}.get(first, "DATETIME")
        out.append(f"{value} IS NOT NULL AND CAST({value} AS {target}) IS NULL")
    return out


# -- in place: which column changes InnoDB makes without a copy ----------------------------------------

_IDENT = r"`(?:[^`]|``)+`|[^\s`,]+"
# bytes per character of each character set (MySQL/MariaDB ``maxlen``); ``utf8`` is utf8mb3 on both
_MAX_BYTES_PER_CHAR = {
    "ascii": 1, "binary": 1, "latin1": 1, "latin2": 1, "latin5": 1, "latin7": 1, "cp1250": 1, "cp1251": 1,
    "cp1256": 1, "cp1257": 1, "cp850": 1, "cp852": 1, "cp866": 1, "dec8": 1, "hp8": 1, "koi8r": 1, "koi8u": 1,
    "swe7": 1, "hebrew": 1, "greek": 1, "tis620": 1, "armscii8": 1, "keybcs2": 1, "macce": 1, "macroman": 1,
    "geostd8": 1, "big5": 2, "sjis": 2, "cp932": 2, "euckr": 2, "gb2312": 2, "gbk": 2, "ucs2": 2, "ujis": 3,
    "eucjpms": 3, "utf8": 3, "utf8mb3": 3, "utf8mb4": 4, "utf16": 4, "utf16le": 4, "utf32": 4, "gb18030": 4,
}  # fmt: skip
# the longest index key InnoDB's DYNAMIC rows take: a column at most this long can carry a full index, and
# widening one past it would turn that index into a prefix index (a rebuild the server refuses here)
_INDEX_KEY_BYTES = 3072


def _unquote(identifier: str) -> str:
    if identifier.startswith("`") and identifier.endswith("`"):
        return identifier[1:-1].replace("``", "`")
    return identifier


def _not_in_place(message: str) -> UsageError:
    return UsageError(message, hint="plan with `--strategy shadow` to make these changes with the online copy")


def _plain_type(type_sql: str) -> bool:
    """A column type and nothing else (no AUTO_INCREMENT, key, generated expression, SERIAL)."""
    name, _args, rest = _split_type(type_sql)
    if not name or name.split()[0] == "serial":
        return False
    rest = re.sub(r"(?:character\s+set|charset|collate)\s+[a-z0-9_]+", "", rest)
    return not (set(rest.split()) - {"unsigned", "signed", "zerofill", "binary"})


def _string_spec(type_sql: str) -> tuple[str, int, str | None, str | None] | None:
    """``varchar(n) [CHARACTER SET cs] [COLLATE co]`` → (name, n, cs, co); None for anything else."""
    name, args, rest = _split_type(type_sql)
    if name not in ("varchar", "varbinary") or not re.fullmatch(r"\(\s*\d+\s*\)", args):
        return None
    charset = re.search(r"(?:character\s+set|charset)\s+([a-z0-9_]+)", rest)
    collation = re.search(r"collate\s+([a-z0-9_]+)", rest)
    leftover = re.sub(r"(?:character\s+set|charset|collate)\s+[a-z0-9_]+", "", rest).strip()
    if leftover:
        return None
    return (
        name,
        int(args.strip("() ")),
        charset.group(1) if charset else None,
        collation.group(1) if collation else None,
    )


def _widening(old_type: str, new_type: str) -> tuple[bool, str]:
    """Whether ``old_type`` → ``new_type`` changes only the data dictionary, and why.

    InnoDB extends a VARCHAR/VARBINARY in place while its maximum length in bytes stays in the same
    length-byte class (≤ 255 bytes: one length byte; more: two), in the same character set and
    collation. A column in the table's default character set is reflected without one, so its bytes
    per character are not known here: then it must hold for every character set (1 to 4 bytes)."""
    old, new = _string_spec(old_type), _string_spec(new_type)
    what = f"{old_type} → {new_type}"
    if old is None or new is None or old[0] != new[0]:
        return False, f"changing {what} rewrites the table"
    name, old_len, charset, collation = old
    _, new_len, new_charset, new_collation = new
    if (charset, collation) != (new_charset, new_collation):
        return False, f"{what} changes the character set or collation, which rewrites the column"
    if new_len < old_len:
        return False, f"{what} narrows the column: every row must be checked and rewritten"
    if new_len == old_len:
        return True, "the type does not change"
    if name == "varbinary":
        low = high = 1
    elif charset is None:
        low, high = 1, 4
    elif charset in _MAX_BYTES_PER_CHAR:
        low = high = _MAX_BYTES_PER_CHAR[charset]
    else:
        return False, f"character set {charset} is not known here"
    if not (new_len * high <= 255 or old_len * low > 255):
        if charset is None and name != "varbinary":
            return False, (
                f"{what} may cross 255 bytes (one length byte to two), which rewrites every row: the column "
                "has the table's default character set (1 to 4 bytes a character)"
            )
        return False, f"{what} crosses 255 bytes (one length byte to two), which rewrites every row"
    if not (new_len * high <= _INDEX_KEY_BYTES or old_len * low > _INDEX_KEY_BYTES):
        return False, f"{what} may outgrow an index on the column ({_INDEX_KEY_BYTES} bytes), which rebuilds it"
    return True, f"{what} keeps the same length bytes: only the data dictionary changes"
