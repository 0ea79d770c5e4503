"""``shadowswap fleet``: the single-database commands, across every database of a targets file."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shadowswap.errors import UsageError

fleet_app = typer.Typer(
    help="One schema change across many databases: plan, execute (threads or Celery), status, operate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """The project's error handling (one line, a hint, the exit code), looked up at call time:
    ``shadowswap.cli`` imports this module to register the sub-app."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from shadowswap.cli import user_errors as single

        return single(func)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


PlansArg = Annotated[Path, typer.Argument(help="The plans directory written by `shadowswap fleet plan`.")]


def _quiet_logs(verbose: bool) -> None:
    """Twenty migrations' info lines would bury the progress view; warnings and errors stay."""
    if not verbose:
        from shadowswap import logs

        logs.configure("console", "warning")


# -- plan ------------------------------------------------------------------------------------


@fleet_app.command()
@user_errors
def plan(
    table: Annotated[str | None, typer.Argument(help="The table to change (optional with --ddl).")] = None,
    targets: Annotated[
        Path, typer.Option("--targets", help="One SQLAlchemy URL or SQLite glob a line; ${ENV} allowed.")
    ] = Path("targets.txt"),
    output: Annotated[Path, typer.Option("--out", help="The plans directory to write.")] = Path("plans"),
    alter: Annotated[list[str] | None, typer.Option("--alter", help="COL:TYPE [null|not null] [default ...]")] = None,
    using: Annotated[list[str] | None, typer.Option("--using", help="COL=EXPR: copy expression for COL")] = None,
    add: Annotated[list[str] | None, typer.Option("--add", help="COL:TYPE [not null] [default EXPR]")] = None,
    drop: Annotated[list[str] | None, typer.Option("--drop", help="COL: drop a column")] = None,
    rename: Annotated[list[str] | None, typer.Option("--rename", help="OLD:NEW: rename a column")] = None,
    add_index: Annotated[list[str] | None, typer.Option("--add-index", help="NAME:(col1, col2)")] = None,
    add_unique: Annotated[list[str] | None, typer.Option("--add-unique", help="NAME:(col1, col2)")] = None,
    drop_index: Annotated[list[str] | None, typer.Option("--drop-index", help="NAME: drop an index")] = None,
    ddl: Annotated[str | None, typer.Option("--ddl", help="ALTER TABLE ... statements (each target's dialect)")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="auto, shadow or instant")] = "auto",
    check_casts: Annotated[
        bool, typer.Option("--check-casts", help="Scan each target's rows for values the new types cannot hold.")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Targets planned at once.")] = 8,
) -> None:
    """Plan the change on every target: one plan file each, a manifest, and a summary table.
    Changes nothing in any database."""
    from shadowswap.changes import parse_options
    from shadowswap.fleet.plans import plan_fleet
    from shadowswap.fleet.targets import parse_targets

    changes = parse_options(alter, add, drop, rename, add_index, add_unique, drop_index, using)
    if strategy not in ("auto", "shadow", "instant"):
        raise UsageError(f"unknown strategy {strategy!r}", hint="--strategy auto, shadow or instant")
    if ddl is None and table is None:
        raise UsageError("which table?", hint='e.g. shadowswap fleet plan products --alter "price:varchar(20)"')
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    fleet = parse_targets(targets)
    manifest = plan_fleet(
        fleet, table, changes, output, ddl=ddl, strategy=strategy, check_casts=check_casts, concurrency=concurrency
    )
    summary = Table(title=f"{manifest.table}: {', '.join(manifest.changes)}", title_justify="left")
    for heading in ("target", "dialect", "strategy", "verdict", "est. rows", "error"):
        summary.add_column(heading, overflow="fold")
    for e in manifest.entries:
        if e.plan_file is None:
            summary.add_row(e.display, "-", "-", "-", "-", Text(e.error or "", style="red"))
        else:
            style = "red" if e.verdict == "blocked" else "yellow" if e.verdict == "destructive" else None
            summary.add_row(
                e.display,
                e.dialect or "",
                e.strategy or "",
                Text(e.verdict or "", style=style or ""),
                f"{e.estimated_rows:,}",
                "",
            )
    out.print(summary)
    planned = manifest.planned
    total = sum(e.estimated_rows for e in planned)
    kinds = sorted({(e.dialect or "", e.strategy or "") for e in planned})
    out.print(
        f"{len(planned)} of {len(manifest.entries)} target(s) planned, about {total:,} rows in all; "
        + "; ".join(f"{d}: {s}" for d, s in kinds),
        highlight=False,
    )
    failed = len(manifest.entries) - len(planned)
    if failed:
        err.print(f"[red]error:[/red] {failed} target(s) could not be planned (above)", highlight=False)
        err.print("[yellow]hint:[/yellow] fix them and plan again; `fleet execute` runs only planned targets")
        raise typer.Exit(1)
    out.print(f"plans written to [bold]{output}[/bold]; run [bold]shadowswap fleet execute {output}[/bold]")


