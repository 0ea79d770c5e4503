"""Runs a plan's phases in order; the only place that knows the order.

Each phase is idempotent and recorded in the state table before the next begins, so a crash at
any point either resumes (``execute`` again) or aborts cleanly (``abort``).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from shadowswap import state
from shadowswap.copier import ChunkSizer, Copier
from shadowswap.cutover import LockRetriesExhausted, with_lock_retries
from shadowswap.dialects import Dialect
from shadowswap.errors import CopyFailed, CutoverFailed, MigrationLocked, ShadowswapError, UsageError
from shadowswap.plan import Plan
from shadowswap.planner import check_fresh
from shadowswap.strategy import INSTANT, refuse_unsafe, run_instant
from shadowswap.verify import verify

log = structlog.get_logger("shadowswap")


@dataclass
class Options:
    chunk_size: int = 1000
    chunk_time: float = 0.5
    min_chunk: int = 100
    max_chunk: int = 100_000
    lock_timeout_ms: int = 200
    lock_retries: int = 30
    verify: bool = True
    #: stop (resumably) once this phase is reached; ``execute`` again continues
    stop_after: str | None = None
    #: run plans that drop or narrow something (the plan's verdict says which)
    allow_destructive: bool = False


class Reporter(Protocol):
    def phase(self, name: str, **facts: Any) -> None: ...
    def copy_started(self, total_estimate: int, already: int) -> None: ...
    def copied(self, rows: int) -> None: ...
    def copy_finished(self) -> None: ...


class SilentReporter:
    def phase(self, name: str, **facts: Any) -> None:
        pass

    def copy_started(self, total_estimate: int, already: int) -> None:
        pass

    def copied(self, rows: int) -> None:
        pass

    def copy_finished(self) -> None:
        pass


@dataclass
class Summary:
    migration_id: int
    table: str
    old_table: str
    rows_copied: int
    seconds: float
    cutover_lock_ms: float | None
    phases: dict[str, float] = field(default_factory=dict)
    strategy: str = "shadow"


def same_plan(a: Plan, b: Plan) -> bool:
    return (
        a.fingerprint == b.fingerprint
        and a.changes == b.changes
        and [c.expression for c in a.columns] == [c.expression for c in b.columns]
    )


class Executor:
    def __init__(
        self,
        engine: Engine,
        dialect: Dialect,
        plan: Plan,
        options: Options | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.plan = plan
        self.options = options or Options()
        self.reporter: Reporter = reporter or SilentReporter()
        self.timings: dict[str, float] = {}

    def run(self) -> Summary:
        if self.plan.dialect != self.dialect.name:
            raise UsageError(f"the plan was made for {self.plan.dialect}, this database is {self.dialect.name}")
        refuse_unsafe(self.plan, self.options.allow_destructive)
        started = time.perf_counter()
        if self.plan.strategy == INSTANT:
            return self._run_instant(started)
        state.ensure(self.engine)
        with self.dialect.migration_lock(self.engine, self.plan.table) as got:
            if not got:
                raise MigrationLocked(
                    f"another shadowswap process is migrating {self.plan.table!r}",
                    hint="wait for it, or check `shadowswap status`",
                )
            migration = self._claim()
            log.info("migration claimed", table=self.plan.table, id=migration.id, phase=migration.phase)
            try:
                migration = self._run_phases(migration)
            except CopyFailed as exc:
                # The triggers would now fail the application's own writes of such values:
                # take them and the shadow away before reporting.
                self._undo(migration.id, state.FAILED, error=str(exc))
                raise
        return Summary(
            migration_id=migration.id,
            table=self.plan.table,
            old_table=self.plan.old_table,
            rows_copied=migration.rows_copied,
            seconds=time.perf_counter() - started,
            cutover_lock_ms=migration.cutover_lock_ms,
            phases=self.timings,
        )

    def _run_instant(self, started: float) -> Summary:
        """The plan's in-place ALTERs, under the migration lock, a lock timeout and retries (invariant 5)."""
        state.ensure(self.engine)
        table = self.plan.table
        with self.dialect.migration_lock(self.engine, table) as got:
            if not got:
                raise MigrationLocked(f"another shadowswap process is migrating {table!r}")
            with self.engine.begin() as conn:
                current = state.active(conn, table)
            if current is not None:
                raise UsageError(
                    f"a migration of {table!r} is in progress (phase {current.phase})",
                    hint="finish it (`shadowswap execute`) or `shadowswap abort` it first",
                )
            check_fresh(self.engine, self.plan)
            with self.engine.begin() as conn:
                migration_id = state.create(
                    conn,
                    table=table,
                    shadow=self.plan.shadow_table,
                    old=self.plan.old_table,
                    fingerprint=self.plan.fingerprint,
                    plan_json=self.plan.to_json(),
                    estimated_rows=self.plan.estimated_rows,
                )
            try:
                seconds = self._locked(
                    "alter in place",
                    lambda: run_instant(self.engine, self.dialect, self.plan, self.options.lock_timeout_ms),
                )
            except BaseException as exc:
                # the ALTERs ran in one transaction: nothing changed
                with self.engine.begin() as conn:
                    state.update(conn, migration_id, phase=state.ABORTED, error=str(exc)[:1000] or type(exc).__name__)
                raise
            with self.engine.begin() as conn:
                state.update(conn, migration_id, phase=state.ALTERED, cutover_lock_ms=seconds * 1000)
        log.info("altered in place", table=table, ms=round(seconds * 1000, 1))
        self.reporter.phase(state.ALTERED)
        return Summary(
            migration_id=migration_id,
            table=table,
            old_table=self.plan.old_table,
            rows_copied=0,
            seconds=time.perf_counter() - started,
            cutover_lock_ms=seconds * 1000,
            strategy=INSTANT,
        )

    # -- claim / resume ----------------------------------------------------------------------

    def _claim(self) -> state.Migration:
        with self.engine.begin() as conn:
            current = state.active(conn, self.plan.table)
            finished = [m for m in state.kept_old(conn, self.plan.table) if m.fingerprint == self.plan.fingerprint]
        if current is None and finished:
            raise UsageError(
                f"this plan was already executed (migration {finished[-1].id} swapped {self.plan.table!r})",
                hint="`shadowswap status` shows it; plan again for a further change",
            )
        if current is not None:
            stored = Plan.from_json(current.plan_json)
            if not same_plan(stored, self.plan):
                raise UsageError(
                    f"a different migration of {self.plan.table!r} is in progress (phase {current.phase})",
                    hint="resume it with its own plan, or `shadowswap abort` it first",
                )
            if current.phase == state.VERIFIED and self._swap_happened(stored):
                return self._finish_interrupted_swap(current, stored)
            check_fresh(self.engine, self.plan)
            self.plan = stored
            log.info("resuming", phase=current.phase, checkpoint=current.checkpoint)
            return current
        check_fresh(self.engine, self.plan)
        inspector = sa.inspect(self.engine)
        for name in (self.plan.shadow_table, self.plan.old_table):
            if inspector.has_table(name):
                raise UsageError(
                    f"table {name!r} already exists",
                    hint="`shadowswap status` shows the migration that left it; `cleanup --drop-old` or "
                    "`abort` removes it",
                )
        with self.engine.begin() as conn:
            migration_id = state.create(
                conn,
                table=self.plan.table,
                shadow=self.plan.shadow_table,
                old=self.plan.old_table,
                fingerprint=self.plan.fingerprint,
                plan_json=self.plan.to_json(),
                estimated_rows=self.plan.estimated_rows,
            )
            return state.get(conn, migration_id)

    def _swap_happened(self, plan: Plan) -> bool:
        """On engines whose swap cannot share a transaction with its record, a crash can fall between."""
        inspector = sa.inspect(self.engine)
        return inspector.has_table(plan.old_table) and not inspector.has_table(plan.shadow_table)

    def _finish_interrupted_swap(self, m: state.Migration, plan: Plan) -> state.Migration:
        log.warning("the swap had happened before the crash; finishing it", table=plan.table)
        self.plan = plan
        for stmt in plan.post_swap_sql:
            with self.engine.begin() as conn:
                self.dialect.run(conn, stmt)
        return self._set_phase(m.id, state.CUT_OVER)

    def _set_phase(self, migration_id: int, phase: str, **values: Any) -> state.Migration:
        with self.engine.begin() as conn:
            state.update(conn, migration_id, phase=phase, **values)
            migration = state.get(conn, migration_id)
        log.info("phase", phase=phase, table=self.plan.table)
        self.reporter.phase(phase, **values)
        return migration

    # -- phases ------------------------------------------------------------------------------

    def _run_phases(self, m: state.Migration) -> state.Migration:
        steps = [
            (state.PLANNED, state.SHADOW_CREATED, self._create_shadow),
            (state.SHADOW_CREATED, state.TRIGGERS_INSTALLED, self._install_triggers),
            (state.TRIGGERS_INSTALLED, state.COPIED, self._copy),
            (state.COPIED, state.INDEXES_BUILT, self._build_indexes),
            (state.INDEXES_BUILT, state.VERIFIED, self._verify),
            (state.VERIFIED, state.CUT_OVER, self._cut_over),
        ]
        for before, after, step in steps:
            if m.phase != before:
                continue
            t0 = time.perf_counter()
            values = step(m) or {}
            self.timings[after] = time.perf_counter() - t0
            m = self._set_phase(m.id, after, **values)
            if after == self.options.stop_after:
                break
        return m

    def _create_shadow(self, m: state.Migration) -> None:
        with self.engine.begin() as conn:
            if not sa.inspect(conn).has_table(self.plan.shadow_table):
                for stmt in self.plan.shadow_ddl:
                    self.dialect.run(conn, stmt)
        if self.dialect.build_indexes_before_copy:
            for index in self.plan.indexes:
                self.dialect.build_index(self.engine, self.plan, index)

    def _install_triggers(self, m: state.Migration) -> dict[str, Any]:
        def install() -> None:
            with self.engine.begin() as conn:
                for stmt in self.dialect.lock_timeout_sql(self.options.lock_timeout_ms):
                    self.dialect.run(conn, stmt)
                self.dialect.install_triggers(conn, self.plan)

        self._locked("install triggers", install)
        # Every write that commits from now on goes through the triggers; every earlier write is
        # committed (creating a trigger waits for in-flight writers). So rows above this key are
        # all the triggers' business, and the copy can stop here (invariant 1).
        with self.engine.connect() as conn:
            top = conn.execute(sa.text(self.dialect.max_key_sql(self.plan))).first()
        return {"max_key": state.encode_key(list(top)) if top is not None else None}

    def _copy(self, m: state.Migration) -> None:
        if m.max_key is None:
            return
        sizer = ChunkSizer(
            size=self.options.chunk_size,
            target_seconds=self.options.chunk_time,
            minimum=self.options.min_chunk,
            maximum=self.options.max_chunk,
        )
        coerced_checkpoint = self._coerce_key(m.checkpoint)
        max_key = self._coerce_key(m.max_key)
        assert max_key is not None
        self.reporter.copy_started(max(m.estimated_rows, m.rows_copied), m.rows_copied)
        copier = Copier(
            self.engine,
            self.dialect,
            self.plan,
            m.id,
            sizer,
            on_progress=lambda rows, _size: self.reporter.copied(rows),
        )
        try:
            copier.run(coerced_checkpoint, max_key)
        finally:
            self.reporter.copy_finished()

    def _coerce_key(self, values: list[Any] | None) -> list[Any] | None:
        """Checkpoints are JSON; give the key values back their column's Python type."""
        if values is None:
            return None
        with self.engine.connect() as conn:
            columns = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(self.plan.table)}
        out = []
        for name, value in zip(self.plan.primary_key, values, strict=True):
            try:
                python_type = columns[name].python_type
            except (NotImplementedError, KeyError):
                python_type = None
            if python_type is not None and value is not None and not isinstance(value, python_type):
                if hasattr(python_type, "fromisoformat"):
                    value = python_type.fromisoformat(value)
                else:
                    value = python_type(value)
            out.append(value)
        return out

    def _build_indexes(self, m: state.Migration) -> None:
        if not self.dialect.build_indexes_before_copy:
            for index in self.plan.indexes:
                log.info("building index", index=index.final_name)
                self.dialect.build_index(self.engine, self.plan, index)
        for stmt in self.plan.foreign_key_ddl:
            self._locked("add foreign key", functools.partial(self._run_with_lock_timeout, stmt))
        analyze = self.dialect.analyze_sql(self.plan.shadow_table)
        if analyze:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                self.dialect.run(conn, analyze)

    def _verify(self, m: state.Migration) -> None:
        if self.options.verify:
            rows = verify(self.engine, self.dialect, self.plan)
            log.info("verified", rows=rows)

    def _cut_over(self, m: state.Migration) -> dict[str, Any]:
        def record(conn: Connection) -> None:
            state.update(conn, m.id, phase=state.CUT_OVER)

        held = self._locked(
            "swap",
            lambda: self.dialect.run_swap(self.engine, self.plan, self.options.lock_timeout_ms, record),
            cutover=True,
        )
        log.info("swapped", table=self.plan.table, old_table=self.plan.old_table, lock_ms=round(held * 1000, 1))
        return {"cutover_lock_ms": held * 1000}

    def _run_with_lock_timeout(self, stmt: str) -> None:
        with self.engine.begin() as conn:
            for setting in self.dialect.lock_timeout_sql(self.options.lock_timeout_ms):
                self.dialect.run(conn, setting)
            self.dialect.run(conn, stmt)

    def _locked(self, what: str, action: Any, cutover: bool = False) -> Any:
        try:
            return with_lock_retries(self.dialect, what, action, self.options.lock_retries)
        except LockRetriesExhausted as exc:
            if cutover:
                raise CutoverFailed(
                    f"the swap could not lock {self.plan.table!r}: {exc}",
                    hint="the original table is untouched and dual-write stays on; run `shadowswap execute` "
                    "again to retry the swap, or `shadowswap abort`",
                ) from None
            raise ShadowswapError(
                f"could not {what} on {self.plan.table!r}: {exc}",
                hint="long transactions hold the table; run `shadowswap execute` again to resume",
            ) from None

    # -- abort -------------------------------------------------------------------------------

    def _undo(self, migration_id: int, phase: str, error: str | None = None) -> None:
        remove_migration_objects(self.engine, self.dialect, self.plan, self.options)
        with self.engine.begin() as conn:
            state.update(conn, migration_id, phase=phase, error=error)


