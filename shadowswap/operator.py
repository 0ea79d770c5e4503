"""What an operator does to migrations, as functions a program can call: the CLI's ``pause``,
``resume``, ``cutover``, ``verify``, ``status``, ``abort``, ``cleanup`` and ``revert`` are these plus rendering;
an Alembic operation or the fleet runner can call them the same way.

Each works from the state table alone, so it acts on a migration another process (or host) runs:
``pause`` and ``cutover`` set a flag the running executor reads between chunks and while it holds
before the swap (throttle.py, hold.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from shadowswap import lifecycle, state
from shadowswap import revert as way_back
from shadowswap.dialects import Dialect, for_engine
from shadowswap.errors import UsageError
from shadowswap.options import Options, Reporter, Summary
from shadowswap.plan import Plan
from shadowswap.verify import VerifyResult, after_swap_view
from shadowswap.verify import verify as run_verify

Migration = state.Migration


def unfinished(engine: Engine, table: str | None = None) -> Migration:
    """The unfinished migration of ``table``, or (``table`` None) the only unfinished one."""
    state.ensure(engine)
    with engine.connect() as conn:
        if table is None:
            running = state.unfinished(conn)
            if len(running) == 1:
                return running[0]
            if not running:
                raise UsageError("no unfinished migration", hint="`shadowswap status` lists them")
            names = ", ".join(sorted({m.table_name for m in running}))
            raise UsageError(f"which table? unfinished migrations: {names}", hint="give the table name")
        migration = state.active(conn, table)
    if migration is None:
        raise UsageError(f"no unfinished migration of {table!r}", hint="`shadowswap status` lists them")
    return migration


def _set_flags(engine: Engine, table: str | None, **flags: bool) -> Migration:
    """Set the flags; the migration as it was before (its old flags say what changed)."""
    migration = unfinished(engine, table)
    with engine.begin() as conn:
        state.update(conn, migration.id, **flags)
    return migration


def pause(engine: Engine, table: str | None = None) -> Migration:
    """Hold the copy (and the swap) after the current chunk; dual-write stays on. The migration as found."""
    return _set_flags(engine, table, paused=True)


def resume(engine: Engine, table: str | None = None) -> Migration:
    """Lift ``pause``. The migration as found."""
    return _set_flags(engine, table, paused=False)


def cutover(engine: Engine, table: str | None = None) -> Migration:
    """Release a postponed cut-over: the executor swaps at its next check. The migration as found
    (``cutover_postponed`` says whether it was held)."""
    return _set_flags(engine, table, cutover_postponed=False)


def postpone(engine: Engine, table: str | None = None) -> Migration:
    """Hold the swap of an unfinished migration until ``cutover`` (as ``--postpone-cutover`` does).
    The migration as found."""
    return _set_flags(engine, table, cutover_postponed=True)


# -- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """One migration as ``shadowswap status`` shows it."""

    migration: Migration
    #: seconds from its start to its end (or its last update, while unfinished)
    elapsed_seconds: float
    #: the old table a swap kept (until ``cleanup``), else None
    kept_old_table: str | None
    #: what an operator should know beyond the phase, most urgent first ("; " between)
    notes: str
    #: a swap ``revert`` can undo now (None: this migration has no revert window open)
    revertible: bool | None = None
    #: writes since the swap not yet applied to the old table (the reverse log's entries)
    reverse_backlog: int | None = None

    @property
    def phase(self) -> str:
        return self.migration.phase

    @property
    def finished(self) -> bool:
        return self.migration.phase in state.FINISHED


def notes(m: Migration) -> str:
    """What an operator should know about a migration beyond its phase, most urgent first."""
    found = []
    unfinished = m.phase not in state.FINISHED
    if unfinished and m.waiting:
        found.append(f"waiting: {m.waiting}")
    if unfinished and m.paused and not (m.waiting or "").startswith("paused"):
        found.append("paused")
    if unfinished and m.cutover_postponed and "postponed" not in (m.waiting or ""):
        found.append("cut-over postponed")
    if m.error:
        found.append(f"error: {m.error}")
    if m.backup_path:
        found.append(f"backup: {m.backup_path}")
    return "; ".join(found)


def status(engine: Engine, table: str | None = None, limit: int = 50) -> list[Status]:
    """The recorded migrations (of ``table``, or all), newest first."""
    # looking needs no CREATE right: no state table simply means no migration ever ran here
    if not state.exists(engine):
        return []
    with engine.connect() as conn:
        if table is None:
            migrations = state.all_migrations(conn, limit)
        else:
            migrations = [m for m in state.all_migrations(conn, limit) if m.table_name == table]
    dialect = for_engine(engine)
    return [_status(engine, dialect, m) for m in migrations]


def _status(engine: Engine, dialect: Dialect, m: Migration) -> Status:
    found = notes(m)
    revertible: bool | None = None
    backlog: int | None = None
    if m.phase == state.CUT_OVER and m.reverse_log is not None:
        # the revert window: what `revert` would find now (read-only, over the keys written since)
        backlog = way_back.backlog(engine, dialect, m)
        blockers = way_back.blockers(
            engine, dialect, way_back.reverse_plan(dialect, Plan.from_json(m.plan_json), m.id, m.old_table)
        )
        revertible = not blockers
        since = f"{m.revertible_since:%Y-%m-%d %H:%M:%S} UTC" if m.revertible_since else "the swap"
        window = (
            f"revertible since {since}, reverse backlog {backlog}"
            if revertible
            else f"not revertible: {'; '.join(blockers)} (reverse backlog {backlog})"
        )
        found = "; ".join(n for n in (window, found) if n)
    return Status(
        migration=m,
        elapsed_seconds=((m.finished_at or m.updated_at) - m.started_at).total_seconds(),
        kept_old_table=m.old_table if m.phase == state.CUT_OVER else None,
        notes=found,
        revertible=revertible,
        reverse_backlog=backlog,
    )


# -- verify ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    migration: Migration
    #: the migration's plan (``describe(plan, result.differences)`` names the differing rows)
    plan: Plan
    #: what was compared, e.g. "products against the kept _products_old"
    compared: str
    result: VerifyResult

    @property
    def ok(self) -> bool:
        return self.result.ok


def verify(engine: Engine, dialect: Dialect, table: str | None = None, chunk_size: int = 20_000) -> Verification:
    """Compare the tables through the copy expressions: after the swap the new table with the kept
    old one; before it (once copied), the original with the shadow. Of ``table``'s newest such
    migration, or the newest of any table."""
    candidates: list[Migration] = []
    if state.exists(engine):  # verifying reads: no state table means nothing to verify, not one to create
        with engine.connect() as conn:
            candidates = [m for m in state.all_migrations(conn, limit=200) if table is None or m.table_name == table]
    migration = next(
        (
            m
            for m in candidates
            if m.phase == state.CUT_OVER or (m.phase not in state.FINISHED and m.reached(state.COPIED))
        ),
        None,
    )
    if migration is None:
        raise UsageError(
            "nothing to verify" + (f" for {table!r}" if table else ""),
            hint="verify compares a kept old table after a swap, or a copied shadow before it",
        )
    plan = Plan.from_json(migration.plan_json)
    if migration.phase == state.CUT_OVER:
        view, compared = after_swap_view(plan), f"{plan.table} against the kept {plan.old_table}"
    else:
        view, compared = plan, f"{plan.table} against the shadow {plan.shadow_table}"
    if chunk_size < 1:
        raise UsageError("--chunk-size must be at least 1")
    result = run_verify(engine, dialect, view, chunk_size=chunk_size, rechecks=0, stop_at_first=False)
    return Verification(migration, plan, compared, result)


# -- abort / cleanup ------------------------------------------------------------------------


def abort(engine: Engine, dialect: Dialect, table: str) -> Migration:
    """Undo ``table``'s unfinished migration: triggers and shadow dropped, the original untouched.
    A swap a crash interrupted after its RENAME is finished instead: the migration comes back cut over."""
    return lifecycle.abort(engine, dialect, table)


def kept_old(engine: Engine, table: str | None = None) -> list[Migration]:
    """The finished migrations (of ``table``, or all) whose old table is still kept."""
    state.ensure(engine)
    with engine.connect() as conn:
        return state.kept_old(conn, table)


def cleanup(
    engine: Engine, dialect: Dialect, table: str | None = None, options: Options | None = None
) -> list[Migration]:
    """Drop the old tables kept after swaps (of ``table``, or all), and with them the reverse capture
    (the revert window ends); the migrations, now cleaned up."""
    return lifecycle.cleanup(engine, dialect, table, options)


# -- revert ---------------------------------------------------------------------------------


def revert(
    engine: Engine,
    dialect: Dialect,
    table: str,
    options: Options | None = None,
    reporter: Reporter | None = None,
) -> Summary:
    """Swap ``table`` back to the original its newest migration replaced, with every write made
    since; refused (``revert.NotRevertible``, exit 2) when a write since cannot go back. Resumes an
    interrupted revert; ``abort`` gives one up (the revert window stays open)."""
    return way_back.revert(engine, dialect, table, options, reporter)
