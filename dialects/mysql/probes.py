"""Cheap questions to the server while a migration runs or is planned: row estimates, replica lag, load.

The throttler (``shadowswap/throttle.py``) asks these between chunks; each raises a ValueError
with the reason when the server cannot answer.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from shadowswap.dialects.mysql.base import MySQLBase


class MySQLProbes(MySQLBase):
    """Row estimate, replica lag and server load."""

    def estimated_rows(self, conn: Connection, table: str) -> int:
        est = conn.execute(
            sa.text(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
            ),
            {"t": table},
        ).scalar()
        if not est:  # statistics not gathered yet
            return super().estimated_rows(conn, table)
        return int(est)

    def replica_lag(self, conn: Connection) -> float:
        # A primary does not know how far its replicas are behind: each is asked (--replica URL).
        for statement in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):  # MySQL 8.4 knows only the first
            try:
                row = conn.exec_driver_sql(statement).mappings().first()
                break
            except DBAPIError:
                continue
        else:
            raise ValueError("cannot read the replication status (needs the REPLICATION CLIENT privilege)")
        if row is None:
            raise ValueError("this server is not a replica (SHOW REPLICA STATUS is empty)")
        lag = row.get("Seconds_Behind_Source", row.get("Seconds_Behind_Master"))
        if lag is None:
            raise ValueError("replication is not running on this replica")
        return float(lag)

    def server_load(self, conn: Connection, metric: str | None) -> float:
        # Threads_running by default (statements running right now, this probe included), or any
        # numeric global status variable named with --max-load NAME=N.
        name = metric or "Threads_running"
        if not re.fullmatch(r"[A-Za-z_]+", name):
            raise ValueError(f"{name!r} is not a global status variable")
        row = conn.execute(sa.text("SHOW GLOBAL STATUS LIKE :n"), {"n": name}).first()
        if row is None:
            raise ValueError(f"{name!r} is not a global status variable")
        value = float(row[1])
        return value - 1 if name.lower() == "threads_running" else value
