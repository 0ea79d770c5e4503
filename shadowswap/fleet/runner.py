"""One target's run, and the fleet's dispatch loop.

``run_target`` is the unit of work of both modes: the embedded thread pool calls it in a thread,
the Celery task calls it in a worker. It is idempotent by construction: the executor resumes an
unfinished migration from the target's own state table (checkpoint and phase), and a target whose
plan is already cut over is reported done without touching it, so running it twice, or on another
machine after a worker died, is the same as running it once.

``run_fleet`` decides what runs when: at most ``concurrency`` targets at once and ``per_host`` on
one server, the canaries first, and with ``gate`` two stages. It is not a scheduler of its own in
the distributed mode: it only bounds how many tasks it hands to Celery at once.

The gate uses the executor's postponed cut-over (``--postpone-cutover``): stage one runs every
target with the hold set and stops each once verified, so a held target occupies no thread and
no worker (a thousand held migrations must not need a thousand waiting processes); the hold stays
in each target's state table, where ``fleet cutover`` (or the gate, once all are verified) lifts
it exactly as ``shadowswap cutover`` does; stage two resumes each from ``verified`` and swaps.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy.exc import DBAPIError

from shadowswap import state
from shadowswap.db import connect
from shadowswap.errors import MigrationLocked, ShadowswapError
from shadowswap.fleet.plans import Entry, Manifest, error_text
from shadowswap.fleet.targets import Target
from shadowswap.options import SilentReporter
from shadowswap.plan import Plan

log = structlog.get_logger("shadowswap.fleet")

#: run the migration to its end (the swap)
FULL = "full"
#: the gate's first stage: copy and verify with the cut-over postponed, then stop
VERIFY = "verify"

DONE = "done"
VERIFIED = "verified"
FAILED = "failed"
#: another process holds the target's migration lock (a redelivered task while the first runs)
LOCKED = "locked"
NOT_STARTED = "not started"
#: verified and holding before the swap (the gate did not open)
HELD = "held"


@dataclass
class Settings:
    """The executor options a fleet passes to every target (``shadowswap execute``'s, by name)."""

    chunk_size: int = 1000
    #: None: the dialect's default
    chunk_time: float | None = None
    min_chunk: int = 100
    max_chunk: int = 100_000
    copy_workers: int | None = None
    max_rows_per_second: float | None = None
    max_lag: float | None = None
    max_load: str | None = None
    lock_timeout_ms: int = 200
    lock_retries: int = 30
    verify: bool = True
    allow_destructive: bool = False

    def options(self, dialect: Any, stage: str) -> Any:
        from shadowswap.options import Options

        return Options.for_dialect(
            dialect,
            chunk_size=self.chunk_size,
            chunk_time=self.chunk_time,
            min_chunk=self.min_chunk,
            max_chunk=self.max_chunk,
            # one setting for a mixed fleet: each engine copies with as many workers as it can
            copy_workers=min(self.copy_workers, dialect.max_copy_workers) if self.copy_workers else None,
            max_rows_per_second=self.max_rows_per_second,
            max_lag=self.max_lag,
            max_load=self.max_load,
            lock_timeout_ms=self.lock_timeout_ms,
            lock_retries=self.lock_retries,
            verify=self.verify,
            allow_destructive=self.allow_destructive,
            postpone_cutover=stage == VERIFY,
            stop_after=state.VERIFIED if stage == VERIFY else None,
        )


@dataclass
class Job:
    target: Target
    plan_json: str
    settings: Settings
    stage: str = FULL

    def to_dict(self) -> dict[str, Any]:
        """What a Celery message carries: the spec (never an expanded secret) and the plan itself,
        so a worker needs neither the plans directory nor the targets file."""
        return {
            "target": asdict(self.target),
            "plan_json": self.plan_json,
            "settings": asdict(self.settings),
            "stage": self.stage,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            target=Target(**data["target"]),
            plan_json=data["plan_json"],
            settings=Settings(**data["settings"]),
            stage=data["stage"],
        )


@dataclass
class Result:
    target: str
    display: str
    host: str
    status: str
    phase: str | None = None
    rows_copied: int = 0
    seconds: float = 0.0
    #: how long the swap held the table's lock: the write stall the application saw
    cutover_lock_ms: float | None = None
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0
    #: wall-clock time (epoch seconds) each phase was recorded by this run
    phase_times: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    stage: str = FULL
    #: found done (or verified) by an earlier run: nothing was done this time
    already: bool = False

    @classmethod
    def for_target(cls, target: Target, status: str, **values: Any) -> Result:
        return cls(target=target.id, display=target.display, host=target.host, status=status, **values)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(**data)


class _PhaseClock(SilentReporter):
    """An executor reporter that only notes when each phase was reached."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def phase(self, name: str, **facts: Any) -> None:
        self.times[name] = time.time()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_target(job: Job) -> Result:
    """Run (or resume, or recognise as done) one target's migration. Never raises for the
    target's own failures: they are the result, and the state table records them too."""
    from shadowswap.executor import Executor

    target = job.target
    started = time.time()
    clock = _PhaseClock()
    result = Result.for_target(target, FAILED, started=started, worker=worker_name(), stage=job.stage)
    structlog.contextvars.bind_contextvars(target=target.display)
    engine = None
    try:
        engine, dialect = connect(target.url())
        plan = Plan.from_json(job.plan_json)
        state.ensure(engine)
        with engine.connect() as conn:
            latest = state.latest(conn, plan.table)
        finished = latest is not None and latest.fingerprint == plan.fingerprint
        if finished and latest is not None and latest.phase in (state.CUT_OVER, state.CLEANED_UP, state.ALTERED):
            # a redelivered task, or a fleet run again: this target is done
            result.status, result.phase, result.already = DONE, latest.phase, True
            result.cutover_lock_ms, result.rows_copied = latest.cutover_lock_ms, latest.rows_copied
            return result
        if job.stage == VERIFY and plan.strategy == "instant":
            # nothing to copy or verify: the in-place ALTER is its swap, so it waits for stage two
            result.status, result.phase = VERIFIED, state.PLANNED
            return result
        if job.stage == VERIFY and latest is not None and latest.phase == state.VERIFIED:
            # verified by an earlier run: keep it held (resuming would go on to the swap and wait there)
            with engine.begin() as conn:
                state.update(conn, latest.id, cutover_postponed=True)
            result.status, result.phase, result.rows_copied = VERIFIED, latest.phase, latest.rows_copied
            result.already = True
            return result
        summary = Executor(engine, dialect, plan, job.settings.options(dialect, job.stage), clock).run()
        with engine.connect() as conn:
            now = state.latest(conn, plan.table)
        result.phase = now.phase if now is not None else None
        result.status = VERIFIED if result.phase == state.VERIFIED else DONE
        result.rows_copied = summary.rows_copied
        result.cutover_lock_ms = summary.cutover_lock_ms
    except MigrationLocked as exc:
        result.status, result.error = LOCKED, error_text(exc)
    except (ShadowswapError, DBAPIError) as exc:
        result.error = error_text(exc)
    except Exception as exc:  # a bug of ours: the target fails, the fleet goes on, the log has the traceback
        log.exception("unexpected error", target=target.display)
        result.error = error_text(exc)
    finally:
        result.phase_times = clock.times
        result.finished = time.time()
        result.seconds = result.finished - started
        if result.status == FAILED and engine is not None:
            result.phase = _phase_now(engine, job)
        if engine is not None:
            engine.dispose()
        structlog.contextvars.unbind_contextvars("target")
    return result


def _phase_now(engine: Any, job: Job) -> str | None:
    try:
        with engine.connect() as conn:
            m = state.latest(conn, Plan.from_json(job.plan_json).table)
        return m.phase if m is not None else None
    except (DBAPIError, ShadowswapError):
        return None


# -- backends ------------------------------------------------------------------------------


class Backend(Protocol):
    def submit(self, job: Job) -> Any: ...
    def result(self, handle: Any) -> Result | None: ...
    def wait(self, seconds: float) -> None: ...
    def close(self) -> None: ...


class ThreadBackend:
    """The embedded mode: one daemon thread a target in flight (the dispatcher bounds how many).

    Daemon threads so that Ctrl-C ends the process at once: a migration stopped anywhere resumes
    from its state table, exactly as after ``kill -9`` of ``shadowswap execute``.
    """

    def __init__(self) -> None:
        # set by a finishing target, so the dispatcher starts the next one at once instead of
        # at its next poll (with tiny targets the poll interval was most of the fleet's overhead)
        self._finished = threading.Event()

    def submit(self, job: Job) -> Any:
        holder: dict[str, Result] = {}

        def work() -> None:
            try:
                holder["result"] = run_target(job)
            except BaseException as exc:  # run_target catches the target's errors; this is the rest
                holder["result"] = Result.for_target(job.target, FAILED, error=error_text(exc), stage=job.stage)
            finally:
                self._finished.set()

        thread = threading.Thread(target=work, name=f"fleet-{job.target.id}", daemon=True)
        thread.start()
        return thread, holder

    def result(self, handle: Any) -> Result | None:
        thread, holder = handle
        if thread.is_alive():
            return None
        result: Result = holder["result"]
        if result.status == LOCKED:
            result.status = FAILED  # in one process there is no earlier delivery to wait for
        return result

    def wait(self, seconds: float) -> None:
        self._finished.wait(seconds)
        self._finished.clear()

    def close(self) -> None:
        pass


# -- dispatch ------------------------------------------------------------------------------


class View(Protocol):
    def started(self, job: Job) -> None: ...
    def finished(self, result: Result) -> None: ...
    def tick(self, running: list[Job]) -> None: ...
    def message(self, text: str) -> None: ...


class QuietView:
    def started(self, job: Job) -> None:
        pass

    def finished(self, result: Result) -> None:
        pass

    def tick(self, running: list[Job]) -> None:
        pass

    def message(self, text: str) -> None:
        pass


def dispatch(
    jobs: Iterable[Job],
    backend: Backend,
    *,
    concurrency: int,
    per_host: int | None,
    view: View,
    poll: float = 0.1,
) -> list[Result]:
    """Run the jobs, at most ``concurrency`` at once and ``per_host`` per host; file order otherwise.

    A failure stops nothing here: whether it should (a canary, the gate) is the caller's business.
    """
    pending = deque(jobs)
    running: dict[str, tuple[Job, Any]] = {}
    per: dict[str, int] = {}
    results: list[Result] = []
    while pending or running:
        started = False  # anything started or finished in this round
        for job in list(pending):
            if len(running) >= concurrency:
                break
            if per_host is not None and per.get(job.target.host, 0) >= per_host:
                continue
            pending.remove(job)
            running[job.target.id] = (job, backend.submit(job))
            per[job.target.host] = per.get(job.target.host, 0) + 1
            view.started(job)
            started = True
        for key, (job, handle) in list(running.items()):
            result = backend.result(handle)
            if result is None:
                continue
            del running[key]
            per[job.target.host] -= 1
            results.append(result)
            view.finished(result)
            started = True  # a slot is free: fill it now, not after a poll interval
        view.tick([job for job, _ in running.values()])
        if not started:
            backend.wait(poll)
    return results


@dataclass
class Outcome:
    results: list[Result]
    seconds: float
    #: what the gate or a canary decided, for the summary; None when neither stopped anything
    verdict: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return all(r.status == DONE for r in self.results)

    @property
    def rows_copied(self) -> int:
        """Rows the migrations of this fleet copied (targets found done by an earlier run left out)."""
        return sum(r.rows_copied for r in self.results if not r.already)

    @property
    def worst_stall(self) -> Result | None:
        stalls = [r for r in self.results if r.cutover_lock_ms is not None]
        return max(stalls, key=lambda r: r.cutover_lock_ms or 0.0) if stalls else None

    def write(self, path: Path) -> None:
        import json

        data = {"seconds": self.seconds, "verdict": self.verdict, "results": [asdict(r) for r in self.results]}
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


LAST_RUN = "last-run.json"


def run_fleet(
    directory: Path,
    manifest: Manifest,
    settings: Settings,
    backend: Backend,
    *,
    concurrency: int = 4,
    per_host: int | None = None,
    canary: int = 0,
    gate: bool = False,
    hold: bool = False,
    view: View | None = None,
    gate_state: Callable[[list[Entry]], str] | None = None,
    release: Callable[[list[Entry]], object] | None = None,
    poll: float = 1.0,
) -> Outcome:
    """The fleet, in its stages. ``gate_state``/``release`` read and lift the gate's hold in the
    targets' state tables (status.py)."""
    from shadowswap.fleet import status

    view = view or QuietView()
    if gate_state is None:
        gate_state = lambda entries: status.gate_state(entries, manifest.table)  # noqa: E731
    if release is None:
        release = lambda entries: status.release_all(entries, manifest.table)  # noqa: E731
    t0 = time.perf_counter()
    results: list[Result] = []
    verdict: str | None = None

    def jobs(entries: list[Entry], stage: str) -> list[Job]:
        return [Job(e.target, manifest.plan(directory, e).to_json(), settings, stage) for e in entries]

    def run(entries: list[Entry], stage: str) -> list[Result]:
        return dispatch(jobs(entries, stage), backend, concurrency=concurrency, per_host=per_host, view=view)

    for entry in manifest.entries:
        if entry.plan_file is None:
            results.append(Result.for_target(entry.target, FAILED, error=f"not planned: {entry.error}"))
    planned = manifest.planned
    canaries, rest = planned[: max(canary, 0)], planned[max(canary, 0) :]
    if canaries:
        view.message(f"canary: {len(canaries)} target(s) first")
        done = run(canaries, FULL)
        results += done
        failed = [r for r in done if r.status != DONE]
        if failed:
            verdict = f"canary failed ({failed[0].display}): the other {len(rest)} target(s) were not started"
            results += [Result.for_target(e.target, NOT_STARTED) for e in rest]
            rest = []
    if rest and gate:
        view.message(f"gate: copying and verifying {len(rest)} target(s); no swap until every one is verified")
        first = run(rest, VERIFY)
        failed = [r for r in first if r.status != VERIFIED and r.status != DONE]
        if failed or len(first) != len(rest) or any(r.status == FAILED for r in results):
            held = [r for r in first if r.status == VERIFIED]
            for r in held:
                r.status = HELD
            results += first
            bad = failed[0] if failed else next(r for r in results if r.status == FAILED)
            verdict = (
                f"gate closed: {bad.display} failed; {len(held)} verified target(s) hold before the swap "
                "(dual-write on). Fix it and run `fleet execute --gate` again (the verified ones are kept), "
                "or `fleet cutover --force` to let them swap without it, or `fleet abort` to undo them"
            )
            rest = []
        else:
            ended: str | None = None
            if hold:
                view.message(f"all {len(rest)} target(s) verified; holding every swap until `shadowswap fleet cutover`")
                while (now := gate_state(rest)) == status.HOLDING:
                    time.sleep(poll)
                ended = None if now == status.RELEASED else now
            else:
                view.message(f"all {len(rest)} target(s) verified; opening the gate")
                release(rest)
            if ended is not None:
                for r in first:
                    r.status = HELD if r.status == VERIFIED else r.status
                results += first
                verdict = f"the gate did not open: {ended} (`fleet abort`?); nothing was swapped by this run"
                rest = []
            if rest:
                second = run(rest, FULL)
                # what stage one recorded (the copy's phases) belongs to the target's result too
                by_id = {r.target: r for r in first}
                for r in second:
                    before = by_id.get(r.target)
                    if before is not None:
                        r.phase_times = {**before.phase_times, **r.phase_times}
                        # the state row's count is the migration's, across runs: stage two's includes stage one's
                        r.rows_copied = max(r.rows_copied, before.rows_copied)
                        r.started = before.started
                        r.seconds = r.finished - r.started
                results += second
                rest = []
    if rest:
        results += run(rest, FULL)
    order = {e.id: i for i, e in enumerate(manifest.entries)}
    results.sort(key=lambda r: order.get(r.target, len(order)))
    outcome = Outcome(results=results, seconds=time.perf_counter() - t0, verdict=verdict)
    outcome.write(directory / LAST_RUN)
    return outcome
