"""MySQL and MariaDB: strict triggers, share-locked chunks, online indexes, one RENAME TABLE swap.

One room a concern; ``MySQLDialect`` below composes them (each is a ``MySQLBase`` subclass):

- ``base.py``: error numbers, the binlog probe, the dialect's identity, what rooms ask of each other
- ``session.py``: connection setup (strict sql_mode, READ COMMITTED), the migration lock, error kinds
- ``checks.py``: the plan-time refusals of MySQL tables (registered with ``shadowswap.checks``)
- ``preflight.py``: the copy route, the shadow's options, plan notes
- ``tableoptions.py``: table options a plan changes (ENGINE, ROW_FORMAT, COMMENT, …), the table's space on disk
- ``instant.py``: which changes run in place (INSTANT/NOCOPY/INPLACE) and the one folded ALTER
- ``types.py``: type parsing, casts and the cast check, a column's value in a trigger, shadow columns
- ``triggers.py``: the dual-write and change-log trigger families, their install and drop
- ``copy.py``: the keyset copy's chunk statement, the duplicate-key guard, the helper table's name
- ``changelog.py``: when the change log is allowed, and its replay
- ``indexes.py``: online index builds on the shadow, one ALTER for several
- ``swap.py``: the RENAME TABLE swap, with the locked last replay and its renamer thread
- ``app_triggers.py``: the application's triggers, moved to the new table under the swap's lock
- ``foreign_keys.py``: keys from and to the table, moved to the new table under the swap's lock
- ``catalog.py``: what reflection misses, from SHOW CREATE TABLE (unknown types, column CHECKs, key text)
- ``checksum.py``: verification's snapshot and per-chunk checksum
- ``probes.py``: row estimates, replica lag, server load
- ``backup.py``: mysqldump of the original

InnoDB's AUTO-INC lock shapes this package. Under ``innodb_autoinc_lock_mode`` 0 or 1 (MariaDB's
default, and what many MySQL primaries run) an ``INSERT … SELECT`` into a table with an
AUTO_INCREMENT column takes a table-level AUTO-INC lock on it and keeps it until the statement
ends. A shadow that keeps its AUTO_INCREMENT (so ids continue after the swap) and is filled by
``INSERT … SELECT`` chunks would make every trigger insert, that is every application write, wait
for the chunk in progress, and deadlock with it now and then (pt-online-schema-change's problem).
Taking AUTO_INCREMENT off the shadow for the copy does not help: adding it back is a blocking
table rebuild (ALGORITHM=COPY) on MariaDB 10.11 and MySQL 8 alike.

So nothing ever bulk-inserts into such a shadow. InnoDB treats an ``INSERT … VALUES`` statement
as a "simple insert", which only takes the AUTO-INC mutex for a moment; and it classifies a
statement run by a trigger by that statement itself, not by what fired the trigger. Every insert
into the shadow therefore is an ``INSERT … VALUES`` inside a trigger: the dual-write triggers on
the table, and, for the copy, a trigger on a helper table ``_<table>_ss_copy`` (no keys besides the
primary key, no AUTO_INCREMENT) into which each chunk is ``INSERT … SELECT``-ed under a share lock
and deleted again in the same transaction. Where the AUTO-INC lock cannot arise (no AUTO_INCREMENT
column, or ``innodb_autoinc_lock_mode = 2``) the chunk goes straight into the shadow.

That is the path for plans that change the primary key. The usual plan keeps the key, and then
the triggers write no shadow at all: they insert the changed key into a change log
(``shadowswap/changelog.py``), the copy bulk-inserts into a shadow nobody else writes (its AUTO-INC
lock then queues no one), and replays apply the log. InnoDB's DML reads the newest rows, not a
snapshot, so a replay here takes its log entries with a locking read (``_replay_batch`` in
``changelog.py`` says why that is exact), and the swap applies the last entries under ``LOCK TABLES``
with the ``RENAME TABLE`` already queued behind it (``_swap_with_change_log`` in ``swap.py``).
"""

from __future__ import annotations

from shadowswap.dialects.mysql.app_triggers import MySQLAppTriggers
from shadowswap.dialects.mysql.backup import MySQLBackup
from shadowswap.dialects.mysql.base import MySQLBase
from shadowswap.dialects.mysql.changelog import MySQLChangeLog
from shadowswap.dialects.mysql.checksum import MySQLChecksum
from shadowswap.dialects.mysql.copy import MySQLCopy
from shadowswap.dialects.mysql.foreign_keys import MySQLForeignKeys
from shadowswap.dialects.mysql.indexes import MySQLIndexes
from shadowswap.dialects.mysql.instant import MySQLInstant
from shadowswap.dialects.mysql.preflight import MySQLPreflight
from shadowswap.dialects.mysql.probes import MySQLProbes
from shadowswap.dialects.mysql.session import MySQLSession
from shadowswap.dialects.mysql.swap import MySQLSwap
from shadowswap.dialects.mysql.tableoptions import MySQLTableOptions
from shadowswap.dialects.mysql.triggers import MySQLTriggers
from shadowswap.dialects.mysql.types import MySQLTypes


class MySQLDialect(
    MySQLSession,
    MySQLPreflight,
    MySQLTableOptions,
    MySQLInstant,
    MySQLTypes,
    MySQLTriggers,
    MySQLCopy,
    MySQLChangeLog,
    MySQLIndexes,
    MySQLSwap,
    MySQLAppTriggers,
    MySQLForeignKeys,
    MySQLChecksum,
    MySQLProbes,
    MySQLBackup,
):
    """The MySQL/MariaDB dialect: every room above, each method defined in exactly one of them."""


__all__ = ["MySQLBase", "MySQLDialect"]
