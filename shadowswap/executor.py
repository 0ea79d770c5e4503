"""Runs a plan's phases, in the order phases.py writes down, each recorded before the next begins.

A crash at any point either resumes (``execute`` again) or aborts cleanly (``abort``). The rooms
around this loop: lifecycle.py (claim, resume, abort, cleanup), hold.py (the wait before the swap),
indexes.py (the builds and the verification beside them), copier.py, verify.py, changelog.py.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap import changelog, hooks, lifecycle, phases, revert, state, uniqueness
from shadowswap.copier import ChunkSizer, Copier, coerce_key
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
from shadowswap.hold import Hold, requested
from shadowswap.indexes import IndexBuilder, Verification

# the run's settings and report live in options.py; abort and cleanup in lifecycle.py (importable
# from here too, for the callers that always found them here)
from shadowswap.lifecycle import abort, cleanup, remove_migration_objects, same_plan
from shadowswap.options import Options, Reporter, SilentReporter, Summary
from shadowswap.plan import Plan
from shadowswap.planner import check_fresh
from shadowswap.retry import LockRetriesExhausted, with_lock_retries
from shadowswap.strategy import INSTANT, refuse_unsafe, run_instant
from shadowswap.throttle import Throttler
from shadowswap.urls import mask_url

__all__ = [
    "Executor",
    "Options",
    "Reporter",
    "SilentReporter",
    "Summary",
    "abort",
    "cleanup",
    "remove_migration_objects",
    "same_plan",
]

log = structlog.get_logger("shadowswap")

Step = Callable[[state.Migration], "dict[str, Any] | None"]


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
        self._hold: Hold | None = None
        self._verification: Verification | None = None

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
            migration = self._claim()
            try:
                migration = self._run_phases(self._start(migration))
            except (CopyFailed, sa.exc.IntegrityError, sa.exc.DataError) as exc:
                # A data failure: the rows cannot be held by the new definition (a cast fails, a
                # unique key collides), and would fail every resume the same way. The triggers
                # would now fail the application's own writes of such values: take them and
                # everything else the migration made away before reporting (exit 6).
                failure = self._data_failure(exc)
                lifecycle.undo(
                    self.engine, self.dialect, self.plan, self.options, migration.id, state.FAILED, str(failure)
                )
                self._hook(hooks.ON_FAILURE, self._current(migration.id), error=str(failure))
                if failure is exc:
                    raise
                raise failure from exc
            except (ShadowswapError, DBAPIError) as exc:
                self._failed(migration, exc)
                raise
            finally:
                self._note_waiting(None)
                assert self.throttler is not None
                self.throttler.close()
        space: tuple[int | None, int | None] = (None, None)
        if migration.phase == state.CUT_OVER:
            space = self._space()
            self._hook(hooks.ON_SUCCESS, migration)
        return Summary(
            bytes_before=space[0],
            bytes_after=space[1],
            migration_id=migration.id,
            table=self.plan.table,
            old_table=self.plan.old_table,
            rows_copied=migration.rows_copied,
            seconds=time.perf_counter() - self.started,
            cutover_lock_ms=migration.cutover_lock_ms,
            phases=self.timings,
            backup_path=migration.backup_path,
            backup_restore=self._hold.backup_restore if self._hold is not None else None,
        )

    def _space(self) -> tuple[int | None, int | None]:
        """The table's space on disk before (the kept old table) and after (the new one), as the
        engine reports it: what a rebuild gave back. A report only: a failure to read it is logged."""
        try:
            with self.engine.connect() as conn:
                before = self.dialect.table_bytes(conn, self.plan.old_table)
                after = self.dialect.table_bytes(conn, self.plan.table)
                conn.rollback()
        except DBAPIError as exc:
            log.warning("could not read the table's space", error=first_line(exc))
            return None, None
        log.info("space", table=self.plan.table, bytes_before=before, bytes_after=after)
        return before, after

    def _claim(self) -> state.Migration:
        """Open the throttle, claim the migration (new or resumed) and set up the rooms that run it."""
        # bad throttle options (an unreachable replica, an unknown load metric) fail before any change
        throttler = self.throttler = Throttler(
            self.engine, self.dialect, self.options.throttle, note=self._note_waiting
        )
        try:
            throttler.open()
            migration, self.plan = lifecycle.claim(self.engine, self.dialect, self.plan, self.reporter)
        except BaseException:
            throttler.close()
            raise
        self._migration_id = throttler.migration_id = migration.id
        log.info("migration claimed", table=self.plan.table, id=migration.id, phase=migration.phase)
        self._hold = self._make_hold(throttler)
        self._verification = Verification(self.engine, self.dialect, self.plan, throttler)
        return migration

    def _make_hold(self, throttler: Throttler) -> Hold:
        """The wait before a swap (or an in-place ALTER), telling the on-before-cutover hook."""
        return Hold(
            self.engine,
            self.dialect,
            self.plan,
            self.options,
            throttler,
            self._note_waiting,
            lambda m: self._hook(hooks.ON_BEFORE_CUTOVER, m),
        )

    def _data_failure(self, exc: CopyFailed | DBAPIError) -> CopyFailed:
        """The error to report for a data failure: naming the colliding values where a unique key
        of the new table is what the rows cannot satisfy."""
        cause = exc if isinstance(exc, DBAPIError) else exc.__cause__
        if isinstance(cause, sa.exc.IntegrityError):
            try:
                duplicates = uniqueness.check_duplicates(self.engine, self.dialect, self.plan)
            except DBAPIError as again:  # naming the values is a courtesy; the failure stands
                log.warning("could not look for the duplicates", error=first_line(again))
                duplicates = []
            if duplicates:
                return CopyFailed(
                    f"the rows of {self.plan.table!r} cannot satisfy a unique key of the new table: "
                    f"{uniqueness.describe(duplicates)}; everything the migration created was removed",
                    hint="make those values distinct (or plan without that unique key), then plan again; "
                    "`shadowswap plan --check-casts` finds such values before anything starts",
                )
        if isinstance(exc, CopyFailed):
            return exc
        return CopyFailed(
            f"the rows of {self.plan.table!r} cannot be held by the new definition: {first_line(exc)}; "
            "everything the migration created was removed",
            hint="fix the data, or give --using COL=EXPR to convert it, then plan again",
        )

    def _failed(self, migration: state.Migration, exc: ShadowswapError | DBAPIError) -> None:
        """Record why the run stopped (the migration stays resumable) and tell the on-failure hook."""
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

    def _start(self, m: state.Migration) -> state.Migration:
        """Record this run's operator settings, then ask the on-start hook (it may refuse)."""
        values: dict[str, Any] = {"error": None, "waiting": None, **requested(self.options, m)}
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

    def _refuse_in_place_options(self) -> None:
        """An option that can mean nothing for an in-place ALTER is refused, not silently ignored."""
        if self.options.hooks.commands.get(hooks.ON_COPY_DONE):
            raise UsageError(
                "--hook on-copy-done: this plan alters the table in place and copies nothing, so the hook "
                "would never run",
                hint="drop the hook, or plan with `--strategy shadow` to copy",
            )

    def _run_instant(self, started: float) -> Summary:
        """The plan's in-place ALTERs, under the migration lock, a lock timeout and retries (invariant 5).

        Everything that guards a swap guards the ALTER too, through the same hold: the throttle's
        probes (an unreachable replica fails before any change), the on-start hook, then the wait
        (postponement, pause, lag, load), the backup and the on-before-cutover hook. The ALTERs run
        in one transaction, so a failure anywhere leaves the table as it was; the migration is then
        recorded aborted, and there is nothing to resume."""
        self._refuse_in_place_options()
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
            # bad throttle options (an unreachable replica, an unknown load metric) fail before any change
            throttler = self.throttler = Throttler(
                self.engine, self.dialect, self.options.throttle, note=self._note_waiting
            )
            try:
                throttler.open()
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
                    m = state.get(conn, migration_id)
                self._migration_id = throttler.migration_id = migration_id
                m, seconds = self._alter_in_place(m, throttler)
            finally:
                self._note_waiting(None)
                throttler.close()
        log.info("altered in place", table=table, ms=round(seconds * 1000, 1))
        self.reporter.phase(state.ALTERED)
        self._hook(hooks.ON_SUCCESS, m)
        return Summary(
            migration_id=migration_id,
            table=table,
            old_table=self.plan.old_table,
            rows_copied=0,
            seconds=time.perf_counter() - started,
            cutover_lock_ms=seconds * 1000,
            strategy=INSTANT,
            backup_path=m.backup_path,
            backup_restore=self._hold.backup_restore if self._hold is not None else None,
        )

    def _alter_in_place(self, m: state.Migration, throttler: Throttler) -> tuple[state.Migration, float]:
        """on-start, the hold (as before a swap), then the ALTERs; any failure records the migration
        aborted (nothing was changed) and tells the on-failure hook."""
        try:
            m = self._start(m)
            self._hold = self._make_hold(throttler)
            m = self._hold.ready_for_swap(m)
            seconds: float = self._locked(
                "alter in place",
                lambda: run_instant(self.engine, self.dialect, self.plan, self.options.lock_timeout_ms),
            )
        except BaseException as exc:
            message = f"database error: {exc.orig}" if isinstance(exc, DBAPIError) else str(exc) or type(exc).__name__
            message = (message.splitlines() or [type(exc).__name__])[0][:1000]
            with self.engine.begin() as conn:
                # the ALTERs ran in one transaction (or not at all): the table is as it was
                state.update(conn, m.id, phase=state.ABORTED, error=message, waiting=None)
            if not isinstance(exc, KeyboardInterrupt):
                self._hook(hooks.ON_FAILURE, self._current(m.id), error=message)
            raise
        with self.engine.begin() as conn:
            state.update(conn, m.id, phase=state.ALTERED, cutover_lock_ms=seconds * 1000, error=None)
            m = state.get(conn, m.id)
        return m, seconds

    # -- the phases --------------------------------------------------------------------------

    def _steps(self) -> dict[str, Step]:
        """The step that reaches each phase; phases.ORDER says which comes after which."""
        return {
            state.SHADOW_CREATED: self._create_shadow,
            state.TRIGGERS_INSTALLED: self._install_triggers,
            state.COPIED: self._copy,
            state.INDEXES_BUILT: self._build_indexes,
            state.VERIFIED: self._verify,
            state.CUT_OVER: self._cut_over,
        }

    def _run_phases(self, m: state.Migration) -> state.Migration:
        assert self.throttler is not None
        steps = self._steps()
        for before, after in phases.steps():
            if m.phase != before:
                continue
            # a pause (or lag, or load) also holds the next phase from starting, not just the next chunk
            self.throttler.wait()
            t0 = time.perf_counter()
            values = steps[after](m) or {}
            self.timings[after] = time.perf_counter() - t0
            m = self._set_phase(m.id, after, **values)
            if after == state.COPIED:
                self._hook(hooks.ON_COPY_DONE, m)
            if after == self.options.stop_after:
                break
        return m

    def _set_phase(self, migration_id: int, phase: str, **values: Any) -> state.Migration:
        with self.engine.begin() as conn:
            state.update(conn, migration_id, phase=phase, **values)
            migration = state.get(conn, migration_id)
        log.info("phase", phase=phase, table=self.plan.table)
        self.reporter.phase(phase, **values)
        return migration

    def _create_shadow(self, m: state.Migration) -> None:
        with self.engine.begin() as conn:
            if not sa.inspect(conn).has_table(self.plan.shadow_table):
                for stmt in self.plan.shadow_ddl:
                    self.dialect.run(conn, stmt)
            revert.with_shadow(conn, self.dialect, self.plan, self.options)
        if self.dialect.schedule(self.plan.capture).indexes_before_copy:
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
        coerced_checkpoint = coerce_key(self.engine, self.plan, m.checkpoint)
        max_key = coerce_key(self.engine, self.plan, m.max_key)
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
        assert self._verification is not None
        verification = self._verification
        if self._verify_beside_copy():
            verification.start_beside_copy(copier)
        try:
            copier.run(coerced_checkpoint, max_key)
        except BaseException:
            verification.abandon()
            raise
        finally:
            self.reporter.copy_finished()
            if copier.races:
                log.info("chunks rerun after meeting a trigger's row", chunks=copier.races)

    def _verify_beside_copy(self) -> bool:
        return (
            self.options.verify
            and self.dialect.schedule(self.plan.capture).verify_beside_copy
            # a run told to stop by the copied phase would leave it running with nobody to read it
            and self.options.stop_after not in phases.ORDER[1 : phases.ORDER.index(state.INDEXES_BUILT)]
            # a --transform's verification runs the function again in this process: beside the
            # copy, the two would share one interpreter lock and the copy would run at half speed
            and self.plan.transform is None
        )

    def _build_indexes(self, m: state.Migration) -> None:
        assert self._verification is not None
        verification = self._verification
        verify_now = self.options.verify and self.dialect.schedule(self.plan.capture).verify_while_indexing
        beside = verify_now and self.options.stop_after != state.INDEXES_BUILT and not verification.started
        builder = IndexBuilder(
            self.engine,
            self.dialect,
            self.plan,
            lambda stmt: self._locked(
                "add foreign key", functools.partial(self._run_with_lock_timeout, stmt), on_table=False
            ),
        )
        try:
            builder.run(verification.start_beside_builds if beside else None)
        except BaseException:
            verification.abandon()
            raise

    def _verify(self, m: state.Migration) -> None:
        assert self._verification is not None
        if not self.options.verify:
            self._verification.abandon()
            return
        result = self._verification.result()
        log.info("verified", rows=result.rows)

    def _cut_over(self, m: state.Migration) -> dict[str, Any]:
        assert self._hold is not None
        m = self._hold.ready_for_swap(m)
        revert.before_swap(self.engine, self.dialect, self.plan, m.id, self.options)

        def record(conn: Connection) -> None:
            state.update(conn, m.id, phase=state.CUT_OVER)
            # in the swap's transaction: the reverse capture starts with no write missed (invariant 10)
            revert.at_swap(conn, self.dialect, self.plan, m.id, capture=not self.options.no_revert)

        held = self._locked(
            "swap",
            lambda: self.dialect.run_swap(self.engine, self.plan, self.options.lock_timeout_ms, record),
            cutover=True,
        )
        log.info("swapped", table=self.plan.table, old_table=self.plan.old_table, lock_ms=round(held * 1000, 1))
        return {"cutover_lock_ms": held * 1000, "error": None}

    def _run_with_lock_timeout(self, stmt: str) -> None:
        with self.engine.begin() as conn:
            for setting in self.dialect.lock_timeout_sql(self.options.lock_timeout_ms):
                self.dialect.run(conn, setting)
            self.dialect.run(conn, stmt)

    def _locked(self, what: str, action: Any, cutover: bool = False, on_table: bool = True) -> Any:
        """``on_table``: the action locks the migrated table itself (triggers, swap, in-place ALTER)."""

        def blocker() -> str | None:
            with self.engine.connect() as conn:
                return self.dialect.lock_blocker(conn, self.plan.table)

        try:
            return with_lock_retries(
                self.dialect, what, action, self.options.lock_retries, blocker=blocker if on_table else None
            )
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
