"""Runs an ``online_alter_table`` block: online against the migration's database, or as SQL text offline.

Alembic runs a migration on one connection inside a transaction (on PostgreSQL the DDL too).
shadowswap works on its own connections and commits every chunk, so the block:

1. refuses when this migration already wrote something in the still-open transaction (committing it
   now would half-apply the migration if the online change then failed; keeping it open would hold
   locks the copy and the swap queue behind: on PostgreSQL an uncommitted ALTER of the same table
   deadlocks the swap, on SQLite any open write holds the only write lock);
2. commits what earlier migrations of this run did, through alembic's ``autocommit_block()`` (their
   version rows are written with them, so the version table never runs ahead of the schema);
3. plans and executes with shadowswap's engine; the migration's transaction begins again afterwards
   and alembic moves the version table in it, only after the swap.

A crash leaves the state table's row; the next ``alembic upgrade`` runs the same block, plans the
same fingerprint and the executor resumes it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
import structlog
from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shadowswap import logs, state
from shadowswap.alembic.batch import Recorded
from shadowswap.alembic.settings import Settings
from shadowswap.changes import DropColumn, DropIndex
from shadowswap.db import connect, first_line, safe_url
from shadowswap.errors import DestructiveChange, ShadowswapError, UsageError
from shadowswap.plan import Plan

log = structlog.get_logger("shadowswap.alembic")

_WRITES_KEY = "shadowswap.alembic.writes"
#: statements that change nothing a concurrent connection could wait for (a LOCK TABLE is not one)
_READS = (
    "select",
    "show",
    "set",
    "pragma",
    "explain",
    "describe",
    "desc",
    "begin",
    "savepoint",
    "release",
    "rollback",
    "commit",
    "with",
)


# -- what this connection wrote in its open transaction -----------------------------------------


@event.listens_for(Engine, "before_cursor_execute")
def _note_statement(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    """Remember the writes of the open transaction (the last 50), on every connection.

    Cheap bookkeeping in the connection's ``info``; it is how a block knows whether its own migration
    already changed something that has not been committed (the version table's writes mark where a
    migration ended)."""
    head = statement[:300]  # a bulk insert can be long: its head says what it is
    words = head.lstrip().split(None, 1)
    if not words or words[0].lower() in _READS:
        return
    writes = conn.info.setdefault(_WRITES_KEY, [])
    writes.append(" ".join(head.split())[:200])
    del writes[:-50]


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _forget_statements(conn: Any) -> None:
    if conn.invalidated:
        return  # a connection lost mid-transaction (Ctrl-C in a chunk): its info goes with it
    with contextlib.suppress(sa.exc.InvalidRequestError):  # the rollback of an invalid transaction
        conn.info.pop(_WRITES_KEY, None)


def pending_writes(conn: Any, version_table: str) -> list[str]:
    """Statements this migration ran before the block that are still uncommitted."""
    writes = list(conn.info.get(_WRITES_KEY, []))
    for i in range(len(writes) - 1, -1, -1):
        if version_table.lower() in writes[i].lower():
            return writes[i + 1 :]
    return writes


# -- errors in alembic's terms --------------------------------------------------------------------


class OnlineMigrationFailed(CommandError):
    """An online block failed or was refused; ``original`` is shadowswap's error.

    alembic's CLI prints a CommandError as one ``FAILED:`` line and exits non-zero (no traceback)."""

    original: BaseException | None = None


def command_error(exc: ShadowswapError | DBAPIError | KeyboardInterrupt, table: str) -> OnlineMigrationFailed:
    if isinstance(exc, KeyboardInterrupt):
        text = (
            f"interrupted: {table!r} is intact and writable; `alembic upgrade` again resumes the online "
            "migration, `shadowswap abort` undoes it"
        )
    elif isinstance(exc, DBAPIError):
        text = (
            f"database error: {first_line(exc)} (the original table is intact; `alembic upgrade` again "
            "resumes, `shadowswap status` shows where it stands)"
        )
    elif isinstance(exc, DestructiveChange):
        text = (
            f"{exc}; nothing was changed (hint: review it, then pass allow_destructive=True to "
            "op.online_alter_table, or set SHADOWSWAP_ALLOW_DESTRUCTIVE=1 for this run)"
        )
    else:
        text = f"{exc}" + (f" (hint: {exc.hint})" if exc.hint else "")
    error = OnlineMigrationFailed(f"shadowswap: {text}")
    error.original = exc
    return error


