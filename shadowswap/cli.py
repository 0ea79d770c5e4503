"""The command line: parses arguments, renders output, maps known errors to exit codes. No SQL here."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from shadowswap.errors import ShadowswapError, UsageError, VerificationFailed

# Every command starts a new process, and `--help` or `status` must not pay for what only another
# command uses: SQLAlchemy and the database modules, the plan, the planner's registries, rich's
# progress bars and syntax highlighting are imported inside the commands that use them.
# tests/test_cli_startup.py holds this line.
if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from shadowswap.plan import Plan

app = typer.Typer(
    help="Zero-downtime schema changes: shadow table, dual-write triggers, keyset copy, atomic swap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

DEFAULT_PLAN = Path("shadowswap.plan.json")
DbOption = Annotated[
    str | None, typer.Option("--db", help="SQLAlchemy URL; default $DATABASE_URL.", show_default=False)
]
F = TypeVar("F", bound=Callable[..., Any])


@app.callback()
def main(
    log_format: Annotated[str, typer.Option("--log-format", help="console or json")] = "console",
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning")] = "info",
) -> None:
    from shadowswap import logs
    from shadowswap.failure import report_failure
    from shadowswap.validation import check_log_level

    if log_format not in ("console", "json"):
        err.print("[red]error:[/red] --log-format must be console or json")
        raise typer.Exit(2)
    logs.configure(log_format)  # first, so that the error below is JSON in json mode
    try:
        log_level = check_log_level(log_level)
    except UsageError as exc:
        report_failure(err, "UsageError", str(exc), None, exc.exit_code)
        raise typer.Exit(exc.exit_code) from None
    logs.configure(log_format, log_level)


def _is_database_error(exc: BaseException) -> bool:
    """A driver error, wrapped by SQLAlchemy; only a command that connected can raise one, and it
    has imported SQLAlchemy by then (looked up, not imported, so the other commands never load it)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.DBAPIError)


