"""Chunked checksum of the original (through the copy expressions) against the shadow (invariant 9).

Each chunk is compared inside one snapshot: the triggers write the shadow in the writer's own
transaction, so at any snapshot the two sides agree unless something is really wrong. A differing
chunk is still read again before it counts, in case the engine's snapshot is weaker than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from shadowswap.copier import key_params
from shadowswap.dialects import Dialect
from shadowswap.errors import VerificationFailed
from shadowswap.plan import Plan

log = structlog.get_logger("shadowswap.verify")


def _compare(engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, hi: list[Any]) -> tuple[Any, Any]:
    params = {**key_params("lo", lo), **key_params("hi", hi)}
    has_lo = lo is not None
    with engine.connect() as conn:
        dialect.begin_snapshot(conn)
        source = tuple(conn.execute(dialect.statement(dialect.checksum_sql(plan, True, has_lo)), params).one())
        shadow = tuple(conn.execute(dialect.statement(dialect.checksum_sql(plan, False, has_lo)), params).one())
        conn.rollback()
    return source, shadow


def verify(
    engine: Engine,
    dialect: Dialect,
    plan: Plan,
    chunk_size: int = 20_000,
    rechecks: int = 3,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Returns the number of rows compared; raises VerificationFailed with the differing key range."""
    bound_first = dialect.statement(dialect.chunk_bound_sql(plan, has_lo=False))
    bound_next = dialect.statement(dialect.chunk_bound_sql(plan, has_lo=True))
    with engine.connect() as conn:
        top = conn.execute(dialect.statement(dialect.max_key_sql(plan))).first()
    if top is None:
        return 0
    max_key = list(top)
    lo: list[Any] | None = None
    compared = 0
    while lo is None or lo != max_key:
        params = {**key_params("lo", lo), **key_params("hi", max_key), "skip": chunk_size - 1}
        with engine.connect() as conn:
            row = conn.execute(bound_first if lo is None else bound_next, params).first()
        hi = list(row) if row is not None else max_key
        for attempt in range(rechecks + 1):
            source, shadow = _compare(engine, dialect, plan, lo, hi)
            if source == shadow:
                break
            log.info("checksum differs, rechecking", lo=lo, hi=hi, attempt=attempt + 1)
            time.sleep(0.2 * (attempt + 1))
        else:
            raise VerificationFailed(
                f"the shadow differs from the original for keys in ({lo}, {hi}] "
                f"(original: {source[0]} rows, shadow: {shadow[0]} rows)",
                hint="nothing was swapped; `shadowswap abort` removes the shadow and triggers",
            )
        compared += int(source[0] or 0)
        if on_progress:
            on_progress(int(source[0] or 0))
        lo = hi
    return compared