# -- reporting ------------------------------------------------------------------------------------


class LogReporter:
    """Off a terminal: structlog lines (the executor logs each phase itself), copy progress every 5 s."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.total = 0
        self.done = 0
        self.last = 0.0

    def phase(self, name: str, **facts: Any) -> None:
        pass

    def copy_started(self, total_estimate: int, already: int) -> None:
        self.total, self.done, self.last = total_estimate, already, time.monotonic()
        log.info("copy started", table=self.table, estimated_rows=total_estimate, already_copied=already)

    def copied(self, rows: int) -> None:
        self.done += rows
        if time.monotonic() - self.last >= 5:
            self.last = time.monotonic()
            log.info("copying", table=self.table, rows=self.done, estimated_rows=self.total)

    def copy_finished(self) -> None:
        log.info("copy finished", table=self.table, rows=self.done)

    def waiting(self, reason: str | None) -> None:
        if reason:
            log.info("waiting", table=self.table, reason=reason)


class BarReporter(LogReporter):
    """On a terminal: the copy as a progress bar on stderr."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        from rich.console import Console

        self.console = Console(stderr=True)
        self.progress: Any = None
        self.task: Any = None

    def copy_started(self, total_estimate: int, already: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn(f"copying {self.table}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=self.console,
        )
        self.progress.start()
        self.task = self.progress.add_task("copy", total=max(total_estimate, 1), completed=already, note="")

    def copied(self, rows: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, rows)

    def copy_finished(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress = None

    def waiting(self, reason: str | None) -> None:
        if self.progress is not None:
            self.progress.update(self.task, note=f"waiting: {reason}" if reason else "")
        else:
            super().waiting(reason)


# -- online ---------------------------------------------------------------------------------------


#: the driver shadowswap runs (and is tested) with, per backend: the migration's connection may use
#: another (psycopg2, mysqlclient, or an asyncio driver from alembic's ``async`` template)
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "sqlite": "sqlite",
}


def sync_url(url: sa.URL) -> sa.URL:
    """The migration's URL for shadowswap's own (blocking) engine."""
    backend = url.get_backend_name()
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise UsageError(
            "an in-memory SQLite database cannot be migrated online",
            hint="shadowswap needs connections of its own to the same database; use a file",
        )
    return url.set(drivername=_DRIVERS.get(backend, url.drivername))


def _url_of(conn: sa.Connection) -> str:
    return sync_url(conn.engine.url).render_as_string(hide_password=False)


def _refuse_pending(ctx: Any, table: str) -> None:
    conn = ctx.connection
    if getattr(ctx, "_in_external_transaction", False):
        raise UsageError(
            f"op.online_alter_table({table!r}): env.py began the connection's transaction itself, so "
            "alembic cannot commit before the online change",
            hint="let alembic own the transaction: `with context.begin_transaction(): context.run_migrations()`",
        )
    pending = pending_writes(conn, ctx.version_table)
    if pending:
        raise UsageError(
            f"op.online_alter_table({table!r}) follows uncommitted statements of the same migration "
            f"(first: {pending[0][:80]!r}); committing them early half-applies the migration, keeping them "
            "open blocks the online copy",
            hint="put the online block first in upgrade()/downgrade(), or in a migration of its own",
        )


def _configure_logging(settings: Settings) -> None:
    if not structlog.is_configured():
        logs.configure(settings.log_format, settings.log_level)


def _executor_options(settings: Settings, dialect: Any) -> Any:
    from shadowswap.options import Options

    return Options.for_dialect(
        dialect,
        chunk_size=settings.chunk_size,
        chunk_time=settings.chunk_time,
        min_chunk=settings.min_chunk,
        max_chunk=settings.max_chunk,
        copy_workers=settings.copy_workers,
        max_rows_per_second=settings.max_rows_per_second,
        max_lag=settings.max_lag,
        replicas=settings.replicas,
        max_load=settings.max_load,
        pause_file=settings.pause_file,
        hooks=settings.hooks,
        hook_timeout=settings.hook_timeout,
        lock_timeout_ms=settings.lock_timeout,
        lock_retries=settings.cutover_retries,
        verify=settings.verify,
        allow_destructive=settings.allow_destructive,
        postpone_cutover=settings.postpone_cutover,
        postpone_file=settings.postpone_cutover_file,
        backup_dir=settings.backup,
    )


def _already_done(engine: Engine, table: str, recorded: Recorded) -> state.Migration | None:
    """The same change swapped in already, and the crash fell before alembic's version table moved."""
    from shadowswap.planner import reflect

    descriptions = [c.describe() for c in recorded.changes.changes]
    with engine.connect() as conn:
        latest = state.latest(conn, table)
        if latest is None or latest.phase not in (state.CUT_OVER, state.CLEANED_UP, state.ALTERED):
            return None
        if Plan.from_json(latest.plan_json).changes[: len(descriptions)] != descriptions:
            return None
        if not sa.inspect(conn).has_table(table) or reflect(conn, table).fingerprint() == latest.fingerprint:
            return None  # the table is as it was before that migration: this is a new run of the change
    return latest


def _resumed_plan(engine: Engine, table: str, recorded: Recorded) -> Plan | None:
    """The stored plan of this block's unfinished migration (a crash or Ctrl-C stopped it): resumed as it was."""
    descriptions = [c.describe() for c in recorded.changes.changes]
    with engine.connect() as conn:
        active = state.active(conn, table)
    if active is None:
        return None
    stored = Plan.from_json(active.plan_json)
    if stored.changes[: len(descriptions)] != descriptions:
        raise UsageError(
            f"a different migration of {table!r} is in progress (phase {active.phase}: {'; '.join(stored.changes)})",
            hint=f"finish it, or `shadowswap abort {table}`, then upgrade again",
        )
    log.info("resuming the interrupted online migration", table=table, migration=active.id, phase=active.phase)
    return stored


def _drop_kept_old(engine: Engine, dialect: Any, table: str, recorded: Recorded, settings: Settings) -> None:
    """An earlier, finished migration's old table stands where this one keeps its own: drop it first."""
    from shadowswap.lifecycle import cleanup

    with engine.connect() as conn:
        kept = state.kept_old(conn, table)
    if not kept:
        return
    if not settings.drop_kept_old:
        raise UsageError(
            f"{kept[-1].old_table!r} is kept by an earlier migration of {table!r} (drop_kept_old is off)",
            hint=f"`shadowswap cleanup --drop-old {table}` when you no longer need it, then upgrade again",
        )
    drops = [c.describe() for c in recorded.changes.changes if isinstance(c, DropColumn | DropIndex)]
    if drops and not settings.allow_destructive:
        # refused before the kept table goes: the refusal must change nothing
        raise DestructiveChange(f"the change is destructive: {'; '.join(drops)}")
    for m in cleanup(engine, dialect, table):
        log.info("dropped the old table kept by an earlier migration", table=table, old_table=m.old_table)


def run_online(ctx: Any, table: str, recorded: Recorded, settings: Settings) -> None:
    _configure_logging(settings)
    _refuse_pending(ctx, table)
    url = _url_of(ctx.connection)
    with ctx.autocommit_block():
        _execute(url, table, recorded, settings)


def _execute(url: str, table: str, recorded: Recorded, settings: Settings) -> None:
    from shadowswap.executor import Executor
    from shadowswap.planner import build_plan

    engine, dialect = connect(url)
    try:
        state.ensure(engine)
        done = _already_done(engine, table, recorded)
        if done is not None:
            log.warning(
                "this change was swapped in before alembic recorded it (a crash between the two); "
                "moving the version table",
                table=table,
                migration=done.id,
            )
            return
        the_plan = _resumed_plan(engine, table, recorded)
        if the_plan is None:
            _drop_kept_old(engine, dialect, table, recorded, settings)
            the_plan = build_plan(
                engine,
                dialect,
                table,
                recorded.changes,
                strategy_name=settings.strategy,
                check_casts=settings.check_casts,
            )
        options = _executor_options(settings, dialect)
        interactive = settings.progress if settings.progress is not None else sys.stderr.isatty()
        reporter = BarReporter(table) if interactive else LogReporter(table)
        log.info(
            "online migration",
            table=table,
            database=safe_url(engine.url),
            strategy=the_plan.strategy,
            changes="; ".join(the_plan.changes),
        )
        summary = Executor(engine, dialect, the_plan, options, reporter).run()
        if summary.strategy != "instant" and not settings.keep_old:
            from shadowswap.lifecycle import cleanup

            for m in cleanup(engine, dialect, table):
                log.info("dropped the old table (keep_old is off)", table=table, old_table=m.old_table)
        log.info(
            "online migration done",
            table=table,
            strategy=summary.strategy,
            rows_copied=summary.rows_copied,
            seconds=round(summary.seconds, 2),
            lock_ms=None if summary.cutover_lock_ms is None else round(summary.cutover_lock_ms, 1),
            old_table=None if summary.strategy == "instant" else summary.old_table,
        )
    finally:
        engine.dispose()


# -- offline (alembic upgrade --sql) ------------------------------------------------------------


def _offline_url(ctx: Any, settings: Settings) -> str | None:
    url = settings.db
    if not url:
        config = getattr(ctx, "config", None)
        url = config.get_main_option("sqlalchemy.url") if config is not None else None
    if not url:
        return None
    try:
        return sync_url(sa.make_url(url)).render_as_string(hide_password=False)
    except sa.exc.ArgumentError:
        return url  # connect() says what is wrong with it


@contextmanager
def _quiet_engine(url: str) -> Iterator[tuple[Engine, Any]]:
    engine, dialect = connect(url)
    try:
        yield engine, dialect
    finally:
        engine.dispose()


def render_offline(ctx: Any, table: str, recorded: Recorded, settings: Settings) -> None:
    """The plan as SQL text: what can run from a script as statements, the online steps as comments."""
    impl = ctx.impl
    terminator = impl.command_terminator
    lines = [f"-- shadowswap: online change of {table}: " + "; ".join(c.describe() for c in recorded.changes.changes)]
    plan, why_not, guards = None, None, []
    url = _offline_url(ctx, settings)
    if url is None:
        why_not = "no database URL to read the table from (sqlalchemy.url, or the db option)"
    else:
        try:
            from shadowswap.planner import build_plan

            with _quiet_engine(url) as (engine, dialect):
                if sa.inspect(engine).has_table(state.STATE_TABLE):
                    with engine.connect() as conn:
                        kept = state.kept_old(conn, table) if state.active(conn, table) is None else []
                    if kept:
                        lines.append(
                            f"-- shadowswap: {kept[-1].old_table} (kept by migration {kept[-1].id}) is dropped first "
                            "online" + ("" if settings.drop_kept_old else " once you drop it (drop_kept_old is off)")
                        )
                plan = build_plan(engine, dialect, table, recorded.changes, strategy_name=settings.strategy)
                guards = [
                    *dialect.lock_timeout_sql(settings.lock_timeout),
                    *dialect.instant_guard_sql(settings.lock_timeout),
                ]
        except ShadowswapError as exc:
            why_not = str(exc)
    if plan is None:
        lines.append(f"-- shadowswap: the plan needs the live table and could not be made: {why_not}")
        lines.append("-- shadowswap: `alembic upgrade` (online) plans and runs this block against the table as it is")
        impl.static_output("\n".join(lines))
        return
    lines.append(f"-- shadowswap: strategy {plan.strategy}: {plan.strategy_reason}; ~{plan.estimated_rows} rows")
    if plan.strategy == "instant":
        lines.append(
            "-- shadowswap: in place, in one transaction, under a lock timeout (online it is retried with backoff)"
        )
        lines.extend(f"{stmt}{terminator}" for stmt in [*guards, *plan.instant_sql])
        impl.static_output("\n".join(lines))
        return
    lines += [
        "-- shadowswap: this change runs ONLINE only; offline mode cannot run it: the copy commits chunk by",
        "-- chunk while the application writes, every lock is taken under a short timeout and retried, and",
        "-- the swap waits for the verification. None of that is one SQL script. Below, for review, what",
        "-- `alembic upgrade` (online) runs, in order:",
    ]
    sections = [
        ("shadow table", plan.shadow_ddl),
        ("change capture triggers, before the first chunk", plan.trigger_ddl),
        ("copy: one transaction a key range, repeated until the table's end (not shown)", []),
        ("indexes on the shadow, after the copy", [i.create_sql for i in plan.indexes]),
        ("foreign keys", plan.foreign_key_ddl),
        ("verification: chunked checksums of both tables (not shown)", []),
        (f"swap, under a lock timeout (old table kept as {plan.old_table})", plan.swap_sql + plan.post_swap_sql),
    ]
    for title, statements in sections:
        lines.append(f"-- [{title}]")
        for stmt in statements:
            text = stmt.rstrip()
            text = text if text.endswith(";") else text + ";"
            lines.extend(f"--   {line}" for line in text.splitlines())
    impl.static_output("\n".join(lines))