# -- execute ---------------------------------------------------------------------------------


@fleet_app.command()
@user_errors
def execute(
    plans: PlansArg = Path("plans"),
    concurrency: Annotated[int, typer.Option("--concurrency", help="Targets in flight at once.")] = 4,
    per_host: Annotated[
        int | None, typer.Option("--per-host", help="Targets in flight on one server (SQLite: one directory).")
    ] = None,
    canary: Annotated[
        int, typer.Option("--canary", help="Run this many targets to the end first; stop if one fails.")
    ] = 0,
    gate: Annotated[
        bool, typer.Option("--gate", help="Copy and verify every target; swap none until all are verified.")
    ] = False,
    hold: Annotated[
        bool, typer.Option("--hold", help="With --gate: once all are verified, wait for `fleet cutover`.")
    ] = False,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            help="Celery broker URL (redis://, amqp://): one task a target on the workers.",
            show_default=False,
        ),
    ] = None,
    result_backend: Annotated[
        str | None,
        typer.Option(help="Celery result backend [default: the Redis broker, else rpc://].", show_default=False),
    ] = None,
    visibility_timeout: Annotated[
        float | None,
        typer.Option(
            help="Redis broker: seconds before a dead worker's task is redelivered [default: 3600].", show_default=False
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue", help="Celery queue [default: $SHADOWSWAP_FLEET_QUEUE or shadowswap-fleet].", show_default=False
        ),
    ] = None,
    chunk_size: Annotated[int, typer.Option(help="Rows in the first chunk; adapts to --chunk-time.")] = 1000,
    chunk_time: Annotated[
        float | None, typer.Option(help="Target seconds per chunk [default: the dialect's].", show_default=False)
    ] = None,
    min_chunk: Annotated[int, typer.Option(help="Smallest chunk the adaptive sizer may choose.")] = 100,
    max_chunk: Annotated[int, typer.Option(help="Largest chunk the adaptive sizer may choose.")] = 100_000,
    copy_workers: Annotated[
        int | None, typer.Option(help="Chunks copied at once per target [default: the dialect's].", show_default=False)
    ] = None,
    max_rows_per_second: Annotated[
        float | None, typer.Option(help="Cap on rows copied per second, per target.", show_default=False)
    ] = None,
    max_lag: Annotated[
        float | None, typer.Option(help="Hold a target's copy while its replicas lag more.", show_default=False)
    ] = None,
    max_load: Annotated[
        str | None,
        typer.Option(help="Hold a target's copy while its server is busier than [METRIC=]N.", show_default=False),
    ] = None,
    lock_timeout: Annotated[int, typer.Option(help="Milliseconds to wait for a lock before retrying.")] = 200,
    cutover_retries: Annotated[int, typer.Option(help="Attempts to take a strong lock.")] = 30,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the checksum before the swap.")] = False,
    allow_destructive: Annotated[
        bool, typer.Option("--allow-destructive", help="Run plans that drop or narrow something.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show every target's log lines too.")] = False,
) -> None:
    """Run every target's plan: a local thread pool, or with --broker one Celery task a target.
    Resumable: run it again and each target goes on from its own state table."""
    from shadowswap.fleet.plans import Manifest
    from shadowswap.fleet.runner import Backend, Settings, ThreadBackend, run_fleet
    from shadowswap.fleet.view import RichView, summary

    for name, value in (
        ("--concurrency", concurrency),
        ("--chunk-size", chunk_size),
        ("--min-chunk", min_chunk),
        ("--max-chunk", max_chunk),
        ("--lock-timeout", lock_timeout),
        ("--cutover-retries", cutover_retries),
    ):
        if value < 1:
            raise UsageError(f"{name} must be at least 1")
    if per_host is not None and per_host < 1:
        raise UsageError("--per-host must be at least 1")
    if canary < 0:
        raise UsageError("--canary must be 0 or more")
    if min_chunk > max_chunk:
        raise UsageError("--min-chunk is larger than --max-chunk")
    if hold and not gate:
        raise UsageError("--hold only means something with --gate")
    if (result_backend or visibility_timeout or queue) and not broker:
        raise UsageError("--result-backend, --visibility-timeout and --queue are for --broker")
    if max_load is not None:
        from shadowswap.throttle import parse_max_load

        parse_max_load(max_load)
    manifest = Manifest.read(plans)
    if not manifest.planned:
        raise UsageError(f"no target in {plans} has a plan", hint="run `shadowswap fleet plan` again")
    unplanned = [e for e in manifest.entries if e.plan_file is None]
    if gate and unplanned:
        raise UsageError(
            f"--gate: {len(unplanned)} target(s) have no plan ({unplanned[0].display}), so the gate could never open",
            hint="plan them again (`shadowswap fleet plan`), or run without --gate",
        )
    settings = Settings(
        chunk_size=chunk_size,
        chunk_time=chunk_time,
        min_chunk=min_chunk,
        max_chunk=max_chunk,
        copy_workers=copy_workers,
        max_rows_per_second=max_rows_per_second,
        max_lag=max_lag,
        max_load=max_load,
        lock_timeout_ms=lock_timeout,
        lock_retries=cutover_retries,
        verify=not no_verify,
        allow_destructive=allow_destructive,
    )
    _quiet_logs(verbose)
    backend: Backend
    if broker:
        from shadowswap.fleet.tasks import CeleryBackend, masked

        backend = CeleryBackend(broker, result_backend, visibility_timeout, queue)
        where = f"Celery tasks on {masked(broker)}"
    else:
        backend = ThreadBackend()
        where = "a local thread pool"
    err.print(
        f"[cyan]fleet:[/cyan] {len(manifest.planned)} target(s) of {manifest.table} through {where}, "
        f"{concurrency} at once" + (f", {per_host} per host" if per_host else ""),
        highlight=False,
    )
    try:
        with RichView(err) as view:
            outcome = run_fleet(
                plans,
                manifest,
                settings,
                backend,
                concurrency=concurrency,
                per_host=per_host,
                canary=canary,
                gate=gate,
                hold=hold,
                view=view,
            )
    except KeyboardInterrupt:
        elsewhere = " (tasks already sent go on on the workers)" if broker else ""
        err.print(
            f"\n[yellow]interrupted:[/yellow] every original table is intact and writable{elsewhere}; each "
            f"target resumes from its own state table: `shadowswap fleet execute {plans}` again, "
            f"`shadowswap fleet status {plans}` to see where they stand, `shadowswap fleet abort {plans}` to undo",
            highlight=False,
        )
        raise typer.Exit(130) from None
    for text in summary(outcome, manifest.table):
        out.print(text, soft_wrap=True)
    if not outcome.ok:
        raise typer.Exit(1)


