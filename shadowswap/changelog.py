"""The change log: the triggers record which keys changed, replays apply them.

PostgreSQL replays in one snapshot (below); MySQL's DML reads the newest rows, so its replay
takes its entries with a locking read instead (``MySQLDialect._replay_batch`` says why that is
exact, and what it costs: a row can be stale until a later entry is applied).

Dual-write triggers that write the shadow themselves (invariant 1 as first designed) cost every
chunk a share lock on what it reads and a conflict check on every key, cost every application
write an upsert into a table with all its indexes, and make the index builds take the slow
CONCURRENTLY path. With a log, the triggers only insert the changed keys into a small table, the
copy is a plain ``INSERT … SELECT`` into a table nobody else writes, and indexes are built plainly.

Why it stays exact:

* The triggers exist before the copy's first snapshot (invariant 1), so every change a chunk does
  not see has a log entry that commits after that snapshot.
* Nothing replays before the copy has finished: a chunk's rows are never newer than the log.
* A replay reads, in one snapshot, the log's entries, deletes the shadow's rows of those keys,
  inserts ``f(row)`` for those keys that still exist in the original, and deletes the entries. It
  applies the current rows, not the logged event, so replaying a key twice, or late, is harmless.
* Because a replay forgets its entries in the same transaction as it writes the shadow, at any
  snapshot a key with no entry in the log has ``shadow = f(original)``. The verification compares
  just those keys; the swap applies the rest under its lock, with no writer left to add more.
* The shadow's unique constraints are built after a full replay, when the shadow is ``f`` of one
  instant of the original; before that, a row the copy took late can meet a stale row whose
  change is still in the log.
"""

from __future__ import annotations

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.db import first_line
from shadowswap.dialects import Dialect
from shadowswap.errors import CopyFailed
from shadowswap.plan import Plan

log = structlog.get_logger("shadowswap.changelog")


def in_use(plan: Plan) -> bool:
    return plan.capture.change_log


def replay(engine: Engine, dialect: Dialect, plan: Plan) -> int:
    """Apply the log entries there are now (``Dialect.replay``); returns how many it applied."""
    try:
        applied = dialect.replay(engine, plan)
    except DBAPIError as exc:
        if dialect.is_data_error(exc):
            raise CopyFailed(
                f"a row written during the migration cannot be copied into the new definition: {first_line(exc)}",
                hint="the application wrote a value the new definition refuses; fix it, or give --using "
                "COL=EXPR to convert it, then plan again",
            ) from exc
        raise
    if applied:
        log.debug("change log replayed", entries=applied)
    return applied


def catch_up(engine: Engine, dialect: Dialect, plan: Plan, small: int = 1000, rounds: int = 20) -> int:
    """Replay until one round finds at most ``small`` entries, so the swap's lock has little left."""
    total = 0
    for _ in range(rounds):
        applied = replay(engine, dialect, plan)
        total += applied
        if applied <= small:
            break
    return total
