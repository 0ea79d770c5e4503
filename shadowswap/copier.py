"""Keyset chunk copy: each chunk is one server-side INSERT … SELECT plus its checkpoint, in one transaction.

Rows never travel through Python (invariant 2, the copy is ``INSERT … SELECT`` skipping keys the
triggers already wrote; a ``--transform``'s rows do, transform.py); chunk bounds walk the primary
key, so a chunk costs the same at the end of the table as at the start (invariant 4). The chunk
size adapts toward ``chunk_time`` per chunk.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import TextClause

from shadowswap import state
from shadowswap.db import first_line
from shadowswap.dialects import Dialect
from shadowswap.errors import CopyFailed
from shadowswap.plan import Plan

log = structlog.get_logger("shadowswap.copy")


@dataclass
class ChunkSizer:
    """Feedback chunker: told how long each chunk took, it proposes the next size.

    It aims at the (low) median cost per row of the last ``window`` chunks, not at the last one: a
    chunk that waited on a row lock or an I/O stall is an outlier and must not collapse the size.
    It moves at most 2x per chunk either way.
    """

    size: int = 1000
    target_seconds: float = 0.1
    minimum: int = 100
    maximum: int = 100_000
    window: int = 3
    _per_row: deque[float] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        self.size = max(self.minimum, min(self.maximum, self.size))

    def record(self, rows: int, seconds: float) -> None:
        if rows < self.size or seconds <= 0:
            return  # the short last chunk says nothing about the cost of a full one
        self._per_row.append(seconds / rows)
        while len(self._per_row) > self.window:
            self._per_row.popleft()
        ideal = self.target_seconds / statistics.median_low(self._per_row)
        step = max(self.size / 2, min(self.size * 2, ideal))
        self.size = int(max(self.minimum, min(self.maximum, step)))


def coerce_key(engine: Engine, plan: Plan, values: list[Any] | None) -> list[Any] | None:
    """Checkpoints are JSON; give the key values back their column's Python type."""
    if values is None:
        return None
    with engine.connect() as conn:
        columns = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(plan.table)}
    out = []
    for name, value in zip(plan.primary_key, values, strict=True):
        if isinstance(value, dict) and set(value) == {"hex"}:
            # state.encode_key's form of a binary value (bytea, BINARY(n), BLOB): bytes again
            out.append(bytes.fromhex(value["hex"]))
            continue
        try:
            python_type = columns[name].python_type
        except (NotImplementedError, KeyError):
            python_type = None
        if python_type is not None and value is not None and not isinstance(value, python_type):
            value = python_type.fromisoformat(value) if hasattr(python_type, "fromisoformat") else python_type(value)
        out.append(value)
    return out


def key_params(prefix: str, values: list[Any] | tuple[Any, ...] | None) -> dict[str, Any]:
    return {} if values is None else {f"{prefix}{i}": v for i, v in enumerate(values)}


def next_bound(
    conn: Connection, bounds: tuple[TextClause, TextClause], lo: list[Any] | None, top: list[Any], size: int
) -> list[Any]:
    """The key ``size`` rows past ``lo`` (``chunk_bound_sql``: first chunk, next ones), or ``top``."""
    params = {**key_params("lo", lo), **key_params("hi", top), "skip": size - 1}
    row = conn.execute(bounds[0] if lo is None else bounds[1], params).first()
    return list(row) if row is not None else list(top)


ProgressCallback = Callable[[int, int], None]
ThrottleCallback = Callable[[], object]
PaceCallback = Callable[[int, float], None]


