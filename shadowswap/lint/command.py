"""The ``shadowswap lint`` command: arguments, the report (text or JSON), ``--fix``, the exit code."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from shadowswap.errors import UsageError

if TYPE_CHECKING:  # the command line imports this module at start; alembic is loaded when lint runs
    from shadowswap.lint.linter import Finding, LintResult

out = Console()


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _estimate(f: Finding) -> str:
    if f.rows is None:
        return ""
    seconds = f.seconds or 0.0
    how_long = f"~{seconds:.1f} s" if seconds < 120 else f"~{seconds / 60:.0f} min"
    return f"; {how_long} for {f.rows:,} rows ({_size(f.bytes)}) at this engine's measured rewrite rate"


def render(result: LintResult) -> None:
    by_file: dict[Path, list[Finding]] = defaultdict(list)
    for finding in result.findings:
        by_file[finding.op.path].append(finding)
    for path, findings in by_file.items():
        revision = findings[0].op.revision
        out.print(f"[bold]{escape(str(path))}[/bold]" + (f" (revision {escape(str(revision))})" if revision else ""))
        for f in findings:
            where = f"{f.op.function}:{f.op.line}" if f.op.line else f.op.function
            if f.blocking:
                refused = f.rule is None or f.rule.id == "online-block-not-first"
                label = "[red]WILL FAIL[/red]" if refused else "[red]BLOCKS WRITES[/red]"
                out.print(f"  {where}  {escape(f.op.call())}  {label}", highlight=False, soft_wrap=True)
                rule = f" [{f.rule.id}]" if f.rule else ""
                why = f"      why{escape(rule)}: {escape(f.reason)}{escape(_estimate(f))}"
                out.print(why, highlight=False, soft_wrap=True)
                if f.rule:
                    fix = f.rule.fix.format(table=f.op.table)
                    if not f.fixable and f.rule.fixable:
                        fix = fix.replace("(--fix rewrites it)", "(it must come first in its migration)")
                    elif not f.fixable:
                        fix = fix.replace(" (--fix rewrites it)", "")
                    out.print(f"      fix: {escape(fix)}", highlight=False, soft_wrap=True)
            else:
                out.print(
                    f"  {where}  {escape(f.op.call())}  [green]ok[/green] ({escape(f.reason)})",
                    highlight=False,
                    soft_wrap=True,
                )
    blocking = result.blocking
    fixable = [f for f in blocking if f.fixable]
    out.print(
        f"\n{len(result.findings)} operation(s) on {result.engine}: "
        + (f"[red]{len(blocking)} block writes[/red]" if blocking else "[green]none blocks writes[/green]")
        + (f", {len(fixable)} fixable with --fix" if fixable else ""),
        highlight=False,
    )


def apply_fixes(result: LintResult) -> list[str]:
    """Rewrite the planned calls in their files; one line per flagged call rewritten."""
    from shadowswap.lint.fix import rewrite

    done: list[str] = []
    for path, requests in result.fix_plan.items():
        source = path.read_text(encoding="utf-8")
        fixed, lines = rewrite(source, requests)
        if fixed != source:
            path.write_text(fixed, encoding="utf-8")
        for f in result.blocking:
            if f.op.path == path and f.fixable and f.op.line in lines:
                done.append(f"{path}:{f.op.line}: {f.op.call()} → op.online_alter_table({f.op.table!r})")
    return done


def lint(
    path: Annotated[Path, typer.Argument(help="alembic's versions directory, or one migration file.")],
    dialect: Annotated[
        str | None,
        typer.Option(
            "--dialect",
            help="postgresql, mysql, mariadb or sqlite, at a recent version, without a database "
            "[default: the engine of --db / DATABASE_URL].",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    fix: Annotated[
        bool, typer.Option("--fix", help="Rewrite flagged calls into op.online_alter_table in the files.")
    ] = False,
    downgrade: Annotated[bool, typer.Option("--downgrade", help="Lint downgrade() too.")] = False,
    db: Annotated[
        str | None,
        typer.Option("--db", help="SQLAlchemy URL for live table sizes; default $DATABASE_URL.", show_default=False),
    ] = None,
) -> None:
    """Say which operations of Alembic migrations block writes, for how long, and their online form.

    The migrations are run as `alembic upgrade --sql` runs them (nothing is written to any database).
    Exit 0 when nothing blocks writes, 1 when something does."""
    from shadowswap.db import connect
    from shadowswap.lint.linter import lint as run_lint

    functions = ("upgrade", "downgrade") if downgrade else ("upgrade",)
    url = db or (None if dialect else os.environ.get("DATABASE_URL"))
    if url is None and dialect is None:
        raise UsageError("which engine?", hint="give --dialect postgresql|mysql|mariadb|sqlite, or --db URL")
    engine = None
    if url is not None:
        engine, _ = connect(url)
    try:
        result = run_lint(path, dialect, engine, functions)
        fixed: list[str] = []
        if fix and any(f.fixable for f in result.blocking):
            fixed = apply_fixes(result)
            result = run_lint(path, dialect, engine, functions)
    finally:
        if engine is not None:
            engine.dispose()
    if as_json:
        print(
            json.dumps(
                {
                    "engine": result.engine,
                    "blocking": len(result.blocking),
                    "fixed": fixed,
                    "operations": [f.to_json() for f in result.findings],
                },
                indent=2,
            )
        )
    else:
        for line in fixed:
            out.print(f"[green]fixed[/green] {escape(line)}", highlight=False, soft_wrap=True)
        render(result)
    if result.blocking:
        raise typer.Exit(1)
