"""The pre-migration backup: pg_dump of the one table, with a restore list that leaves out
shadowswap's own triggers (their function is not in the dump).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shadowswap.dialects.postgresql.base import PostgresBase

if TYPE_CHECKING:
    from pathlib import Path

    from shadowswap.backup import Backup
    from shadowswap.plan import Plan


class PostgresBackup(PostgresBase):
    def backup_table(self, engine: Engine, plan: Plan, directory: Path, stem: str) -> Backup:
        from shadowswap.backup import Backup, run_tool

        with engine.connect() as conn:
            schema = plan.schema or conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        url = engine.url
        env = {
            "PGHOST": str(url.query.get("host") or url.host or ""),
            "PGPORT": str(url.port or ""),
            "PGUSER": url.username or "",
            "PGDATABASE": url.database or "",
            "PGAPPNAME": "shadowswap-backup",
        }
        if url.password is not None:
            env["PGPASSWORD"] = str(url.password)  # the environment, never the arguments
        env = {k: v for k, v in env.items() if v}

        def literal(name: str) -> str:
            # Inside double quotes pg_dump's pattern characters are literal; "" is a quote.
            return '"' + name.replace('"', '""') + '"'

        dump = directory / f"{stem}.dump"
        run_tool(
            [
                "pg_dump",
                "--format=custom",
                "--strict-names",
                f"--table={literal(schema)}.{literal(plan.table)}",
                f"--file={dump}",
            ],
            env,
            secret=url.password,
        )
        # The dump carries shadowswap's own triggers, whose function lives outside the table and
        # is not in it: a restore list without them restores cleanly.
        listing = run_tool(["pg_restore", "--list", str(dump)], env, secret=url.password)
        ours = set(plan.trigger_names)
        lines = []
        for line in listing.splitlines():
            words = line.split()
            if " TRIGGER " in line and ours.intersection(words):
                line = ";" + line
            lines.append(line)
        restore_list = directory / f"{stem}.list"
        restore_list.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return Backup(
            path=dump,
            restore=f"pg_restore --use-list={restore_list} --dbname=DBNAME {dump}",
            extra=[restore_list],
        )
