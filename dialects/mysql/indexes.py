"""Indexes and keys on the shadow: built online after the copy (invariant 6), all in one ALTER when possible.

Each build waits for the shadow's metadata lock at most briefly, retried (invariant 5), so it never
queues the triggers' writes; one ``ALTER TABLE … ADD INDEX …, ADD INDEX …`` reads the clustered
index once for all of them. Foreign keys are not built here: their names are per database, so
they move to the shadow under the swap's lock (``foreign_keys.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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

if TYPE_CHECKING:
    from shadowswap.plan import IndexPlan, Plan


class MySQLIndexes(MySQLBase):
    """Online index builds on the shadow and unique keys."""

    def create_index_sql(self, index: sa.Index, online: bool = True) -> str:
        # built while the triggers write the shadow: online, never blocking them (invariant 6)
        return f"{super().create_index_sql(index)} ALGORITHM=INPLACE LOCK=NONE"

    def shadow_indexes(
        self, conn: Connection, table: str, shadow: str, planned: list[IndexPlan], renamed: Sequence[str] = ()
    ) -> list[IndexPlan]:
        # SQLAlchemy reflects a key's columns and prefix lengths but not its sort order (`qty` DESC),
        # comment or visibility; the server's own text of the key keeps all of it, as a blocking
        # ALTER does. A key over a renamed column keeps the reflected form (its text names the old
        # column).
        ddl = show_create(conn, table, self.q)
        keys = {name: (kind, columns, rest) for kind, name, columns, rest in key_lines(ddl)}
        out = []
        for index in planned:
            found = keys.get(index.final_name)
            if found is None or any(f"`{c.replace('`', '``')}`" in found[1] for c in renamed):
                out.append(index)
                continue
            kind, columns, rest = found
            sql = f"CREATE {kind + ' ' if kind else ''}INDEX {self.q(index.shadow_name)} ON {self.q(shadow)} {columns}"
            sql += f" {rest}" if rest else ""
            out.append(replace(index, create_sql=f"{sql} ALGORITHM=INPLACE LOCK=NONE"))
        return out

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