def user_errors(func: F) -> F:
    """Known errors become one line and an exit code; a traceback is only for our own bugs."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ShadowswapError as exc:
            from shadowswap.failure import report_failure

            report_failure(err, type(exc).__name__, str(exc), exc.hint, exc.exit_code)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            from shadowswap.db import first_line
            from shadowswap.failure import database_error_hint, report_failure

            hint = database_error_hint(func.__name__)
            report_failure(err, "DatabaseError", f"database error: {first_line(exc)}", hint, 1)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            from shadowswap.failure import report_failure

            message = "the original table is intact and writable"
            resume = "`shadowswap execute` resumes, `shadowswap abort` undoes" if func.__name__ == "execute" else None
            report_failure(err, "interrupted", message, resume, 130)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


# -- plan ------------------------------------------------------------------------------------


@app.command()
@user_errors
def plan(
    table: Annotated[str | None, typer.Argument(help="The table to change (optional with --ddl).")] = None,
    alter: Annotated[
        list[str] | None, typer.Option("--alter", help="COL:TYPE [null|not null] [default EXPR|drop default]")
    ] = None,
    using: Annotated[list[str] | None, typer.Option("--using", help="COL=EXPR: copy expression for COL")] = None,
    reverse_using: Annotated[
        list[str] | None,
        typer.Option(
            "--reverse-using",
            help="COL=EXPR: how `revert` computes the original column COL from the new table's row "
            "[default: the cast back to its old type]",
        ),
    ] = None,
    add: Annotated[list[str] | None, typer.Option("--add", help="COL:TYPE [not null] [default EXPR]")] = None,
    drop: Annotated[list[str] | None, typer.Option("--drop", help="COL: drop a column")] = None,
    rename: Annotated[list[str] | None, typer.Option("--rename", help="OLD:NEW, rename a column")] = None,
    add_index: Annotated[list[str] | None, typer.Option("--add-index", help="NAME:(col1, col2)")] = None,
    add_unique: Annotated[list[str] | None, typer.Option("--add-unique", help="NAME:(col1, col2)")] = None,
    drop_index: Annotated[
        list[str] | None, typer.Option("--drop-index", help="NAME: drop an index or unique constraint")
    ] = None,
    ddl: Annotated[
        str | None, typer.Option("--ddl", help="ALTER TABLE ... / CREATE INDEX ... / DROP INDEX ... statements")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Copy the table as it is (space back, pages refilled), online.")
    ] = False,
    table_option: Annotated[
        list[str] | None,
        typer.Option(
            "--table-option",
            help="NAME=VALUE sets a table option (ROW_FORMAT=COMPRESSED, fillfactor=70); NAME resets it",
        ),
    ] = None,
    order_by: Annotated[
        str | None, typer.Option("--order-by", help="INDEX: copy the rows in that index's order (PostgreSQL)")
    ] = None,
    strategy: Annotated[
        str, typer.Option("--strategy", help="auto (cheapest safe), shadow (always copy) or instant")
    ] = "auto",
    check_casts: Annotated[
        bool, typer.Option("--check-casts", help="Scan existing rows for values the new types cannot hold.")
    ] = False,
    transform: Annotated[
        str | None,
        typer.Option("--transform", help="MODULE:FUNCTION: a Python function of the row that fills new columns."),
    ] = None,
    check_transform: Annotated[
        bool, typer.Option("--check-transform", help="Run the --transform function over every row (read-only).")
    ] = False,
    output: Annotated[Path, typer.Option("--out", help="Where to write the plan.")] = DEFAULT_PLAN,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Reflect TABLE, apply the changes, print and save the plan. Changes nothing in the database."""
    from shadowswap.changes import parse_ddl, parse_options
    from shadowswap.db import connect
    from shadowswap.planner import build_plan
    from shadowswap.validation import check_writable_file

    changes = parse_options(
        alter, add, drop, rename, add_index, add_unique, drop_index, using, rebuild=rebuild, table_option=table_option
    )
    reverse_usings = parse_reverse_usings(reverse_using)
    if strategy not in ("auto", "shadow", "instant"):
        raise UsageError(f"unknown strategy {strategy!r}", hint="--strategy auto, shadow or instant")
    if ddl is None and table is None:
        raise UsageError("which table?", hint='e.g. shadowswap plan products --alter "price:varchar(20)"')
    check_writable_file("--out", output)  # before the reflection and --check-casts scan, not after
    engine, dialect = connect(db, read_only=True)
    try:
        if ddl is not None:
            from_ddl = parse_ddl(ddl, dialect.sqlglot_dialect)
            if table is not None and from_ddl.table is not None and from_ddl.table != table:
                raise UsageError(f"--ddl changes table {from_ddl.table!r}, not {table!r}")
            table = table or from_ddl.table
            changes.extend(from_ddl)
        assert table is not None
        the_plan = build_plan(
            engine,
            dialect,
            table,
            changes,
            strategy_name=strategy,
            check_casts=check_casts,
            transform=transform,
            check_transform=check_transform,
            order_by=order_by,
            reverse_usings=reverse_usings,
        )
    finally:
        engine.dispose()
    the_plan.write(output)
    if as_json:
        print(the_plan.to_json())
    else:
        render_plan(the_plan)
        out.print(f"\nplan written to [bold]{output}[/bold]; run [bold]shadowswap execute {output}[/bold]")


def parse_reverse_usings(specs: list[str] | None) -> dict[str, str]:
    from shadowswap.changes import parse_using

    found: dict[str, str] = {}
    for spec in specs or []:
        column, expr = parse_using(spec.replace("--using", "--reverse-using"))
        if column in found:
            raise UsageError(f"two --reverse-using expressions for column {column!r}")
        found[column] = expr
    return found


