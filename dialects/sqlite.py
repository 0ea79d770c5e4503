"""SQLite: WAL, one BEGIN IMMEDIATE a chunk, indexes before the copy, a one-transaction swap.

SQLite has one write lock for the whole file and no lock queue: a transaction holding it stalls
every writer, a connection waiting for it stalls nobody. So everything here is about holding the
write lock briefly and giving it back often: each chunk is a short ``BEGIN IMMEDIATE`` transaction
followed by a pause as long as the chunk, in which the application's writers (polling from their
busy handler) get their turn.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from shadowswap.dialects.base import Dialect
from shadowswap.errors import BackupFailed, ShadowswapError, UsageError

if TYPE_CHECKING:
    from shadowswap.backup import Backup
    from shadowswap.plan import IndexPlan, Plan
    from shadowswap.strategy import ChangeFacts

log = structlog.get_logger("shadowswap.sqlite")

# The planner's reflection skips expression indexes with this warning; on SQLite the shadow's indexes
# come from the stored CREATE INDEX statements instead (shadow_indexes), so none is skipped.
warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")

#: UPSERT (3.24) and PRAGMA legacy_alter_table with the rename semantics of 3.26
MIN_VERSION = (3, 26, 0)
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_TOOBIG = 18
SQLITE_CONSTRAINT = 19
SQLITE_MISMATCH = 20
#: marks the error a copy expression raises for a value that does not fit its new type
DOES_NOT_FIT = "shadowswap: value"


def _error_code(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def literal(text: str) -> str:
    """An SQL string literal (for sqlite_master and sqlite_sequence, which hold names as text)."""
    return "'" + text.replace("'", "''") + "'"


_NUMERIC_AFFINITY_NAMES = {
    "NUMERIC",
    "DECIMAL",
    "BOOLEAN",
    "BOOL",
    "DATE",
    "DATETIME",
    "TIMESTAMP",
    "TIME",
    "NUMBER",
    "MONEY",
    "JSON",
}


def affinity(type_sql: str) -> str:
    """SQLite's column affinity of a declared type (the rules of its datatype3 page, in order)."""
    t = type_sql.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t.strip():
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def _identifier_length(text: str) -> int:
    """Length of the SQL identifier token at the start of ``text`` (quoted, bracketed or bare)."""
    closers = {'"': '"', "`": "`", "'": "'", "[": "]"}
    if text[:1] in closers:
        close = closers[text[0]]
        i = 1
        while i < len(text):
            if text[i] == close:
                if close != "]" and text[i + 1 : i + 2] == close:  # a doubled quote inside the name
                    i += 2
                    continue
                return i + 1
            i += 1
        raise ValueError(f"unterminated identifier in {text[:60]!r}")
    bare = re.match(r"[\w$\x80-\U0010ffff]+", text)
    if not bare:
        raise ValueError(f"no identifier at {text[:60]!r}")
    return bare.end()


_INDEX_HEAD = re.compile(r"CREATE(?: UNIQUE)? INDEX ")


def index_name_token(sql: str) -> str:
    """The head of a stored ``CREATE [UNIQUE] INDEX name …`` up to the end of the name as written.

    SQLite stores an index's SQL as ``CREATE[ UNIQUE] INDEX `` followed by the statement's text
    from the name token on, so the name is the first token after that prefix.
    """
    match = _INDEX_HEAD.match(sql)
    if not match:
        raise ValueError(f"not a stored CREATE INDEX statement: {sql[:60]!r}")
    return sql[: match.end() + _identifier_length(sql[match.end() :])]


def index_body(sql: str) -> str:
    """What follows ``ON table`` in a stored CREATE INDEX: the columns, expressions, collations,
    sort orders and WHERE clause exactly as the user wrote them."""
    rest = sql[len(index_name_token(sql)) :]
    on = re.match(r"\s+ON\s+", rest, re.I)
    if not on:
        raise ValueError(f"no ON clause in {sql[:60]!r}")
    rest = rest[on.end() :]
    return rest[_identifier_length(rest) :]


