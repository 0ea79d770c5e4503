"""Options of ``op.online_alter_table``: keyword arguments, overridden by ``[shadowswap]`` in alembic.ini,
overridden by ``SHADOWSWAP_*`` environment variables, so an operator tunes a run without editing the
migration (the migration states intent, the operator states the machine's limits).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shadowswap.errors import UsageError


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).replace("\n", ",").split(",") if part.strip()]


def _hooks(value: Any) -> list[str]:
    """``{"on-start": "cmd"}`` or ``["on-start=cmd"]`` (ini / env: one EVENT=COMMAND a line or ``;``)."""
    if isinstance(value, Mapping):
        return [f"{event}={command}" for event, command in value.items()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).replace("\n", ";").split(";") if part.strip()]


def _path(value: Any) -> Path:
    return Path(str(value)).expanduser()


def _positive_float(value: Any) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be positive")
    return number


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _strategy(value: Any) -> str:
    if value not in ("auto", "shadow", "instant"):
        raise ValueError("auto, shadow or instant")
    return str(value)


#: every option: its parser (None for "not given")
PARSERS: dict[str, Callable[[Any], Any]] = {
    "strategy": _strategy,
    "check_casts": _bool,
    "chunk_size": _positive_int,
    "chunk_time": _positive_float,
    "min_chunk": _positive_int,
    "max_chunk": _positive_int,
    "copy_workers": _positive_int,
    "max_rows_per_second": _positive_float,
    "max_lag": _positive_float,
    "replicas": _list,
    "max_load": str,
    "pause_file": _path,
    "postpone_cutover": _bool,
    "postpone_cutover_file": _path,
    "hooks": _hooks,
    "hook_timeout": _positive_float,
    "backup": _path,
    "lock_timeout": _positive_int,
    "cutover_retries": _positive_int,
    "verify": _bool,
    "allow_destructive": _bool,
    "drop_kept_old": _bool,
    "keep_old": _bool,
    "log_format": str,
    "log_level": str,
    "progress": _bool,
    "db": str,
}


@dataclass
class Settings:
    strategy: str = "auto"
    check_casts: bool = False
    chunk_size: int = 1000
    chunk_time: float | None = None
    min_chunk: int = 100
    max_chunk: int = 100_000
    copy_workers: int | None = None
    max_rows_per_second: float | None = None
    max_lag: float | None = None
    replicas: list[str] = field(default_factory=list)
    max_load: str | None = None
    pause_file: Path | None = None
    postpone_cutover: bool = False
    postpone_cutover_file: Path | None = None
    hooks: list[str] = field(default_factory=list)
    hook_timeout: float = 300.0
    backup: Path | None = None
    #: milliseconds, as ``shadowswap execute --lock-timeout``
    lock_timeout: int = 200
    cutover_retries: int = 30
    verify: bool = True
    allow_destructive: bool = False
    #: an earlier, finished migration of the same table keeps its old table until cleaned up; the
    #: next online migration of that table drops it first (a migration history moves forward)
    drop_kept_old: bool = True
    #: keep the old table after the swap (the way back); False drops it once the swap is done
    keep_old: bool = True
    log_format: str = "console"
    log_level: str = "info"
    #: the progress bar; None: on a terminal only
    progress: bool | None = None
    #: offline mode only: the database to read the table from for the plan (default: sqlalchemy.url)
    db: str | None = None
    #: where each value came from, for error messages
    sources: dict[str, str] = field(default_factory=dict)


def resolve(
    kwargs: Mapping[str, Any], ini: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Keyword arguments < ``[shadowswap]`` in alembic.ini < ``SHADOWSWAP_<NAME>`` environment variables."""
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, Any]]] = [
        ("online_alter_table()", kwargs),
        ("[shadowswap] in alembic.ini", {k.replace("-", "_"): v for k, v in (ini or {}).items()}),
        (
            "environment",
            {k[len("SHADOWSWAP_") :].lower(): v for k, v in environ.items() if k.startswith("SHADOWSWAP_")},
        ),
    ]
    settings = Settings()
    for source, values in layers:
        for name, raw in values.items():
            if name not in PARSERS:
                if source == "environment":
                    continue  # SHADOWSWAP_* variables of the test suite and of hooks are not options
                known = ", ".join(sorted(PARSERS))
                raise UsageError(f"unknown shadowswap option {name!r} in {source}", hint=f"options: {known}")
            if raw is None:
                continue
            try:
                value = PARSERS[name](raw)
            except (TypeError, ValueError) as exc:
                label = f"SHADOWSWAP_{name.upper()}" if source == "environment" else name
                raise UsageError(f"shadowswap option {label} in {source}: {exc}") from None
            setattr(settings, name, value)
            settings.sources[name] = source
    if settings.min_chunk > settings.max_chunk:
        raise UsageError("shadowswap option min_chunk is larger than max_chunk")
    return settings
