"""How a failed command speaks: one error line and a hint that is true for that command, and in
``--log-format json`` mode nothing on stderr that is not a JSON object.

The hint after a database error used to be the one for ``execute`` ("the original table is
intact, `execute` resumes it") whatever had failed; a failing ``status`` or ``cleanup`` has no
migration to resume, so the hint is chosen by the command that failed.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from shadowswap import logs

#: commands that only read: a database error there changed nothing
READ_ONLY = frozenset({"plan", "status", "verify", "lint", "pause", "resume", "cutover"})

_HINTS = {
    "execute": "the original table is intact; `shadowswap status` shows where the migration stands, "
    "`shadowswap execute` resumes it, `shadowswap abort` undoes it",
    "abort": "what was already removed stays removed; `shadowswap abort` again removes the rest",
    "cleanup": "the old tables reported as dropped are gone, the others are kept; "
    "`shadowswap cleanup --drop-old` tries again",
}


def database_error_hint(command: str) -> str:
    """The hint after a database error in ``command``: true for that command, not for ``execute``."""
    if command in _HINTS:
        return _HINTS[command]
    if command in READ_ONLY:
        return "nothing was changed; check the database URL and the role's privileges"
    return "check the database URL and the role's privileges"


def emit_json(event: str, level: str = "info", **fields: Any) -> None:
    """One JSON object on stderr, shaped like the structlog lines around it."""
    record = {"event": event, "level": level, "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    record.update(fields)
    print(json.dumps(record, default=str), file=sys.stderr, flush=True)


def report_failure(console: Console, kind: str, message: str, hint: str | None, exit_code: int) -> None:
    """``error: …`` and ``hint: …`` for people, or one JSON object in json mode."""
    if logs.is_json():
        emit_json(message, level="error", kind=kind, hint=hint, exit_code=exit_code)
        return
    label = "interrupted" if kind == "interrupted" else "error"
    colour = "yellow" if kind == "interrupted" else "red"
    console.print(f"[{colour}]{label}:[/{colour}] {message}", highlight=False, soft_wrap=True)
    if hint:
        console.print(f"[yellow]hint:[/yellow] {hint}", highlight=False, soft_wrap=True)


class JsonReporter:
    """``execute``'s progress as JSON lines (phases, copy progress at most once a second, waits)."""

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self.total = 0
        self.done = 0
        self.last = 0.0

    def phase(self, name: str, **facts: Any) -> None:
        emit_json("phase", phase=name, **facts)

    def copy_started(self, total_estimate: int, already: int) -> None:
        self.total, self.done, self.last = total_estimate, already, time.monotonic()
        emit_json("copy started", estimated_rows=total_estimate, rows_copied=already)

    def copied(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            emit_json("copy progress", rows_copied=self.done, estimated_rows=self.total)

    def copy_finished(self) -> None:
        emit_json("copy finished", rows_copied=self.done)

    def waiting(self, reason: str | None) -> None:
        emit_json("waiting" if reason else "continuing", reason=reason)
