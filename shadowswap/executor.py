"""Runs a plan's phases in order; the only place that knows the order.

Each phase is idempotent and recorded in the state table before the next begins, so a crash at
any point either resumes (``execute`` again) or aborts cleanly (``abort``).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap import changelog, hooks, state
from shadowswap.backup import take_backup
from shadowswap.copier import ChunkSizer, Copier
from shadowswap.cutover import LockRetriesExhausted, with_lock_retries
from shadowswap.db import first_line
from shadowswap.dialects import Dialect
from shadowswap.errors import (
    CopyFailed,
    CutoverFailed,
    HookFailed,
    MigrationLocked,
    ShadowswapError,
    StalePlan,
    UsageError,
)
from shadowswap.hooks import Hooks
from shadowswap.plan import IndexPlan, Plan
from shadowswap.planner import check_fresh
from shadowswap.strategy import INSTANT, refuse_unsafe, run_instant
from shadowswap.throttle import Throttler, ThrottleSettings
from shadowswap.urls import mask_url
from shadowswap.verify import VerifyResult, verify

log = structlog.get_logger("shadowswap")


@dataclass
class Options:
    chunk_size: int = 1000
    chunk_time: float = 0.1
    min_chunk: int = 100
    max_chunk: int = 100_000
    #: chunks copied at once (None: the dialect's default; a --max-rows-per-second cap uses one)
    copy_workers: int | None = None
    lock_timeout_ms: int = 200
    lock_retries: int = 30
    verify: bool = True
    #: stop (resumably) once this phase is reached; ``execute`` again continues
    stop_after: str | None = None
    #: run plans that drop or narrow something (the plan's verdict says which)
    allow_destructive: bool = False
    #: pause, lag and load limits, rate cap (throttle.py)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    #: wait after verifying until ``shadowswap cutover`` (or the file below is removed)
    postpone_cutover: bool = False
    postpone_file: Path | None = None
    hooks: Hooks = field(default_factory=Hooks)
    #: seconds between asking a refusing on-before-cutover hook again
    hook_retry_seconds: float = 10.0
    backup_dir: Path | None = None


class Reporter(Protocol):
    def phase(self, name: str, **facts: Any) -> None: ...
    def copy_started(self, total_estimate: int, already: int) -> None: ...
    def copied(self, rows: int) -> None: ...
    def copy_finished(self) -> None: ...
    def waiting(self, reason: str | None) -> None: ...


class SilentReporter:
    def phase(self, name: str, **facts: Any) -> None:
        pass

    def copy_started(self, total_estimate: int, already: int) -> None:
        pass

    def copied(self, rows: int) -> None:
        pass

    def copy_finished(self) -> None:
        pass

    def waiting(self, reason: str | None) -> None:
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
    backup_path: str | None = None
    backup_restore: str | None = None


class _VerifyAbandoned(Exception):
    """Raised inside a background verification whose phase failed before it was needed."""


def _copied(copier: Copier, stopped: Callable[[], bool], hi: list[Any]) -> None:
    """Return once the copy has committed every key up to ``hi``."""
    while not copier.finished:
        through = copier.copied_through
        if through is not None and _at_or_after(through, hi):
            return
        if stopped():
            raise _VerifyAbandoned
        time.sleep(0.02)


def _at_or_after(a: list[Any], b: list[Any]) -> bool:
    try:
        return list(a) >= list(b)
    except TypeError:  # keys the two reads typed differently: wait for the whole copy
        return False


class _BackgroundVerify:
    """The verification, started while the indexes are built (``Dialect.verify_while_indexing``)."""

    def __init__(self, run: Callable[[Callable[[], bool]], VerifyResult]) -> None:
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadowswap-verify-early")
        self._future = self._pool.submit(run, self._stop.is_set)

    def result(self) -> VerifyResult:
        try:
            return self._future.result()
        finally:
            self._pool.shutdown(wait=True)

    def abandon(self) -> None:
        """Stop at the next chunk and wait for it: nothing may read the shadow after a failure."""
        self._stop.set()
        self._pool.shutdown(wait=True)


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
        self.throttler: Throttler | None = None
        self.started = time.perf_counter()
        self._waiting: str | None = None
        self._migration_id: int | None = None
        self._backup_restore: str | None = None
        self._early_verify: _BackgroundVerify | None = None

    def run(self) -> Summary:
        if self.plan.dialect != self.dialect.name:
            raise UsageError(f"the plan was made for {self.plan.dialect}, this database is {self.dialect.name}")
        refuse_unsafe(self.plan, self.options.allow_destructive)
        self.started = time.perf_counter()
        if self.plan.strategy == INSTANT:
            return self._run_instant(self.started)
        state.ensure(self.engine)
        with self.dialect.migration_lock(self.engine, self.plan.table) as got:
            if not got:
                raise MigrationLocked(
                    f"another shadowswap process is migrating {self.plan.table!r}",
                    hint="wait for it, or check `shadowswap status`",
                )
            # bad throttle options (an unreachable replica, an unknown load metric) fail before any change
            self.throttler = Throttler(self.engine, self.dialect, self.options.throttle, note=self._note_waiting)
            try:
                self.throttler.open()
                migration = self._claim()
            except BaseException:
                self.throttler.close()
                raise
            self._migration_id = self.throttler.migration_id = migration.id
            log.info("migration claimed", table=self.plan.table, id=migration.id, phase=migration.phase)
            try:
                migration = self._start(migration)
                migration = self._run_phases(migration)
            except CopyFailed as exc:
                # The triggers would now fail the application's own writes of such values:
                # take them and the shadow away before reporting.
                self._undo(migration.id, state.FAILED, error=str(exc))
                self._hook(hooks.ON_FAILURE, self._current(migration.id), error=str(exc))
                raise
            except (ShadowswapError, DBAPIError) as exc:
                message = str(exc) if isinstance(exc, ShadowswapError) else f"database error: {exc.orig}"
                message = message.splitlines()[0][:2000]
                try:
                    with self.engine.begin() as conn:
                        # the lock that just stopped us may still be held: do not queue behind it (invariant 5)
                        for setting in self.dialect.lock_timeout_sql(self.options.lock_timeout_ms):
                            self.dialect.run(conn, setting)
                        state.update(conn, migration.id, error=message)
                    failed = self._current(migration.id)
                except DBAPIError as again:  # the database itself is gone: report the first error
                    log.warning("could not record the error", error=str(again.orig).splitlines()[0])
                    failed = migration
                self._hook(hooks.ON_FAILURE, failed, error=message)
                raise
            finally:
                self._note_waiting(None)
                self.throttler.close()
        if migration.phase == state.CUT_OVER:
            self._hook(hooks.ON_SUCCESS, migration)
        return Summary(
            migration_id=migration.id,
            table=self.plan.table,
            old_table=self.plan.old_table,
            rows_copied=migration.rows_copied,
            seconds=time.perf_counter() - self.started,
            cutover_lock_ms=migration.cutover_lock_ms,
            phases=self.timings,
            backup_path=migration.backup_path,
            backup_restore=self._backup_restore,
        )

    def _start(self, m: state.Migration) -> state.Migration:
        """Record this run's operator settings, then ask the on-start hook (it may refuse)."""
        values: dict[str, Any] = {"error": None, "waiting": None}
        if self.options.postpone_cutover or self.options.postpone_file is not None:
            values["cutover_postponed"] = True
            if self.options.postpone_file is not None and not m.reached(state.CUT_OVER):
                self.options.postpone_file.touch(exist_ok=True)
        # only what changed: on SQLite every write, even to the state table, needs the one write lock
        values = {k: v for k, v in values.items() if getattr(m, k) != v}
        if values:
            with self.engine.begin() as conn:
                state.update(conn, m.id, **values)
                m = state.get(conn, m.id)
        status = self._hook(hooks.ON_START, m)
        if status != 0:
            raise HookFailed(
                f"the on-start hook exited with status {status}; the migration did not start",
                hint="the hook's output is in the log above",
            )
        return m

    # -- facts, hooks, waiting ---------------------------------------------------------------

    def _current(self, migration_id: int) -> state.Migration:
        with self.engine.connect() as conn:
            return state.get(conn, migration_id)

    def facts(self, m: state.Migration, **extra: Any) -> dict[str, Any]:
        """What a hook is told (as SHADOWSWAP_* environment variables); never a password."""
        return {
            "migration_id": m.id,
            "table": self.plan.table,
            "shadow_table": self.plan.shadow_table,
            "old_table": self.plan.old_table,
            "phase": m.phase,
            "rows_copied": m.rows_copied,
            "estimated_rows": m.estimated_rows,
            "elapsed_seconds": round(time.perf_counter() - self.started, 3),
            "changes": "; ".join(self.plan.changes),
            "dialect": self.dialect.name,
            "database": self.engine.url.database,
            "database_url": mask_url(self.engine.url),
            "cutover_lock_ms": None if m.cutover_lock_ms is None else round(m.cutover_lock_ms, 3),
            "backup": m.backup_path,
            "error": m.error,
            **extra,
        }

    def _hook(self, event: str, m: state.Migration, **extra: Any) -> int:
        if not self.options.hooks.commands.get(event):
            return 0
        return self.options.hooks.run(event, self.facts(m, **extra))

    def _note_waiting(self, reason: str | None) -> None:
        """Why the migration is standing still: logged, shown, and written where `status` reads it."""
        if reason == self._waiting:
            return
        self._waiting = reason
        self.reporter.waiting(reason)
        if self._migration_id is not None:
            try:
                with self.engine.begin() as conn:
                    state.update(conn, self._migration_id, waiting=reason)
            except DBAPIError as exc:  # the note is for humans; the migration's own state is elsewhere
                log.warning("could not record the waiting reason", error=str(exc.orig).splitlines()[0])

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
            try:
                check_fresh(self.engine, self.plan)
            except StalePlan:
                # changed since planned: by this very plan, run before? then say so, not "stale"
                with self.engine.connect() as conn:
                    done = state.applied_in_place(conn, table, self.plan.fingerprint, self.plan.instant_sql)
                if done is None:
                    raise
                raise StalePlan(
                    f"this plan was already applied: migration {done.id} altered {table!r} in place",
                    hint="nothing to do; `shadowswap status` lists it",
                ) from None
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
        assert self.throttler is not None
        for before, after, step in steps:
            if m.phase != before:
                continue
            # a pause (or lag, or load) also holds the next phase from starting, not just the next chunk
            self.throttler.wait()
            t0 = time.perf_counter()
            values = step(m) or {}
            self.timings[after] = time.perf_counter() - t0
            m = self._set_phase(m.id, after, **values)
            if after == state.COPIED:
                self._hook(hooks.ON_COPY_DONE, m)
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
        maximum = self.options.max_chunk
        rate = self.options.throttle.max_rows_per_second
        if rate:
            # a chunk bigger than the cap allows per chunk-time would copy in bursts and then sleep
            maximum = max(self.options.min_chunk, min(maximum, int(rate * self.options.chunk_time)))
        sizer = ChunkSizer(
            size=min(self.options.chunk_size, maximum),
            target_seconds=self.options.chunk_time,
            minimum=self.options.min_chunk,
            maximum=maximum,
        )
        assert self.throttler is not None
        coerced_checkpoint = self._coerce_key(m.checkpoint)
        max_key = self._coerce_key(m.max_key)
        assert max_key is not None
        if changelog.in_use(self.plan):
            # Only the copy writes the shadow before the first replay, so rows above the checkpoint
            # are chunks a stopped run committed past its low watermark: copied again below.
            with self.engine.begin() as conn:
                params = {f"lo{i}": v for i, v in enumerate(coerced_checkpoint or [])}
                sql = self.dialect.clear_copied_sql(self.plan, has_lo=coerced_checkpoint is not None)
                conn.execute(self.dialect.statement(sql), params)
        self.reporter.copy_started(max(m.estimated_rows, m.rows_copied), m.rows_copied)
        copier = Copier(
            self.engine,
            self.dialect,
            self.plan,
            m.id,
            sizer,
            on_progress=lambda rows, _size: self.reporter.copied(rows),
            before_chunk=self.throttler.wait,
            after_chunk=self.throttler.pace,
            workers=1 if rate else (self.options.copy_workers or self.dialect.default_copy_workers),
        )
        if self._verify_beside_copy():
            # With a change log and the shadow's key in place, a copied range already holds for
            # every key that has no log entry (changelog.py): its checksums can be compared while
            # the copy goes on, on the second core, a chunk behind it.
            self._early_verify = _BackgroundVerify(
                lambda stopped: self._run_verify(stopped, ready=functools.partial(_copied, copier, stopped))
            )
        try:
            copier.run(coerced_checkpoint, max_key)
        except BaseException:
            self._abandon_early_verify()
            raise
        finally:
            self.reporter.copy_finished()
            if copier.races:
                log.info("chunks rerun after meeting a trigger's row", chunks=copier.races)

    def _abandon_early_verify(self) -> None:
        if self._early_verify is not None:
            self._early_verify.abandon()
            self._early_verify = None

    def _verify_beside_copy(self) -> bool:
        return (
            self.options.verify
            and changelog.in_use(self.plan)
            and not self.dialect.primary_key_after_copy
            and not self.dialect.build_indexes_before_copy
            and self.options.stop_after not in (state.SHADOW_CREATED, state.TRIGGERS_INSTALLED, state.COPIED)
        )

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
        build_here = not self.dialect.build_indexes_before_copy and bool(self.plan.indexes)
        # with a change log nothing but the replays writes the shadow, and no build waits on them
        verify_now = self.options.verify and (self.dialect.verify_while_indexing or changelog.in_use(self.plan))
        try:
            if changelog.in_use(self.plan):
                primary = self.plan.extra.get("primary_key_after_copy")
                if primary is not None:
                    self._build_unique_index(primary)
                    self._attach_constraints([primary])
                changelog.catch_up(self.engine, self.dialect, self.plan)  # needs the key's index
            if build_here and verify_now and self.options.stop_after != state.INDEXES_BUILT and not self._early_verify:
                # The builds and the checksums are separate CPU work over tables whose rows no
                # longer change but through the triggers or the replays; the verified phase then
                # only collects the result. (Not before the shadow's key exists: each chunk's read
                # of the shadow would be a full scan.)
                self._early_verify = _BackgroundVerify(self._run_verify)
            self._build_shadow_indexes(build_here)
            for stmt in self.plan.foreign_key_ddl:
                self._locked("add foreign key", functools.partial(self._run_with_lock_timeout, stmt))
            analyze = self.dialect.analyze_sql(self.plan.shadow_table)
            if analyze:
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    self.dialect.run(conn, analyze)
            if changelog.in_use(self.plan):
                changelog.catch_up(self.engine, self.dialect, self.plan)
        except BaseException:
            self._abandon_early_verify()
            raise

    def _build_shadow_indexes(self, build_here: bool) -> None:
        """The shadow's indexes, and with a change log its unique constraints' indexes too.

        With a change log nothing else writes the shadow and the builds are plain ones, which take
        locks that do not conflict with each other: they run ``index_build_workers`` at a time.
        The unique constraints are built right after a full replay (changelog.py says why then)
        and attached once all builds are done.
        """
        uniques = self.plan.extra.get("unique_after_copy", []) if changelog.in_use(self.plan) else []
        together = None
        if changelog.in_use(self.plan) and build_here:
            statements = [u["sql"][0] for u in uniques] + [ix.create_sql for ix in self.plan.indexes]
            together = self.dialect.indexes_together_sql(self.plan, statements)
        jobs: list[Callable[[], None]]
        if together is not None:
            names = [u["name"] for u in uniques] + [ix.shadow_name for ix in self.plan.indexes]
            jobs = [functools.partial(self._build_together, names, together)]
        else:
            jobs = [functools.partial(self._build_unique_index, u) for u in uniques]
            if build_here:
                jobs += [functools.partial(self._build_index, ix) for ix in self.plan.indexes]
        workers = self.dialect.index_build_workers if changelog.in_use(self.plan) else 1
        if workers > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shadowswap-index") as pool:
                futures = [pool.submit(job) for job in jobs]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        else:
            for job in jobs:
                job()
        self._attach_constraints(uniques)

    def _attach_constraints(self, constraints: list[dict[str, Any]]) -> None:
        for constraint in constraints:
            with self.engine.begin() as conn:
                inspector = sa.inspect(conn)
                attached = {u["name"] for u in inspector.get_unique_constraints(self.plan.shadow_table)}
                attached.add(inspector.get_pk_constraint(self.plan.shadow_table).get("name"))
                if constraint["name"] not in attached and len(constraint["sql"]) > 1:
                    self.dialect.run(conn, constraint["sql"][1])

    def _build_together(self, names: list[str], clauses: list[str]) -> None:
        """All of the shadow's indexes in one statement (one scan of the table)."""

        def build() -> None:
            log.info("building indexes", indexes=names)
            try:
                self.dialect.build_indexes_together(self.engine, self.plan, names, clauses)
            except DBAPIError as exc:
                self._raise_collision(exc, "a unique index")

        self._retry_after_replay(build, "indexes")

    def _build_index(self, index: IndexPlan) -> None:
        log.info("building index", index=index.final_name)
        self.dialect.build_index(self.engine, self.plan, index)

    def _build_unique_index(self, unique: dict[str, Any]) -> None:
        self._retry_after_replay(functools.partial(self._build_unique_index_once, unique), unique["name"])

    def _retry_after_replay(self, build: Callable[[], None], what: str) -> None:
        """Where a replay cannot read the log and the original at one instant, the shadow can hold a
        row that is stale until a later entry is applied, and a unique build can meet it as a
        duplicate: the build is retried after another replay; a real collision stays."""
        retries = 0 if self.dialect.replay_is_consistent else 5
        for attempt in range(retries + 1):
            try:
                build()
                return
            except CopyFailed:
                if attempt == retries:
                    raise
                log.info("a unique index met a duplicate; replaying the log first", building=what)
                changelog.catch_up(self.engine, self.dialect, self.plan)

    def _raise_collision(self, exc: DBAPIError, what: str) -> None:
        """A data error of a unique build is a collision the copy expressions made: CopyFailed."""
        if self.dialect.is_data_error(exc):
            raise CopyFailed(
                f"the new definition makes rows collide in {what}: {first_line(exc)}",
                hint="the copy expressions map different values to the same one; change them and plan again",
            ) from exc
        raise exc

    def _build_unique_index_once(self, unique: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            if self.dialect.name_taken(conn, self.plan.shadow_table, unique["name"]):
                return  # built by a run that stopped later (each build is one transaction)
            log.info("building unique constraint", constraint=unique["name"])
            try:
                self.dialect.run(conn, unique["sql"][0])
            except DBAPIError as exc:
                self._raise_collision(exc, f"unique constraint {unique['name']!r}")

    def _verify(self, m: state.Migration) -> None:
        early, self._early_verify = self._early_verify, None
        if not self.options.verify:
            return
        result = early.result() if early is not None else self._run_verify(lambda: False)
        log.info("verified", rows=result.rows)

    def _run_verify(
        self, stopped: Callable[[], bool], ready: Callable[[list[Any]], object] | None = None
    ) -> VerifyResult:
        assert self.throttler is not None
        throttler = self.throttler

        def before_chunk() -> None:
            throttler.wait(given_up=stopped)
            if stopped():
                raise _VerifyAbandoned

        # beside the copy, one chunk at a time: the copy has the other core
        workers = 1 if ready is not None else 2
        return verify(self.engine, self.dialect, self.plan, before_chunk=before_chunk, ready=ready, workers=workers)

    def _cut_over(self, m: state.Migration) -> dict[str, Any]:
        m = self._ready_for_swap(m)

        def record(conn: Connection) -> None:
            state.update(conn, m.id, phase=state.CUT_OVER)

        held = self._locked(
            "swap",
            lambda: self.dialect.run_swap(self.engine, self.plan, self.options.lock_timeout_ms, record),
            cutover=True,
        )
        log.info("swapped", table=self.plan.table, old_table=self.plan.old_table, lock_ms=round(held * 1000, 1))
        return {"cutover_lock_ms": held * 1000, "error": None}

    def _postponed(self) -> str | None:
        """The operator's hold on the swap: the state flag, released by `shadowswap cutover` or the file."""
        assert self._migration_id is not None
        with self.engine.connect() as conn:
            _paused, postponed = state.flags(conn, self._migration_id)
        if not postponed:
            return None
        flag_file = self.options.postpone_file
        if flag_file is not None and not flag_file.exists():
            log.info("postpone file removed", path=str(flag_file))
            with self.engine.begin() as conn:
                state.update(conn, self._migration_id, cutover_postponed=False)
            return None
        how = f"`shadowswap cutover {self.plan.table}`"
        if flag_file is not None:
            how += f" or remove {flag_file}"
        return f"cut-over postponed: {how} to swap"

    def _ready_for_swap(self, m: state.Migration) -> state.Migration:
        """Everything that must hold right before the swap: no postponement, no throttle reason,
        the backup written, the on-before-cutover hook content. Dual-write stays on meanwhile."""
        assert self.throttler is not None
        interval = self.options.throttle.interval
        while True:
            if changelog.in_use(self.plan):
                # keeps the log short while the swap waits, and with it the swap's own replay
                changelog.catch_up(self.engine, self.dialect, self.plan)
            reason = self._postponed()
            if reason is not None:
                self._note_waiting(reason)
                time.sleep(interval)
                continue
            self.throttler.wait()
            if self.options.backup_dir is not None:
                m = self._backup(m)
            status = self._hook(hooks.ON_BEFORE_CUTOVER, self._current(m.id))
            if status != 0:
                self._note_waiting(
                    f"the on-before-cutover hook exited with status {status}; asking again every "
                    f"{self.options.hook_retry_seconds:g}s"
                )
                deadline = time.monotonic() + self.options.hook_retry_seconds
                while time.monotonic() < deadline and self._postponed() is None:
                    time.sleep(min(interval, self.options.hook_retry_seconds))
                continue
            # a hold placed while the hook or the backup ran still counts
            if self._postponed() is None and self.throttler.reason() is None:
                break
        self._note_waiting(None)
        if changelog.in_use(self.plan):
            changelog.catch_up(self.engine, self.dialect, self.plan)  # what the backup and the hook let pile up
        return self._current(m.id)

    def _backup(self, m: state.Migration) -> state.Migration:
        assert self.options.backup_dir is not None
        if m.backup_path and Path(m.backup_path).exists():
            return m  # this migration's backup was taken by an earlier run
        self._note_waiting("writing the backup")
        backup = take_backup(self.engine, self.dialect, self.plan, m.id, self.options.backup_dir)
        self._backup_restore = backup.restore
        with self.engine.begin() as conn:
            state.update(conn, m.id, backup_path=str(backup.path))
            return state.get(conn, m.id)

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
    """Drop the triggers (first: they write into the shadow or its change log), then those tables."""

    def drop_triggers() -> None:
        with engine.begin() as conn:
            for stmt in dialect.lock_timeout_sql(options.lock_timeout_ms):
                dialect.run(conn, stmt)
            for stmt in plan.drop_trigger_ddl:
                dialect.run(conn, stmt)

    with_lock_retries(dialect, "drop triggers", drop_triggers, options.lock_retries)
    with engine.begin() as conn:
        dialect.run(conn, dialect.drop_table_sql(plan.shadow_table))
        if plan.extra.get("change_log"):
            dialect.run(conn, dialect.drop_table_sql(plan.extra["change_log"]))


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
            state.update(conn, migration.id, phase=state.ABORTED, waiting=None)
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
