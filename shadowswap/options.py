"""What a run is told (``Options``), whom it tells as it goes (``Reporter``) and what it reports (``Summary``).

Its own room so the executor's rooms (lifecycle.py, hold.py, indexes.py) can read the settings
without importing the executor that imports them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shadowswap.errors import UsageError
from shadowswap.hooks import Hooks, parse_hooks
from shadowswap.throttle import ThrottleSettings, parse_max_load

if TYPE_CHECKING:
    from shadowswap.dialects import Dialect


@dataclass
class Options:
    chunk_size: int = 1000
    chunk_time: float = 0.1
    min_chunk: int = 100
    max_chunk: int = 100_000
    #: chunks copied at once (None: the dialect's default; a --max-rows-per-second cap uses one)
    copy_workers: int | None = None
    lock_timeout_ms: int = 200
    lock_retries: int = 30
    verify: bool = True
    #: stop (resumably) once this phase is reached; ``execute`` again continues
    stop_after: str | None = None
    #: run plans that drop or narrow something (the plan's verdict says which)
    allow_destructive: bool = False
    #: pause, lag and load limits, rate cap (throttle.py)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    #: wait after verifying until ``shadowswap cutover`` (or the file below is removed)
    postpone_cutover: bool = False
    postpone_file: Path | None = None
    hooks: Hooks = field(default_factory=Hooks)
    #: seconds between asking a refusing on-before-cutover hook again
    hook_retry_seconds: float = 10.0
    backup_dir: Path | None = None
    #: no reverse capture at the swap (``execute --no-revert``): no cost per write after it, no ``revert``
    no_revert: bool = False

    @classmethod
    def for_dialect(
        cls,
        dialect: Dialect,
        *,
        chunk_size: int = 1000,
        chunk_time: float | None = None,
        min_chunk: int = 100,
        max_chunk: int = 100_000,
        copy_workers: int | None = None,
        max_rows_per_second: float | None = None,
        max_lag: float | None = None,
        replicas: Iterable[str] = (),
        max_load: str | None = None,
        pause_file: Path | None = None,
        hooks: Iterable[str] = (),
        hook_timeout: float = 300.0,
        **rest: Any,
    ) -> Options:
        """The options of one run on ``dialect``, from the settings as a user gives them (the command
        line, alembic.ini, a fleet): the first chunk kept within its bounds, the engine's own chunk
        time unless one is given, the raw --max-load and --hook specs parsed. The one place the
        ``execute`` command, the Alembic operation and the fleet runner turn settings into options."""
        if copy_workers is not None and copy_workers > dialect.max_copy_workers:
            raise UsageError(
                f"--copy-workers {copy_workers}: {dialect.name} copies at most "
                f"{dialect.max_copy_workers} chunk(s) at once"
            )
        throttle = ThrottleSettings(
            max_rows_per_second=max_rows_per_second,
            max_lag=max_lag,
            replicas=list(replicas),
            max_load=parse_max_load(max_load) if max_load is not None else None,
            pause_file=pause_file,
        )
        return cls(
            chunk_size=min(max(chunk_size, min_chunk), max_chunk),
            chunk_time=chunk_time if chunk_time is not None else dialect.default_chunk_time,
            min_chunk=min_chunk,
            max_chunk=max_chunk,
            copy_workers=copy_workers,
            throttle=throttle,
            hooks=Hooks(parse_hooks(hooks), timeout=hook_timeout),
            **rest,
        )


class Reporter(Protocol):
    def phase(self, name: str, **facts: Any) -> None: ...
    def copy_started(self, total_estimate: int, already: int) -> None: ...
    def copied(self, rows: int) -> None: ...
    def copy_finished(self) -> None: ...
    def waiting(self, reason: str | None) -> None: ...


class SilentReporter:
    def phase(self, name: str, **facts: Any) -> None:
        pass

    def copy_started(self, total_estimate: int, already: int) -> None:
        pass

    def copied(self, rows: int) -> None:
        pass

    def copy_finished(self) -> None:
        pass

    def waiting(self, reason: str | None) -> None:
        pass


@dataclass
class Summary:
    migration_id: int
    table: str
    old_table: str
    rows_copied: int
    seconds: float
    cutover_lock_ms: float | None
    phases: dict[str, float] = field(default_factory=dict)
    strategy: str = "shadow"
    backup_path: str | None = None
    backup_restore: str | None = None
    #: the table's space on disk before (the kept old table) and after the swap, as the engine
    #: reports it (``Dialect.table_bytes``; None: unknown)
    bytes_before: int | None = None
    bytes_after: int | None = None
