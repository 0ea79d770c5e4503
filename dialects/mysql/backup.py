"""The optional backup before the swap: ``mysqldump`` (or ``mariadb-dump``) of the original table."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from shadowswap.dialects.mysql.base import MySQLBase

if TYPE_CHECKING:
    from pathlib import Path

    from shadowswap.backup import Backup
    from shadowswap.plan import Plan


class MySQLBackup(MySQLBase):
    """mysqldump in one consistent snapshot, the password kept out of the argument list."""

    def backup_table(self, engine: Engine, plan: Plan, directory: Path, stem: str) -> Backup:
        """mysqldump of the original in one consistent snapshot, without shadowswap's triggers. The
        password goes in an option file readable only by us (never an argument: ``ps`` shows those)."""
        from shadowswap.backup import Backup, run_tool

        url = engine.url
        tool = "mysqldump" if shutil.which("mysqldump") else "mariadb-dump"
        dump = directory / f"{stem}.sql"
        with tempfile.TemporaryDirectory(prefix="shadowswap-") as private:
            options = os.path.join(private, "client.cnf")
            with open(os.open(options, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
                f.write("[client]\n")
                if url.password is not None:
                    secret = str(url.password).replace("\\", "\\\\").replace('"', '\\"')
                    f.write(f'password="{secret}"\n')
            argv = [tool, f"--defaults-extra-file={options}"]  # must come first
            argv += [f"--host={url.host or 'localhost'}", f"--port={url.port or 3306}"]
            if url.username:
                argv.append(f"--user={url.username}")
            argv += [
                "--single-transaction",
                "--skip-triggers",
                "--no-tablespaces",
                f"--result-file={dump}",
                str(url.database),
                plan.table,
            ]
            run_tool(argv, {}, secret=None if url.password is None else str(url.password))
        return Backup(path=dump, restore=f"mysql DBNAME < {dump}")
