"""A private MariaDB for benchmarks, with the binary log on in row format as production primaries run.

Started by ``python -m benchmarks --dialect mysql --mysql-binlog`` and stopped when the run ends: its
own data directory, its own port, listening on 127.0.0.1 only. The shared server on 3306 is never
touched. Settings other than the binary log mirror that server (buffer pool, redo log, character
set), so the two runs differ in the binary log alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

DEFAULT_PORT = 3307
DEFAULT_DATADIR = Path("/tmp/shadowswap-bench-mariadb")


class PrivateMariaDB:
    def __init__(self, datadir: Path = DEFAULT_DATADIR, port: int = DEFAULT_PORT, buffer_pool: str = "128M") -> None:
        self.datadir = datadir
        self.port = port
        self.buffer_pool = buffer_pool
        self.process: subprocess.Popen[bytes] | None = None
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/shadowswap_bench"

    def _binary(self, *names: str) -> str:
        for name in names:
            found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
            if found:
                return found
        raise SystemExit(f"--mysql-binlog needs MariaDB's server installed ({names[0]} not found)")

    def _install(self) -> None:
        if (self.datadir / "mysql").is_dir():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        user = ["--user=mysql"] if self.as_root else []
        if self.as_root:
            shutil.chown(self.datadir, "mysql", "mysql")
        subprocess.run(
            [
                self._binary("mariadb-install-db", "mysql_install_db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *user,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> str:
        self._install()
        log = self.datadir / "error.log"
        args = [
            self._binary("mariadbd", "mysqld"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.datadir / 'mysqld.sock'}",
            f"--pid-file={self.datadir / 'mysqld.pid'}",
            f"--log-error={log}",
            "--log-bin=binlog",
            "--binlog-format=ROW",
            "--server-id=1",
            "--innodb-autoinc-lock-mode=1",
            f"--innodb-buffer-pool-size={self.buffer_pool}",
            "--innodb-log-file-size=96M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            *(["--user=mysql"] if self.as_root else []),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        engine = sa.create_engine(self.url.rsplit("/", 1)[0] + "/")
        deadline = time.monotonic() + 60
        while True:
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                break
            except sa.exc.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise SystemExit(f"the private MariaDB on port {self.port} did not start:\n{tail}") from None
                time.sleep(0.3)
        with engine.connect() as conn:
            conn.exec_driver_sql("RESET MASTER")  # our own server: start each run with an empty binary log
        engine.dispose()
        return self.url

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()  # SIGTERM: a clean shutdown
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
