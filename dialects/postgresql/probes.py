"""Read-only probes of the server: the table's estimated size (for the plan and progress) and the
throttle's inputs (replication lag seen from the primary, lag on a standby, active backends).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.postgresql.base import PostgresBase


class PostgresProbes(PostgresBase):
    def estimated_rows(self, conn: Connection, table: str) -> int:
        est = conn.execute(
            sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:t)"),
            {"t": self.q(table)},
        ).scalar()
        if est is None or est < 0:  # never analyzed
            return super().estimated_rows(conn, table)
        return int(est)

    def replication_lag(self, conn: Connection) -> float | None:
        # replay_lag is NULL once a standby has caught up and gone quiet: that is no lag at all.
        row = conn.execute(
            sa.text("SELECT count(*), coalesce(extract(epoch FROM max(replay_lag)), 0) FROM pg_stat_replication")
        ).one()
        return float(row[1]) if row[0] else None

    def replica_lag(self, conn: Connection) -> float:
        row = conn.execute(
            sa.text(
                "SELECT pg_is_in_recovery(), "
                "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
                "ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END"
            )
        ).one()
        if not row[0]:
            raise ValueError("this server is not a standby (pg_is_in_recovery() is false)")
        return float(row[1])

    def server_load(self, conn: Connection, metric: str | None) -> float:
        if metric not in (None, "active", "active_backends"):
            raise ValueError(f"PostgreSQL's load metric is active backends (--max-load N), not {metric!r}")
        # Client backends running a statement, on the whole server: that is what competes with us.
        return float(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        )
