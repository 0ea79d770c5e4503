"""Indexes and keys on the shadow: built online after the copy (invariant 6), all in one ALTER when possible.

Each build waits for the shadow's metadata lock at most briefly, retried (invariant 5), so it never
queues the triggers' writes; one ``ALTER TABLE … ADD INDEX …, ADD INDEX …`` reads the clustered
index once for all of them. Foreign keys are not built here: their names are per database, so
they move to the shadow under the swap's lock (``foreign_keys.py``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.dialects.mysql.base import (
    ER_DUP_KEYNAME,
    MySQLBase,
    _errno,
)
from shadowswap.dialects.mysql.catalog import key_lines, show_create
from shadowswap.errors import UsageError

if TYPE_CHECKING:
    from shadowswap.plan import IndexPlan, Plan


class MySQLIndexes(MySQLBase):
    """Online index builds on the shadow and its unique keys."""

    def create_index_sql(self, index: sa.Index, online: bool = True) -> str:
        # built while the triggers write the shadow: online, never blocking them (invariant 6)
        return f"{super().create_index_sql(index)} ALGORITHM=INPLACE LOCK=NONE"

    def _carry_key_text(self, conn: Connection, plan: Plan) -> None:
        """Each key of the shadow from the server's own text of the original's, at plan time.

        SQLAlchemy reflects a key's columns but not its sort order (`qty` DESC), a unique key's
        prefix lengths, comment or visibility; ``SHOW CREATE TABLE`` keeps all of it, as a blocking
        ALTER does. The column list holds only quoted names and prefix lengths, so a renamed column
        is renamed in it; a key over a column the plan drops keeps the reflected form.

        FULLTEXT and SPATIAL keys go into the shadow's CREATE TABLE instead of after the copy:
        InnoDB builds neither with LOCK=NONE (a FULLTEXT build also adds a hidden FTS_DOC_ID column,
        a table rebuild), so built after the copy they would hold the triggers' writes to the shadow.
        On the empty shadow they cost nothing to create; the copy and the replays (or the triggers)
        then keep them up to date row by row, which slows the copy, not the application."""
        target = {c.source_column: c.name for c in plan.columns if c.source_column is not None}

        def columns_for_shadow(columns: str) -> str | None:
            used = [m.replace("``", "`") for m in re.findall(r"`((?:[^`]|``)*)`", columns)]
            if any(c not in target for c in used):
                return None
            return re.sub(r"`((?:[^`]|``)*)`", lambda m: self.q(target[m.group(1).replace("``", "`")]), columns)

        planned = {index.final_name: index for index in plan.indexes if not index.new}
        after_copy = {u.name: u for u in plan.capture.unique_after_copy}
        create = f"CREATE TABLE {self.preparer.quote(plan.shadow_table)} ("  # quoted as SQLAlchemy quoted it
        at = next(i for i, sql in enumerate(plan.shadow_ddl) if sql.startswith(create))
        inline: list[str] = []
        for kind, name, columns, rest in key_lines(show_create(conn, plan.table, self.q)):
            shadow_columns = columns_for_shadow(columns)
            if kind in ("FULLTEXT", "SPATIAL") and name in planned:
                if shadow_columns is None:
                    raise UsageError(
                        f"{kind} index {name!r} uses a column this plan drops",
                        hint="drop the index before migrating (--drop-index) and add it back after",
                    )
                inline.append(f"{kind} KEY {self.q(name)} {shadow_columns}" + (f" {rest}" if rest else ""))
                plan.indexes.remove(planned[name])
                continue
            if shadow_columns is None:
                continue
            options = f" {rest}" if rest else ""
            index_sql = (
                f"CREATE {kind + ' ' if kind else ''}INDEX {self.q(name)} ON {self.q(plan.shadow_table)} "  # same names
                f"{shadow_columns}{options} ALGORITHM=INPLACE LOCK=NONE"
            )
            if name in planned:
                index = planned[name]
                plan.indexes[plan.indexes.index(index)] = replace(index, create_sql=index_sql)
            elif kind == "UNIQUE" and name in after_copy:
                after_copy[name] = replace(after_copy[name], sql=(index_sql,))
            elif kind == "UNIQUE":
                # a unique constraint in the shadow's CREATE TABLE, as SQLAlchemy wrote it
                line = re.compile(rf"^(\s*)CONSTRAINT {re.escape(self.preparer.quote(name))} UNIQUE \(.*?\)(,?)$", re.M)
                text = f"UNIQUE KEY {self.q(name)} {shadow_columns}{options}"
                plan.shadow_ddl[at] = line.sub(lambda m: m.group(1) + text + m.group(2), plan.shadow_ddl[at])  # noqa: B023 (used at once)
        if after_copy:
            plan.capture = replace(plan.capture, unique_after_copy=tuple(after_copy.values()))
        if inline:
            head, _, tail = plan.shadow_ddl[at].rpartition("\n)")
            plan.shadow_ddl[at] = head + "".join(f",\n\t{c}" for c in inline) + "\n)" + tail

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

    def unique_constraint_sql(self, shadow_table: str, index_sql: str, name: str, primary: bool = False) -> list[str]:
        return [index_sql]  # a unique index is the constraint here

    def add_foreign_key_sql(self, constraint: sa.ForeignKeyConstraint) -> list[str]:
        # names are per database: the keys move to the shadow under the swap's lock (foreign_keys.py)
        return []


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
