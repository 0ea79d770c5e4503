"""Reading the stored CREATE statements (sqlite_master) and building the shadow from them: its
table options, its indexes (the user's own SQL with the names replaced), its foreign keys."""

from __future__ import annotations

import re
import sqlite3
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shadowswap.dialects.base import Schedule, ShadowLayout
from shadowswap.dialects.sqlite.base import SQLiteBase
from shadowswap.dialects.sqlite.tabletext import ColumnEdit, parse, rewrite_table
from shadowswap.errors import UsageError
from shadowswap.plan import IndexPlan
from shadowswap.sqltext import mentions

if TYPE_CHECKING:
    from shadowswap.plan import Capture, CaptureMode, Plan

# The planner's reflection skips expression indexes with this warning; on SQLite the shadow's indexes
# come from the stored CREATE INDEX statements instead (shadow_indexes), so none is skipped.
warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")


def strip_literals(sql: str) -> str:
    """SQL without its string literals and comments, so keyword searches do not match their text."""
    sql = re.sub(r"'(?:[^']|'')*'", "''", sql)
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"/\*.*?\*/", "", sql, flags=re.S)


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


def _default_sql(default: str) -> str:
    """A DEFAULT value as SQLite's grammar takes it: an expression other than a literal in parentheses."""
    text = default.strip()
    literal_value = r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?|'(?:[^']|'')*'|NULL|TRUE|FALSE|CURRENT_(TIME|DATE|TIMESTAMP)"
    if re.fullmatch(literal_value, text, re.I):
        return text
    return f"({text})"


class SQLiteSchema(SQLiteBase):
    #: constraint names are labels inside CREATE TABLE, not schema objects: the shadow keeps them
    names_constraints = False
    #: the shadow's renames are SQLite's own RENAME COLUMN, which rewrites CHECK and GENERATED text
    renames_columns_in_constraints = True

    def schedule(self, capture: Capture) -> Schedule:
        """An index build holds the database's only write lock, which would stop the application's
        writes for the whole build: the indexes are built on the empty shadow, before the copy,
        where they cost nothing to anyone (invariant 6)."""
        return Schedule(indexes_before_copy=True)

    def shadow_layout(self, mode: CaptureMode) -> ShadowLayout:
        """SQLite cannot add a constraint to an existing table: foreign keys and unique constraints
        come with the shadow, whose CREATE TABLE is the original's own text (``shadow_create_sql``;
        changelog.py says how the change log keeps it free of stale duplicates). The log's key
        index serves the verification's per-row look-up and the copy's ``replay_below``."""
        return ShadowLayout(foreign_keys_in_create_table=True, unique_after_copy=False, index_log_keys=True)

    def _table_sql(self, conn: Connection, table: str) -> str:
        sql = conn.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
        ).scalar()
        return str(sql or "")

    def shadow_table_options(self, conn: Connection, table: str) -> dict[str, Any]:
        """What reflection does not carry over: AUTOINCREMENT, WITHOUT ROWID, STRICT."""
        options = dict(sa.inspect(conn).get_table_options(table))
        # AUTOINCREMENT is a keyword of the column definition; the reflected columns lose it
        if re.search(r"\bAUTOINCREMENT\b", strip_literals(self._table_sql(conn, table)), re.I):
            options["sqlite_autoincrement"] = True
        return options

    def shadow_create_sql(self, conn: Connection, ref: Any, resolved: Any, shadow_table: sa.Table) -> list[str]:
        """The shadow's CREATE TABLE: the original's stored statement with only the changed columns rewritten.

        As SQLite's 12-step ALTER does, and unlike compiling the reflected table: every column and
        table constraint (column-level UNIQUE, CHECK, COLLATE, DEFAULT, GENERATED, REFERENCES with its
        actions), a declared type SQLAlchemy does not know, an INTEGER PRIMARY KEY without NOT NULL,
        AUTOINCREMENT, WITHOUT ROWID and STRICT come through as the user wrote them. Renames are
        SQLite's own RENAME COLUMN on the empty shadow, which rewrites the CHECK, GENERATED and
        FOREIGN KEY expressions that name the column as an ALTER on the original would.
        """
        table = ref.table
        try:
            parsed = parse(self._table_sql(conn, table))
        except ValueError as exc:
            raise UsageError(
                f"cannot read the stored CREATE TABLE of {table!r}: {exc}",
                hint="report it with the table's schema (sqlite3 DB '.schema TABLE')",
            ) from None
        edits: dict[str, ColumnEdit] = {}
        additions: list[str] = []
        for t in resolved.targets:
            column = shadow_table.c[t.name]
            if t.source is None:
                additions.append(self.compile_ddl(sa.schema.CreateColumn(column)))
                continue
            if t.alter is None:
                continue
            edit = ColumnEdit(type_sql=t.alter.type_sql)
            if t.alter.nullable is not None and t.alter.nullable != bool(t.reflected["nullable"]):
                edit.not_null = not t.alter.nullable
            if t.default_changed:
                edit.default_clause = "" if t.default is None else f"DEFAULT {_default_sql(t.default)}"
            edits[t.source] = edit
        create = rewrite_table(
            parsed,
            self.q(shadow_table.name),
            edits,
            set(resolved.drops),
            set(resolved.dropped_indexes),
            additions,
        )
        # the new name is written into the table's text as given here: quoted only where it must
        # be, as the user's own `RENAME COLUMN qty TO amount` would leave it
        renames = [
            f"ALTER TABLE {self.q(shadow_table.name)} RENAME COLUMN {self.q(old)} "
            f"TO {self.unescape_percents(self.preparer.quote(new))}"
            for old, new in resolved.renames.items()
        ]
        statements = [create, *renames]
        # Tried now, on an empty in-memory database of the same SQLite library, so that a
        # definition SQLite refuses (a table constraint over a dropped column, a type a STRICT
        # table does not allow) stops the plan rather than the execute. Not in the user's file:
        # that would take its write lock, and planning must neither wait for the application's
        # writers nor stall them. The statement stands alone (REFERENCES are not resolved at CREATE).
        trial = sqlite3.connect(":memory:")
        try:
            for stmt in statements:
                trial.execute(stmt)
        except sqlite3.DatabaseError as exc:
            said = str(exc).splitlines()[0].replace(shadow_table.name, table)
            raise UsageError(
                f"the new table of {table!r} would not be valid: {said}",
                hint="check the changes against the table's constraints (sqlite3 DB '.schema TABLE')",
            ) from None
        finally:
            trial.close()
        return statements

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
