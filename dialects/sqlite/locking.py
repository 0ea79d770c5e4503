"""The migration lock: an OS lock on a file beside the database, one per table, so that two runs
never migrate one table at once and a killed run never leaves it locked."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine

from shadowswap.dialects.sqlite.base import SQLiteBase, database_file


class SQLiteLocking(SQLiteBase):
    @contextmanager
    def migration_lock(self, engine: Engine, table: str) -> Iterator[bool]:
        """An OS lock on a file beside the database: the kernel releases it when the process dies,
        so a killed run never leaves the table locked against its resume."""
        path = self._lock_path(engine, table)
        if path is None:  # an in-memory database lives in this process only
            yield True
            return
        fd = _try_lock_file(path)
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            _release_lock_file(path, fd)

    def _lock_path(self, engine: Engine, table: str) -> Path | None:
        database = database_file(engine)
        if database is None:
            return None
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", table)[:40]
        tag = hashlib.sha1(table.encode()).hexdigest()[:8]
        return Path(f"{database}.shadowswap-{safe}-{tag}.lock")


def _try_lock_file(path: Path) -> int | None:
    """Exclusive, non-blocking lock of ``path``; None when another process (or run) holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock_fd(fd):
            os.close(fd)
            return None
        # The holder unlinks the file when it is done: if ours is no longer the file at `path`,
        # we locked a file that nobody else will look at; start over on the current one.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        mine = os.fstat(fd)
        if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
            return fd
        os.close(fd)


def _lock_fd(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _release_lock_file(path: Path, fd: int) -> None:
    if os.name == "posix":
        path.unlink(missing_ok=True)  # while still locked, so no one can lock the old file and keep it
    os.close(fd)