class SQLiteDialect(Dialect):
    name = "sqlite"
    #: SQLite has no identifier limit; this only keeps generated names readable
    max_identifier_bytes = 255
    #: an index build holds the only write lock: build them on the empty shadow (invariant 6)
    build_indexes_before_copy = True
    #: constraint names are labels inside CREATE TABLE, not schema objects: the shadow keeps them
    names_constraints = False
    #: SQLite cannot add a constraint to an existing table: foreign keys are created with the shadow
    foreign_keys_in_create_table = True
    #: chunk plus the pause after it; the application's writes wait at most about half of this
    default_chunk_time = 0.05
    #: how long shadowswap's own connections wait for the write lock outside the swap
    busy_timeout_ms = 5000
    #: sqlglot reads --ddl and --using expressions in SQLite's syntax
    sqlglot_dialect = "sqlite"
    #: pause after a chunk, as a multiple of how long it held the write lock, within these bounds
    yield_ratio = 1.0
    min_yield_seconds = 0.025
    max_yield_seconds = 0.5

    def __init__(self, sa_dialect: sa.engine.Dialect) -> None:
        super().__init__(sa_dialect)
        if sqlite3.sqlite_version_info < MIN_VERSION:
            raise UsageError(
                f"SQLite {sqlite3.sqlite_version} is too old for shadowswap",
                hint="SQLite 3.26 or later is needed (UPSERT and ALTER TABLE RENAME semantics)",
            )
        self._chunk_locked_at: float | None = None

    # -- connections -------------------------------------------------------------------------

    def prepare_engine(self, engine: Engine) -> None:
        """WAL, a busy timeout and real transactions on every connection shadowswap opens.

        sqlite3's legacy transaction handling begins a transaction only before INSERT/UPDATE/
        DELETE, so a chunk's bound query and its insert would not share one. The driver's own
        BEGIN is switched off and a BEGIN is sent before the first statement of every SQLAlchemy
        transaction instead (lazily, so that ``begin_chunk`` and the strong-lock statements can
        open theirs with ``BEGIN IMMEDIATE``).
        """
        busy = int(self.busy_timeout_ms)
        read_only = self.read_only

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute(f"PRAGMA busy_timeout = {busy}")
            if not read_only:  # journal_mode is stored in the file: a read-only command must not switch it
                dbapi_connection.execute("PRAGMA journal_mode = WAL").fetchall()
            # No fsync at COMMIT (only at checkpoints), so a chunk's hold on the write lock is not
            # stretched by the disk. Still consistent: a power cut loses the last chunks together
            # with their checkpoint row, and the resume copies them again.
            dbapi_connection.execute("PRAGMA synchronous = NORMAL")

        @event.listens_for(engine, "checkin")
        def _checkin(dbapi_connection: Any, _record: Any) -> None:
            # lock_timeout_sql and run_swap shorten the wait for one transaction only
            if dbapi_connection is not None:  # None once invalidated
                dbapi_connection.execute(f"PRAGMA busy_timeout = {busy}")

        @event.listens_for(engine, "before_cursor_execute")
        def _begin(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
            raw = conn.connection.dbapi_connection
            if raw is None or raw.in_transaction or not conn.in_transaction():
                return
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return
            head = statement.lstrip()[:8].upper()
            if head.startswith(("BEGIN", "PRAGMA", "COMMIT", "END", "ROLLBACK")):
                return
            raw.execute("BEGIN")

    @contextmanager
    def migration_lock(self, engine: Engine, table: str) -> Iterator[bool]:
        """An OS lock on a file beside the database: the kernel releases it when the process dies,
        so a killed run never leaves the table locked against its resume."""
        path = self._lock_path(engine, table)
        if path is None:  # an in-memory database lives in this process only
            yield True
            return
        fd = _try_lock_file(path)
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            _release_lock_file(path, fd)

    def _lock_path(self, engine: Engine, table: str) -> Path | None:
        database = engine.url.database or ""
        if engine.url.query.get("uri") in ("true", "1") or database.startswith("file:"):
            parsed = urlparse(database)
            if "mode=memory" in parsed.query:
                return None
            database = parsed.path
        if database in ("", ":memory:"):
            return None
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", table)[:40]
        tag = hashlib.sha1(table.encode()).hexdigest()[:8]
        return Path(f"{database}.shadowswap-{safe}-{tag}.lock")

    def lock_timeout_sql(self, milliseconds: int) -> list[str]:
        # SQLite's one strong lock is the write lock. Wait for it at most this long, and take it
        # up front: a transaction that reads first and writes later cannot wait for the upgrade,
        # it fails at once when another writer committed in between (invariant 5).
        return [f"PRAGMA busy_timeout = {int(milliseconds)}", "BEGIN IMMEDIATE"]

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return _error_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)

    def is_retryable(self, exc: BaseException) -> bool:
        return _error_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)

    def is_data_error(self, exc: BaseException) -> bool:
        if _error_code(exc) in (SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_TOOBIG):
            return True
        return DOES_NOT_FIT in str(getattr(exc, "orig", exc))

    # -- reading -----------------------------------------------------------------------------

    def existing_triggers(self, conn: Connection, table: str) -> list[str]:
        rows = conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t ORDER BY name"),
            {"t": table},
        )
        return [r[0] for r in rows]

    def _table_sql(self, conn: Connection, table: str) -> str:
        sql = conn.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
        ).scalar()
        return str(sql or "")

    def shadow_table_options(self, conn: Connection, table: str) -> dict[str, Any]:
        """What reflection does not carry over: AUTOINCREMENT, WITHOUT ROWID, STRICT."""
        options = dict(sa.inspect(conn).get_table_options(table))
        # AUTOINCREMENT is a keyword of the column definition; the reflected columns lose it
        if re.search(r"\bAUTOINCREMENT\b", _strip_literals(self._table_sql(conn, table)), re.I):
            options["sqlite_autoincrement"] = True
        return options

    def _original_indexes(self, conn: Connection, table: str) -> dict[str, str]:
        """Name → stored SQL of the table's own indexes (not the automatic ones behind UNIQUE/PK)."""
        rows = conn.execute(
            sa.text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL "
                "ORDER BY rowid"
            ),
            {"t": table},
        )
        return {r[0]: r[1] for r in rows}

    def unreflected_indexes(self, conn: Connection, table: str) -> dict[str, str]:
        # SQLAlchemy's reflection skips expression indexes; their stored SQL is the definition
        seen = {ix["name"] for ix in sa.inspect(conn).get_indexes(table)}
        return {name: sql for name, sql in self._original_indexes(conn, table).items() if name not in seen}

    def shadow_indexes(
        self, conn: Connection, table: str, shadow: str, planned: list[IndexPlan], renamed: Sequence[str] = ()
    ) -> list[IndexPlan]:
        """Indexes copied from their stored SQL, not from reflection.

        SQLAlchemy's reflection skips expression indexes and drops DESC and COLLATE from index
        columns; the stored CREATE INDEX keeps everything, so the shadow's index is that
        statement with the name and the table replaced.
        """
        from shadowswap.plan import IndexPlan
        from shadowswap.planner import mentions

        # The plan may drop some. Reflection does not see expression indexes (so they cannot be
        # named in --drop-index either): keep every stored index but the ones the plan left out.
        dropped = {ix["name"] for ix in sa.inspect(conn).get_indexes(table)} - {p.final_name for p in planned}
        by_name = {p.final_name: p for p in planned}
        out = []
        for name, sql in self._original_indexes(conn, table).items():
            if name in dropped:
                continue
            if mentions(index_body(sql), renamed):
                # the stored SQL names the old column; the planner refused expression indexes over it
                if name in by_name:
                    out.append(by_name[name])
                continue
            unique = sql.startswith("CREATE UNIQUE INDEX ")
            prefix = "CREATE UNIQUE INDEX " if unique else "CREATE INDEX "
            shadow_name = self.shadow_index_name(table, name)
            out.append(
                IndexPlan(
                    shadow_name=shadow_name,
                    final_name=name,
                    old_name=self.old_index_name(table, name),
                    create_sql=f"{prefix}{self.q(shadow_name)} ON {self.q(shadow)}{index_body(sql)}",
                    unique=unique,
                )
            )
        return out

    def validate_type_sql(self, type_sql: str) -> str:
        """SQLite accepts any type name, so a typo (``varchr(20)``) would silently get NUMERIC
        affinity. Names that reach that fallback must be numeric or date words SQLite users mean."""
        if affinity(type_sql) == "NUMERIC":
            head = type_sql.split("(")[0].strip().upper()
            if head not in _NUMERIC_AFFINITY_NAMES:
                from shadowswap.errors import UsageError

                raise UsageError(
                    f"invalid type {type_sql!r}: SQLite would store it with NUMERIC affinity, "
                    "which is rarely what a typo meant",
                    hint="use a type SQLite recognises: integer, text, varchar(n), real, blob, numeric, "
                    "decimal(p,s), boolean, date, datetime",
                )
        return super().validate_type_sql(type_sql)

    # -- expressions -------------------------------------------------------------------------

    def cast_expression(self, column: str, type_sql: str) -> str:
        """The value SQLite would store in a column of the new type, or an error if it would not fit.

        A SQLite CAST never fails: CAST('abc' AS INTEGER) is 0 and CAST('2024-01-02' AS DATETIME)
        is 2024. So the expression converts the way the new column's affinity would, and raises
        where the user asked for a number the value is not (invariant 8). SQLite has no way to
        raise an error from an expression outside a trigger except a failing built-in; json_extract
        with an invalid path is used, and its message names the value.
        """
        x = self.column_reference(column)
        kind = affinity(type_sql)
        fail = (
            f"json_extract('{{}}', '{DOES_NOT_FIT} ' || substr(quote({x}), 1, 40) || "
            f"{literal(' of column ' + column + ' does not fit ' + type_sql)})"
        )
        if kind == "TEXT":
            return f"CASE WHEN typeof({x}) IN ('integer', 'real') THEN CAST({x} AS TEXT) ELSE {x} END"
        if kind in ("INTEGER", "REAL"):
            # the comparison applies numeric affinity to x: '12' = 12 holds, 'abc' = 0 and 12.5 = 12 do not
            return f"CASE WHEN {x} IS NULL OR {x} = CAST({x} AS {kind}) THEN CAST({x} AS {kind}) ELSE {fail} END"
        if kind == "NUMERIC":
            if re.search(r"DEC|NUM", type_sql, re.I):
                return f"CASE WHEN {x} IS NULL OR {x} = CAST({x} AS NUMERIC) THEN CAST({x} AS NUMERIC) ELSE {fail} END"
            # DATE, DATETIME, BOOLEAN: numeric affinity keeps text that is not a number as text
            return f"CASE WHEN {x} = CAST({x} AS NUMERIC) THEN CAST({x} AS NUMERIC) ELSE {x} END"
        return x

    def instant_reason(self, change: ChangeFacts) -> tuple[bool, str]:
        """What SQLite's ALTER TABLE does by editing the schema alone, without touching a row.

        Everything else (types, nullability, defaults, dropping a column: SQLite 3.35's DROP
        COLUMN rewrites every row) takes the shadow copy."""
        if change.kind == "add" and not change.has_using:
            if change.default is None:
                return True, "ADD COLUMN edits the stored CREATE TABLE only; existing rows read NULL"
            if change.default_is_constant:
                return True, "ADD COLUMN edits the stored CREATE TABLE only; existing rows read the constant default"
            return False, "SQLite adds a column in place only with a constant default"
        if change.kind == "rename":
            return True, "RENAME COLUMN edits the schema, and the indexes, triggers and views that name the column"
        if change.kind == "drop_index" and not change.unique:
            return True, "DROP INDEX frees the index's pages without touching the table"
        return super().instant_reason(change)

    def instant_plan_notes(self) -> list[str]:
        return [
            "the ALTERs run in one BEGIN IMMEDIATE transaction, waiting at most --lock-timeout for the write "
            "lock, retried with backoff; they edit the schema only"
        ]

    def narrowing_reason(self, column: str, old_type: str | None, new_type: str) -> str | None:
        # A declared length or scale is only a name here: values are stored whole, and the guarded
        # casts refuse what does not convert at all, so no type change loses data.
        return None

    def copy_chunk_sql(self, plan: Plan, has_lo: bool) -> str:
        # One writer at a time: inside the chunk's BEGIN IMMEDIATE no delete can slip between the
        # read and the insert (invariant 3). ON CONFLICT (K) DO NOTHING skips exactly the rows the
        # triggers already wrote; INSERT OR IGNORE would also drop NOT NULL/CHECK failures (invariant 2).
        pk_shadow = ", ".join(self.q(c.name) for c in plan.shadow_primary_key)
        return (
            f"INSERT INTO {self.q(plan.shadow_table)} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {self.q(plan.table)} AS src "
            f"WHERE {self.range_predicate(plan.primary_key, has_lo, 'src.')} "
            f"ON CONFLICT ({pk_shadow}) DO NOTHING"
        )

    def begin_chunk(self, conn: Connection) -> None:
        """Checkpoint, leave the write lock free for a moment, then take it for the next chunk.

        SQLite's lock is not fair: a writer waiting in its busy handler polls it now and then (at
        most 25 ms apart in its first 100 ms of waiting with SQLite's default handler), and a copier
        that starts the next chunk right after COMMIT can win every time. The pause after a chunk is
        ``yield_ratio`` times as long as the chunk held the lock, at least ``min_yield_seconds``.

        The WAL is checkpointed here, while the lock is free, so that the application's commit that
        crosses wal_autocheckpoint does not pay for copying the chunks' pages into the database.
        """
        started = time.monotonic()
        if self._chunk_locked_at is not None:
            held = started - self._chunk_locked_at
            if held < 2 * self.max_yield_seconds:  # else a new run: nobody is waiting on us
                self.run(conn, "PRAGMA wal_checkpoint(PASSIVE)")
                pause = min(max(held * self.yield_ratio, self.min_yield_seconds), self.max_yield_seconds)
                remaining = pause - (time.monotonic() - started)
                if remaining > 0:
                    time.sleep(remaining)
        self.run(conn, "BEGIN IMMEDIATE")
        self._chunk_locked_at = time.monotonic()

    # -- DDL ---------------------------------------------------------------------------------

    def _delete_where(self, plan: Plan, record: str) -> str:
        parts = []
        for c in plan.shadow_primary_key:
            source = c.source_column or c.name
            if c.expression != self.column_reference(source):
                parts.append(f"{self.q(c.name)} = (SELECT {c.expression} FROM {self.row_source(plan, record)})")
            else:
                parts.append(f"{self.q(c.name)} = {record}.{self.q(source)}")
        return " AND ".join(parts)

    def trigger_ddl(self, plan: Plan) -> list[str]:
        shadow = self.q(plan.shadow_table)
        table = self.q(plan.table)
        pk_shadow = plan.shadow_primary_key
        non_key = [c for c in plan.columns if c not in pk_shadow]
        conflict = ", ".join(self.q(c.name) for c in pk_shadow)
        if non_key:
            on_conflict = "DO UPDATE SET " + ", ".join(f"{self.q(c.name)} = excluded.{self.q(c.name)}" for c in non_key)
        else:
            on_conflict = "DO NOTHING"
        # `WHERE true`: without a WHERE, SQLite reads the ON of ON CONFLICT as a join constraint
        upsert = (
            f"INSERT INTO {shadow} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {self.row_source(plan, 'NEW')} WHERE true "
            f"ON CONFLICT ({conflict}) {on_conflict};"
        )
        key_changed = " OR ".join(f"OLD.{self.q(k)} IS NOT NEW.{self.q(k)}" for k in plan.primary_key)
        names = dict(zip(("ins", "upd", "del"), plan.trigger_names, strict=True))
        return [
            f"CREATE TRIGGER {self.q(names['ins'])} AFTER INSERT ON {table} FOR EACH ROW BEGIN\n  {upsert}\nEND",
            f"CREATE TRIGGER {self.q(names['upd'])} AFTER UPDATE ON {table} FOR EACH ROW BEGIN\n"
            f"  DELETE FROM {shadow} WHERE ({key_changed}) AND {self._delete_where(plan, 'OLD')};\n"
            f"  {upsert}\nEND",
            f"CREATE TRIGGER {self.q(names['del'])} AFTER DELETE ON {table} FOR EACH ROW BEGIN\n"
            f"  DELETE FROM {shadow} WHERE {self._delete_where(plan, 'OLD')};\nEND",
        ]

    def add_foreign_key_sql(self, constraint: sa.ForeignKeyConstraint) -> list[str]:
        # none: the constraint stays in the shadow's CREATE TABLE (an AddConstraint would take it out)
        return []

    def build_index(self, engine: Engine, plan: Plan, index: IndexPlan) -> None:
        # Built while the shadow is empty, so the write lock is held for an instant (invariant 6).
        with engine.begin() as conn:
            for stmt in self.lock_timeout_sql(self.busy_timeout_ms):
                self.run(conn, stmt)
            exists = conn.execute(
                sa.text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :n"), {"n": index.shadow_name}
            ).first()
            if exists is None:
                self.run(conn, index.create_sql)

    # -- swap (invariant 7) ------------------------------------------------------------------

    def swap_facts(self, conn: Connection, plan: Plan, reflection: Any) -> dict[str, Any]:
        table_sql = _strip_literals(self._table_sql(conn, plan.table))
        if re.search(r"\bCOLLATE\b", table_sql, re.I):
            raise UsageError(
                f"table {plan.table!r} declares a COLLATE, which shadowswap cannot carry to the new table on SQLite yet"
            )
        self._check_foreign_key_actions(conn, plan.table, reflection.foreign_keys)
        return self._live_facts(conn, plan)

    def _check_foreign_key_actions(self, conn: Connection, table: str, reflected: list[dict[str, Any]]) -> None:
        """SQLAlchemy reads ON DELETE/ON UPDATE only from table-level FOREIGN KEY clauses; refuse
        rather than let a column-level `REFERENCES … ON DELETE CASCADE` lose its action."""
        groups: dict[int, dict[str, Any]] = {}
        for row in self.run(conn, f"PRAGMA foreign_key_list({self.q(table)})"):
            group = groups.setdefault(row[0], {"columns": [], "onupdate": row[5], "ondelete": row[6]})
            group["columns"].append(row[3])
        options = {tuple(fk["constrained_columns"]): fk.get("options") or {} for fk in reflected}
        for group in groups.values():
            kept = options.get(tuple(group["columns"]), {})
            for key, clause in (("onupdate", "ON UPDATE"), ("ondelete", "ON DELETE")):
                action = str(group[key]).upper()
                if action != "NO ACTION" and str(kept.get(key) or "").upper() != action:
                    raise UsageError(
                        f"the foreign key of {table}.{', '.join(group['columns'])} has {clause} {action}, which "
                        "shadowswap cannot carry to the new table on SQLite yet",
                    )

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
            from shadowswap.errors import StalePlan

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
                re.search(r"\bAUTOINCREMENT\b", _strip_literals(self._table_sql(conn, plan.table)), re.I)
            ),
            "rename_indexes_in_schema": self._can_write_schema(conn),
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
            "BEGIN IMMEDIATE",
            # Modern ALTER TABLE RENAME rewrites every view and trigger that names the table to the
            # new name, which would leave them on the old table. Legacy mode renames the table
            # alone, so views and other tables' triggers keep meaning `products`: the new table.
            "PRAGMA legacy_alter_table = ON",
            *[f"DROP TRIGGER IF EXISTS {self.q(n)}" for n in plan.trigger_names],
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
                for stmt in self.lock_timeout_sql(lock_timeout_ms):
                    self.run(conn, stmt)
                locked_at = time.perf_counter()
                # rebuilt from what is there now: a trigger added since planning moves along too
                stmts, _post = self.swap_sql(plan, self._live_facts(conn, plan))
                for stmt in stmts[1:]:
                    result = self.run(conn, stmt)
                    if stmt.startswith("UPDATE sqlite_master") and result.rowcount != 1:
                        raise ShadowswapError(
                            f"the swap could not rename an index of {plan.table!r} ({stmt[:120]}…)",
                            hint="nothing was swapped; run `shadowswap execute` again or `shadowswap abort`",
                        )
                in_swap(conn)  # the phase is recorded in the swap's own transaction
            held = time.perf_counter() - locked_at
        finally:
            # This connection's own schema cache predates the sqlite_master edits, and its pragmas
            # were changed for the swap: retire it rather than return it to the pool.
            conn.invalidate()
            conn.close()
        return held

    def plan_notes(self, plan: Plan) -> list[str]:
        return [
            "secondary indexes are built on the empty shadow before the copy (a SQLite index build holds the "
            "write lock)",
            "each chunk holds the database's write lock for about half of --chunk-time, then leaves it free "
            "as long again",
            "the swap is one BEGIN IMMEDIATE transaction of a few milliseconds; views and triggers that name "
            "the table follow the new table",
        ]

    # -- backups (--backup DIR) ------------------------------------------------------------

    def backup_table(self, engine: Engine, plan: Plan, directory: Path, stem: str) -> Backup:
        """SQLite's online backup API copies the whole database file in one step: one read snapshot,
        which in WAL mode holds up no writer. The copy is then made what the application knew before
        the migration: shadowswap's triggers and shadow dropped, the migration marked aborted in it."""
        from shadowswap import state
        from shadowswap.backup import Backup

        if self._lock_path(engine, plan.table) is None:
            raise BackupFailed("an in-memory database has no file to back up")
        target = directory / f"{stem}.sqlite3"
        copy = sqlite3.connect(target, isolation_level=None)
        source = engine.raw_connection()
        try:
            source.driver_connection.backup(copy)  # type: ignore[union-attr]
            copy.execute("BEGIN")
            for stmt in [*plan.drop_trigger_ddl, self.drop_table_sql(plan.shadow_table)]:
                copy.execute(stmt)
            copy.execute(
                f"UPDATE {self.q(state.STATE_TABLE)} SET phase = ?, waiting = NULL, error = ? "
                f"WHERE table_name = ? AND phase NOT IN ({', '.join('?' for _ in state.FINISHED)})",
                (
                    state.ABORTED,
                    "this is the backup taken before the swap; the migration went on in the live database",
                    plan.table,
                    *sorted(state.FINISHED),
                ),
            )
            copy.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BackupFailed(f"the SQLite backup failed: {exc}") from None
        finally:
            source.close()
            copy.close()
        return Backup(
            path=target,
            restore=f"stop the application, then copy {target} over the database file (and delete its -wal and "
            "-shm files); it holds the whole database",
        )

    # -- verification (invariant 9) ----------------------------------------------------------

    def begin_snapshot(self, conn: Connection) -> None:
        # A read transaction in WAL mode: both sides are read from one snapshot.
        self.run(conn, "BEGIN")

    def checksum_sql(self, plan: Plan, source: bool, has_lo: bool) -> str:
        """(rows, rows) of the original's range; (rows, rows matching an original row) of the shadow's.

        SQLite has no md5, and hashing values would also have to mimic how a column's affinity
        converts what is stored (12.0 is stored as 12 in a NUMERIC column, 12 as '12' in a TEXT
        one). A join compares like SQLite itself does: S.c IS f(T) applies the shadow column's
        affinity to the copy expression's value, exactly as storing it did, and COLLATE BINARY keeps
        'A' and 'a' apart. The two tuples are equal only if every original row has its one
        identical row in the shadow and the shadow holds nothing else in the range.
        """
        source_range = self.range_predicate(plan.primary_key, has_lo, "src.")
        if source:
            return f"SELECT count(*), count(*) FROM {self.q(plan.table)} AS src WHERE {source_range}"
        shadow_pk = [c.name for c in plan.shadow_primary_key]
        same = " AND ".join(f"dst.{self.q(c.name)} IS {c.expression} COLLATE BINARY" for c in plan.columns)
        return (
            f"SELECT (SELECT count(*) FROM {self.q(plan.shadow_table)} AS src "
            f"WHERE {self.range_predicate(shadow_pk, has_lo, 'src.')}), count(*) "
            f"FROM {self.q(plan.table)} AS src JOIN {self.q(plan.shadow_table)} AS dst "
            f"ON {self.shadow_key_matches(plan)} "
            f"WHERE {source_range} AND {same}"
        )


def _strip_literals(sql: str) -> str:
    """SQL without its string literals and comments, so keyword searches do not match their text."""
    sql = re.sub(r"'(?:[^']|'')*'", "''", sql)
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"/\*.*?\*/", "", sql, flags=re.S)


def _try_lock_file(path: Path) -> int | None:
    """Exclusive, non-blocking lock of ``path``; None when another process (or run) holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock_fd(fd):
            os.close(fd)
            return None
        # The holder unlinks the file when it is done: if ours is no longer the file at `path`,
        # we locked a file that nobody else will look at; start over on the current one.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        mine = os.fstat(fd)
        if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
            return fd
        os.close(fd)


def _lock_fd(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _release_lock_file(path: Path, fd: int) -> None:
    if os.name == "posix":
        path.unlink(missing_ok=True)  # while still locked, so no one can lock the old file and keep it
    os.close(fd)