def render_way_back(p: Plan) -> None:
    back = p.way_back
    if back is None:
        return
    if not back.possible:
        out.print(f"way back: {back.reason}", highlight=False)
        return
    if back.inverse_sql:
        out.print(f"way back: `shadowswap revert {p.table}` alters the table back in place:", highlight=False)
        for stmt in back.inverse_sql:
            out.print(f"  • {stmt}", highlight=False)
        return
    lossless = (
        "`plan --check-casts` says whether today's rows would all come back unchanged"
        if p.cast_check is None
        else (
            "lossless for today's rows"
            if not p.cast_check.rows_changed and not p.cast_check.rows_failing
            else "NOT lossless for today's rows (see the cast check)"
        )
    )
    if p.cast_check is not None and any(n.endswith("(--reverse-using)") for n in back.notes):
        lossless += "; --reverse-using expressions are not checked"
    out.print(
        f"way back: `shadowswap revert {p.table}` until `cleanup --drop-old` ({lossless}; a write since the swap "
        "that cannot go back makes the migration not revertible, `status` names it)",
        highlight=False,
    )
    for note in back.notes:
        out.print(f"  • {note}", highlight=False)


def render_plan(p: Plan) -> None:
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.table import Table

    from shadowswap.uniqueness import describe as describe_duplicates

    columns = Table(title=f"{p.table}: {', '.join(p.changes)}", title_justify="left")
    for heading in ("column", "old definition", "new definition", "copy expression"):
        columns.add_column(heading)
    kept = {c.source_column for c in [*p.columns, *p.default_columns]}
    for c in [*p.columns, *p.default_columns]:
        old = f"{c.old_type}{'' if c.old_nullable else ' NOT NULL'}" if c.old_type else "-"
        new = f"{c.new_type}{'' if c.new_nullable else ' NOT NULL'}"
        name = c.name if c.source_column in (None, c.name) else f"{c.source_column} → {c.name}"
        style = "bold yellow" if c.changed else None
        columns.add_row(name, old, new, c.expression, style=style)
    for name in p.source_columns:
        if name not in kept:
            columns.add_row(name, "", "dropped", "", style="bold red")
    out.print(columns)
    changes = Table(title="changes", title_justify="left")
    for heading in ("change", "strategy", "why", "destructive"):
        changes.add_column(heading)
    for ch in p.change_plans:
        style = "red" if ch.destructive else None
        changes.add_row(ch.description, ch.strategy, ch.reason, ch.destructive or "", style=style)
    out.print(changes)
    out.print(
        f"strategy: [bold]{p.strategy}[/bold] ({p.strategy_reason})\nverdict: [bold]{p.verdict}[/bold]   "
        f"estimated rows: {p.estimated_rows:,}",
        highlight=False,
    )
    if p.cast_check is not None:
        check = p.cast_check
        out.print(f"cast check: {check.rows_scanned:,} rows scanned", highlight=False)
        for result in check.columns:
            keys = ", ".join(str(k[0] if len(k) == 1 else tuple(k)) for k in result.sample_keys)
            bound = "" if result.exact else " (at least)"
            out.print(
                f"  • {result.column}: {result.rows_failing}{bound} fail, "
                f"{result.rows_changed} change" + (f" (e.g. keys {keys})" if keys else ""),
                highlight=False,
            )
        for duplicate in check.duplicates:
            out.print(f"  • duplicates: {describe_duplicates([duplicate])}", highlight=False)
    if p.transform is not None:
        t = p.transform
        out.print(
            f"transform: [bold]{t.spec}[/bold] ({t.source_file}, sha256 {t.source_sha256[:12]}) "
            f"fills {', '.join(t.columns)}",
            highlight=False,
        )
        if t.check is not None:
            out.print(
                f"transform check: {t.check.rows_scanned:,} rows, {t.check.rows_failing:,} failing", highlight=False
            )
            for failure in t.check.failures:
                out.print(f"  • {failure}", highlight=False)
    if p.strategy == "instant":
        out.print(
            Panel(
                Syntax(";\n".join(p.instant_sql) + ";", "sql", word_wrap=True),
                title="in-place ALTER (one transaction, under the lock timeout)",
                title_align="left",
            )
        )
    else:
        sql = ";\n".join(p.shadow_ddl + [i.create_sql for i in p.indexes]) + ";"
        out.print(Panel(Syntax(sql, "sql", word_wrap=True), title="shadow table", title_align="left"))
        out.print(
            Panel(
                Syntax(";\n".join(p.trigger_ddl) + ";", "sql", word_wrap=True),
                title="dual-write triggers",
                title_align="left",
            )
        )
        out.print(
            Panel(
                Syntax(";\n".join(p.swap_sql + p.column_settings_sql + p.post_swap_sql) + ";", "sql", word_wrap=True),
                title=f"swap (old table kept as {p.old_table})",
                title_align="left",
            )
        )
    for note in p.notes:
        out.print(f"  • {note}")
    render_way_back(p)


