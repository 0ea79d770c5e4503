"""``--check-casts``: which existing rows will not survive the new definition, found before anything runs.

Read-only and server-side: each key-range chunk (invariant 4) is asked, per changed column, how many
values the new column would refuse (too long, NULL into NOT NULL) and how many a plain cast would
change (a round trip into the old type differs). A value the cast cannot convert at all makes the
statement itself fail; the chunk is then bisected, each half in its own rolled-back transaction,
until the failing rows are single keys. The scan is a snapshot: writes that come later are still
checked by the copy itself, which stops on the first bad value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.copier import key_params
from shadowswap.dialects import Dialect
from shadowswap.plan import CastCheck, ColumnCheck, ColumnPlan, Plan
from shadowswap.uniqueness import check_duplicates

log = structlog.get_logger("shadowswap.castcheck")

SAMPLE_KEYS = 5


def _evaluable(
    engine: Engine, dialect: Dialect, plan: Plan, checked: list[tuple[ColumnPlan, bool]]
) -> tuple[list[tuple[ColumnPlan, bool]], dict[str, list[str]]]:
    """The columns the scan may evaluate, and the others with the volatile functions they call.

    The scan runs each expression in a read-only transaction, which stops this session's writes
    but not a function's own effects elsewhere (dblink_exec writes through another connection):
    an expression calling a volatile function is left to ``execute``, which evaluates it once per
    row anyway."""
    if not checked:
        return checked, {}
    kept, skipped = [], {}
    with engine.connect() as conn:
        for column, plain in checked:
            calls = dialect.volatile_functions(conn, column.expression)
            if calls:
                skipped[column.name] = calls
            else:
                kept.append((column, plain))
        conn.rollback()
    return kept, skipped


def columns_to_check(dialect: Dialect, plan: Plan) -> list[tuple[ColumnPlan, bool]]:
    """Columns whose values pass through a conversion or a new NOT NULL; and whether it is a plain cast."""
    out = []
    for c in plan.columns:
        converted = c.source_column is None or c.expression != dialect.column_reference(c.source_column)
        newly_required = bool(c.old_nullable) and not c.new_nullable
        if converted or newly_required:
            plain = c.source_column is not None and c.expression == dialect.cast_expression(c.source_column, c.new_type)
            out.append((c, plain))
    return out


@dataclass
class _Column:
    plan: ColumnPlan
    fails: str
    changes: str | None
    result: ColumnCheck
    probes: int = 0

    def count_sql(self, table: str, where: str) -> str:
        changed = f"CASE WHEN {self.fails} THEN 0 WHEN {self.changes} THEN 1 ELSE 0 END" if self.changes else "0"
        return f"SELECT SUM(CASE WHEN {self.fails} THEN 1 ELSE 0 END), SUM({changed}) FROM {table} AS src WHERE {where}"

    def sample_sql(self, table: str, where: str, pk: str) -> str:
        either = f"CASE WHEN {self.fails} THEN 1 WHEN {self.changes or '1 = 0'} THEN 1 ELSE 0 END"
        return f"SELECT {pk} FROM {table} AS src WHERE {where} AND ({either}) = 1 ORDER BY {pk} LIMIT {SAMPLE_KEYS}"


@dataclass
class _Scan:
    engine: Engine
    dialect: Dialect
    plan: Plan
    chunk_size: int
    budget: int
    columns: list[_Column] = field(default_factory=list)

    def statement(self, conn: Connection, sql: str, params: dict[str, Any]) -> list[Any]:
        try:
            # each statement in its own read-only transaction: the expressions are the user's
            self.dialect.begin_read_only(conn)
            rows = list(conn.execute(self.dialect.statement(sql), params))
        finally:
            conn.rollback()  # nothing is kept, and a failed statement does not poison the next
        return rows

    def range_sql(self, has_lo: bool) -> str:
        if not self.plan.primary_key:
            return "1 = 1"
        return self.dialect.range_predicate(self.plan.primary_key, has_lo, "src.")

    def check(self, conn: Connection, col: _Column, lo: list[Any] | None, hi: list[Any] | None) -> None:
        """Count (lo, hi] for one column, bisecting on a conversion error."""
        params = {**key_params("lo", lo), **key_params("hi", hi)}
        has_lo = lo is not None
        table = self.dialect.q(self.plan.table)
        try:
            failing, changed = self.statement(conn, col.count_sql(table, self.range_sql(has_lo)), params)[0]
        except DBAPIError as exc:
            if not self.dialect.is_data_error(exc):
                raise
            self.bisect(conn, col, lo, hi, exc)
            return
        failing, changed = int(failing or 0), int(changed or 0)
        col.result.rows_failing += failing
        col.result.rows_changed += changed
        if (failing or changed) and len(col.result.sample_keys) < SAMPLE_KEYS and self.plan.primary_key:
            pk = ", ".join(f"src.{self.dialect.q(c)}" for c in self.plan.primary_key)
            sql = col.sample_sql(table, self.range_sql(has_lo), pk)
            for row in self.statement(conn, sql, params):
                if len(col.result.sample_keys) < SAMPLE_KEYS:
                    col.result.sample_keys.append(list(row))

    def bisect(
        self, conn: Connection, col: _Column, lo: list[Any] | None, hi: list[Any] | None, exc: Exception
    ) -> None:
        pk = self.plan.primary_key
        if not pk or hi is None:
            col.result.rows_failing += 1
            col.result.exact = False
            return
        has_lo = lo is not None
        params = {**key_params("lo", lo), **key_params("hi", hi)}
        table = self.dialect.q(self.plan.table)
        rows = int(
            self.statement(conn, f"SELECT count(*) FROM {table} AS src WHERE {self.range_sql(has_lo)}", params)[0][0]
        )
        if rows <= 1:
            col.result.rows_failing += 1
            if len(col.result.sample_keys) < SAMPLE_KEYS:
                col.result.sample_keys.append(list(hi))
            return
        col.probes += 1
        if col.probes > self.budget:
            # too many failing rows to pin down one by one: count the range once, as a lower bound
            col.result.rows_failing += 1
            col.result.exact = False
            return
        found = self.statement(conn, self.dialect.chunk_bound_sql(self.plan, has_lo), {**params, "skip": rows // 2 - 1})
        mid = list(found[0]) if found else hi
        if mid == hi:  # rows went away under us: count what failed, as a lower bound
            col.result.rows_failing += 1
            col.result.exact = False
            return
        self.check(conn, col, lo, mid)
        self.check(conn, col, mid, hi)

    def run(self) -> int:
        with self.engine.connect() as conn:
            try:
                return self.scan(conn)
            finally:
                conn.rollback()
                self.dialect.end_read_only(conn)

    def scan(self, conn: Connection) -> int:
        scanned = 0
        if not self.plan.primary_key:
            for col in self.columns:
                self.check(conn, col, None, None)
            return int(self.statement(conn, f"SELECT count(*) FROM {self.dialect.q(self.plan.table)}", {})[0][0])
        top = self.statement(conn, self.dialect.max_key_sql(self.plan), {})
        if not top:
            return 0
        max_key = list(top[0])
        lo: list[Any] | None = None
        while lo is None or lo != max_key:
            params = {**key_params("lo", lo), **key_params("hi", max_key), "skip": self.chunk_size - 1}
            found = self.statement(conn, self.dialect.chunk_bound_sql(self.plan, lo is not None), params)
            hi = list(found[0]) if found else max_key
            count_params = {**key_params("lo", lo), **key_params("hi", hi)}
            range_sql = self.range_sql(lo is not None)
            scanned += int(
                self.statement(
                    conn,
                    f"SELECT count(*) FROM {self.dialect.q(self.plan.table)} AS src WHERE {range_sql}",
                    count_params,
                )[0][0]
            )
            for col in self.columns:
                self.check(conn, col, lo, hi)
            log.debug("cast check chunk", hi=hi)
            lo = hi
        return scanned


def check_casts(engine: Engine, dialect: Dialect, plan: Plan, chunk_size: int = 10_000, budget: int = 500) -> CastCheck:
    """Scan the table through the plan's conversions; nothing is written."""
    checked, skipped = _evaluable(engine, dialect, plan, columns_to_check(dialect, plan))
    scan = _Scan(engine, dialect, plan, chunk_size, budget)
    for column, plain in checked:
        fails, changes = dialect.cast_check_predicates(column, plain)
        scan.columns.append(
            _Column(column, fails, changes, ColumnCheck(column=column.name, expression=column.expression))
        )
    rows = scan.run() if scan.columns else 0
    if not scan.columns:  # the duplicate search below does not count the rows
        with engine.connect() as conn:
            rows = int(conn.execute(dialect.statement(f"SELECT COUNT(*) FROM {dialect.q(plan.table)}")).scalar_one())
    # unique keys the plan adds, or whose values it converts, can meet colliding rows (uniqueness.py)
    duplicates = check_duplicates(engine, dialect, plan)
    results = [c.result for c in scan.columns]
    for column in plan.columns:
        if column.name in skipped:
            # not scanned: counts unknown (exact=False reads as "at least 0"); the copy still stops on a bad value
            results.append(ColumnCheck(column=column.name, expression=column.expression, exact=False))
            plan.notes.append(
                f"--check-casts did not evaluate column {column.name!r}: its expression calls the volatile "
                f"function(s) {', '.join(skipped[column.name])}, whose effects a read-only transaction may not "
                "contain; execute evaluates it (the copy stops on the first value the new column refuses)"
            )
    return CastCheck(rows_scanned=rows, columns=results, duplicates=duplicates)


