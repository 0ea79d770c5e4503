"""The progress view of ``fleet execute``: one line a target in flight, one line a finished target.

What a running target is doing is read from its state table (phase, rows copied, why it waits),
every second: the same in both modes, since in the distributed one the migration runs elsewhere.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text
from sqlalchemy.exc import DBAPIError

from shadowswap import state
from shadowswap.db import connect
from shadowswap.errors import ShadowswapError
from shadowswap.fleet.runner import DONE, FAILED, HELD, NOT_STARTED, VERIFIED, Job, Outcome, Result
from shadowswap.plan import Plan

PHASE_WORDS = {
    state.PLANNED: "starting",
    state.SHADOW_CREATED: "shadow created",
    state.TRIGGERS_INSTALLED: "copying",
    state.COPIED: "building indexes",
    state.INDEXES_BUILT: "verifying",
    state.VERIFIED: "verified",
    state.CUT_OVER: "swapped",
}


class RichView:
    def __init__(self, console: Console, poll_seconds: float = 1.0) -> None:
        self.console = console
        self.poll_seconds = poll_seconds
        self.progress = Progress(
            TextColumn("{task.fields[name]}", style="bold"),
            TextColumn("{task.fields[phase]}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}
        self.tables: dict[str, str] = {}
        self.engines: dict[str, Any] = {}
        self._polled = 0.0

    def __enter__(self) -> RichView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        for engine in self.engines.values():
            engine.dispose()
        self.engines.clear()

    def message(self, text: str) -> None:
        self.console.print(f"[cyan]fleet:[/cyan] {text}", highlight=False)

    def started(self, job: Job) -> None:
        plan = Plan.from_json(job.plan_json)
        self.tables[job.target.id] = plan.table
        self.tasks[job.target.id] = self.progress.add_task(
            job.target.id,
            total=max(plan.estimated_rows, 1),
            name=_short(job.target.display),
            phase="gate: copy + verify" if job.stage == "verify" else "starting",
            note="",
        )

    def finished(self, result: Result) -> None:
        task = self.tasks.pop(result.target, None)
        if task is not None:
            self.progress.remove_task(task)
        engine = self.engines.pop(result.target, None)
        if engine is not None:
            engine.dispose()
        self.console.print(line(result), highlight=False, soft_wrap=True)

    def tick(self, running: list[Job]) -> None:
        now = time.monotonic()
        if now - self._polled < self.poll_seconds:
            return
        self._polled = now
        for job in running:
            task = self.tasks.get(job.target.id)
            if task is None:
                continue
            try:
                engine = self.engines.get(job.target.id)
                if engine is None:
                    engine, _dialect = connect(job.target.url())
                    self.engines[job.target.id] = engine
                with engine.connect() as conn:
                    m = state.latest(conn, self.tables[job.target.id])
            except (DBAPIError, ShadowswapError):
                continue  # the state table may not exist yet; the next tick sees it
            if m is None:
                continue
            note = m.waiting or ""
            self.progress.update(
                task,
                completed=m.rows_copied,
                total=max(m.estimated_rows, m.rows_copied, 1),
                phase=PHASE_WORDS.get(m.phase, m.phase),
                note=f"[yellow]⏸ {note}[/yellow]" if note else "",
            )


def _short(display: str, width: int = 48) -> str:
    return display if len(display) <= width else "…" + display[-(width - 1) :]


def line(r: Result) -> Text:
    lock = f", swap lock {r.cutover_lock_ms:.1f} ms" if r.cutover_lock_ms is not None else ""
    if r.status == DONE and r.already:
        return Text.assemble(("✓ ", "green"), r.display, f"  {r.phase} already (by an earlier run){lock}")
    if r.status == DONE:
        return Text.assemble(
            ("✓ ", "green"), r.display, f"  {r.phase}  {r.rows_copied:,} rows in {r.seconds:.1f}s{lock}"
        )
    if r.status == VERIFIED:
        return Text.assemble(("◐ ", "cyan"), r.display, f"  verified, {r.rows_copied:,} rows; held before the swap")
    if r.status == HELD:
        return Text.assemble(("◐ ", "yellow"), r.display, "  verified; held before the swap (the gate is closed)")
    if r.status == NOT_STARTED:
        return Text.assemble(("· ", "dim"), r.display, "  not started")
    where = f" in {r.phase}" if r.phase else ""
    return Text.assemble(("✗ ", "red"), r.display, f"  {FAILED}{where}: {r.error}")


def summary(outcome: Outcome, table: str) -> list[Text]:
    worst = outcome.worst_stall
    stall = f"{worst.cutover_lock_ms:.1f} ms ({worst.display})" if worst and worst.cutover_lock_ms else "-"
    parts = [f"{outcome.count(DONE)} done", f"{outcome.count(FAILED)} failed"]
    for status in (HELD, NOT_STARTED):
        if outcome.count(status):
            parts.append(f"{outcome.count(status)} {status}")
    head = Text.assemble(
        ("fleet " + table + ": ", "bold"),
        ", ".join(parts),
        f" of {len(outcome.results)} in {outcome.seconds:.1f}s; {outcome.rows_copied:,} rows copied; "
        f"worst write stall {stall}",
    )
    lines = [head]
    if outcome.verdict:
        lines.append(Text(outcome.verdict, style="yellow"))
    for r in outcome.results:
        if r.status == FAILED:
            lines.append(Text.assemble(("  ✗ ", "red"), r.display, f": {r.error}"))
    return lines
