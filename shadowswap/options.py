"""What a run is told (``Options``), whom it tells as it goes (``Reporter``) and what it reports (``Summary``).

Its own room so the executor's rooms (lifecycle.py, hold.py, indexes.py) can read the settings
without importing the executor that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shadowswap.hooks import Hooks
from shadowswap.throttle import ThrottleSettings


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
