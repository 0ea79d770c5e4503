"""``--backup DIR``: the original table, dumped with the engine's own tool just before the swap.

The engines' tools differ (``pg_dump``, ``mysqldump``, SQLite's online backup API), so each
dialect builds its own command; what is common lives here: where the file goes, how a tool is
run (credentials in its environment, never in its arguments, so ``ps`` and the logs never show
a password), and what a failure looks like (a ``BackupFailed`` that stops before the swap).

A backup that is a whole database (SQLite's file copy) also holds shadowswap's state table, with this
migration in it half-way; marking it aborted there is the engine's business, done here: a dialect
is called by the engine and never writes its state.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
import structlog

from shadowswap import state
from shadowswap.errors import BackupFailed, UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

    from shadowswap.dialects import Dialect
    from shadowswap.plan import Plan

log = structlog.get_logger("shadowswap.backup")


@dataclass
class Backup:
    path: Path
    #: how to restore it, shown to the operator (DBNAME stands for the target database)
    restore: str
    #: companion files written beside ``path``
    extra: list[Path] = field(default_factory=list)
    #: where the backup is itself a database holding the state table (a copy of the whole SQLite
    #: file), its URL: the migration is marked aborted in it, see ``mark_aborted_in_copy``
    database_url: URL | None = None


def run_tool(argv: list[str], env: dict[str, str], secret: str | None = None, timeout: float | None = None) -> str:
    """Run a dump tool with ``env`` added to ours; returns its stdout, raises BackupFailed on failure."""
    if shutil.which(argv[0]) is None:
        raise BackupFailed(
            f"{argv[0]} is not installed or not on PATH", hint=f"install the database's client tools ({argv[0]})"
        )
    log.info("running backup tool", argv=argv)
    try:
        done = subprocess.run(
            argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise BackupFailed(f"{argv[0]} did not finish within {timeout}s") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout or "").strip().splitlines()
        detail = message[0] if message else f"exit status {done.returncode}"
        if secret:
            detail = detail.replace(secret, "***")
        raise BackupFailed(f"{argv[0]} failed: {detail}")
    return done.stdout


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "table"


def take_backup(engine: Engine, dialect: Dialect, plan: Plan, migration_id: int, directory: Path) -> Backup:
    """Write the backup into ``directory`` (created if missing); a failure leaves nothing half-written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupFailed(f"cannot create the backup directory {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise BackupFailed(f"the backup directory {directory} is not writable")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{_safe_stem(plan.table)}-m{migration_id}-{stamp}"
    try:
        backup = dialect.backup_table(engine, plan, directory, stem)
        if backup.database_url is not None:
            mark_aborted_in_copy(backup.database_url, plan.table)
    except NotImplementedError:
        raise UsageError(f"--backup is not available for {dialect.name}") from None
    except BackupFailed:
        for leftover in directory.glob(f"*{stem}*"):
            leftover.unlink(missing_ok=True)
        raise
    if not backup.path.exists() or backup.path.stat().st_size == 0:
        raise BackupFailed(f"the backup tool reported success but {backup.path} is empty")
    log.info("backup written", path=str(backup.path), bytes=backup.path.stat().st_size)
    return backup


#: what the state row of a whole-database backup says once restored
BACKUP_NOTE = "this is the backup taken before the swap; the migration went on in the live database"


def mark_aborted_in_copy(url: URL, table: str) -> None:
    """Mark the unfinished migration of ``table`` aborted in a backup that is a whole database.

    Restored as it was copied, the database would show a migration still running, on a table whose
    shadow and triggers the dialect has already dropped from the copy; a resume there would fail
    half-way. The copy is what the application knew before the migration, so its row says so.
    """
    copy = sa.create_engine(url, poolclass=sa.pool.NullPool)
    m = state.migrations
    try:
        with copy.begin() as conn:
            conn.execute(
                m.update()
                .where(m.c.table_name == table, m.c.phase.not_in(sorted(state.FINISHED)))
                .values(phase=state.ABORTED, waiting=None, error=BACKUP_NOTE)
            )
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        raise BackupFailed(f"cannot mark the migration aborted in the backup: {orig}") from None
    finally:
        copy.dispose()  # a file-based copy is closed (and its WAL checkpointed) before it is reported
