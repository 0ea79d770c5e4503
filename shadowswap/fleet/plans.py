"""``fleet plan``: one plan per target, written beside a manifest, ``fleet.json``.

The manifest lists the targets in file order with what planning found (the plan's file, its
strategy and verdict, the estimated rows, or why no plan could be made). ``fleet execute``,
``status`` and the operator commands read only this directory: the targets file is not needed
again. Plans are made by the library (``planner.build_plan``), a few targets at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError

from shadowswap.changes import ChangeSet, parse_ddl
from shadowswap.db import connect, first_line
from shadowswap.errors import ShadowswapError, UsageError
from shadowswap.fleet.targets import Target
from shadowswap.plan import Plan

log = structlog.get_logger("shadowswap.fleet")

MANIFEST = "fleet.json"
MANIFEST_VERSION = 1


@dataclass
class Entry:
    id: str
    spec: str
    display: str
    host: str
    #: the plan's file name inside the plans directory; None when planning failed
    plan_file: str | None = None
    dialect: str | None = None
    strategy: str | None = None
    verdict: str | None = None
    estimated_rows: int = 0
    error: str | None = None

    @property
    def target(self) -> Target:
        return Target(id=self.id, spec=self.spec, display=self.display, host=self.host)


@dataclass
class Manifest:
    table: str
    changes: list[str]
    entries: list[Entry] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST
        if not path.exists():
            raise UsageError(
                f"no fleet plan in {directory} (no {MANIFEST})",
                hint="run `shadowswap fleet plan TABLE --alter ... --targets targets.txt --out DIR` first",
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != MANIFEST_VERSION:
                raise UsageError(f"{path} has version {data.get('version')}, this shadowswap reads {MANIFEST_VERSION}")
            entries = [Entry(**e) for e in data["entries"]]
            return cls(table=data["table"], changes=list(data["changes"]), entries=entries)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is not a fleet manifest ({exc})") from None

    def plan(self, directory: Path, entry: Entry) -> Plan:
        assert entry.plan_file is not None
        return Plan.read(directory / entry.plan_file)

    @property
    def planned(self) -> list[Entry]:
        return [e for e in self.entries if e.plan_file is not None]


def error_text(exc: BaseException) -> str:
    """One line a human can act on: the error and, if any, its hint."""
    if isinstance(exc, ShadowswapError):
        return str(exc) + (f" (hint: {exc.hint})" if exc.hint else "")
    if isinstance(exc, DBAPIError):
        return f"database error: {first_line(exc)}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def plan_one(
    target: Target,
    table: str | None,
    changes: ChangeSet,
    ddl: str | None,
    strategy: str,
    check_casts: bool,
) -> Plan:
    from shadowswap.planner import build_plan

    engine, dialect = connect(target.url())
    try:
        wanted = ChangeSet(changes=list(changes.changes), usings=dict(changes.usings))
        name = table
        if ddl is not None:
            # the DDL is read in each target's own SQL dialect
            from_ddl = parse_ddl(ddl, dialect.sqlglot_dialect)
            if name is not None and from_ddl.table is not None and from_ddl.table != name:
                raise UsageError(f"--ddl changes table {from_ddl.table!r}, not {name!r}")
            name = name or from_ddl.table
            wanted.extend(from_ddl)
        if name is None:
            raise UsageError("which table?", hint='e.g. shadowswap fleet plan products --alter "price:varchar(20)"')
        return build_plan(engine, dialect, name, wanted, strategy_name=strategy, check_casts=check_casts)
    finally:
        engine.dispose()


def plan_fleet(
    targets: list[Target],
    table: str | None,
    changes: ChangeSet,
    out: Path,
    *,
    ddl: str | None = None,
    strategy: str = "auto",
    check_casts: bool = False,
    concurrency: int = 8,
    on_planned: Callable[[Entry], Any] | None = None,
) -> Manifest:
    """Plan every target (``concurrency`` at a time) and write the plans and the manifest."""
    out.mkdir(parents=True, exist_ok=True)

    def one(target: Target) -> tuple[Entry, Plan | None]:
        entry = Entry(id=target.id, spec=target.spec, display=target.display, host=target.host)
        try:
            plan = plan_one(target, table, changes, ddl, strategy, check_casts)
        except (ShadowswapError, DBAPIError) as exc:
            entry.error = error_text(exc)
            log.warning("could not plan", target=target.display, error=entry.error)
            return entry, None
        entry.plan_file = f"{target.id}.plan.json"
        plan.write(out / entry.plan_file)
        entry.dialect, entry.strategy, entry.verdict = plan.dialect, plan.strategy, plan.verdict
        entry.estimated_rows = plan.estimated_rows
        return entry, plan

    entries: list[Entry] = []
    plans: list[Plan] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="shadowswap-fleet-plan") as pool:
        for entry, plan in pool.map(one, targets):
            entries.append(entry)
            if plan is not None:
                plans.append(plan)
            if on_planned is not None:
                on_planned(entry)
    names = {p.table for p in plans}
    if len(names) > 1:
        raise UsageError(f"the targets' plans change different tables: {', '.join(sorted(names))}")
    manifest = Manifest(
        table=plans[0].table if plans else (table or "?"),
        changes=list(plans[0].changes) if plans else [],
        entries=entries,
    )
    # a stale plan of a target that could not be planned this time must not be executed
    for entry in entries:
        if entry.plan_file is None:
            (out / f"{entry.id}.plan.json").unlink(missing_ok=True)
    manifest.write(out)
    return manifest