@dataclass(frozen=True)
class FailingRow:
    """The first row, in key order, whose value the new definition refuses: what a failed copy names."""

    column: str
    key: list[Any]
    value: Any

    def describe(self, key_columns: list[str]) -> str:
        key = ", ".join(f"{c}={v!r}" for c, v in zip(key_columns, self.key, strict=False))
        return f"the row {key}: column {self.column!r} holds {_short(self.value)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def first_failing(
    engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, chunk_size: int = 10_000
) -> FailingRow | None:
    """The first row after ``lo`` (in key order) that a conversion of the plan refuses, or None.

    The copy's error says only that some row of a chunk failed (MariaDB even names the shadow and a
    row number within the statement); this walks the same keyset from ``lo`` with the cast check's
    predicates, read-only, until one column finds a failing key, so the message can name the key and
    the value. A diagnosis only: whatever it cannot find leaves the database's own message standing."""
    pk = plan.primary_key
    if not pk:
        return None
    scan = _Scan(engine, dialect, plan, chunk_size, budget=64)
    # a volatile function's effects would happen a second time here: such columns keep the copy's message
    for column, plain in _evaluable(engine, dialect, plan, columns_to_check(dialect, plan))[0]:
        fails, _changes = dialect.cast_check_predicates(column, plain)
        # only refusals matter here: a value that merely changes is copied
        scan.columns.append(_Column(column, fails, None, ColumnCheck(column=column.name, expression=column.expression)))
    if not scan.columns:
        return None
    table = dialect.q(plan.table)
    with engine.connect() as conn:
        try:
            return _walk_to_failing(scan, conn, table, lo, chunk_size)
        finally:
            conn.rollback()
            dialect.end_read_only(conn)  # the pooled connection goes back able to write (SQLite)


