"""PostgreSQL: plpgsql triggers, FOR SHARE chunks, CREATE INDEX CONCURRENTLY, one-transaction swap."""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shadowswap.dialects.base import Dialect
from shadowswap.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from shadowswap.backup import Backup
    from shadowswap.plan import ColumnPlan, IndexPlan, Plan
    from shadowswap.strategy import ChangeFacts

LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK = "40P01"
SERIALIZATION = "40001"
UNIQUE_VIOLATION = "23505"


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None)


def _bounded_varchar(type_sql: str) -> int | None:
    """n for ``varchar(n)`` / ``character varying(n)``, else None."""
    from shadowswap.strategy import parse_type, type_params

    parsed = parse_type(type_sql, "postgres")
    if parsed is None or parsed.this.name != "VARCHAR":
        return None
    params = type_params(parsed)
    return params[0] if params else None


#: types whose hash is equal exactly when their values are (text output included)
_EXACT_HASH_TYPES = re.compile(
    r"(smallint|integer|int|bigint|int[248]|boolean|bool|text|varchar|character varying|date|uuid|bytea"
    r"|timestamp( without time zone)?|timestamptz|timestamp with time zone)(\s*\(\s*\d+\s*\))?",
    re.IGNORECASE,
)


def _hashes_exactly(type_sql: str) -> bool:
    return _EXACT_HASH_TYPES.fullmatch(type_sql.strip()) is not None