def remove_migration_objects(engine: Engine, dialect: Dialect, plan: Plan, options: Options) -> None:
    """Drop the triggers (first: they write into the shadow) and then the shadow."""

    def drop_triggers() -> None:
        with engine.begin() as conn:
            for stmt in dialect.lock_timeout_sql(options.lock_timeout_ms):
                dialect.run(conn, stmt)
            for stmt in plan.drop_trigger_ddl:
                dialect.run(conn, stmt)

    with_lock_retries(dialect, "drop triggers", drop_triggers, options.lock_retries)
    with engine.begin() as conn:
        dialect.run(conn, dialect.drop_table_sql(plan.shadow_table))


def abort(engine: Engine, dialect: Dialect, table: str, options: Options | None = None) -> state.Migration:
    options = options or Options()
    state.ensure(engine)
    with dialect.migration_lock(engine, table) as got:
        if not got:
            raise MigrationLocked(
                f"a shadowswap process is still migrating {table!r}", hint="stop it (Ctrl-C) first, then abort"
            )
        with engine.begin() as conn:
            migration = state.active(conn, table)
        if migration is None:
            raise UsageError(f"no unfinished migration of {table!r} to abort", hint="`shadowswap status` lists them")
        plan = Plan.from_json(migration.plan_json)
        remove_migration_objects(engine, dialect, plan, options)
        with engine.begin() as conn:
            state.update(conn, migration.id, phase=state.ABORTED)
            return state.get(conn, migration.id)


def cleanup(engine: Engine, dialect: Dialect, table: str | None) -> list[state.Migration]:
    """Drop the old tables kept by finished migrations (of ``table``, or all)."""
    state.ensure(engine)
    with engine.begin() as conn:
        kept = state.kept_old(conn, table)
    done = []
    for migration in kept:
        with engine.begin() as conn:
            dialect.run(conn, dialect.drop_table_sql(migration.old_table))
            state.update(conn, migration.id, phase=state.CLEANED_UP)
            done.append(state.get(conn, migration.id))
    return done