# -- execute ---------------------------------------------------------------------------------


class RichReporter:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or err
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def phase(self, name: str, **facts: Any) -> None:
        self.console.print(f"[green]✓[/green] {name.replace('_', ' ')}")

    def copy_started(self, total_estimate: int, already: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("copying"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("copy", total=max(total_estimate, 1), completed=already, rate="-", note="")

    def waiting(self, reason: str | None) -> None:
        """A throttle or hold: on the progress line while copying, its own line otherwise."""
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, note=f"[yellow]⏸ {reason}[/yellow]" if reason else "")
            self.progress.refresh()
        elif reason:
            self.console.print(f"[yellow]⏸ waiting:[/yellow] {reason}", highlight=False)
        else:
            self.console.print("[green]▶[/green] continuing", highlight=False)

    def copied(self, rows: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, rows)
            speed = self.progress.tasks[0].speed
            self.progress.update(self.task, rate=f"{speed:,.0f}" if speed else "-")

    def copy_finished(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress = None
        self.task = None


@app.command()
@user_errors
def execute(
    plan_file: Annotated[Path, typer.Argument(help="Plan written by `shadowswap plan`.")] = DEFAULT_PLAN,
    chunk_size: Annotated[int, typer.Option(help="Rows in the first chunk; adapts to --chunk-time.")] = 1000,
    chunk_time: Annotated[
        float | None,
        typer.Option(
            help="Target seconds per chunk [default: 0.1; SQLite: 0.05 with the pause after it].", show_default=False
        ),
    ] = None,
    min_chunk: Annotated[int, typer.Option(help="Smallest chunk the adaptive sizer may choose.")] = 100,
    max_chunk: Annotated[int, typer.Option(help="Largest chunk the adaptive sizer may choose.")] = 100_000,
    copy_workers: Annotated[
        int | None,
        typer.Option(
            help="Chunks copied at once, on disjoint key ranges [default: PostgreSQL 2, others 1].",
            show_default=False,
        ),
    ] = None,
    max_rows_per_second: Annotated[
        float | None,
        typer.Option(help="Cap on rows copied per second (copies one chunk at a time).", show_default=False),
    ] = None,
    max_lag: Annotated[
        float | None,
        typer.Option(help="Hold the copy while a replica is more than this many seconds behind.", show_default=False),
    ] = None,
    replica: Annotated[
        list[str] | None,
        typer.Option("--replica", help="URL of a replica whose lag --max-lag watches; repeatable.", show_default=False),
    ] = None,
    max_load: Annotated[
        str | None,
        typer.Option(
            help="Hold the copy while the server is busier than [METRIC=]N (MySQL: Threads_running=N; "
            "PostgreSQL: N active backends).",
            show_default=False,
        ),
    ] = None,
    pause_file: Annotated[
        Path | None, typer.Option(help="Hold the copy while this file exists.", show_default=False)
    ] = None,
    postpone_cutover: Annotated[
        bool, typer.Option("--postpone-cutover", help="Wait before the swap until `shadowswap cutover`.")
    ] = False,
    postpone_cutover_file: Annotated[
        Path | None,
        typer.Option(help="Wait before the swap while this file exists (created if missing).", show_default=False),
    ] = None,
    hook: Annotated[
        list[str] | None,
        typer.Option(
            "--hook",
            help="EVENT=COMMAND, EVENT one of on-start, on-copy-done, on-before-cutover, on-success, on-failure; "
            "repeatable.",
            show_default=False,
        ),
    ] = None,
    hook_timeout: Annotated[float, typer.Option(help="Seconds a hook may run.")] = 300.0,
    backup: Annotated[
        Path | None,
        typer.Option("--backup", help="Directory for a backup of the table taken before the swap.", show_default=False),
    ] = None,
    lock_timeout: Annotated[int, typer.Option(help="Milliseconds to wait for a lock before retrying.")] = 200,
    cutover_retries: Annotated[int, typer.Option(help="Attempts to take a strong lock.")] = 30,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the checksum before the swap.")] = False,
    allow_destructive: Annotated[
        bool, typer.Option("--allow-destructive", help="Run a plan that drops or narrows something.")
    ] = False,
    no_revert: Annotated[
        bool,
        typer.Option(
            "--no-revert", help="No reverse capture after the swap: no cost per write, and no `shadowswap revert`."
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Run the plan online: shadow, triggers, copy, indexes, verify, swap. Resumable."""
    from shadowswap import logs
    from shadowswap.db import connect
    from shadowswap.executor import Executor, Options
    from shadowswap.failure import JsonReporter
    from shadowswap.plan import Plan
    from shadowswap.validation import check_finite, check_lock_timeout, check_writable_file

    for name, value in (("--chunk-size", chunk_size), ("--min-chunk", min_chunk), ("--max-chunk", max_chunk)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1")
    if min_chunk > max_chunk:
        raise UsageError("--min-chunk is larger than --max-chunk")
    if chunk_time is not None and chunk_time <= 0:
        raise UsageError("--chunk-time must be positive")
    if copy_workers is not None and copy_workers < 1:
        raise UsageError("--copy-workers must be at least 1")
    for name, number in (
        ("--max-rows-per-second", max_rows_per_second),
        ("--chunk-time", chunk_time),
        ("--max-lag", max_lag),
        ("--hook-timeout", hook_timeout),
    ):
        check_finite(name, number)
    if cutover_retries < 1:
        raise UsageError("--cutover-retries must be at least 1")
    check_lock_timeout(lock_timeout)
    if postpone_cutover_file is not None:
        check_writable_file("--postpone-cutover-file", postpone_cutover_file)
    the_plan = Plan.read(plan_file)
    engine, dialect = connect(db)
    options = Options.for_dialect(
        dialect,
        chunk_size=chunk_size,
        chunk_time=chunk_time,
        min_chunk=min_chunk,
        max_chunk=max_chunk,
        copy_workers=copy_workers,
        max_rows_per_second=max_rows_per_second,
        max_lag=max_lag,
        replicas=replica or [],
        max_load=max_load,
        pause_file=pause_file,
        hooks=hook or [],
        hook_timeout=hook_timeout,
        lock_timeout_ms=lock_timeout,
        lock_retries=cutover_retries,
        verify=not no_verify,
        allow_destructive=allow_destructive,
        postpone_cutover=postpone_cutover,
        postpone_file=postpone_cutover_file,
        backup_dir=backup,
    )
    options.no_revert = no_revert
    reporter = JsonReporter() if logs.is_json() else RichReporter()  # json mode: only JSON on stderr
    summary = Executor(engine, dialect, the_plan, options, reporter).run()
    if summary.strategy == "instant":
        out.print(
            f"[bold green]done:[/bold green] {summary.table} altered in place in {summary.seconds:.1f}s "
            f"(ALTER transaction {summary.cutover_lock_ms or 0:.1f} ms, no copy, no old table)",
            highlight=False,
        )
    else:
        lock = f"{summary.cutover_lock_ms:.1f} ms" if summary.cutover_lock_ms is not None else "-"
        out.print(
            f"[bold green]done:[/bold green] {summary.table} migrated in {summary.seconds:.1f}s "
            f"({summary.rows_copied:,} rows copied, swap lock held {lock}); old table kept as "
            f"[bold]{summary.old_table}[/bold] — drop it with `shadowswap cleanup --drop-old`",
            highlight=False,
        )
        if the_plan.way_back is not None and the_plan.way_back.possible and not no_revert:
            out.print(f"until then `shadowswap revert {summary.table}` swaps back, with every write made since")
    if summary.bytes_before is not None or summary.bytes_after is not None:
        out.print(
            f"space on disk: {_bytes(summary.bytes_before)} before, {_bytes(summary.bytes_after)} after",
            highlight=False,
        )
    if summary.backup_path:
        restore = f" (restore: {summary.backup_restore})" if summary.backup_restore else ""
        out.print(f"backup of the original: [bold]{summary.backup_path}[/bold]{restore}", highlight=False)


def _bytes(size: int | None) -> str:
    if size is None:
        return "unknown"
    value, unit = float(size), "bytes"
    for bigger in ("kB", "MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({size:,} bytes)"


# -- status / abort / cleanup ----------------------------------------------------------------


@app.command()
@user_errors
def status(db: DbOption = None) -> None:
    """List migrations recorded in the database: phase, rows copied, elapsed, kept old tables."""
    from rich.table import Table
    from rich.text import Text

    from shadowswap import operator
    from shadowswap.db import connect

    engine, _dialect = connect(db, read_only=True)
    found = operator.status(engine)
    if not found:
        out.print("no migrations recorded")
        return
    table = Table()
    for heading in ("id", "table", "phase", "rows copied", "elapsed", "swap lock", "kept old table"):
        table.add_column(heading)
    details = []
    for s in found:
        m = s.migration
        lock = f"{m.cutover_lock_ms:.1f} ms" if m.cutover_lock_ms is not None else ""
        table.add_row(
            str(m.id),
            m.table_name,
            m.phase,
            f"{m.rows_copied:,}",
            f"{s.elapsed_seconds:.0f}s",
            lock,
            s.kept_old_table or "",
        )
        if s.notes:
            details.append(f"{m.id} {m.table_name}: {s.notes}")
    out.print(table)
    # notes are sentences (what it waits for, the error, the backup file): below the table, never truncated
    for line in details:
        out.print(Text(line))


def _table_from(table: str | None, plan_file: Path) -> str:
    if table:
        return table
    if plan_file.exists():
        from shadowswap.plan import Plan

        return Plan.read(plan_file).table
    raise UsageError("which table?", hint="give the table name, or run where shadowswap.plan.json is")


def _meant(table: str | None, plan_file: Path) -> str | None:
    """The table the operator means: TABLE, the plan's, or (None) the only one with an unfinished migration."""
    if table is None and not plan_file.exists():
        return None
    return _table_from(table, plan_file)


TableArg = Annotated[str | None, typer.Argument(help="The migrated table; default: the plan's, or the only one.")]
PlanOption = Annotated[Path, typer.Option("--plan", help="Plan file naming the table.")]


@app.command()
@user_errors
def pause(table: TableArg = None, plan_file: PlanOption = DEFAULT_PLAN, db: DbOption = None) -> None:
    """Hold the copy (and the swap) between chunks, from any host; `shadowswap resume` continues."""
    from shadowswap import operator
    from shadowswap.db import connect

    engine, _dialect = connect(db)
    m = operator.pause(engine, _meant(table, plan_file))
    out.print(f"paused migration {m.id} of {m.table_name}: it stops after its current chunk; dual-write stays on")


@app.command()
@user_errors
def resume(table: TableArg = None, plan_file: PlanOption = DEFAULT_PLAN, db: DbOption = None) -> None:
    """Lift `shadowswap pause`."""
    from shadowswap import operator
    from shadowswap.db import connect

    engine, _dialect = connect(db)
    m = operator.resume(engine, _meant(table, plan_file))
    out.print(f"resumed migration {m.id} of {m.table_name}")


@app.command()
@user_errors
def cutover(table: TableArg = None, plan_file: PlanOption = DEFAULT_PLAN, db: DbOption = None) -> None:
    """Let a migration run with --postpone-cutover swap, from any host."""
    from shadowswap import operator
    from shadowswap.db import connect

    engine, _dialect = connect(db)
    m = operator.cutover(engine, _meant(table, plan_file))
    if m.cutover_postponed:
        out.print(f"migration {m.id} of {m.table_name} will swap now (it checks within a second)")
    else:
        out.print(f"migration {m.id} of {m.table_name} was not postponed; it swaps as soon as it is verified")


@app.command()
@user_errors
def verify(
    table: TableArg = None,
    plan_file: PlanOption = DEFAULT_PLAN,
    chunk_size: Annotated[int, typer.Option(help="Rows per checksum chunk.")] = 20_000,
    db: DbOption = None,
) -> None:
    """Compare the tables through the copy expressions: after the swap the new table with the kept old
    one; before it, the original with the shadow. Rows written since the swap differ, naturally."""
    from shadowswap import operator
    from shadowswap.db import connect
    from shadowswap.verify import describe, through_cast_notes

    engine, dialect = connect(db, read_only=True)
    name = _table_from(table, plan_file) if table or plan_file.exists() else None
    checked = operator.verify(engine, dialect, name, chunk_size=chunk_size)
    result = checked.result
    for note in through_cast_notes(dialect, checked.plan):
        out.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    if result.ok:
        out.print(
            f"[bold green]identical:[/bold green] {checked.compared} through the copy expressions "
            f"({result.rows:,} rows)"
        )
        return
    raise VerificationFailed(
        f"{checked.compared}: {result.differing_keys:,} rows differ: {describe(checked.plan, result.differences)}",
        hint="rows the application wrote after the swap differ from the old table by design",
    )


@app.command()
@user_errors
def abort(
    table: Annotated[str | None, typer.Argument(help="Table whose migration to abort; default: the plan's.")] = None,
    plan_file: Annotated[Path, typer.Option("--plan")] = DEFAULT_PLAN,
    db: DbOption = None,
) -> None:
    """Undo an unfinished migration: drop the triggers and the shadow table; the original stays."""
    from shadowswap import operator
    from shadowswap.db import connect
    from shadowswap.plan import Plan

    name = _table_from(table, plan_file)
    engine, dialect = connect(db)
    migration = operator.abort(engine, dialect, name)
    if Plan.from_json(migration.plan_json).reverts is not None:
        out.print(
            f"aborted the revert (migration {migration.id}) of {name}: {name} stays as it is, "
            f"{migration.shadow_table} and its reverse capture are kept (`shadowswap revert` tries again)"
        )
        return
    out.print(f"aborted migration {migration.id} of {name}: triggers and {migration.shadow_table} removed")


@app.command()
@user_errors
def revert(
    table: Annotated[str | None, typer.Argument(help="The table to swap back; default: the plan's.")] = None,
    plan_file: Annotated[Path, typer.Option("--plan")] = DEFAULT_PLAN,
    lock_timeout: Annotated[int, typer.Option(help="Milliseconds to wait for a lock before retrying.")] = 200,
    cutover_retries: Annotated[int, typer.Option(help="Attempts to take a strong lock.")] = 30,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the checksum before the swap back.")] = False,
    pause_file: Annotated[
        Path | None, typer.Option(help="Hold the revert while this file exists.", show_default=False)
    ] = None,
    db: DbOption = None,
) -> None:
    """Swap the table back to the original its newest migration replaced, with every write made since.

    Online, as the forward swap: the kept old table is brought up to date from the reverse log,
    verified, and swapped back under the lock timeout and retries; the migrated table is kept as
    _TABLE_reverted until `cleanup --drop-old`. Refused (exit 2) when a write since cannot go back."""
    from shadowswap import logs, operator
    from shadowswap.db import connect
    from shadowswap.executor import Options
    from shadowswap.failure import JsonReporter
    from shadowswap.validation import check_lock_timeout

    if cutover_retries < 1:
        raise UsageError("--cutover-retries must be at least 1")
    check_lock_timeout(lock_timeout)
    name = _table_from(table, plan_file)
    engine, dialect = connect(db)
    options = Options.for_dialect(
        dialect,
        lock_timeout_ms=lock_timeout,
        lock_retries=cutover_retries,
        verify=not no_verify,
        pause_file=pause_file,
    )
    reporter = JsonReporter() if logs.is_json() else RichReporter()
    summary = operator.revert(engine, dialect, name, options, reporter)
    lock = f"{summary.cutover_lock_ms:.1f} ms" if summary.cutover_lock_ms is not None else "-"
    if summary.strategy == "instant":
        out.print(
            f"[bold green]reverted:[/bold green] {summary.table} altered back in place (ALTER transaction {lock})",
            highlight=False,
        )
        return
    out.print(
        f"[bold green]reverted:[/bold green] {summary.table} is the original again, with every write made since "
        f"the swap (swap lock held {lock}); the migrated table is kept as [bold]{summary.old_table}[/bold] — "
        "drop it with `shadowswap cleanup --drop-old`",
        highlight=False,
    )


@app.command()
@user_errors
def cleanup(
    table: Annotated[str | None, typer.Argument(help="Only this table's kept old table.")] = None,
    drop_old: Annotated[bool, typer.Option("--drop-old", help="Drop the old tables kept after swaps.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
) -> None:
    """Drop the old table kept after a swap, once you are satisfied with the new one."""
    from shadowswap import operator
    from shadowswap.db import connect

    if not drop_old:
        raise UsageError("nothing to do", hint="`shadowswap cleanup --drop-old` drops the kept old tables")
    engine, dialect = connect(db)
    kept = operator.kept_old(engine, table)
    if not kept:
        out.print("no kept old tables")
        return
    names = ", ".join(m.old_table for m in kept)
    if not yes and not typer.confirm(f"drop {names}?"):
        raise typer.Exit(1)
    for m in operator.cleanup(engine, dialect, table):
        out.print(f"dropped {m.old_table}")


# -- lint (shadowswap/lint) --------------------------------------------------------------------

from shadowswap.lint.command import lint as _lint  # noqa: E402  (its own room; registered here)

app.command("lint")(user_errors(_lint))


# -- checks ----------------------------------------------------------------------------------


@app.command("checks")
@user_errors
def list_checks(
    engine: Annotated[
        str | None, typer.Option("--engine", help="Only the checks that apply to postgresql, mysql or sqlite.")
    ] = None,
) -> None:
    """List every plan-time refusal: its stage, the engines it applies to, why, and what to do instead."""
    from rich.table import Table

    from shadowswap import checks

    if engine is not None and engine not in ("postgresql", "mysql", "sqlite"):
        raise UsageError(f"unknown engine {engine!r}", hint="--engine postgresql, mysql or sqlite")
    table = Table()
    for heading in ("stage", "check", "engines"):
        table.add_column(heading, no_wrap=True)
    table.add_column("refused when")
    table.add_column("hint")
    for check in checks.all():
        if engine is None or check.applies_to(engine):
            engines = ", ".join(sorted(check.engines)) if check.engines is not None else "all"
            table.add_row(check.stage, check.name, engines, check.reason, check.hint)
    out.print(table)


# -- demo ------------------------------------------------------------------------------------


@app.command()
@user_errors
def demo(
    db_file: Annotated[Path, typer.Option("--db-file", help="The SQLite file to create.")] = Path("shadowswap-demo.db"),
    rows: Annotated[int, typer.Option("--rows", help="Rows to seed into products.")] = 200_000,
    writes_per_second: Annotated[float, typer.Option(help="How often the demo's application writes.")] = 200.0,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show shadowswap's log lines as well.")] = False,
) -> None:
    """Migrate a busy SQLite table online, no server needed; checks every row the writer committed."""
    from shadowswap import demo as the_demo
    from shadowswap import logs

    if not verbose:
        logs.configure("console", "warning")
    outcome = the_demo.run(db_file, rows, out, RichReporter(), rate=writes_per_second)
    the_demo.render_outcome(outcome, out)
    the_demo.check(outcome)


# the fleet sub-app (issue 19); imported last, it looks up user_errors above at call time
from shadowswap.fleet.cli import fleet_app  # noqa: E402

app.add_typer(fleet_app, name="fleet")

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