def _walk_to_failing(
    scan: _Scan, conn: Connection, table: str, lo: list[Any] | None, chunk_size: int
) -> FailingRow | None:
    dialect, plan, pk = scan.dialect, scan.plan, scan.plan.primary_key
    top = scan.statement(conn, dialect.max_key_sql(plan), {})
    if not top:
        return None
    max_key = list(top[0])
    at = lo
    while at is None or at != max_key:
        params = {**key_params("lo", at), **key_params("hi", max_key), "skip": chunk_size - 1}
        found = scan.statement(conn, dialect.chunk_bound_sql(plan, at is not None), params)
        hi = list(found[0]) if found else max_key
        failing = []
        for col in scan.columns:
            scan.check(conn, col, at, hi)
            if col.result.rows_failing and col.result.sample_keys:
                failing.append((col.result.sample_keys[0], col))
        if failing:
            key, col = min(failing, key=lambda f: scan.columns.index(f[1]))
            where = " AND ".join(f"{dialect.q(c)} = :lo{i}" for i, c in enumerate(pk))
            source = col.plan.source_column
            value = (
                scan.statement(conn, f"SELECT {dialect.q(source)} FROM {table} WHERE {where}", key_params("lo", key))[
                    0
                ][0]
                if source is not None
                else None
            )
            return FailingRow(column=source or col.plan.name, key=list(key), value=value)
        at = hi
    return None
