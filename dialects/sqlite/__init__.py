"""SQLite: WAL, one BEGIN IMMEDIATE a chunk, indexes before the copy, a one-transaction swap.

SQLite has one write lock for the whole file and no lock queue: a transaction holding it stalls
every writer, a connection waiting for it stalls nobody. So everything here is about holding the
write lock briefly and giving it back often: each chunk is a short ``BEGIN IMMEDIATE`` transaction
followed by a pause as long as the chunk, in which the application's writers (polling from their
busy handler) get their turn.

One room a concern, each a mixin of ``SQLiteBase`` (base.py) composed below:

- checks.py: the plan-time refusals of SQLite tables (registered with ``shadowswap.checks``)
- session.py: connect hooks (WAL, busy_timeout, synchronous, lazy BEGIN), lock waits, error codes
- locking.py: the migration lock, an OS lock on a file beside the database
- schema.py: the stored CREATE statements, index bodies, the shadow's CREATE TABLE, indexes and foreign keys
- tabletext.py: a stored CREATE TABLE cut into columns and constraints, and rewritten for the shadow
- types.py: column affinity, accepted type names, guarded casts
- planning.py: what ALTER TABLE does in place, the notes a plan shows
- triggers.py: the triggers that keep the shadow in step (or log the changed keys: changelog.py)
- changelog.py: a --transform plan's change log: its replays in the copy, after it and in the swap
- copy.py: the chunk's statement and the pause that gives the write lock back
- swap.py: the one-transaction swap and the live facts it is rebuilt from
- checksum.py: the verification's snapshot and row-by-row comparison
- backup.py: ``--backup`` as a copy of the whole database file
- space.py: a table's space in the file (dbstat), for the space report of a rebuild
"""

from __future__ import annotations

from shadowswap.dialects.sqlite.backup import SQLiteBackup
from shadowswap.dialects.sqlite.base import DOES_NOT_FIT, MIN_VERSION, SQLiteBase, literal
from shadowswap.dialects.sqlite.changelog import SQLiteChangeLog
from shadowswap.dialects.sqlite.checksum import SQLiteChecksum
from shadowswap.dialects.sqlite.copy import SQLiteCopy
from shadowswap.dialects.sqlite.locking import SQLiteLocking
from shadowswap.dialects.sqlite.planning import SQLitePlanning
from shadowswap.dialects.sqlite.schema import SQLiteSchema, index_body, index_name_token
from shadowswap.dialects.sqlite.session import (
    SQLITE_BUSY,
    SQLITE_CONSTRAINT,
    SQLITE_LOCKED,
    SQLITE_MISMATCH,
    SQLITE_TOOBIG,
    SQLiteSession,
)
from shadowswap.dialects.sqlite.space import SQLiteSpace
from shadowswap.dialects.sqlite.swap import SQLiteSwap
from shadowswap.dialects.sqlite.triggers import SQLiteTriggers
from shadowswap.dialects.sqlite.types import SQLiteTypes, affinity


class SQLiteDialect(
    SQLiteSession,
    SQLiteLocking,
    SQLiteSchema,
    SQLiteTypes,
    SQLitePlanning,
    SQLiteTriggers,
    SQLiteChangeLog,
    SQLiteCopy,
    SQLiteSwap,
    SQLiteChecksum,
    SQLiteBackup,
    SQLiteSpace,
):
    """The SQLite dialect: one room a concern, each a mixin of ``SQLiteBase`` (see the modules)."""


__all__ = [
    "DOES_NOT_FIT",
    "MIN_VERSION",
    "SQLITE_BUSY",
    "SQLITE_CONSTRAINT",
    "SQLITE_LOCKED",
    "SQLITE_MISMATCH",
    "SQLITE_TOOBIG",
    "SQLiteBase",
    "SQLiteDialect",
    "affinity",
    "index_body",
    "index_name_token",
    "literal",
]
