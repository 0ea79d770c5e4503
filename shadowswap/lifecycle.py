"""A migration's life outside its phases: claimed (new, or resumed from the state table), finished
after a crash between a swap and its record, undone (abort, or a failed copy), cleaned up.

The executor claims under the migration lock it already holds; ``abort`` takes that lock itself,
so it never undoes a migration another process is running.
"""

from __future__ import annotations

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from shadowswap import state
from shadowswap.dialects import Dialect
from shadowswap.errors import MigrationLocked, UsageError
from shadowswap.options import Options, Reporter, SilentReporter
from shadowswap.plan import Plan
from shadowswap.planner import check_fresh
from shadowswap.retry import run_with_lock_retries, with_lock_retries

log = structlog.get_logger("shadowswap")


def same_plan(a: Plan, b: Plan) -> bool:
    return (
        a.fingerprint == b.fingerprint
        and a.changes == b.changes
        and [c.expression for c in a.columns] == [c.expression for c in b.columns]
    )


def claim(engine: Engine, dialect: Dialect, plan: Plan, reporter: Reporter) -> tuple[state.Migration, Plan]:
    """The migration this plan runs as, and the plan it runs with (a resumed one keeps its stored
    plan). The caller holds the migration lock of ``plan.table``."""
    with engine.begin() as conn:
        current = state.active(conn, plan.table)
        finished = [m for m in state.kept_old(conn, plan.table) if m.fingerprint == plan.fingerprint]
    if current is None and finished:
        raise UsageError(
            f"this plan was already executed (migration {finished[-1].id} swapped {plan.table!r})",
            hint="`shadowswap status` shows it; plan again for a further change",
        )
    if current is not None:
        stored = Plan.from_json(current.plan_json)
        if not same_plan(stored, plan):
            raise UsageError(
                f"a different migration of {plan.table!r} is in progress (phase {current.phase})",
                hint="resume it with its own plan, or `shadowswap abort` it first",
            )
        if current.phase == state.VERIFIED and _swap_happened(engine, stored):
            return _finish_interrupted_swap(engine, dialect, current, stored, reporter), stored
        check_fresh(engine, plan)
        log.info("resuming", phase=current.phase, checkpoint=current.checkpoint)
        return current, stored
    check_fresh(engine, plan)
    inspector = sa.inspect(engine)
    for name in (plan.shadow_table, plan.old_table):
        if inspector.has_table(name):
            raise UsageError(
                f"table {name!r} already exists",
                hint="`shadowswap status` shows the migration that left it; `cleanup --drop-old` or `abort` removes it",
            )
    _end_revert_windows(engine, dialect, plan)
    with engine.begin() as conn:
        migration_id = state.create(
            conn,
            table=plan.table,
            shadow=plan.shadow_table,
            old=plan.old_table,
            fingerprint=plan.fingerprint,
            plan_json=plan.to_json(),
            estimated_rows=plan.estimated_rows,
        )
        return state.get(conn, migration_id), plan


def _end_revert_windows(engine: Engine, dialect: Dialect, plan: Plan) -> None:
    """A new migration of the table ends the revert window of the one before: ``revert`` undoes only
    the newest swap, and the next swap must not carry the reverse capture along as the
    application's own triggers. The kept old table stays until ``cleanup``."""
    from shadowswap import revert

    if plan.reverts is not None:
        return
    with engine.connect() as conn:
        open_windows = [m for m in state.kept_old(conn, plan.table) if m.reverse_log is not None]
    for m in open_windows:
        log.info("a new migration ends the revert window", table=plan.table, migration=m.id)
        revert.drop_capture(engine, dialect, m, Options())


def _swap_happened(engine: Engine, plan: Plan) -> bool:
    """On engines whose swap cannot share a transaction with its record, a crash can fall between."""
    inspector = sa.inspect(engine)
    return inspector.has_table(plan.old_table) and not inspector.has_table(plan.shadow_table)


