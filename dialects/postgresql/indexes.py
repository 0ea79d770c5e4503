"""What is built on the shadow after the copy: indexes (CREATE INDEX CONCURRENTLY, invariant 6),
unique and primary-key constraints attached to them, foreign keys added NOT VALID and validated,
and the statistics the new table goes live with.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shadowswap.dialects.base import Schedule, ShadowLayout
from shadowswap.dialects.postgresql.base import PostgresBase
from shadowswap.plan import CHANGE_LOG

if TYPE_CHECKING:
    from shadowswap.plan import Capture, CaptureMode, IndexPlan, Plan


class PostgresIndexes(PostgresBase):
    def schedule(self, capture: Capture) -> Schedule:
        """Verification may always run beside the index builds: CREATE INDEX CONCURRENTLY (dual-write)
        takes SHARE UPDATE EXCLUSIVE, which neither the verification's reads nor the triggers' writes
        conflict with, and with a change log the builds are plain ones on a shadow only replays write.

        The builds run one at a time (shadowswap/indexes.py), which matters here: each takes the
        server's parallel maintenance workers (as the raw copy's do), and each ends by fsyncing its
        whole index file (PostgreSQL before 17 writes a b-tree build outside shared buffers): two
        ending together, or with a checkpoint's sync, flushed 200-400 MB at once and held every
        application commit's WAL fsync behind it for 0.2-0.4 s at 5M rows. One at a time, the worst
        was 89 ms, and the phase was no slower (docs/performance.md, issue 20)."""
        return Schedule(verify_while_indexing=True)

    def shadow_layout(self, mode: CaptureMode) -> ShadowLayout:
        """With a change log each key is copied once, so the copy fills a bare heap and the primary key
        is built after it, sorted, in one pass: cheaper than keeping a b-tree up to date row by row.
        (Dual-write triggers upsert by the key, so there the shadow needs it from the start.)"""
        return ShadowLayout(primary_key_after_copy=mode == CHANGE_LOG)

    def name_taken(self, conn: Connection, table: str, name: str) -> bool:
        # index names share the schema's namespace with tables, sequences and views
        return conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": self.q(name)}).scalar() is not None

    def shadow_indexes(
        self, conn: Connection, table: str, shadow: str, planned: list[IndexPlan], renamed: Sequence[str] = ()
    ) -> list[IndexPlan]:
        """Each index rebuilt from the original's own ``pg_get_indexdef``, not from reflection.

        Reflection loses parts of a definition (DESC, NULLS FIRST/LAST, operator classes,
        collations, storage parameters); the server's deparsed statement holds all of it (method,
        INCLUDE, predicate, expressions too), so the shadow's index is that statement with only the
        name and the table replaced. An index naming a column the plan renames keeps the planned
        (reflected) form, which has the new name.
        """
        if not planned:
            return planned
        rows = conn.execute(
            sa.text(
                "SELECT i.relname, pg_get_indexdef(i.oid),"
                # the table schema-qualified (as the server prints it since 10.3), or bare
                " ARRAY['CREATE ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '"
                "  || quote_ident(i.relname) || ' ON ' || quote_ident(n.nspname) || '.' || quote_ident(t.relname)"
                "  || ' USING ', 'CREATE ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '"
                "  || quote_ident(i.relname) || ' ON ' || quote_ident(t.relname) || ' USING '],"
                " 'CREATE ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '"
                " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
                " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE x.indrelid = to_regclass(:t)"
            ),
            {"t": self.q(table)},
        ).all()
        stored = {
            name: (definition, next((h for h in heads if definition.startswith(h)), None), create)
            for name, definition, heads, create in rows
        }
        out = []
        for p in planned:
            found = stored.get(p.final_name)
            if p.new or found is None or found[1] is None or mentions(found[0], renamed):
                out.append(p)
                continue
            definition, head, create = found
            assert head is not None
            online = " CONCURRENTLY " in p.create_sql
            sql = (
                f"{create}{'CONCURRENTLY ' if online else ''}{self.q(p.shadow_name)} ON {self.q(shadow)} USING "
                f"{definition[len(head) :]}"
            )
            out.append(dataclasses.replace(p, create_sql=sql))
        return out

    def create_index_sql(self, index: sa.Index, online: bool = True) -> str:
        # With a change log nothing but shadowswap writes the shadow: a plain build (one scan,
        # no waiting for other transactions) blocks nobody.
        index.dialect_options["postgresql"]["concurrently"] = online
        return super().create_index_sql(index)

    def build_index(self, engine: Engine, plan: Plan, index: IndexPlan) -> None:
        # CREATE INDEX CONCURRENTLY takes no lock that blocks the triggers' writes (invariant 6).
        # A crash mid-build leaves an INVALID index behind: drop it and build again.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            valid = conn.execute(
                sa.text("SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(:n)"),
                {"n": self.q(index.shadow_name)},
            ).scalar()
            if valid is True:
                return
            if valid is False:
                self.run(conn, f"DROP INDEX CONCURRENTLY IF EXISTS {self.q(index.shadow_name)}")
            self.run(conn, index.create_sql)

    def unique_constraint_sql(self, shadow_table: str, index_sql: str, name: str, primary: bool = False) -> list[str]:
        # USING INDEX renames nothing here (the index already has the constraint's name) and only
        # needs a moment's lock on the shadow, which nobody else uses.
        kind = "PRIMARY KEY" if primary else "UNIQUE"
        attach = f"ALTER TABLE {self.q(shadow_table)} ADD CONSTRAINT {self.q(name)} {kind} USING INDEX {self.q(name)}"
        return [index_sql, attach]

    def add_foreign_key_sql(self, constraint: sa.ForeignKeyConstraint) -> list[str]:
        # NOT VALID takes its lock for an instant; VALIDATE then scans without blocking writers.
        add = self.compile_ddl(sa.schema.AddConstraint(constraint))
        table = self.q(constraint.table.name)
        return [f"{add} NOT VALID", f"ALTER TABLE {table} VALIDATE CONSTRAINT {self.q(str(constraint.name))}"]

    def analyze_sql(self, table: str) -> str | None:
        return f"ANALYZE {self.q(table)}"


def mentions(definition: str, columns: Sequence[str]) -> bool:
    """Whether a deparsed definition names one of ``columns`` (quoted or bare); a false positive
    (the word inside a literal) only falls back to the reflected form."""
    return any(
        re.search(rf'"{re.escape(c.replace(chr(34), chr(34) * 2))}"|(?<![\w"]){re.escape(c)}(?![\w"])', definition)
        for c in columns
    )
