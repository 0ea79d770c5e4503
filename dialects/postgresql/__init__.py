"""PostgreSQL: plpgsql triggers, FOR SHARE chunks, CREATE INDEX CONCURRENTLY, one-transaction swap.

One room a concern; ``PostgresDialect`` is their composition:

- ``base.py``       PostgresBase: name, identifier limit, helpers more than one room calls
- ``session.py``    SQLSTATEs and error classification, lock_timeout, the advisory migration lock
- ``instant.py``    which ALTERs run in place (catalog only) and the guard against a hidden rewrite
- ``types.py``      casts into the shadow's types, cast checks, shadow column declarations
- ``triggers.py``   the capture triggers and their function (direct dual-write or change-log entries)
- ``copy.py``       the keyset copy's chunk statements, their row locks and the copy race
- ``changelog.py``  replaying the change log into the shadow
- ``indexes.py``    indexes CONCURRENTLY, constraints, foreign keys and ANALYZE on the shadow
- ``swap.py``       the swap's preconditions (sequences, identities) and its one transaction
- ``tableoptions.py`` table options a plan changes (storage parameters, tablespace, UNLOGGED), the
                    table's space on disk, the index order of ``--order-by``
- ``dependents.py`` views and other tables' foreign keys bound to the table, redefined in the swap
- ``surroundings.py`` (functions, not a room; the swap room calls them) triggers, grants, comments,
                      RLS, storage, replica identity, publications carried over in the swap;
                      partitioned and inherited tables refused at plan
- ``checks.py``     (functions, not a room) plan-time refusals of column settings and identity clauses,
                      registered with ``shadowswap.checks``
- ``checksum.py``   verification snapshot, chunk checksums, row images
- ``probes.py``     row estimates and the throttle's lag and load probes
- ``backup.py``     pg_dump of the table before the migration

Each room derives from PostgresBase and overrides only ``Dialect`` methods of its own concern (no
method is defined in two rooms), so the order of the bases below changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shadowswap.dialects.postgresql.backup import PostgresBackup
from shadowswap.dialects.postgresql.base import PostgresBase
from shadowswap.dialects.postgresql.changelog import PostgresChangeLog
from shadowswap.dialects.postgresql.checksum import PostgresChecksum
from shadowswap.dialects.postgresql.copy import PostgresCopy
from shadowswap.dialects.postgresql.dependents import PostgresDependents
from shadowswap.dialects.postgresql.indexes import PostgresIndexes
from shadowswap.dialects.postgresql.instant import PostgresInstant
from shadowswap.dialects.postgresql.probes import PostgresProbes
from shadowswap.dialects.postgresql.session import (
    DEADLOCK,
    LOCK_NOT_AVAILABLE,
    SERIALIZATION,
    UNIQUE_VIOLATION,
    PostgresSession,
)
from shadowswap.dialects.postgresql.swap import PostgresSwap
from shadowswap.dialects.postgresql.tableoptions import PostgresTableOptions
from shadowswap.dialects.postgresql.triggers import PostgresTriggers
from shadowswap.dialects.postgresql.types import PostgresTypes

if TYPE_CHECKING:
    from shadowswap.plan import Plan


_CARRIED = (
    "the swap carries the table's own triggers (created then, so they never fire for copied rows), owner, "
    "grants, comments, row-level security and policies, storage parameters, statistics targets, replica "
    "identity and publication membership over to the new table, read from the catalog under its lock"
)


class PostgresDialect(
    PostgresSession,
    PostgresInstant,
    PostgresTypes,
    PostgresTriggers,
    PostgresCopy,
    PostgresChangeLog,
    PostgresIndexes,
    PostgresSwap,
    PostgresTableOptions,
    PostgresDependents,
    PostgresChecksum,
    PostgresProbes,
    PostgresBackup,
):
    # The plan's notes describe the whole online route (triggers, copy, indexes, swap), so they
    # live with the composition rather than in any one room.
    def plan_notes(self, plan: Plan) -> list[str]:
        return [*self._route_notes(plan), _CARRIED]

    def _route_notes(self, plan: Plan) -> list[str]:
        if plan.capture.change_log:
            return [
                "triggers are created under a short lock_timeout with retries, never queueing behind long transactions",
                f"the triggers log changed keys in {plan.capture.logged_table}; replays apply them to the shadow",
                "the copy fills a bare shadow; its key, unique constraints and indexes are built after it",
                "the swap holds ACCESS EXCLUSIVE on the table for a few milliseconds (the last replay), "
                "under lock_timeout",
            ]
        return [
            "triggers are created under a short lock_timeout with retries, never queueing behind long transactions",
            "secondary indexes are built with CREATE INDEX CONCURRENTLY after the copy",
            "the swap holds ACCESS EXCLUSIVE on the table for a few milliseconds, under lock_timeout",
        ]


__all__ = [
    "DEADLOCK",
    "LOCK_NOT_AVAILABLE",
    "SERIALIZATION",
    "UNIQUE_VIOLATION",
    "PostgresBase",
    "PostgresDialect",
]
