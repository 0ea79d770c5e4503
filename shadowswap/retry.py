"""Statements that need a strong lock on the live table: short lock timeout, retried with backoff.

A waiting ACCESS EXCLUSIVE (or metadata lock) request blocks every later reader and writer, so
waiting long is itself an outage (invariant 5): we wait briefly, give way, and try again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError

from shadowswap.db import first_line
from shadowswap.dialects import Dialect

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = structlog.get_logger("shadowswap.lock")
T = TypeVar("T")


class LockRetriesExhausted(Exception):
    def __init__(self, attempts: int, last_error: str) -> None:
        super().__init__(f"could not take the lock in {attempts} attempts ({last_error})")
        self.attempts = attempts
        self.last_error = last_error


def with_lock_retries(
    dialect: Dialect,
    what: str,
    action: Callable[[], T],
    retries: int,
    base_delay: float = 0.1,
    max_delay: float = 3.0,
    blocker: Callable[[], str | None] | None = None,
) -> T:
    """Run ``action``; on a lock timeout back off (with jitter, so two tools do not collide in step).
    ``blocker`` names a long-held conflicting lock: while it does, an attempt is not even made (it
    would only queue, and stall the writers queued behind it, until the lock timeout)."""
    last = ""
    for attempt in range(1, retries + 1):
        held = blocker() if blocker is not None else None
        if held is None:
            try:
                return action()
            except DBAPIError as exc:
                if not (dialect.is_lock_timeout(exc) or dialect.is_retryable(exc)):
                    raise
                last = first_line(exc)
        else:
            last = held
        delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        facts = {"held_by": held} if held is not None else {}
        log.warning(
            "lock not available, retrying", step=what, attempt=attempt, retries=retries, wait=round(delay, 2), **facts
        )
        time.sleep(delay)
    raise LockRetriesExhausted(retries, last)


def run_with_lock_retries(
    engine: Engine, dialect: Dialect, what: str, statements: Sequence[str], lock_timeout_ms: int, retries: int
) -> None:
    """``statements`` in one transaction under the lock timeout, the whole of it retried with
    backoff on a lock timeout (invariant 5): DDL on a table the application is writing."""

    def attempt() -> None:
        with engine.begin() as conn:
            for stmt in [*dialect.lock_timeout_sql(lock_timeout_ms), *statements]:
                dialect.run(conn, stmt)

    with_lock_retries(dialect, what, attempt, retries)