# -- worker ----------------------------------------------------------------------------------


@fleet_app.command()
@user_errors
def worker(
    broker: Annotated[
        str | None,
        typer.Option("--broker", help="Celery broker URL [default: $SHADOWSWAP_BROKER].", show_default=False),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Targets this worker runs at once.")] = 2,
    pool: Annotated[str, typer.Option("--pool", help="Celery pool: prefork, threads or solo.")] = "prefork",
    result_backend: Annotated[str | None, typer.Option(help="Celery result backend.", show_default=False)] = None,
    visibility_timeout: Annotated[
        float | None,
        typer.Option(
            help="Redis broker: seconds before a dead worker's task is redelivered [default: 3600].", show_default=False
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue", help="Celery queue [default: $SHADOWSWAP_FLEET_QUEUE or shadowswap-fleet].", show_default=False
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Worker name (Celery --hostname).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show every target's log lines too.")] = False,
) -> None:
    """A Celery worker that runs fleet targets (run one per machine)."""
    from shadowswap.fleet.tasks import run_worker

    broker = broker or os.environ.get("SHADOWSWAP_BROKER")
    if not broker:
        raise UsageError("no broker given", hint="--broker redis://127.0.0.1:6379/0 or set SHADOWSWAP_BROKER")
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if pool not in ("prefork", "threads", "solo"):
        raise UsageError(f"unknown pool {pool!r}", hint="--pool prefork, threads or solo")
    _quiet_logs(verbose)
    run_worker(
        broker,
        concurrency=concurrency,
        pool=pool,
        backend=result_backend,
        visibility_timeout=visibility_timeout,
        name=name,
        queue=queue,
    )


# -- status and the operator commands ------------------------------------------------------------


@fleet_app.command()
@user_errors
def status(
    plans: PlansArg = Path("plans"),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per target instead of the table.")] = False,
) -> None:
    """One table from every target's state table (no broker needed): phase, rows, ETA, why it waits, errors."""
    from shadowswap.fleet.plans import Manifest
    from shadowswap.fleet.status import read_states, summary_counts

    manifest = Manifest.read(plans)
    states = read_states(manifest)
    if as_json:
        import json

        for s in states:
            print(
                json.dumps(
                    {
                        "target": s.entry.display,
                        "id": s.entry.id,
                        "phase": s.phase,
                        "rows_copied": s.rows_copied,
                        "estimated_rows": s.estimated_rows,
                        "eta_seconds": s.eta_seconds,
                        "waiting": s.waiting,
                        "paused": s.paused,
                        "cutover_postponed": s.postponed,
                        "cutover_lock_ms": s.cutover_lock_ms,
                        "error": s.error,
                    }
                )
            )
        return
    table = Table(title=f"{manifest.table}: {', '.join(manifest.changes)}", title_justify="left")
    for heading in ("target", "phase", "rows", "ETA", "waiting / throttle", "swap lock", "error"):
        table.add_column(heading, overflow="fold")
    for s in states:
        rows = f"{s.rows_copied:,}/{s.estimated_rows:,}" if s.estimated_rows or s.rows_copied else ""
        eta = f"{s.eta_seconds:.0f}s" if s.eta_seconds is not None else ""
        lock = f"{s.cutover_lock_ms:.1f} ms" if s.cutover_lock_ms is not None else ""
        style = "red" if s.error or s.phase in ("failed", "unreachable", "not planned") else None
        table.add_row(
            s.entry.display,
            Text(s.phase, style=style or ""),
            rows,
            eta,
            s.waiting or "",
            lock,
            Text(s.error or "", style="red"),
        )
    out.print(table)
    counts = summary_counts(states)
    out.print(", ".join(f"{n} {phase}" for phase, n in counts.items()) + f" — {len(states)} target(s)", highlight=False)


def _operate(plans: Path, action: str, force: bool = False) -> None:
    from shadowswap.fleet.plans import Manifest
    from shadowswap.fleet.status import operate

    manifest = Manifest.read(plans)
    done = operate(manifest, action, force=force)
    failures = 0
    for entry, what in done:
        if isinstance(what, Exception):
            failures += 1
            from shadowswap.fleet.plans import error_text

            out.print(Text.assemble(("✗ ", "red"), entry.display, f": {error_text(what)}"), soft_wrap=True)
        else:
            out.print(Text.assemble(("✓ ", "green"), entry.display, f": {action} — {what}"), soft_wrap=True)
    if failures:
        raise typer.Exit(1)


@fleet_app.command()
@user_errors
def pause(plans: PlansArg = Path("plans")) -> None:
    """Hold every target's copy (and swap) between chunks; `fleet resume` continues."""
    _operate(plans, "pause")


@fleet_app.command()
@user_errors
def resume(plans: PlansArg = Path("plans")) -> None:
    """Lift `fleet pause` on every target."""
    _operate(plans, "resume")


@fleet_app.command()
@user_errors
def cutover(
    plans: PlansArg = Path("plans"),
    force: Annotated[bool, typer.Option("--force", help="Release targets that are not verified yet too.")] = False,
) -> None:
    """Open the gate (`fleet execute --gate --hold`): let every verified target swap."""
    _operate(plans, "cutover", force=force)


@fleet_app.command()
@user_errors
def abort(plans: PlansArg = Path("plans")) -> None:
    """Undo every target's unfinished migration: triggers and shadow removed, originals untouched."""
    _operate(plans, "abort")
