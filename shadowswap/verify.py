"""Chunked checksum of the original (through the copy expressions) against the shadow (invariant 9).

Each chunk is compared inside one snapshot: the triggers write the shadow in the writer's own
transaction, so at any snapshot the two sides agree unless something is really wrong. A differing
chunk is still read again before it counts, in case the engine's snapshot is weaker than that.
A chunk that keeps differing is narrowed to its keys: both sides' rows of that range are read in
one snapshot and compared row by row, so the operator is told which rows, not which 20,000.

After the swap the same code compares the new table with the kept old table (``shadowswap
verify``): the old table plays the original, the live table plays the shadow.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.copier import key_params, next_bound
from shadowswap.dialects import Dialect
from shadowswap.errors import VerificationFailed
from shadowswap.plan import Plan

_T = TypeVar("_T")

log = structlog.get_logger("shadowswap.verify")

Key = tuple[Any, ...]


@dataclass
class Difference:
    """A chunk whose checksums kept differing, and the keys that differ inside it."""

    lo: list[Any] | None
    hi: list[Any]
    #: in the original (through the copy expressions) but not in the shadow
    missing: list[Key] = field(default_factory=list)
    #: in the shadow but not in the original
    extra: list[Key] = field(default_factory=list)
    #: in both, with different values
    changed: list[Key] = field(default_factory=list)

    @property
    def keys(self) -> list[Key]:
        return sorted([*self.missing, *self.extra, *self.changed], key=repr)


@dataclass
class VerifyResult:
    rows: int
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def differing_keys(self) -> int:
        return sum(len(d.keys) or 1 for d in self.differences)


def _snapshot_read(dialect: Dialect, read: Callable[[], _T]) -> _T:
    """One chunk's read at one instant, read again when the engine says the snapshot cannot be used
    (MariaDB: an online index build on the shadow changed its definition after the snapshot began)."""
    for attempt in range(10):
        try:
            return read()
        except DBAPIError as exc:
            if not dialect.is_retryable(exc) or attempt == 9:
                raise
            log.info("verification chunk read again", reason=str(exc.orig).splitlines()[0], attempt=attempt + 1)
            time.sleep(min(0.05 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


def _compare(engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, hi: list[Any]) -> tuple[Any, Any]:
    return _snapshot_read(dialect, lambda: _compare_once(engine, dialect, plan, lo, hi))


def _compare_once(
    engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, hi: list[Any]
) -> tuple[Any, Any]:
    params = {**key_params("lo", lo), **key_params("hi", hi)}
    has_lo = lo is not None
    with engine.connect() as conn:
        dialect.begin_snapshot(conn)
        source = tuple(conn.execute(dialect.statement(dialect.checksum_sql(plan, True, has_lo)), params).one())
        shadow = tuple(conn.execute(dialect.statement(dialect.checksum_sql(plan, False, has_lo)), params).one())
        conn.rollback()
    return source, shadow


def _rows(engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, hi: list[Any]) -> Difference:
    """Both sides of one key range, row by row, at one instant."""
    return _snapshot_read(dialect, lambda: _rows_once(engine, dialect, plan, lo, hi))


def _rows_once(engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, hi: list[Any]) -> Difference:
    params = {**key_params("lo", lo), **key_params("hi", hi)}
    has_lo = lo is not None
    width = len(plan.primary_key)
    with engine.connect() as conn:
        dialect.begin_snapshot(conn)
        source = {
            tuple(r[:width]): tuple(r[width:])
            for r in conn.execute(dialect.statement(dialect.rows_sql(plan, True, has_lo)), params)
        }
        shadow = {
            tuple(r[:width]): tuple(r[width:])
            for r in conn.execute(dialect.statement(dialect.rows_sql(plan, False, has_lo)), params)
        }
        conn.rollback()
    return Difference(
        lo,
        hi,
        missing=sorted(source.keys() - shadow.keys(), key=repr),
        extra=sorted(shadow.keys() - source.keys(), key=repr),
        changed=sorted((k for k in source.keys() & shadow.keys() if source[k] != shadow[k]), key=repr),
    )


def narrow(
    engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, hi: list[Any], rechecks: int
) -> Difference:
    """The keys of a differing chunk; with rechecks, only keys that differ in every reading count."""
    found = _rows(engine, dialect, plan, lo, hi)
    for _ in range(rechecks):
        if not found.keys:
            break
        time.sleep(0.2)
        again = _rows(engine, dialect, plan, lo, hi)
        found = Difference(
            lo,
            hi,
            missing=[k for k in found.missing if k in set(again.missing)],
            extra=[k for k in found.extra if k in set(again.extra)],
            changed=[k for k in found.changed if k in set(again.changed)],
        )
    return found


def shadow_view(plan: Plan) -> Plan:
    """The plan with the shadow in the original's place, to read the shadow's own key range."""
    return dataclasses.replace(plan, table=plan.shadow_table, primary_key=[c.name for c in plan.shadow_primary_key])


def after_swap_view(plan: Plan) -> Plan:
    """The kept old table as the original, the live (new) table as the shadow: the same comparison."""
    capture = plan.capture.without_log()  # the log went with the swap
    return dataclasses.replace(plan, table=plan.old_table, shadow_table=plan.table, capture=capture)


def _top_key(engine: Engine, dialect: Dialect, plan: Plan) -> list[Any] | None:
    """The largest key on either side, so rows only the shadow has are compared too.

    Largest in the database's order, which the walk up to it follows: under a collation that is not
    byte order (case-insensitive, linguistic), Python's ``max`` can pick a key the database sorts
    below the other, and every row between the two would go unchecked (invariant 9)."""
    with engine.connect() as conn:
        top = conn.execute(dialect.statement(dialect.max_key_sql(plan))).first()
        shadow_top = conn.execute(dialect.statement(dialect.max_key_sql(shadow_view(plan)))).first()
        if top is None or shadow_top is None:
            found = top if top is not None else shadow_top
            return None if found is None else list(found)
        if list(top) == list(shadow_top):
            return list(top)
        if [type(v) for v in top] == [type(v) for v in shadow_top]:
            # the shadow's first key above the original's top, if it has one: then its own top is larger
            beyond = conn.execute(
                dialect.statement(dialect.chunk_bound_sql(shadow_view(plan), has_lo=True)),
                {**key_params("lo", list(top)), **key_params("hi", list(shadow_top)), "skip": 0},
            ).first()
            return list(shadow_top if beyond is not None else top)
    try:  # the key's type changed: the values cannot be bound against each other's column
        return max(list(top), list(shadow_top))
    except TypeError:  # nor compared here: walk the original's range
        return list(top)


def format_key(plan: Plan, key: Key) -> str:
    if len(plan.primary_key) == 1:
        return f"{plan.primary_key[0]}={key[0]!r}"
    return f"({', '.join(plan.primary_key)})=({', '.join(repr(v) for v in key)})"


def through_cast_notes(dialect: Dialect, plan: Plan) -> list[str]:
    """One line per column whose conversion can lose information (``narrowing_reason``).

    Verification compares the original *through the copy expressions* with the new table, so it
    proves the copy is faithful, not that a rounding cast kept each value: 12345678.91 cast to real
    and the stored real agree. "identical" must not be read as "no value changed" for these columns.
    """
    notes = []
    for c in plan.columns:
        if c.source_column is None or not c.old_type or c.old_type == c.new_type:
            continue
        why = dialect.narrowing_reason(c.name, c.old_type, c.new_type)
        if why is not None:
            notes.append(
                f"{c.name} is compared through its cast to {c.new_type} ({why.split(': ', 1)[-1]}): values the cast "
                "changed compare equal; `shadowswap plan --check-casts` counts them"
            )
    return notes


def describe(plan: Plan, differences: list[Difference], limit: int = 10) -> str:
    parts: list[str] = []
    for d in differences:
        for label, keys in (
            ("missing from the new table", d.missing),
            ("only in the new table", d.extra),
            ("different", d.changed),
        ):
            parts.extend(f"{format_key(plan, k)} ({label})" for k in keys)
        if not d.keys:
            parts.append(f"keys in ({d.lo}, {d.hi}] (the checksums differ; the rows could not be told apart)")
    shown = parts[:limit]
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(shown) + more


def _check(
    engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, hi: list[Any], rechecks: int
) -> tuple[int, Difference | None]:
    """One chunk: its row count, and the difference if its checksums keep differing.

    With a ``--transform`` the server checksums the columns the function leaves alone, and the
    ones it fills are compared here with the function applied to the original (transform.py)."""
    if plan.transform is not None:
        return _check_transformed(engine, dialect, plan, lo, hi, rechecks)
    for attempt in range(rechecks + 1):
        source, shadow = _compare(engine, dialect, plan, lo, hi)
        if source == shadow:
            return int(source[0] or 0), None
        if attempt < rechecks:
            log.info("checksum differs, rechecking", lo=lo, hi=hi, attempt=attempt + 1)
            time.sleep(0.2 * (attempt + 1))
    difference = narrow(engine, dialect, plan, lo, hi, rechecks)
    log.warning("difference found", lo=lo, hi=hi, keys=[list(k) for k in difference.keys[:20]])
    return int(source[0] or 0), difference


def _check_transformed(
    engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, hi: list[Any], rechecks: int
) -> tuple[int, Difference | None]:
    from shadowswap.transform import Transformer, checksum_view, compare_range

    rows, difference = _check(engine, dialect, checksum_view(plan), lo, hi, rechecks)
    if difference is not None:
        return rows, difference
    transformer = Transformer.for_plan(dialect, plan)
    changed = compare_range(engine, dialect, plan, lo, hi, transformer)
    for attempt in range(rechecks):
        if not changed:
            break
        time.sleep(0.2 * (attempt + 1))
        again = set(compare_range(engine, dialect, plan, lo, hi, transformer))
        changed = [k for k in changed if k in again]
    if changed:
        log.warning("transformed columns differ", lo=lo, hi=hi, keys=[list(k) for k in changed[:20]])
        return rows, Difference(lo, hi, changed=sorted(changed, key=repr))
    return rows, None


def verify(
    engine: Engine,
    dialect: Dialect,
    plan: Plan,
    chunk_size: int = 20_000,
    rechecks: int = 3,
    on_progress: Callable[[int], None] | None = None,
    before_chunk: Callable[[], object] | None = None,
    stop_at_first: bool = True,
    workers: int = 2,
    ready: Callable[[list[Any]], object] | None = None,
) -> VerifyResult:
    """Compare chunk by chunk. ``stop_at_first``: raise VerificationFailed naming the keys at the
    first real difference (before a swap, one is enough to stop); otherwise collect them all.

    Chunks are independent (each is read in its own snapshot), so ``workers`` of them are compared
    at once on their own connections: the checksums are CPU work on the server, and the copy that
    ran before used one core. Results are taken in key order, so the first difference reported is
    the lowest one. ``ready(hi)``, when given, returns once the chunk up to ``hi`` may be read
    (the verification beside the copy waits there for the copy to pass ``hi``).
    """
    bounds = (
        dialect.statement(dialect.chunk_bound_sql(plan, has_lo=False)),
        dialect.statement(dialect.chunk_bound_sql(plan, has_lo=True)),
    )
    max_key = _top_key(engine, dialect, plan)
    result = VerifyResult(rows=0)
    if max_key is None:
        return result

    def ranges() -> Iterator[tuple[list[Any] | None, list[Any]]]:
        lo: list[Any] | None = None
        while lo is None or lo != max_key:
            if before_chunk:
                before_chunk()
            with engine.connect() as conn:
                hi = next_bound(conn, bounds, lo, max_key, chunk_size)
            if ready:
                ready(hi)
            yield lo, hi
            lo = hi

    pending: deque[Future[tuple[int, Difference | None]]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="shadowswap-verify") as pool:
        chunks = ranges()
        while True:
            for lo, hi in itertools.islice(chunks, max(1, workers) - len(pending)):
                pending.append(pool.submit(_check, engine, dialect, plan, lo, hi, rechecks))
            if not pending:
                break
            rows, difference = pending.popleft().result()
            if difference is not None:
                result.differences.append(difference)
                if stop_at_first:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise VerificationFailed(
                        f"the new table differs from {plan.table!r} at {describe(plan, [difference])}",
                        hint="nothing was swapped and dual-write is still on; `shadowswap abort` removes the "
                        "shadow and the triggers",
                    )
            result.rows += rows
            if on_progress:
                on_progress(rows)
    return result
