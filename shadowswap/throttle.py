"""Decides, between chunks, whether the migration may go on, and paces it when it may.

Reasons to hold back, checked in this order: the operator's pause (``shadowswap pause`` sets a
flag in the state table, so any host can pause; ``--pause-file``), replication lag
(``--max-lag`` against what the primary reports, or the ``--replica`` servers themselves), and
server load (``--max-load``). Lag and load probes are queries, so their answers are reused for
``probe_interval`` seconds; the pause flag is one primary-key read and is checked every time.
Nothing is held while waiting: the copy waits between chunks, with no transaction open.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shadowswap import state
from shadowswap.db import first_line, resolve_url, safe_url
from shadowswap.dialects import Dialect
from shadowswap.errors import UsageError
from shadowswap.urls import mask_secrets, secrets_of

log = structlog.get_logger("shadowswap.throttle")


@dataclass
class ThrottleSettings:
    max_rows_per_second: float | None = None
    max_lag: float | None = None
    replicas: list[str] = field(default_factory=list)
    #: (metric or None for the engine's default, threshold)
    max_load: tuple[str | None, float] | None = None
    pause_file: Path | None = None
    #: seconds between checks while held back
    interval: float = 0.5
    #: seconds a lag or load reading is trusted
    probe_interval: float = 1.0

    @property
    def probes(self) -> bool:
        return self.max_lag is not None or self.max_load is not None


def parse_max_load(spec: str) -> tuple[str | None, float]:
    """``25`` or ``Threads_running=25``."""
    metric, sep, value = spec.rpartition("=")
    try:
        threshold = float(value)
    except ValueError:
        raise UsageError(
            f"--max-load {spec!r} is not [METRIC=]NUMBER", hint="e.g. --max-load Threads_running=25"
        ) from None
    if threshold <= 0:
        raise UsageError("--max-load must be positive")
    return (metric.strip() or None) if sep else None, threshold


Note = Callable[[str | None], None]
RENOTE_SECONDS = 5.0


def _kind(reason: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "#", reason)


class Throttler:
    def __init__(
        self,
        engine: Engine,
        dialect: Dialect,
        settings: ThrottleSettings,
        note: Note | None = None,
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        #: set once the migration is claimed; until then only the pause file can pause
        self.migration_id: int | None = None
        self.settings = settings
        self.note = note or (lambda _reason: None)
        self.replicas: list[tuple[str, Engine]] = []
        self._probed_at = float("-inf")
        self._probe_reason: str | None = None

    # -- set-up ------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect to the replicas and probe everything once, so bad options fail before any change."""
        s = self.settings
        if s.max_lag is not None and s.max_lag <= 0:
            raise UsageError("--max-lag must be positive")
        if s.replicas and s.max_lag is None:
            raise UsageError("--replica is only used with --max-lag", hint="add --max-lag SECONDS")
        for url in s.replicas:
            parsed = resolve_url(url)
            self.replicas.append((safe_url(parsed), sa.create_engine(parsed, pool_pre_ping=True, pool_size=1)))
        if s.max_lag is not None:
            if self.replicas:
                for name, engine in self.replicas:
                    self._probe_or_usage(f"--replica {name}", lambda conn: self.dialect.replica_lag(conn), engine)
            else:
                lag = self._probe_or_usage(
                    "--max-lag", self.dialect.replication_lag, self.engine, hint="give the replicas with --replica URL"
                )
                if lag is None:
                    log.info("no replicas attached to this server; --max-lag has nothing to watch")
        if s.max_load is not None:
            metric = s.max_load[0]
            self._probe_or_usage("--max-load", lambda conn: self.dialect.server_load(conn, metric), self.engine)

    def _probe_or_usage(
        self, option: str, probe: Callable[[sa.Connection], object], engine: Engine, hint: str | None = None
    ) -> object:
        try:
            with engine.connect() as conn:
                return probe(conn)
        except NotImplementedError:
            raise UsageError(f"{option} is not available on {self.dialect.name}", hint=hint) from None
        except (ValueError, TypeError, AttributeError) as exc:  # also a driver refusing a URL parameter
            raise UsageError(f"{option}: {mask_secrets(str(exc), secrets_of(engine.url))}") from None
        except DBAPIError as exc:
            message = mask_secrets(first_line(exc), secrets_of(engine.url))
            raise UsageError(f"{option}: the probe failed: {message}") from None

    def close(self) -> None:
        for _name, engine in self.replicas:
            engine.dispose()

    # -- the checks --------------------------------------------------------------------------

    def reason(self) -> str | None:
        """Why the migration must wait now, or None."""
        paused = False
        if self.migration_id is not None:
            with self.engine.connect() as conn:
                paused, _postponed = state.flags(conn, self.migration_id)
        if paused:
            return "paused by `shadowswap pause` (`shadowswap resume` continues)"
        pause_file = self.settings.pause_file
        if pause_file is not None and pause_file.exists():
            return f"paused while {pause_file} exists"
        if self.settings.probes:
            now = time.monotonic()
            if now - self._probed_at >= self.settings.probe_interval:
                self._probe_reason = self._probe()
                self._probed_at = now
            return self._probe_reason
        return None

    def _probe(self) -> str | None:
        s = self.settings
        if s.max_lag is not None:
            for name, lag in self._lags():
                if lag is None:
                    return f"replication lag unknown on {name}"
                if lag > s.max_lag:
                    return f"replication lag {lag:.1f}s on {name} > --max-lag {s.max_lag:g}s"
        if s.max_load is not None:
            metric, threshold = s.max_load
            try:
                with self.engine.connect() as conn:
                    load = self.dialect.server_load(conn, metric)
            except DBAPIError as exc:
                return f"load unknown ({first_line(exc)})"
            if load > threshold:
                return f"load {metric or 'active backends'}={load:g} > --max-load {threshold:g}"
        return None

    def _lags(self) -> list[tuple[str, float | None]]:
        if not self.replicas:
            with self.engine.connect() as conn:
                lag = self.dialect.replication_lag(conn)
            return [] if lag is None else [("the replicas", lag)]
        lags: list[tuple[str, float | None]] = []
        for name, engine in self.replicas:
            try:
                with engine.connect() as conn:
                    lags.append((name, self.dialect.replica_lag(conn)))
            except (DBAPIError, ValueError) as exc:
                # A replica we cannot see might be far behind: hold back until it answers.
                log.warning("replica probe failed", replica=name, error=first_line(exc))
                lags.append((name, None))
        return lags

    def wait(self, given_up: Callable[[], bool] | None = None) -> float:
        """Block while there is a reason to, or until ``given_up()``; returns the seconds waited."""
        reason = self.reason()
        if reason is None:
            return 0.0
        started = time.perf_counter()
        kind, noted_at = None, 0.0
        while reason is not None and not (given_up and given_up()):
            # a new reason is told at once; the same one with a new reading (lag 3.1s, 3.4s…) every few seconds
            if _kind(reason) != kind or time.monotonic() - noted_at >= RENOTE_SECONDS:
                log.info("throttled", reason=reason)
                self.note(reason)
                kind, noted_at = _kind(reason), time.monotonic()
            time.sleep(self.settings.interval)
            reason = self.reason()
        waited = time.perf_counter() - started
        if reason is None:  # not when given up: the reason still holds for everyone else
            log.info("throttle lifted", waited=round(waited, 1))
            self.note(None)
        return waited

    def pace(self, rows: int, seconds: float) -> None:
        """``--max-rows-per-second``: sleep off whatever this chunk copied beyond the cap."""
        cap = self.settings.max_rows_per_second
        if not cap or rows <= 0:
            return
        pause = rows / cap - seconds
        if pause > 0:
            time.sleep(pause)
