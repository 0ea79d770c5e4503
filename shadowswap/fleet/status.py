"""The fleet's view from the targets' own state tables: no broker, any host.

Every read and every operator flag here is what the single-database commands do
(``shadowswap status``, ``pause``, ``resume``, ``cutover``, ``abort``), applied to each target
of a plans directory a few at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from shadowswap import state
from shadowswap.db import connect
from shadowswap.errors import ShadowswapError, UsageError
from shadowswap.fleet.plans import Entry, Manifest, error_text
from shadowswap.fleet.targets import Target

T = TypeVar("T")

#: targets contacted at once by status and the operator commands
FAN_OUT = 16


def for_each(entries: list[Entry], fn: Callable[[Target], T], fan_out: int = FAN_OUT) -> list[T | Exception]:
    """``fn`` on each target, ``fan_out`` at a time, in order; an error is the target's value."""

    def one(entry: Entry) -> T | Exception:
        try:
            return fn(entry.target)
        except (ShadowswapError, DBAPIError) as exc:
            return exc

    if not entries:
        return []
    with ThreadPoolExecutor(max_workers=min(fan_out, len(entries)), thread_name_prefix="shadowswap-fleet") as pool:
        return list(pool.map(one, entries))


def _migration(target: Target, table: str, *, active: bool) -> state.Migration | None:
    engine, _dialect = connect(target.url())
    try:
        if not sa.inspect(engine).has_table(state.STATE_TABLE):
            return None
        with engine.connect() as conn:
            return state.active(conn, table) if active else state.latest(conn, table)
    finally:
        engine.dispose()


@dataclass
class TargetState:
    entry: Entry
    phase: str
    rows_copied: int = 0
    estimated_rows: int = 0
    eta_seconds: float | None = None
    waiting: str | None = None
    error: str | None = None
    cutover_lock_ms: float | None = None
    postponed: bool = False
    paused: bool = False


def _eta(m: state.Migration) -> float | None:
    """From the copy's average rate so far: the state row's start and last update."""
    if m.phase != state.TRIGGERS_INSTALLED or m.rows_copied <= 0:
        return None
    elapsed = (m.updated_at - m.started_at).total_seconds()
    if elapsed <= 0:
        return None
    left = max(m.estimated_rows - m.rows_copied, 0)
    return left / (m.rows_copied / elapsed)


def describe(entry: Entry, m: state.Migration | None) -> TargetState:
    if m is None:
        return TargetState(entry, "not started")
    unfinished = m.phase not in state.FINISHED
    waiting = m.waiting if unfinished else None
    if unfinished and m.paused and not (waiting or "").startswith("paused"):
        waiting = "paused" + (f"; {waiting}" if waiting else "")
    if unfinished and m.cutover_postponed and "postponed" not in (waiting or ""):
        waiting = "cut-over postponed" + (f"; {waiting}" if waiting else "")
    return TargetState(
        entry,
        m.phase,
        rows_copied=m.rows_copied,
        estimated_rows=m.estimated_rows,
        eta_seconds=_eta(m),
        waiting=waiting,
        error=m.error,
        cutover_lock_ms=m.cutover_lock_ms,
        postponed=unfinished and m.cutover_postponed,
        paused=unfinished and m.paused,
    )


def read_states(manifest: Manifest) -> list[TargetState]:
    planned = manifest.planned
    found = for_each(planned, lambda t: _migration(t, manifest.table, active=False))
    states = {
        e.id: (describe(e, m) if not isinstance(m, Exception) else TargetState(e, "unreachable", error=error_text(m)))
        for e, m in zip(planned, found, strict=True)
    }
    out = []
    for entry in manifest.entries:
        if entry.id in states:
            out.append(states[entry.id])
        else:
            out.append(TargetState(entry, "not planned", error=entry.error))
    return out


# -- the gate's hold and the operator's flags ----------------------------------------------


def _set(target: Target, table: str, **flags: bool) -> str:
    engine, _dialect = connect(target.url())
    try:
        state.ensure(engine)
        with engine.begin() as conn:
            m = state.active(conn, table)
            if m is None:
                return "no unfinished migration"
            state.update(conn, m.id, **flags)
        return f"migration {m.id} ({m.phase})"
    finally:
        engine.dispose()


def release_all(entries: list[Entry], table: str) -> list[str | Exception]:
    """Lift the postponed cut-over of every target's unfinished migration (``shadowswap cutover``)."""
    return for_each(entries, lambda t: _set(t, table, cutover_postponed=False))


HOLDING = "holding"
RELEASED = "released"


def gate_state(entries: list[Entry], table: str) -> str:
    """While the gate holds: ``holding`` while any target's migration is still postponed,
    ``released`` once none is (``fleet cutover`` ran), or what ended a target's migration meanwhile
    (``fleet abort``): then stage two must not start it again."""

    def one(target: Target) -> tuple[state.Migration | None, state.Migration | None]:
        return _migration(target, table, active=True), _migration(target, table, active=False)

    found = for_each(entries, one)
    holding = False
    for entry, value in zip(entries, found, strict=True):
        if isinstance(value, Exception):
            holding = True  # an unreachable target counts as still held: the gate is for every target
            continue
        active, latest = value
        if active is not None:
            holding = holding or active.cutover_postponed
        elif latest is None or latest.phase not in (state.CUT_OVER, state.CLEANED_UP, state.ALTERED):
            return f"{entry.display}: its migration is {latest.phase if latest else 'gone'}"
    return HOLDING if holding else RELEASED


def operate(manifest: Manifest, action: str, *, force: bool = False) -> list[tuple[Entry, str | Exception]]:
    """pause | resume | cutover | abort on every planned target; returns what each one did."""
    planned = manifest.planned
    table = manifest.table
    if action == "cutover" and not force:
        states = read_states(manifest)
        waiting = [
            s for s in states if s.phase not in (state.VERIFIED, state.CUT_OVER, state.CLEANED_UP, state.ALTERED)
        ]
        if waiting:
            names = ", ".join(f"{s.entry.display} ({s.phase})" for s in waiting[:5])
            raise UsageError(
                f"{len(waiting)} of {len(states)} target(s) are not verified yet: {names}",
                hint="the gate swaps none until all are verified; `--force` lets each swap as soon as it is",
            )

    def one(target: Target) -> str:
        if action == "pause":
            return _set(target, table, paused=True)
        if action == "resume":
            return _set(target, table, paused=False)
        if action == "cutover":
            return _set(target, table, cutover_postponed=False)
        if action == "abort":
            from shadowswap.lifecycle import abort

            engine, dialect = connect(target.url())
            try:
                state.ensure(engine)
                with engine.connect() as conn:
                    if state.active(conn, table) is None:
                        return "no unfinished migration"
                m = abort(engine, dialect, table)
                return f"aborted migration {m.id}: triggers and {m.shadow_table} removed"
            finally:
                engine.dispose()
        raise UsageError(f"unknown action {action!r}")

    return list(zip(planned, for_each(planned, one), strict=True))


def summary_counts(states: list[TargetState]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in states:
        counts[s.phase] = counts.get(s.phase, 0) + 1
    return counts