class PostgresDialect(Dialect):
    name = "postgresql"
    max_identifier_bytes = 63
    # CREATE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE, which neither the verification's
    # reads nor the triggers' writes conflict with; it only waits for their snapshots to end.
    verify_while_indexing = True
    sqlglot_dialect = "postgres"
    # Chunks over disjoint key ranges share no row locks; a second one uses the server's second
    # core, which a single INSERT … SELECT leaves idle.
    default_copy_workers = 2
    max_copy_workers = 16
    supports_change_log = True
    # plain builds take SHARE locks, which do not conflict with each other
    index_build_workers = 2
    primary_key_after_copy = True

    @contextmanager
    def migration_lock(self, engine: Engine, table: str) -> Iterator[bool]:
        # A session-level advisory lock on its own connection: it dies with the process, so a
        # crashed run never leaves the table locked against the resume.
        key = zlib.crc32(f"shadowswap:{table}".encode()) - 2**31
        with engine.connect() as conn:
            got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    def lock_timeout_sql(self, milliseconds: int) -> list[str]:
        return [f"SET LOCAL lock_timeout = '{int(milliseconds)}ms'"]

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return _sqlstate(exc) == LOCK_NOT_AVAILABLE

    def is_retryable(self, exc: BaseException) -> bool:
        return _sqlstate(exc) in (DEADLOCK, SERIALIZATION)

    def is_data_error(self, exc: BaseException) -> bool:
        state = _sqlstate(exc) or ""
        # class 22 = data exception, 23 = integrity constraint violation
        return state.startswith("22") or state.startswith("23")

    def estimated_rows(self, conn: Connection, table: str) -> int:
        est = conn.execute(
            sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:t)"),
            {"t": self.q(table)},
        ).scalar()
        if est is None or est < 0:  # never analyzed
            return super().estimated_rows(conn, table)
        return int(est)

    def existing_triggers(self, conn: Connection, table: str) -> list[str]:
        rows = conn.execute(
            sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal"),
            {"t": self.q(table)},
        )
        return [r[0] for r in rows]

    def name_taken(self, conn: Connection, table: str, name: str) -> bool:
        # index names share the schema's namespace with tables, sequences and views
        return conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": self.q(name)}).scalar() is not None

    # -- strategy --------------------------------------------------------------------------

    def _in_place_type_change(self, old: str | None, new: str) -> str | None:
        """Why PostgreSQL can change ``old`` to ``new`` without a rewrite (binary-coercible), or None."""
        from shadowswap.strategy import parse_type, type_params

        before, after = parse_type(old, "postgres"), parse_type(new, "postgres")
        if before is None or after is None:
            return None
        if before == after:
            return f"{new} is the type the column already has"
        b, a = before.this.name, after.this.name
        b_len = type_params(before)[0] if b == "VARCHAR" and type_params(before) else None
        a_len = type_params(after)[0] if a == "VARCHAR" and type_params(after) else None
        if b == "VARCHAR" and a == "VARCHAR" and b_len is not None and a_len is not None and a_len >= b_len:
            return f"widening varchar({b_len}) to varchar({a_len}) changes only the length limit"
        if b in ("VARCHAR", "TEXT") and (a == "TEXT" or (a == "VARCHAR" and a_len is None)):
            if b == "TEXT" or b_len is None:
                return f"{old} and {new} are the same type on disk"
            return f"{old} to {new} removes the length limit only"
        return None

    def instant_reason(self, change: ChangeFacts) -> tuple[bool, str]:
        kind = change.kind
        if kind == "drop":
            return True, "DROP COLUMN only marks the column dropped in the catalog"
        if kind == "rename":
            return True, "RENAME COLUMN changes the catalog only"
        if kind == "drop_index":
            return True, "dropping an index removes it without touching the rows"
        if kind in ("add_index", "add_unique"):
            return False, "new indexes are built CONCURRENTLY on the shadow after the copy"
        if kind == "using":
            return False, "recomputing values rewrites every row"
        if change.has_using:
            return False, "a USING expression rewrites every row"
        if kind == "add":
            if change.default is None:
                return True, "a column without a default is added in the catalog only"
            version = self.sa_dialect.server_version_info or (0,)
            if change.default_is_constant and version >= (11,):
                return True, "a constant default is stored once in the catalog, not written to each row"
            return False, "a non-constant default is computed and written for every row"
        if kind == "alter":
            reasons = []
            if change.new_type is not None:
                why = self._in_place_type_change(change.old_type, change.new_type)
                if why is None:
                    return False, f"changing {change.old_type} to {change.new_type} rewrites the table"
                reasons.append(why)
            if change.new_nullable is False and change.old_nullable:
                return False, "SET NOT NULL scans the whole table under an exclusive lock"
            if change.new_nullable is True and change.old_nullable is False:
                reasons.append("DROP NOT NULL changes the catalog only")
            if change.default_changed:
                reasons.append("a default applies to future inserts only")
            return True, "; ".join(reasons) or "nothing to rewrite"
        return super().instant_reason(change)

    def instant_guard_sql(self, lock_timeout_ms: int) -> list[str]:
        # A change judged metadata-only that turns out to rewrite would hold ACCESS EXCLUSIVE for
        # the whole rewrite: cancel it instead (the transaction rolls back, nothing changes).
        return [f"SET LOCAL statement_timeout = '{int(lock_timeout_ms) + 5000}ms'"]

    def instant_plan_notes(self) -> list[str]:
        return [
            "the ALTERs run in one transaction under --lock-timeout, retried with backoff; "
            "a statement that runs longer than expected is cancelled and rolled back"
        ]

    def cast_sql(self, expression: str, type_sql: str) -> str:
        # An explicit CAST to varchar(n) truncates silently; casting to unbounded varchar leaves the
        # length check to the INSERT's assignment cast, which raises instead (invariant 8).
        if _bounded_varchar(type_sql) is not None:
            return f"CAST({expression} AS varchar)"
        return super().cast_sql(expression, type_sql)

    def cast_check_predicates(self, column: ColumnPlan, plain_cast: bool) -> tuple[str, str | None]:
        fails, changes = super().cast_check_predicates(column, plain_cast)
        limit = _bounded_varchar(column.new_type)
        if limit is not None:
            fails = f"({fails}) OR char_length({self.cast_sql(column.expression, column.new_type)}) > {limit}"
        return fails, changes

    def copy_chunk_sql(self, plan: Plan, has_lo: bool) -> str:
        if plan.extra.get("change_log"):
            # Nothing else writes the shadow during the copy, and every change since the copy's
            # snapshot is in the log: a plain INSERT … SELECT, no row locks, no conflict checks.
            return self._chunk_insert(plan, has_lo, "", lock=False)
        # FOR SHARE (invariant 3): a DELETE or key change committing between this chunk's
        # snapshot and its insert would leave a ghost row. FOR KEY SHARE would stop only those,
        # but it lets an ordinary UPDATE's trigger insert the same key into the shadow at the
        # same instant as this chunk; ON CONFLICT arbitrates only the primary key, so the race
        # surfaces as a unique violation on another unique index (sku, say) in the
        # application's own UPDATE. FOR SHARE makes the two take turns on the row instead; an
        # update waits at most one chunk (--chunk-time).
        pk_shadow = ", ".join(self.q(c.name) for c in plan.shadow_primary_key)
        return self._chunk_insert(plan, has_lo, "") + f" ON CONFLICT ({pk_shadow}) DO NOTHING"

    def _chunk_insert(self, plan: Plan, has_lo: bool, also_where: str, lock: bool = True) -> str:
        """The chunk's INSERT … SELECT of f(src) over (lo, hi], share-locking what it reads."""
        return (
            f"INSERT INTO {self.q(plan.shadow_table)} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {self.q(plan.table)} AS src "
            f"WHERE {self.range_predicate(plan.primary_key, has_lo, 'src.')}{also_where}"
            + (" FOR SHARE OF src" if lock else "")
        )

    def copy_chunk_fast_sql(self, plan: Plan, has_lo: bool) -> str | None:
        if plan.extra.get("change_log"):
            return None
        # ON CONFLICT inserts every row speculatively (about 40 % of the chunk's cost at 1M rows);
        # a probe of the shadow's key skips the rows the triggers wrote before this statement's
        # snapshot. It is a scalar subquery, not NOT EXISTS: the growing shadow has no statistics,
        # and an anti-join would hash all of it for every chunk. A row updated between the
        # snapshot and our share lock is returned in its new version (READ COMMITTED re-reads it),
        # and that update's trigger has already put the key in the shadow: the insert then fails
        # with a unique violation, and the chunk is rerun with copy_chunk_sql (invariant 2).
        probe = f"SELECT 1 FROM {self.q(plan.shadow_table)} AS dst WHERE {self.shadow_key_matches(plan)}"
        return self._chunk_insert(plan, has_lo, f" AND ({probe}) IS NULL")

    def is_copy_race(self, exc: BaseException) -> bool:
        # Any unique violation: one that is not a race fails the careful rerun too, and is
        # reported from there as the data error it is.
        return _sqlstate(exc) == UNIQUE_VIOLATION

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

    def add_foreign_key_sql(self, constraint: sa.ForeignKeyConstraint) -> list[str]:
        # NOT VALID takes its lock for an instant; VALIDATE then scans without blocking writers.
        add = self.compile_ddl(sa.schema.AddConstraint(constraint))
        table = self.q(constraint.table.name)
        return [f"{add} NOT VALID", f"ALTER TABLE {table} VALIDATE CONSTRAINT {self.q(str(constraint.name))}"]

    def analyze_sql(self, table: str) -> str | None:
        return f"ANALYZE {self.q(table)}"

    def function_name(self, plan: Plan) -> str:
        return self.fit_name(f"_{plan.table}_ss_fn")

    def trigger_ddl(self, plan: Plan) -> list[str]:
        pk_src = plan.primary_key
        key_changed = " OR ".join(f"OLD.{self.q(k)} IS DISTINCT FROM NEW.{self.q(k)}" for k in pk_src)
        if plan.extra.get("change_log"):
            return self._triggers(plan, self._log_body(plan, key_changed))
        shadow = self.q(plan.shadow_table)
        pk_shadow = plan.shadow_primary_key
        delete_where = " AND ".join(
            f"{self.q(c.name)} = (SELECT {c.expression} FROM {self.row_source(plan, 'OLD')})"
            if c.expression != self.column_reference(c.source_column or c.name)
            else f"{self.q(c.name)} = OLD.{self.q(c.source_column or c.name)}"
            for c in pk_shadow
        )
        non_key = [c for c in plan.columns if c not in pk_shadow]
        conflict = ", ".join(self.q(c.name) for c in pk_shadow)
        if non_key:
            on_conflict = "DO UPDATE SET " + ", ".join(f"{self.q(c.name)} = EXCLUDED.{self.q(c.name)}" for c in non_key)
        else:
            on_conflict = "DO NOTHING"
        upsert = (
            f"INSERT INTO {shadow} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {self.row_source(plan, 'NEW')} "
            f"ON CONFLICT ({conflict}) {on_conflict};"
        )
        body = f"""
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM {shadow} WHERE {delete_where};
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND ({key_changed}) THEN
    DELETE FROM {shadow} WHERE {delete_where};
  END IF;
  {upsert}
  RETURN NULL;
END
"""
        return self._triggers(plan, body)

    def _log_body(self, plan: Plan, key_changed: str) -> str:
        """The change-log triggers: one small insert of the key, whatever the change."""
        log_table = self.q(plan.extra["change_log"])
        columns = ", ".join(self.q(k) for k in plan.primary_key)

        def logged(record: str) -> str:
            values = ", ".join(f"{record}.{self.q(k)}" for k in plan.primary_key)
            return f"INSERT INTO {log_table} ({columns}) VALUES ({values});"

        return f"""
BEGIN
  IF TG_OP = 'DELETE' THEN
    {logged("OLD")}
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND ({key_changed}) THEN
    {logged("OLD")}
  END IF;
  {logged("NEW")}
  RETURN NULL;
END
"""

    def _triggers(self, plan: Plan, body: str) -> list[str]:
        if "$shadowswap$" in body:
            raise ValueError("copy expressions may not contain $shadowswap$")
        fn = self.q(self.function_name(plan))
        table = self.q(plan.table)
        names = dict(zip(("ins", "upd", "del"), plan.trigger_names, strict=True))
        return [
            f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $shadowswap${body}$shadowswap$",
            f"CREATE TRIGGER {self.q(names['ins'])} AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()",
            f"CREATE TRIGGER {self.q(names['upd'])} AFTER UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()",
            f"CREATE TRIGGER {self.q(names['del'])} AFTER DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()",
        ]

    def drop_trigger_ddl(self, plan: Plan) -> list[str]:
        table = self.q(plan.table)
        stmts = [f"DROP TRIGGER IF EXISTS {self.q(n)} ON {table}" for n in plan.trigger_names]
        stmts.append(f"DROP FUNCTION IF EXISTS {self.q(self.function_name(plan))}()")
        return stmts

    # -- change log ---------------------------------------------------------------------------

    def replay_sql(self, plan: Plan) -> list[str]:
        # Delete, then insert: with the shadow's unique indexes built, a key whose value moved to
        # another logged key must be gone before that one arrives. The insert reads the rows as
        # they are now; an entry that commits later is replayed again later (replay is idempotent).
        log_table, shadow = self.q(plan.extra["change_log"]), self.q(plan.shadow_table)
        pairs = zip(plan.shadow_primary_key, plan.primary_key, strict=True)
        matches = " AND ".join(f"dst.{self.q(c.name)} = l.{self.q(k)}" for c, k in pairs)
        src_key = ", ".join(f"src.{self.q(k)}" for k in plan.primary_key)
        log_key = ", ".join(f"l.{self.q(k)}" for k in plan.primary_key)
        return [
            f"DELETE FROM {shadow} AS dst USING {log_table} AS l WHERE {matches}",
            f"INSERT INTO {shadow} ({self.insert_columns(plan.columns)}) "
            f"SELECT {self.select_list(plan.columns)} FROM {self.q(plan.table)} AS src "
            f"WHERE ({src_key}) IN (SELECT {log_key} FROM {log_table} AS l)",
            f"DELETE FROM {log_table}",
        ]

    def unique_constraint_sql(self, shadow_table: str, index_sql: str, name: str, primary: bool = False) -> list[str]:
        # USING INDEX renames nothing here (the index already has the constraint's name) and only
        # needs a moment's lock on the shadow, which nobody else uses.
        kind = "PRIMARY KEY" if primary else "UNIQUE"
        attach = f"ALTER TABLE {self.q(shadow_table)} ADD CONSTRAINT {self.q(name)} {kind} USING INDEX {self.q(name)}"
        return [index_sql, attach]

    def shadow_column(
        self, reflected: dict[str, Any], type_: sa.types.TypeEngine[Any], nullable: bool, default: str | None
    ) -> sa.Column[Any]:
        # An identity column is created plain: the copy and the triggers write the original ids, and
        # the identity (continuing the old sequence) is attached at the swap.
        if reflected.get("identity"):
            default = None
        return super().shadow_column(reflected, type_, nullable, default)

    def swap_facts(self, conn: Connection, plan: Plan, reflection: Any) -> dict[str, Any]:
        views = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT DISTINCT v.relname FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
                    "JOIN pg_class v ON v.oid = r.ev_class "
                    "WHERE d.refobjid = to_regclass(:t) AND v.oid <> d.refobjid ORDER BY 1"
                ),
                {"t": self.q(plan.table)},
            )
        ]
        if views:
            raise UsageError(
                f"views depend on {plan.table!r} ({', '.join(views)}); PostgreSQL binds them to the table, "
                "so after the swap they would show the old table",
                hint="drop the views before migrating and recreate them after",
            )
        owned: list[tuple[str, str]] = []
        identities: list[dict[str, Any]] = []
        # a sequence follows its column to the new table, under the column's new name; a dropped
        # column's sequence stays with the old table
        target = {c.source_column: c.name for c in plan.columns if c.source_column is not None}
        for col in reflection.columns:
            if col["name"] not in target:
                continue
            row = conn.execute(
                sa.text(
                    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.oid = pg_get_serial_sequence(:t, :c)::regclass"
                ),
                {"t": self.q(plan.table), "c": col["name"]},
            ).first()
            if row is None:
                continue
            qualified = f"{self.q(row[0])}.{self.q(row[1])}"
            identity = col.get("identity")
            if identity:
                identities.append(
                    {
                        "column": target[col["name"]],
                        "schema": row[0],
                        "sequence": row[1],
                        "always": bool(identity.get("always")),
                        "increment": int(identity.get("increment") or 1),
                    }
                )
            else:
                owned.append((target[col["name"]], qualified))
        return {"owned_sequences": owned, "identities": identities}

    def plan_notes(self, plan: Plan) -> list[str]:
        if plan.extra.get("change_log"):
            return [
                "triggers are created under a short lock_timeout with retries, never queueing behind long transactions",
                f"the triggers log changed keys in {plan.extra['change_log']}; replays apply them to the shadow",
                "the copy fills a bare shadow; its key, unique constraints and indexes are built after it",
                "the swap holds ACCESS EXCLUSIVE on the table for a few milliseconds (the last replay), "
                "under lock_timeout",
            ]
        return [
            "triggers are created under a short lock_timeout with retries, never queueing behind long transactions",
            "secondary indexes are built with CREATE INDEX CONCURRENTLY after the copy",
            "the swap holds ACCESS EXCLUSIVE on the table for a few milliseconds, under lock_timeout",
        ]

    def swap_sql(self, plan: Plan, reflected: dict[str, Any]) -> tuple[list[str], list[str]]:
        """One transaction: both renames, trigger removal, index/constraint names, sequence owner."""
        t, s, o = self.q(plan.table), self.q(plan.shadow_table), self.q(plan.old_table)
        # With a change log, the lock leaves its last entries (the writes since the last replay)
        # final: they are applied inside the swap, and the log goes with the triggers.
        log_table = plan.extra.get("change_log")
        stmts = [
            f"LOCK TABLE {t}, {s} IN ACCESS EXCLUSIVE MODE",
            *(self.replay_sql(plan) if log_table else []),
            *[f"DROP TRIGGER IF EXISTS {self.q(n)} ON {t}" for n in plan.trigger_names],
            *([f"DROP TABLE {self.q(log_table)}"] if log_table else []),
            f"ALTER TABLE {t} RENAME TO {o}",
            f"ALTER TABLE {s} RENAME TO {t}",
        ]
        for old_name, shadow_name, final_name in reflected["constraint_renames"]:
            stmts.append(f"ALTER TABLE {o} RENAME CONSTRAINT {self.q(final_name)} TO {self.q(old_name)}")
            stmts.append(f"ALTER TABLE {t} RENAME CONSTRAINT {self.q(shadow_name)} TO {self.q(final_name)}")
        for ix in plan.indexes:
            if not ix.new:
                stmts.append(f"ALTER INDEX {self.q(ix.final_name)} RENAME TO {self.q(ix.old_name)}")
            stmts.append(f"ALTER INDEX {self.q(ix.shadow_name)} RENAME TO {self.q(ix.final_name)}")
        for column, sequence in reflected["owned_sequences"]:
            # The shadow's default already calls nextval() on this sequence; moving ownership keeps
            # `DROP TABLE old` from dropping the sequence the live table now depends on.
            stmts.append(f"ALTER SEQUENCE {sequence} OWNED BY {t}.{self.q(column)}")
        for ident in reflected.get("identities", []):
            # The old identity sequence keeps the old table; a new one, named as the original and
            # positioned where the original stands, is attached to the live column.
            seq = f"{self.q(ident['schema'])}.{self.q(ident['sequence'])}"
            old_seq_name = self.fit_name(f"_{ident['sequence']}_old")
            old_seq = f"{self.q(ident['schema'])}.{self.q(old_seq_name)}"
            kind = "ALWAYS" if ident["always"] else "BY DEFAULT"
            stmts.append(f"ALTER SEQUENCE {seq} RENAME TO {self.q(old_seq_name)}")
            stmts.append(
                f"ALTER TABLE {t} ALTER COLUMN {self.q(ident['column'])} ADD GENERATED {kind} AS IDENTITY "
                f"(SEQUENCE NAME {seq} INCREMENT BY {int(ident['increment'])})"
            )
            literal = seq.replace("'", "''")
            stmts.append(f"SELECT setval('{literal}', last_value, is_called) FROM {old_seq}")
        post = [f"DROP FUNCTION IF EXISTS {self.q(self.function_name(plan))}()"]
        return stmts, post

    def run_swap(
        self, engine: Engine, plan: Plan, lock_timeout_ms: int, in_swap: Callable[[Connection], None]
    ) -> float:
        with engine.connect() as conn:
            with conn.begin():
                for stmt in self.lock_timeout_sql(lock_timeout_ms):
                    self.run(conn, stmt)
                self.run(conn, plan.swap_sql[0])
                locked_at = time.perf_counter()
                for stmt in plan.swap_sql[1:]:
                    self.run(conn, stmt)
                in_swap(conn)
            held = time.perf_counter() - locked_at
            for stmt in plan.post_swap_sql:
                with conn.begin():
                    for s in self.lock_timeout_sql(lock_timeout_ms):
                        self.run(conn, s)
                    self.run(conn, stmt)
        return held

    def begin_snapshot(self, conn: Connection) -> None:
        self.run(conn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def row_image(self, plan: Plan, source: bool) -> str:
        return f"ROW({super().row_image(plan, source)})::text"

    def _hash_image(self, plan: Plan, source: bool) -> str:
        """The row as the checksum hashes it. Columns of a type whose hash tells values apart as
        exactly as their text does are hashed as they are (no text output: 2.5x cheaper at 1M
        rows), the source's cast to the shadow's type so both sides use one hash function; every
        other column (numeric: 1.0 and 1.00 hash alike) is hashed as its text, as the rows are
        compared when a chunk differs."""
        parts = []
        for column in plan.columns:
            value = column.expression if source else f"src.{self.q(column.name)}"
            if _hashes_exactly(column.new_type):
                parts.append(f"CAST({value} AS {column.new_type})" if source else value)
            else:
                parts.append(f"({value})::text")
        return ", ".join(parts)

    def checksum_sql(self, plan: Plan, source: bool, has_lo: bool) -> str:
        if source:
            where = self.range_predicate(plan.primary_key, has_lo, "src.")
            table = self.q(plan.table)
        else:
            pk = [c.name for c in plan.shadow_primary_key]
            where = self.range_predicate(pk, has_lo, "src.")
            table = self.q(plan.shadow_table)
        # An order-free sum of 64-bit row hashes: no sort of the chunk (an md5 of the ordered
        # string_agg cost twice the time at 1M rows). The row image includes the key.
        return (
            f"SELECT count(*), sum(hash_record_extended(ROW({self._hash_image(plan, source)}), 0)) "
            f"FROM {table} AS src WHERE {where}{self.unlogged_predicate(plan, source)}"
        )

    # -- throttling probes -------------------------------------------------------------------

    def replication_lag(self, conn: Connection) -> float | None:
        # replay_lag is NULL once a standby has caught up and gone quiet: that is no lag at all.
        row = conn.execute(
            sa.text("SELECT count(*), coalesce(extract(epoch FROM max(replay_lag)), 0) FROM pg_stat_replication")
        ).one()
        return float(row[1]) if row[0] else None

    def replica_lag(self, conn: Connection) -> float:
        row = conn.execute(
            sa.text(
                "SELECT pg_is_in_recovery(), "
                "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
                "ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END"
            )
        ).one()
        if not row[0]:
            raise ValueError("this server is not a standby (pg_is_in_recovery() is false)")
        return float(row[1])

    def server_load(self, conn: Connection, metric: str | None) -> float:
        if metric not in (None, "active", "active_backends"):
            raise ValueError(f"PostgreSQL's load metric is active backends (--max-load N), not {metric!r}")
        # Client backends running a statement, on the whole server: that is what competes with us.
        return float(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        )

    # -- backups -----------------------------------------------------------------------------

    def backup_table(self, engine: Engine, plan: Plan, directory: Path, stem: str) -> Backup:
        from shadowswap.backup import Backup, run_tool

        with engine.connect() as conn:
            schema = plan.schema or conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        url = engine.url
        env = {
            "PGHOST": str(url.query.get("host") or url.host or ""),
            "PGPORT": str(url.port or ""),
            "PGUSER": url.username or "",
            "PGDATABASE": url.database or "",
            "PGAPPNAME": "shadowswap-backup",
        }
        if url.password is not None:
            env["PGPASSWORD"] = str(url.password)  # the environment, never the arguments
        env = {k: v for k, v in env.items() if v}

        def literal(name: str) -> str:
            # Inside double quotes pg_dump's pattern characters are literal; "" is a quote.
            return '"' + name.replace('"', '""') + '"'

        dump = directory / f"{stem}.dump"
        run_tool(
            [
                "pg_dump",
                "--format=custom",
                "--strict-names",
                f"--table={literal(schema)}.{literal(plan.table)}",
                f"--file={dump}",
            ],
            env,
            secret=url.password,
        )
        # The dump carries shadowswap's own triggers, whose function lives outside the table and
        # is not in it: a restore list without them restores cleanly.
        listing = run_tool(["pg_restore", "--list", str(dump)], env, secret=url.password)
        ours = set(plan.trigger_names)
        lines = []
        for line in listing.splitlines():
            words = line.split()
            if " TRIGGER " in line and ours.intersection(words):
                line = ";" + line
            lines.append(line)
        restore_list = directory / f"{stem}.list"
        restore_list.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return Backup(
            path=dump,
            restore=f"pg_restore --use-list={restore_list} --dbname=DBNAME {dump}",
            extra=[restore_list],
        )