class Copier:
    def __init__(
        self,
        engine: Engine,
        dialect: Dialect,
        plan: Plan,
        migration_id: int,
        sizer: ChunkSizer,
        on_progress: ProgressCallback | None = None,
        before_chunk: ThrottleCallback | None = None,
        after_chunk: PaceCallback | None = None,
        max_retries: int = 20,
        workers: int = 1,
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.plan = plan
        self.migration_id = migration_id
        self.sizer = sizer
        self.on_progress = on_progress
        self.before_chunk = before_chunk
        self.after_chunk = after_chunk
        self.max_retries = max_retries
        # --order-by: one chunk, the whole key range in index order (a chunk per key range would be
        # ordered only within itself); as CLUSTER and pg_repack, the heap is written in one pass
        self.one_chunk = bool(plan.order_by)
        self.workers = 1 if self.one_chunk else max(1, workers)
        self.bounds = (
            dialect.statement(dialect.chunk_bound_sql(plan, has_lo=False)),
            dialect.statement(dialect.chunk_bound_sql(plan, has_lo=True)),
        )
        self.copy_first = dialect.statement(dialect.copy_chunk_sql(plan, has_lo=False))
        self.copy_next = dialect.statement(dialect.copy_chunk_sql(plan, has_lo=True))
        fast_first, fast_next = (dialect.copy_chunk_fast_sql(plan, has_lo=h) for h in (False, True))
        self.fast_first = dialect.statement(fast_first) if fast_first else None
        self.fast_next = dialect.statement(fast_next) if fast_next else None
        #: --transform: the chunk's rows pass through the user's function (transform.py)
        self.transformer = None
        if plan.transform is not None:
            from shadowswap.transform import Transformer

            self.transformer = Transformer.for_plan(dialect, plan)
        #: chunks the fast statement lost to a trigger and the careful one copied
        self.races = 0
        #: every key up to this one has been copied and committed (None: none yet)
        self.copied_through: list[Any] | None = None
        self.finished = False

    def covers(self, hi: list[Any]) -> bool:
        """Whether every key of the original up to ``hi`` has been copied and committed, in the
        database's own order. Python's order of the two keys is not the engine's under a collation
        (case-insensitive text, accents): comparing them here let a verification beside the copy
        read chunks not yet copied. So ask the table: no original key in (copied_through, hi]
        means that range is done (a row written into it later has a change-log entry, which the
        verification leaves to the replays — changelog.py)."""
        if self.finished:
            return True
        through = self.copied_through
        pk = self.plan.primary_key
        upto = self.dialect.key_at_most(pk, "hi")
        where = upto if through is None else f"{self.dialect.key_after(pk, 'lo')} AND {upto}"
        sql = f"SELECT 1 FROM {self.dialect.q(self.plan.table)} WHERE {where} LIMIT 1"
        with self.engine.connect() as conn:
            row = conn.execute(sa.text(sql), {**key_params("lo", through), **key_params("hi", hi)}).first()
            conn.rollback()
        return row is None

    def run(self, checkpoint: list[Any] | None, max_key: list[Any]) -> int:
        """Copy every key in (checkpoint, max_key]; returns rows inserted by this run."""
        self.copied_through = list(checkpoint) if checkpoint is not None else None
        if self.workers > 1:
            total = self._run_parallel(checkpoint, max_key)
            self.finished = True
            return total
        lo = checkpoint
        total = 0
        while lo is None or list(lo) != list(max_key):
            if self.before_chunk:
                self.before_chunk()
            started = time.perf_counter()
            hi, inserted = self._chunk_with_retries(lo, max_key)
            total += inserted
            self._chunk_done(hi, max_key, inserted, time.perf_counter() - started)
            lo = hi
        self.finished = True
        return total

    def _run_parallel(self, checkpoint: list[Any] | None, max_key: list[Any]) -> int:
        """``workers`` chunks at once, each on its own connection over its own key range.

        The ranges are handed out in key order and their results taken in that order, so the
        checkpoint (written here, after the chunk's own transaction) is a low watermark: it never
        passes a range that has not committed. A resume may copy again a range that did commit
        after it; the copy skips keys already present, so that costs time, not correctness.
        """
        lo = checkpoint
        handed_out_all = False
        total = 0
        pending: deque[tuple[list[Any], Future[tuple[int, float]]]] = deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="shadowswap-copy") as pool:
            try:
                while True:
                    while not handed_out_all and len(pending) < self.workers:
                        if self.before_chunk:
                            self.before_chunk()
                        hi = self._bound(lo, max_key)
                        pending.append((hi, pool.submit(self._range_with_retries, lo, hi)))
                        lo, handed_out_all = hi, list(hi) == list(max_key)
                    if not pending:
                        return total
                    hi, future = pending.popleft()
                    inserted, elapsed = future.result()
                    with self.engine.begin() as conn:
                        state.record_chunk(conn, self.migration_id, hi, 0)
                    total += inserted
                    self._chunk_done(hi, max_key, inserted, elapsed)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def _chunk_done(self, hi: list[Any], max_key: list[Any], inserted: int, elapsed: float) -> None:
        self.copied_through = list(hi)
        self.sizer.record(self.sizer.size if list(hi) != list(max_key) else 0, elapsed)
        if self.on_progress:
            self.on_progress(inserted, self.sizer.size)
        log.debug("chunk copied", hi=hi, rows=inserted, seconds=round(elapsed, 3), next_size=self.sizer.size)
        if self.after_chunk:
            self.after_chunk(inserted, elapsed)

    def _bound(self, lo: list[Any] | None, max_key: list[Any]) -> list[Any]:
        """The upper key of the next chunk, read outside any chunk's transaction."""
        with self.engine.connect() as conn:
            return next_bound(conn, self.bounds, lo, max_key, self.sizer.size)

    def _range_with_retries(self, lo: list[Any] | None, hi: list[Any]) -> tuple[int, float]:
        started = time.perf_counter()
        _, inserted = self._chunk_with_retries(lo, hi, fixed_hi=True)
        return inserted, time.perf_counter() - started

    def _chunk_with_retries(
        self, lo: list[Any] | None, max_key: list[Any], fixed_hi: bool = False
    ) -> tuple[list[Any], int]:
        attempt = 0
        careful = self.fast_first is None
        while True:
            try:
                return self._chunk(lo, max_key, careful, fixed_hi)
            except DBAPIError as exc:
                if not careful and self.dialect.is_copy_race(exc):
                    careful = True
                    self.races += 1
                    log.debug("chunk met a trigger's row; rerun with the careful statement", lo=lo)
                    continue
                if self.dialect.is_retryable(exc) and attempt < self.max_retries:
                    attempt += 1
                    log.info("chunk retried", reason=first_line(exc), attempt=attempt)
                    time.sleep(min(0.05 * 2**attempt, 2.0))
                    continue
                if self.dialect.is_data_error(exc):
                    raise CopyFailed(
                        f"{self._which_row(lo)} cannot be copied into the new definition: {first_line(exc)}",
                        hint="fix the data, or give --using COL=EXPR to convert it, then plan again",
                    ) from exc
                raise

    def _which_row(self, lo: list[Any] | None) -> str:
        """The failing row by its key and value (castcheck.first_failing), else where its chunk began."""
        from shadowswap.castcheck import first_failing

        try:
            row = first_failing(self.engine, self.dialect, self.plan, lo)
        except DBAPIError as exc:  # the diagnosis failed: the database's own message still stands
            log.info("could not name the failing row", reason=first_line(exc))
            row = None
        if row is not None:
            return row.describe(self.plan.primary_key)
        return f"a row after key {lo}" if lo is not None else "a row at the start of the table"

    def _chunk(self, lo: list[Any] | None, max_key: list[Any], careful: bool, fixed_hi: bool) -> tuple[list[Any], int]:
        """One chunk's transaction. With ``fixed_hi`` the range is (lo, max_key] as given and the
        checkpoint is left to the caller (parallel copy); otherwise the chunk finds its own upper
        key and commits it as the checkpoint together with its rows (invariant 4)."""
        with self.engine.begin() as conn:
            self.dialect.begin_chunk(conn)
            whole = fixed_hi or self.one_chunk
            hi = list(max_key) if whole else next_bound(conn, self.bounds, lo, max_key, self.sizer.size)
            params = {**key_params("lo", lo), **key_params("hi", hi)}
            if self.transformer is not None:
                # read the chunk, transform it, write it in one round trip; nothing else writes
                # the shadow before the first replay (change log only: planner.py), but for the
                # replays of the keys already copied that some engines run in each chunk first
                if self.dialect.replays_in_chunks and lo is not None:
                    self.dialect.replay_below(conn, self.plan, lo)
                inserted = self.transformer.copy_range(conn, lo is not None, params)
                state.record_chunk(conn, self.migration_id, None if fixed_hi else hi, inserted)
                return hi, inserted
            statement: TextClause | None
            if careful:
                statement = self.copy_first if lo is None else self.copy_next
            else:
                statement = self.fast_first if lo is None else self.fast_next
            assert statement is not None
            result = conn.execute(statement, params)
            inserted = self.dialect.finish_copy(conn, self.plan, result)
            state.record_chunk(conn, self.migration_id, None if fixed_hi else hi, inserted)
        return hi, inserted