def _finish_interrupted_swap(
    engine: Engine, dialect: Dialect, m: state.Migration, plan: Plan, reporter: Reporter
) -> state.Migration:
    log.warning("the swap had happened before the crash; finishing it", table=plan.table)
    for stmt in plan.post_swap_sql:
        with engine.begin() as conn:
            dialect.run(conn, stmt)
    with engine.begin() as conn:
        state.update(conn, m.id, phase=state.CUT_OVER)
        migration = state.get(conn, m.id)
    log.info("phase", phase=state.CUT_OVER, table=plan.table)
    reporter.phase(state.CUT_OVER)
    return migration


def remove_migration_objects(engine: Engine, dialect: Dialect, plan: Plan, options: Options) -> None:
    """Drop the triggers (first: they write into the shadow or its change log), then those tables.
    Before all that, what a killed swap had begun to move onto the shadow goes back on the table.

    Not for a revert's plan: its shadow is the kept old table and its triggers the reverse capture,
    both still the way back after a failed or aborted revert (shadowswap/revert.py)."""
    if plan.reverts is not None:
        return
    with_lock_retries(
        dialect,
        "put back the moved triggers and keys",
        lambda: dialect.restore_moved(engine, plan, options.lock_timeout_ms),
        options.lock_retries,
    )

    run_with_lock_retries(
        engine, dialect, "drop triggers", plan.drop_trigger_ddl, options.lock_timeout_ms, options.lock_retries
    )
    with engine.begin() as conn:
        dialect.run(conn, dialect.drop_table_sql(plan.shadow_table))
        if plan.capture.change_log:
            dialect.run(conn, dialect.drop_table_sql(plan.capture.logged_table))
    from shadowswap import revert

    # MySQL's reverse capture, made before its swap (revert.with_shadow, revert.before_swap)
    revert.remove_before_swap(engine, dialect, plan, options)


def undo(
    engine: Engine,
    dialect: Dialect,
    plan: Plan,
    options: Options,
    migration_id: int,
    phase: str,
    error: str | None = None,
) -> None:
    """Remove what the migration made, then record it as ``phase`` (aborted or failed)."""
    remove_migration_objects(engine, dialect, plan, options)
    with engine.begin() as conn:
        state.update(conn, migration_id, phase=phase, error=error)


def abort(engine: Engine, dialect: Dialect, table: str, options: Options | None = None) -> state.Migration:
    """Undo ``table``'s unfinished migration (the migration, aborted), or finish its swap if that
    had happened before a crash (the migration, cut over)."""
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
        if migration.phase == state.VERIFIED and _swap_happened(engine, plan):
            # MySQL's RENAME commits on its own, before its record (invariant 7): the shadow is the
            # live table already, with the moved triggers and keys. Undoing would drop nothing and
            # leave the old table where no cleanup finds it; the swap is finished instead (the
            # caller tells the user by the phase, cut over).
            return _finish_interrupted_swap(engine, dialect, migration, plan, SilentReporter())
        remove_migration_objects(engine, dialect, plan, options)
        with engine.begin() as conn:
            state.update(conn, migration.id, phase=state.ABORTED, waiting=None)
            return state.get(conn, migration.id)


def cleanup(
    engine: Engine, dialect: Dialect, table: str | None, options: Options | None = None
) -> list[state.Migration]:
    """Drop the old tables kept by finished migrations (of ``table``, or all); where a swap can still
    be reverted, its reverse capture first (that ends the revert window)."""
    from shadowswap import revert

    state.ensure(engine)
    with engine.begin() as conn:
        kept = state.kept_old(conn, table)
    done = []
    for migration in kept:
        revert.drop_capture(engine, dialect, migration, options or Options())
        with engine.begin() as conn:
            dialect.run(conn, dialect.drop_table_sql(migration.old_table))
            state.update(conn, migration.id, phase=state.CLEANED_UP)
            done.append(state.get(conn, migration.id))
    return done
