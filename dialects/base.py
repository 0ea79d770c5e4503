"""The portable half of every dialect; subclasses override only what their engine does differently.

Modelled on alembic's ``DefaultImpl``: the SQL that is the same on every engine lives here, each
engine module is short. Nothing outside ``shadowswap.dialects`` asks which engine it talks to.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from pathlib import Path

    from shadowswap.backup import Backup
    from shadowswap.changes import TableOption
    from shadowswap.plan import Capture, CaptureMode, ColumnPlan, CopyRoute, IndexPlan, MovedAtSwap, Plan
    from shadowswap.strategy import ChangeFacts


#: the change log's ordering column; a table with a key column of that name keeps direct dual-write
LOG_SEQUENCE = "_ss_seq"


@dataclass(frozen=True)
class Schedule:
    """When the executor builds the shadow's indexes and verifies, for one capture mode."""

    #: the planned secondary indexes are built on the empty shadow, before the copy
    indexes_before_copy: bool = False
    #: the verification starts beside the copy (and compares chunks the copy has finished)
    verify_beside_copy: bool = False
    #: the verification may run while the shadow's indexes are built
    verify_while_indexing: bool = False
    #: a unique build that meets a duplicate is retried after another replay this many times
    unique_build_retries: int = 0


@dataclass(frozen=True)
class ShadowLayout:
    """What the planner puts in the shadow's CREATE TABLE and the change log's, for one capture mode."""

    #: foreign keys are created with the shadow instead of added after the copy
    foreign_keys_in_create_table: bool = False
    #: the shadow gets its (named) primary key after the copy, built in one sorted pass
    primary_key_after_copy: bool = False
    #: the change log gets an index on its key columns
    index_log_keys: bool = False
    #: with a change log, named unique constraints are built after the copy (else they stay in
    #: CREATE TABLE: SQLite cannot add one to a table, and its replays keep the shadow consistent)
    unique_after_copy: bool = True


