"""The wait before the swap: the operator's hold (``--postpone-cutover``, its file, released by
``shadowswap cutover``), the throttle's reasons (a pause among them), the backup and the
on-before-cutover hook. Dual-write stays on throughout, so holding costs nothing but time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from shadowswap import changelog, state
from shadowswap.backup import take_backup
from shadowswap.dialects import Dialect
from shadowswap.options import Options
from shadowswap.plan import Plan
from shadowswap.throttle import Throttler

log = structlog.get_logger("shadowswap")


def requested(options: Options, m: state.Migration) -> dict[str, Any]:
    """The hold this run's options ask for, as state-table values (the postpone file is created here)."""
    if not (options.postpone_cutover or options.postpone_file is not None):
        return {}
    if options.postpone_file is not None and not m.reached(state.CUT_OVER):
        options.postpone_file.touch(exist_ok=True)
    return {"cutover_postponed": True}


class Hold:
    """Waits, re-checking every throttle interval, until nothing stands between the verified shadow
    and the swap."""

    def __init__(
        self,
        engine: Engine,
        dialect: Dialect,
        plan: Plan,
        options: Options,
        throttler: Throttler,
        note_waiting: Callable[[str | None], None],
        before_cutover: Callable[[state.Migration], int],
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.plan = plan
        self.options = options
        self.throttler = throttler
        self.note_waiting = note_waiting
        #: runs the on-before-cutover hook; its exit status
        self.before_cutover = before_cutover
        #: how to restore the backup this run wrote (None if it wrote none)
        self.backup_restore: str | None = None

    def postponed(self, migration_id: int) -> str | None:
        """The operator's hold on the swap: the state flag, released by `shadowswap cutover` or the file."""
        with self.engine.connect() as conn:
            _paused, postponed = state.flags(conn, migration_id)
        if not postponed:
            return None
        flag_file = self.options.postpone_file
        if flag_file is not None and not flag_file.exists():
            log.info("postpone file removed", path=str(flag_file))
            with self.engine.begin() as conn:
                state.update(conn, migration_id, cutover_postponed=False)
            return None
        how = f"`shadowswap cutover {self.plan.table}`"
        if flag_file is not None:
            how += f" or remove {flag_file}"
        return f"cut-over postponed: {how} to swap"

    def ready_for_swap(self, m: state.Migration) -> state.Migration:
        """Everything that must hold right before the swap: no postponement, no throttle reason,
        the backup written, the on-before-cutover hook content. Dual-write stays on meanwhile."""
        interval = self.options.throttle.interval
        while True:
            if changelog.in_use(self.plan):
                # keeps the log short while the swap waits, and with it the swap's own replay
                changelog.catch_up(self.engine, self.dialect, self.plan)
            reason = self.postponed(m.id)
            if reason is not None:
                self.note_waiting(reason)
                time.sleep(interval)
                continue
            self.throttler.wait()
            if self.options.backup_dir is not None:
                m = self._backup(m)
            status = self.before_cutover(self._current(m.id))
            if status != 0:
                self.note_waiting(
                    f"the on-before-cutover hook exited with status {status}; asking again every "
                    f"{self.options.hook_retry_seconds:g}s"
                )
                deadline = time.monotonic() + self.options.hook_retry_seconds
                while time.monotonic() < deadline and self.postponed(m.id) is None:
                    time.sleep(min(interval, self.options.hook_retry_seconds))
                continue
            # a hold placed while the hook or the backup ran still counts
            if self.postponed(m.id) is None and self.throttler.reason() is None:
                break
        self.note_waiting(None)
        if changelog.in_use(self.plan):
            changelog.catch_up(self.engine, self.dialect, self.plan)  # what the backup and the hook let pile up
        return self._current(m.id)

    def _current(self, migration_id: int) -> state.Migration:
        with self.engine.connect() as conn:
            return state.get(conn, migration_id)

    def _backup(self, m: state.Migration) -> state.Migration:
        assert self.options.backup_dir is not None
        if m.backup_path and Path(m.backup_path).exists():
            return m  # this migration's backup was taken by an earlier run
        self.note_waiting("writing the backup")
        backup = take_backup(self.engine, self.dialect, self.plan, m.id, self.options.backup_dir)
        self.backup_restore = backup.restore
        with self.engine.begin() as conn:
            state.update(conn, m.id, backup_path=str(backup.path))
            return state.get(conn, m.id)