class Dialect(ABC):
    """One engine; the methods every engine must provide are abstract, the rest portable defaults."""

    name = "base"
    max_identifier_bytes = 63
    #: the triggers only log changed keys and a replay applies them (shadowswap/changelog.py)
    supports_change_log = False
    #: the change log is used only by plans with a ``--transform`` (the others keep dual-write)
    change_log_only_for_transform = False
    #: the copy replays the log's entries below each chunk inside the chunk's transaction
    #: (``replay_below``), so the shadow stays consistent for the unique constraints it keeps
    replays_in_chunks = False
    #: PostgreSQL and SQLite index/constraint names are schema-wide: the shadow's need their own
    names_constraints = True
    #: seconds per chunk the adaptive sizer aims at when the user gives no --chunk-time
    default_chunk_time = 0.1
    #: chunks copied at once by default (``--copy-workers``); 1 where concurrent chunks would only
    #: queue on one lock (SQLite) or are not yet proven safe
    default_copy_workers = 1
    max_copy_workers = 1
    #: a foreign key of the table to itself names the new table after the swap (else plan refuses it)
    carries_self_references = False
    #: the shadow's DDL renames columns inside CHECK constraints too (else plan refuses such renames)
    renames_columns_in_constraints = False
    #: the swap re-points other tables' foreign keys to the new table (else plan refuses such a table)
    repoints_referencing_keys = False
    #: sqlglot's name for this engine's SQL (parsing --ddl, types and defaults)
    sqlglot_dialect: str | None = None
    #: column names compare case-insensitively (MySQL): a change's names are folded to the table's
    column_names_fold_case = False
    #: the shadow honours FIRST / AFTER, COMMENT and generated columns given in the changes (MySQL)
    maps_column_attributes = False
    #: the type a value is rendered as when ``--check-casts`` compares it before and after
    text_type = "text"

    def __init__(self, sa_dialect: sa.engine.Dialect) -> None:
        self.sa_dialect = sa_dialect
        self.preparer = sa_dialect.identifier_preparer
        #: set by ``db.connect(read_only=True)`` before ``prepare_engine``: plan, status and verify
        #: must leave the database file as it was (no journal-mode switch)
        self.read_only = False

    # -- capture: what the shadow looks like and when things run ---------------------------

    def schedule(self, capture: Capture) -> Schedule:
        """The portable schedule: indexes built after the copy, one at a time; verification after the
        copy, beside the index builds only with a change log, whose shadow nothing but the replays
        write, so no build waits on them."""
        return Schedule(verify_while_indexing=capture.change_log)

    def shadow_layout(self, mode: CaptureMode) -> ShadowLayout:
        """The portable layout: the shadow created with its keys, foreign keys added after the copy."""
        return ShadowLayout()

    def copy_route(self, conn: Connection, reflection: Any, mode: CaptureMode) -> CopyRoute:
        """How chunks reach the shadow (what an engine cannot migrate safely is refused before, by
        the checks registry: shadowswap/checks.py). The portable route inserts into the shadow directly."""
        from shadowswap.plan import CopyRoute

        return CopyRoute()

    # -- names -------------------------------------------------------------------------------

    def q(self, identifier: str) -> str:
        """Always quote: reserved words, spaces, quotes and unicode all survive, injection does not.

        The preparer doubles ``%`` for ``%``-paramstyle drivers; our SQL goes through ``run`` or
        ``statement``, which do that themselves, so the name is given back as the server spells it."""
        return self.unescape_percents(self.preparer.quote_identifier(identifier))

    def fit_name(self, name: str) -> str:
        """Shorten a generated name past the engine's limit, keeping it unique with a hash suffix."""
        if len(name.encode()) <= self.max_identifier_bytes:
            return name
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        keep = self.max_identifier_bytes - len(digest) - 1
        head = name.encode()[:keep].decode(errors="ignore")
        return f"{head}_{digest}"

    def shadow_name(self, table: str) -> str:
        return self.fit_name(f"_{table}_new")

    def old_name(self, table: str) -> str:
        return self.fit_name(f"_{table}_old")

    def trigger_name(self, table: str, kind: str) -> str:
        return self.fit_name(f"_{table}_ss_{kind}")

    def shadow_index_name(self, table: str, index: str) -> str:
        """Index names are schema-wide on PostgreSQL and SQLite, so the shadow's need their own."""
        return self.fit_name(f"_{index}_ss")

    def old_index_name(self, table: str, index: str) -> str:
        return self.fit_name(f"_{index}_old")

    # -- connections -------------------------------------------------------------------------

    def statement(self, sql: str) -> sa.TextClause:
        """A text() of generated SQL whose only bind parameters are our own chunk bounds: every other
        colon (``'HH24:MI'`` in a user's expression, ``::text`` casts) is escaped, not taken as a bind."""
        return sa.text(_FOREIGN_COLON.sub(r"\\:", sql))

    def run(self, conn: Connection, sql: str) -> Any:
        """Execute generated SQL verbatim. Drivers with a ``%`` paramstyle parse every statement
        for placeholders, so a user's ``price % 10`` or ``LIKE 'a%'`` must reach them doubled."""
        if self.sa_dialect.paramstyle in ("pyformat", "format"):
            sql = sql.replace("%", "%%")
        return conn.exec_driver_sql(sql)

    # -- running user text at plan time (see shadowswap.sqlguard) ------------------------------

    def begin_read_only(self, conn: Connection) -> None:
        """Make the transaction ``conn`` is about to begin read-only (called before its first
        statement): plan-time checks run user fragments in it, and must not be able to write."""
        raise NotImplementedError  # every engine says how: a transaction mode or a connection flag

    def volatile_functions(self, conn: Connection, expression: str) -> list[str]:
        """Functions ``expression`` calls whose effects a read-only transaction may not contain
        (PostgreSQL's volatile ones: dblink_exec writes through a connection of its own); plan-time
        checks leave such an expression for ``execute`` to evaluate. None where the read-only
        transaction is the whole answer."""
        return []

    def end_read_only(self, conn: Connection) -> None:
        """Undo what ``begin_read_only`` left on the pooled connection after its transaction ended."""
        return None  # a transaction mode ends with its transaction: nothing is left to undo

    def run_one(self, conn: Connection, sql: str) -> Any:
        """Execute exactly one statement, on a driver path that refuses a ``;``-separated second one:
        a validation statement carries user text, which must not be able to append a statement."""
        return self.run(conn, sql)

    def compile_ddl(self, element: Any) -> str:
        """DDL as the server must see it. Compiling for a ``%``-paramstyle driver doubles every ``%``
        (a default of '100%', a name with a percent sign); ``run`` doubles them itself, so undo it here."""
        return self.unescape_percents(str(element.compile(dialect=self.sa_dialect)).strip())

    def unescape_percents(self, sql: str) -> str:
        if self.sa_dialect.paramstyle in ("pyformat", "format"):
            return sql.replace("%%", "%")
        return sql

    def engine_options(self) -> dict[str, Any]:
        return {}

    def prepare_engine(self, engine: Engine) -> None:
        """Install per-connection session settings (strict modes, pragmas)."""
        return None  # a hook: an engine whose session defaults suit needs nothing here

    @contextmanager
    def migration_lock(self, engine: Engine, table: str) -> Iterator[bool]:
        """Hold the one-migration-per-table lock for the block; yields False when another holds it."""
        yield True

    def lock_timeout_sql(self, milliseconds: int) -> list[str]:
        return []

    def lock_blocker(self, conn: Connection, table: str) -> str | None:
        """Who holds a lock on ``table`` that a strong lock request would wait behind for long (a
        VACUUM, an ANALYZE, an index build), or None. Asked before each strong-lock attempt: a request
        queued behind such a holder blocks every writer for the whole lock timeout, in vain."""
        return None

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return False

    def is_retryable(self, exc: BaseException) -> bool:
        """Deadlocks and serialization failures: the chunk is rolled back whole and simply rerun."""
        return False

    def is_data_error(self, exc: BaseException) -> bool:
        """A value that does not survive the copy expression (bad cast, too long, NULL into NOT NULL)."""
        return False

    # -- reading -----------------------------------------------------------------------------

    def estimated_rows(self, conn: Connection, table: str) -> int:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {self.q(table)}")).scalar_one())

    def validate_type_sql(self, type_sql: str) -> str:
        """A read-only statement the server rejects when the type does not exist."""
        return f"SELECT CAST(NULL AS {type_sql})"

    def existing_triggers(self, conn: Connection, table: str) -> list[str]:
        return []

    def validate_default_sql(self, default: str, type_sql: str) -> str:
        """A read-only statement the server rejects when the default is not a value of the type."""
        return f"SELECT CAST(({default}) AS {type_sql}) WHERE 1 = 0"

    def convert_charset(
        self, conn: Connection, table: str, charset: str, collation: str | None
    ) -> tuple[list[Any], dict[str, str]]:
        """MySQL's ``CONVERT TO CHARACTER SET``: an ``AlterColumn`` per text column, and the table
        options it changes (its default character set and collation)."""
        from shadowswap.errors import UsageError

        raise UsageError(f"CONVERT TO CHARACTER SET is MySQL's; {self.name} has no per-table character set")

    def unreflected_indexes(self, conn: Connection, table: str) -> dict[str, str]:
        """Indexes the Inspector does not report, name → definition (the planner checks them too)."""
        return {}

    def name_taken(self, conn: Connection, table: str, name: str) -> bool:
        """Whether a new index called ``name`` would collide with an existing one."""
        inspector = sa.inspect(conn)
        taken = {ix["name"] for ix in inspector.get_indexes(table)}
        taken |= {uq["name"] for uq in inspector.get_unique_constraints(table)}
        taken.add(inspector.get_pk_constraint(table).get("name"))
        return name in taken or inspector.has_table(name)

    # -- strategy: what may run in place --------------------------------------------------

    def instant_reason(self, change: ChangeFacts) -> tuple[bool, str]:
        """Whether ``change`` is metadata-only here (no rewrite, no long lock), and why.

        The default is the shadow copy, which can make any change; engines override with the
        changes they make in place.
        """
        return False, f"no in-place rule for {change.kind.replace('_', ' ')} on this engine"

    def narrowing_reason(self, column: str, old_type: str | None, new_type: str) -> str | None:
        """Why ``new_type`` cannot hold every value of ``old_type`` (a destructive change), or None.

        Engines that store values whole whatever the declared length or scale override it."""
        from shadowswap.strategy import narrowing_reason

        return narrowing_reason(column, old_type, new_type, self.sqlglot_dialect)

    def instant_statements(self, table: str, statements: list[str]) -> list[str]:
        """The in-place ALTERs as they run (engines add their ALGORITHM/LOCK clauses here)."""
        return statements

    def instant_guard_sql(self, lock_timeout_ms: int) -> list[str]:
        """Session settings that cancel an in-place ALTER which turns out not to be quick."""
        return []

    def instant_plan_notes(self) -> list[str]:
        """What the plan of an in-place change tells the operator about how it runs."""
        return ["the ALTERs run under --lock-timeout, retried with backoff"]

    def instant_refusal(self, exc: BaseException) -> str | None:
        """The server's reason when it refused an in-place ALTER's algorithm (nothing changed), else None."""
        return None

    def cast_check_predicates(self, column: ColumnPlan, plain_cast: bool) -> tuple[str, str | None]:
        """Over a source row ``src``: (the new column refuses the value, the value comes out changed).

        Evaluating them raises for a value the cast cannot convert at all; ``--check-casts`` finds
        those rows by bisecting the chunk. "Changed" is only asked of plain casts, by a round trip
        into the old type: a ``--using`` expression changes values on purpose.
        """
        stored = self.cast_sql(column.expression, column.new_type)
        fails = "1 = 0" if column.new_nullable else f"({column.expression}) IS NULL"
        changes = None
        if plain_cast and column.source_column is not None and column.old_type:
            src, text = self.column_reference(column.source_column), self.text_type
            changes = f"CAST(CAST({stored} AS {column.old_type}) AS {text}) <> CAST({src} AS {text})"
        return fails, changes

    # -- expressions -------------------------------------------------------------------------

    def cast_expression(self, column: str, type_sql: str) -> str:
        return self.cast_sql(self.column_reference(column), type_sql)

    def cast_sql(self, expression: str, type_sql: str) -> str:
        """``expression`` converted to the new column's type, failing rather than truncating (invariant 8)."""
        return f"CAST({expression} AS {type_sql})"

    def column_reference(self, column: str) -> str:
        return f"src.{self.q(column)}"

    def select_list(self, columns: Sequence[ColumnPlan]) -> str:
        return ", ".join(c.expression for c in columns)

    def insert_columns(self, columns: Sequence[ColumnPlan]) -> str:
        return ", ".join(self.q(c.name) for c in columns)

    def shadow_key_matches(self, plan: Plan, alias: str = "dst") -> str:
        """The shadow row ``alias`` whose key is the one the copy gives the source row ``src``."""
        return " AND ".join(f"{alias}.{self.q(c.name)} = {c.expression}" for c in plan.shadow_primary_key)

    def row_source(self, plan: Plan, record: str) -> str:
        """A one-row derived table ``src`` from a trigger's NEW/OLD record, so the copy
        expressions run unchanged in the triggers (invariant 1: one expression, both paths)."""
        cols = ", ".join(f"{record}.{self.q(c)} AS {self.q(c)}" for c in plan.source_columns)
        return f"(SELECT {cols}) AS src"

    # -- the direct capture triggers' statements (ON CONFLICT engines) -------------------------

    def capture_upsert_sql(self, plan: Plan) -> str:
        """The trigger's write of the NEW row into the shadow: inserted, or the shadow's row of that
        key overwritten (a copied row the application changed since)."""
        pk_shadow = plan.shadow_primary_key
        non_key = [c for c in plan.columns if c not in pk_shadow]
        conflict = ", ".join(self.q(c.name) for c in pk_shadow)
        if non_key:
            on_conflict = "DO UPDATE SET " + ", ".join(f"{self.q(c.name)} = EXCLUDED.{self.q(c.name)}" for c in non_key)
        else:
            on_conflict = "DO NOTHING"
        return (
            f"INSERT INTO {self.q(plan.shadow_table)} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {self.upsert_source(plan)} "
            f"ON CONFLICT ({conflict}) {on_conflict};"
        )

    def upsert_source(self, plan: Plan) -> str:
        """What the capture upsert selects from: the NEW row (``row_source``)."""
        return self.row_source(plan, "NEW")

    def capture_delete_where(self, plan: Plan, record: str) -> str:
        """The shadow's row whose key the copy gives the trigger's ``record`` (OLD)."""
        parts = []
        for c in plan.shadow_primary_key:
            source = c.source_column or c.name
            if c.expression != self.column_reference(source):
                parts.append(f"{self.q(c.name)} = (SELECT {c.expression} FROM {self.row_source(plan, record)})")
            else:
                parts.append(f"{self.q(c.name)} = {record}.{self.q(source)}")
        return " AND ".join(parts)

    # -- keyset chunking (invariant 4) -------------------------------------------------------

    def key_after(self, columns: Sequence[str], prefix: str, qualifier: str = "") -> str:
        """``key > (:p0, :p1, …)`` spelled out so every engine can use the index."""
        cols = [f"{qualifier}{self.q(c)}" for c in columns]
        clauses = []
        for i, col in enumerate(cols):
            eqs = [f"{cols[j]} = :{prefix}{j}" for j in range(i)]
            clauses.append("(" + " AND ".join([*eqs, f"{col} > :{prefix}{i}"]) + ")")
        return "(" + " OR ".join(clauses) + ")"

    def key_at_most(self, columns: Sequence[str], prefix: str, qualifier: str = "") -> str:
        cols = [f"{qualifier}{self.q(c)}" for c in columns]
        clauses = []
        for i, col in enumerate(cols):
            eqs = [f"{cols[j]} = :{prefix}{j}" for j in range(i)]
            op = "<=" if i == len(cols) - 1 else "<"
            clauses.append("(" + " AND ".join([*eqs, f"{col} {op} :{prefix}{i}"]) + ")")
        return "(" + " OR ".join(clauses) + ")"

    def order_by(self, columns: Sequence[str], qualifier: str = "") -> str:
        return ", ".join(f"{qualifier}{self.q(c)}" for c in columns)

    def range_predicate(self, pk: Sequence[str], has_lo: bool, qualifier: str = "") -> str:
        parts = []
        if has_lo:
            parts.append(self.key_after(pk, "lo", qualifier))
        parts.append(self.key_at_most(pk, "hi", qualifier))
        return " AND ".join(parts)

    def chunk_bound_sql(self, plan: Plan, has_lo: bool) -> str:
        """The key ``size`` rows past ``lo``: an index walk, so its cost does not grow with the offset."""
        pk = plan.primary_key
        where = self.range_predicate(pk, has_lo)
        return (
            f"SELECT {self.order_by(pk)} FROM {self.q(plan.table)} WHERE {where} "
            f"ORDER BY {self.order_by(pk)} LIMIT 1 OFFSET :skip"
        )

    def max_key_sql(self, plan: Plan) -> str:
        pk = plan.primary_key
        desc = ", ".join(f"{self.q(c)} DESC" for c in pk)
        return f"SELECT {self.order_by(pk)} FROM {self.q(plan.table)} ORDER BY {desc} LIMIT 1"

    def min_key_sql(self, plan: Plan) -> str:
        pk = plan.primary_key
        return f"SELECT {self.order_by(pk)} FROM {self.q(plan.table)} ORDER BY {self.order_by(pk)} LIMIT 1"

    @abstractmethod
    def copy_chunk_sql(self, plan: Plan, has_lo: bool) -> str:
        raise NotImplementedError

    def copy_chunk_fast_sql(self, plan: Plan, has_lo: bool) -> str | None:
        """A cheaper chunk statement that may lose a race with the triggers (``is_copy_race``), in
        which case the chunk is rolled back and rerun with ``copy_chunk_sql``; None: no such statement."""
        return None

    def is_copy_race(self, exc: BaseException) -> bool:
        """The fast chunk statement met a key the triggers wrote after the statement's snapshot."""
        return False

    # -- change log (``supports_change_log``; see shadowswap/changelog.py) ---------------------

    def change_log_name(self, table: str) -> str:
        return self.fit_name(f"_{table}_ss_log")

    def change_log_allowed(self, conn: Connection, reflection: Any) -> bool:
        """Whether this table and server can migrate with a change log (else direct dual-write)."""
        return True

    def log_sequence_column(self) -> sa.Column[Any]:
        return sa.Column(LOG_SEQUENCE, sa.BigInteger, sa.Identity(always=True), primary_key=True)

    def log_key_type(
        self, conn: Connection, table: str, column: str, type_: sa.types.TypeEngine[Any]
    ) -> sa.types.TypeEngine[Any]:
        """The type of the change log's column for the key column ``column`` (the shadow's, by default)."""
        return type_

    def indexes_together_sql(self, plan: Plan, statements: list[str]) -> list[str] | None:
        """The clauses of one statement that builds all these indexes in one scan, where the engine
        has one (None: built one by one)."""
        return None

    def build_indexes_together(self, engine: Engine, plan: Plan, names: list[str], clauses: list[str]) -> None:
        raise NotImplementedError

    def replay(self, engine: Engine, plan: Plan) -> int:
        """Apply the log entries visible now, in one snapshot; returns how many it applied."""
        if plan.transform is not None:
            with engine.connect() as conn:
                self.begin_snapshot(conn)
                applied = self.transform_replay(conn, plan)
                conn.commit()
            return applied
        statements = [self.statement(s) for s in self.replay_sql(plan)]
        with engine.connect() as conn:
            self.begin_snapshot(conn)
            result = None
            for statement in statements:
                result = conn.execute(statement)
            conn.commit()
        return max(result.rowcount, 0) if result is not None else 0

    def replay_below(self, conn: Connection, plan: Plan, lo: Sequence[Any]) -> int:
        """``replays_in_chunks``: apply, in the chunk's transaction, the entries of keys up to ``lo``."""
        raise NotImplementedError

    def replay_sql(self, plan: Plan) -> list[str]:
        """Bring the shadow's rows of the logged keys up to date, then forget those log entries.

        Run in one snapshot (``begin_snapshot``), or under the swap's lock, the statements see one
        state of the table, the log and the shadow.
        """
        raise NotImplementedError

    def transform_replay(self, conn: Connection, plan: Plan) -> int:
        """``replay_sql`` with its insert done in Python (shadowswap/transform.py), in the caller's
        transaction: a snapshot, or the swap's lock."""
        from shadowswap.transform import Transformer

        delete, _insert, forget = self.replay_sql(plan)
        return Transformer.for_plan(self, plan).replay(conn, delete, forget, self.logged_rows(plan))

    def logged_rows(self, plan: Plan, taken: str = "") -> str:
        """The original's rows (``src``) whose key has an entry in the log (``taken``: `` WHERE …`` on ``l``)."""
        src_key = ", ".join(f"src.{self.q(k)}" for k in plan.primary_key)
        log_key = ", ".join(f"l.{self.q(k)}" for k in plan.primary_key)
        return f"({src_key}) IN (SELECT {log_key} FROM {self.q(plan.capture.logged_table)} AS l{taken})"

    # -- --transform: rows through Python (shadowswap/transform.py) ---------------------------

    #: a replay reads the logged rows in batches with a server-side cursor, writing between them
    transform_streams = False
    #: the driver adapts a list to the column's own type (an array), not only to JSON
    takes_sequences = False

    def transform_adapter(self, column: ColumnPlan) -> Callable[[Any], Any] | None:
        """How a value the function returns for ``column`` is given to the driver (None: as it is).
        Applied before the value is written and before the verification compares it."""
        return None

    def transform_passthrough(self, column: ColumnPlan) -> str | None:
        """A column the function does not fill, as the copy computes it, read into Python and written
        back; None: the original's column as read for the function is that value (read it once)."""
        if column.source_column is not None and column.expression == self.column_reference(column.source_column):
            return None
        return column.expression

    def write_rows(self, conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Write a chunk of rows in one round trip (never a statement a row)."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            marks = ", ".join([self.paramstyle_mark] * len(columns))
            cols = ", ".join(self.q(c) for c in columns)
            cursor.executemany(f"INSERT INTO {self.q(table)} ({cols}) VALUES ({marks})", rows)
        finally:
            cursor.close()

    #: the driver's placeholder in ``write_rows``
    paramstyle_mark = "?"

    def unique_constraint_sql(self, shadow_table: str, index_sql: str, name: str, primary: bool = False) -> list[str]:
        """A unique constraint (or the primary key) added to the filled shadow: its index built, then attached."""
        raise NotImplementedError

    def unlogged_predicate(self, plan: Plan, source: bool) -> str:
        """`` AND …``: the verification's rows whose key has no change waiting in the log."""
        if not plan.capture.change_log:
            return ""
        names = plan.primary_key if source else [c.name for c in plan.shadow_primary_key]
        matches = " AND ".join(f"l.{self.q(k)} = src.{self.q(n)}" for k, n in zip(plan.primary_key, names, strict=True))
        return f" AND NOT EXISTS (SELECT 1 FROM {self.q(plan.capture.logged_table)} AS l WHERE {matches})"

    def clear_copied_sql(self, plan: Plan, has_lo: bool) -> str:
        """Shadow rows above the checkpoint ``:lo…`` (all rows without it): a resumed copy redoes them."""
        pk = [c.name for c in plan.shadow_primary_key]
        where = self.key_after(pk, "lo") if has_lo else "1 = 1"
        return f"DELETE FROM {self.q(plan.shadow_table)} WHERE {where}"

    def begin_chunk(self, conn: Connection) -> None:
        """Called at the start of each chunk's transaction (SQLite takes its write lock here)."""
        return None  # a hook: an engine whose copy statement takes its own locks needs nothing here

    def finish_copy(self, conn: Connection, plan: Plan, result: Any) -> int:
        """Called right after a chunk's copy statement, in its transaction; returns the rows it inserted."""
        return max(result.rowcount, 0)

    # -- DDL ---------------------------------------------------------------------------------

    def shadow_column(
        self, reflected: dict[str, Any], type_: sa.types.TypeEngine[Any], nullable: bool, default: str | None
    ) -> sa.Column[Any]:
        """The shadow's column: the reflected default kept verbatim, never a new SERIAL/identity;
        a generated column declared with its reflected expression (the copy leaves it to the engine)."""
        computed = reflected.get("computed")
        generated = [sa.Computed(sa.text(computed["sqltext"]), persisted=computed.get("persisted"))] if computed else []
        return sa.Column(
            reflected["name"],
            type_,
            *generated,
            nullable=nullable,
            server_default=sa.text(default) if default is not None and not computed else None,
            autoincrement=False,
            comment=reflected.get("comment"),
        )

    def shadow_indexes(
        self, conn: Connection, table: str, shadow: str, planned: list[IndexPlan], renamed: Sequence[str] = ()
    ) -> list[IndexPlan]:
        """The shadow's secondary indexes; engines whose reflection loses index details re-derive them.

        ``renamed`` are the original columns the plan renames: a stored definition naming one of
        them does not fit the shadow, whose planned index (from reflection) has the new names."""
        return planned

    def shadow_table_options(self, conn: Connection, table: str) -> dict[str, Any]:
        """Table-level options of the original that reflected columns do not carry (``sa.Table`` kwargs)."""
        return {}

    # -- table-level changes: options, rebuild, space, copy order ------------------------------

    def table_option_refusal(self, option: TableOption) -> str | None:
        """Why this engine cannot set ``option`` on the new table by copy-and-swap (None: it can)."""
        return f"{self.name} has no table option {option.name} shadowswap can set"

    def table_option_invalid(self, conn: Connection, option: TableOption) -> str | None:
        """Why the database would not accept ``option``'s value (None: it would, as far as can be
        told without creating a table: planning writes nothing)."""
        return None

    def change_table_options(
        self, conn: Connection, table: str, options: dict[str, Any], changes: Sequence[TableOption]
    ) -> dict[str, Any]:
        """``shadow_table_options`` with the plan's table option changes applied (``sa.Table`` kwargs)."""
        return options

    def keep_column_defaults(
        self, conn: Connection, table: str, shadow: sa.Table, changes: Sequence[TableOption]
    ) -> None:
        """Pin on the shadow's columns whatever they took from a table default the plan changes."""
        return None

    def table_option_in_place(self, name: str | None) -> str | None:
        """Why the table option ``name`` is set in place, with no rewrite and no lock that blocks
        writes (None: the copy sets it); the statements are ``table_option_sql``'s."""
        return None

    def table_option_in_place_sql(self, table: str, changes: Sequence[TableOption]) -> list[str]:
        """The in-place statements of a plan whose table options are all ``table_option_in_place``."""
        return []

    def table_option_sql(self, conn: Connection, plan: Plan, changes: Sequence[TableOption]) -> list[str]:
        """Statements the swap runs on the new table after carrying the old one's surroundings."""
        return []

    def table_bytes(self, conn: Connection, table: str) -> int | None:
        """The table's space on disk, indexes included, as the engine reports it (None: unknown)."""
        return None

    def order_by_refusal(self) -> str | None:
        """Why ``--order-by`` means nothing here (None: the copy can write rows in an index's order)."""
        return f"{self.name} stores a table's rows in its key order; no index can order them otherwise"

    def order_by_keys(self, conn: Connection, table: str, index: str) -> list[str] | None:
        """The key expressions of ``index`` on ``table``, for the copy's ORDER BY (None: no such index)."""
        return None

    def moved_at_swap(self, conn: Connection, plan: Plan, reflection: Any) -> MovedAtSwap:
        """What the swap moves from the table onto the new one under its lock, read at plan time (the
        application's triggers, foreign keys from and to the table), or a refusal. The portable
        answer is nothing: an engine whose swap leaves such things behind refuses them or overrides this."""
        from shadowswap.plan import MovedAtSwap

        return MovedAtSwap()

    def restore_moved(self, engine: Engine, plan: Plan, lock_timeout_ms: int) -> None:
        """Before an abort drops the shadow: put back on the table what a killed swap had begun to
        move onto the shadow. Nothing where the swap moves in one transaction (or moves nothing)."""
        return None

    def swap_facts(self, conn: Connection, plan: Plan, reflection: Any) -> dict[str, Any]:
        """Read-only facts the swap statements need (sequences, user triggers, views)."""
        return {}

    def plan_notes(self, plan: Plan) -> list[str]:
        return []

    def shadow_create_sql(self, conn: Connection, ref: Any, resolved: Any, shadow_table: sa.Table) -> list[str]:
        """The shadow's CREATE TABLE (a ``ShadowLayout`` with ``foreign_keys_in_create_table``); ``ref`` is the
        planner's reflection and ``resolved`` its resolved changes, for engines that derive the
        statement from the original's own text rather than from reflection."""
        return self.create_table_sql(shadow_table)

    def create_table_sql(self, table: sa.Table) -> list[str]:
        return [self.compile_ddl(sa.schema.CreateTable(table))]

    def create_index_sql(self, index: sa.Index, online: bool = True) -> str:
        """``online``: the build must not block the triggers' writes to the shadow (invariant 6)."""
        return self.compile_ddl(sa.schema.CreateIndex(index))

    def index_exists(self, conn: Connection, table: str, index: str) -> bool:
        names = {ix["name"] for ix in sa.inspect(conn).get_indexes(table)}
        return index in names

    def build_index(self, engine: Engine, plan: Plan, index: IndexPlan) -> None:
        with engine.begin() as conn:
            if not self.index_exists(conn, plan.shadow_table, index.shadow_name):
                self.run(conn, index.create_sql)

    def add_foreign_key_sql(self, constraint: sa.ForeignKeyConstraint) -> list[str]:
        return [self.compile_ddl(sa.schema.AddConstraint(constraint))]

    def analyze_sql(self, table: str) -> str | None:
        return None

    @abstractmethod
    def trigger_ddl(self, plan: Plan) -> list[str]:
        raise NotImplementedError

    def install_triggers(self, conn: Connection, plan: Plan) -> None:
        """Replace any half-installed set in one transaction (DDL is transactional here)."""
        for stmt in [*plan.drop_trigger_ddl, *plan.trigger_ddl]:
            self.run(conn, stmt)

    def drop_trigger_ddl(self, plan: Plan) -> list[str]:
        return [f"DROP TRIGGER IF EXISTS {self.q(name)}" for name in plan.trigger_names]

    def drop_table_sql(self, table: str) -> str:
        return f"DROP TABLE IF EXISTS {self.q(table)}"

    @abstractmethod
    def swap_sql(self, plan: Plan, reflected: dict[str, Any]) -> tuple[list[str], list[str]]:
        """Statements of the atomic swap, and statements that may follow it outside the lock."""
        raise NotImplementedError

    @abstractmethod
    def run_swap(
        self, engine: Engine, plan: Plan, lock_timeout_ms: int, in_swap: Callable[[Connection], None]
    ) -> float:
        """Run the swap once; returns seconds the strong lock was held. Raises on lock timeout.

        ``in_swap`` records the new phase; engines with transactional DDL call it inside the swap's
        own transaction, so a crash can never separate the swap from its record.
        """
        raise NotImplementedError

    # -- verification (invariant 9) ----------------------------------------------------------

    @abstractmethod
    def begin_snapshot(self, conn: Connection) -> None:
        """Start a transaction in which the original and the shadow are read at one instant."""

    @abstractmethod
    def checksum_sql(self, plan: Plan, source: bool, has_lo: bool) -> str:
        raise NotImplementedError

    def row_image(self, plan: Plan, source: bool) -> str:
        """A row as the checksum sees it: the original through the copy expressions, the shadow as stored.

        Engines whose checksum hashes a text rendering override this with that rendering, so the
        row-by-row narrowing of a differing chunk agrees with the checksum that flagged it.
        """
        if source:
            return ", ".join(c.expression for c in plan.columns)
        return ", ".join(f"src.{self.q(c.name)}" for c in plan.columns)

    def rows_sql(self, plan: Plan, source: bool, has_lo: bool) -> str:
        """Key and row image of every row in a key range, to name the keys of a differing chunk."""
        if source:
            keys = [c.expression for c in plan.shadow_primary_key]
            pk = plan.primary_key
            table = plan.table
        else:
            pk = [c.name for c in plan.shadow_primary_key]
            keys = [f"src.{self.q(k)}" for k in pk]
            table = plan.shadow_table
        return (
            f"SELECT {', '.join(keys)}, {self.row_image(plan, source)} FROM {self.q(table)} AS src "
            f"WHERE {self.range_predicate(pk, has_lo, 'src.')}{self.unlogged_predicate(plan, source)} "
            f"ORDER BY {self.order_by(pk, 'src.')}"
        )

    # -- throttling probes -------------------------------------------------------------------
    # Each raises NotImplementedError where the engine has no such thing; the throttler turns
    # that into a usage error before the migration starts.

    def replication_lag(self, conn: Connection) -> float | None:
        """Seconds the slowest replica is behind, as the primary sees it; None when it has none."""
        raise NotImplementedError

    def replica_lag(self, conn: Connection) -> float:
        """Seconds this server (given with ``--replica URL``) is behind its primary."""
        raise NotImplementedError

    def server_load(self, conn: Connection, metric: str | None) -> float:
        """The ``--max-load`` metric's current value (``metric`` None: the engine's default one)."""
        raise NotImplementedError

    # -- backups -----------------------------------------------------------------------------

    @abstractmethod
    def backup_table(self, engine: Engine, plan: Plan, directory: Path, stem: str) -> Backup:
        """Back up the original table with the engine's own tool, into ``directory``."""
        raise NotImplementedError


_FOREIGN_COLON = re.compile(r":(?!(?:lo|hi)\d+\b|skip\b)")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def is_plain_identifier(name: str) -> bool:
    return bool(_IDENT_RE.match(name))
