"""Judging recorded operations against the rules, with live sizes and estimates when a database is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shadowswap.errors import UsageError
from shadowswap.lint.record import LintOp, MigrationFile, migration_files, record_file
from shadowswap.lint.rules import RULES, Env, Rule, rules_for

__all__ = ["RULES", "Finding", "FixRequest", "LintResult", "Rule", "lint", "mappable", "offline_engine"]

#: seconds per row of a blocking rewrite, measured here (docs/performance.md: a blocking ALTER of the
#: 1M-row products table took 2.16 s on PostgreSQL 15 and 4.15 s on MariaDB 10.11); SQLite assumed
#: like PostgreSQL. An estimate of the order of magnitude, not a promise.
SECONDS_PER_ROW = {"postgresql": 2.2e-6, "mysql": 4.2e-6, "sqlite": 2.2e-6}

#: server versions assumed without --db (the planner's rules depend on them)
ASSUMED_VERSIONS = {"postgresql": (16, 0), "mysql": (8, 0, 36), "mariadb": (10, 11, 0), "sqlite": (3, 45, 0)}


@dataclass
class Finding:
    op: LintOp
    engine: str
    blocking: bool
    rule: Rule | None = None
    reason: str = ""
    rows: int | None = None
    bytes: int | None = None
    seconds: float | None = None
    fixable: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.op.path),
            "line": self.op.line,
            "revision": self.op.revision,
            "function": self.op.function,
            "operation": self.op.name,
            "table": self.op.table,
            "call": self.op.call(),
            "batch": self.op.batch,
            "sql": self.op.sql,
            "engine": self.engine,
            "blocks_writes": self.blocking,
            "rule": self.rule.id if self.rule else None,
            "why": self.reason,
            "fix": self.rule.fix.format(table=self.op.table) if self.rule and self.blocking else None,
            "fixable": self.fixable,
            "rows": self.rows,
            "bytes": self.bytes,
            "estimated_seconds": None if self.seconds is None else round(self.seconds, 3),
            "error": self.op.error,
        }


@dataclass
class FixRequest:
    """For --fix: rewrite the call at ``line`` into the online block (``batch``: rename that batch block)."""

    line: int
    batch: str | None = None


@dataclass
class LintResult:
    engine: str
    #: shadowswap's dialect for the engine
    dialect: Any = None
    files: list[MigrationFile] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: what --fix rewrites, per file
    fix_plan: dict[Path, list[FixRequest]] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]


def offline_engine(name: str) -> sa.Engine:
    """A mock engine (no connection) for ``name`` (postgresql, mysql, mariadb, sqlite) at a recent version."""
    urls = {
        "postgresql": "postgresql+psycopg://",
        "mysql": "mysql+pymysql://",
        "mariadb": "mariadb+pymysql://",
        "sqlite": "sqlite://",
    }
    if name not in urls:
        raise UsageError(f"unknown dialect {name!r}", hint="--dialect postgresql, mysql, mariadb or sqlite")
    engine = sa.create_mock_engine(sa.make_url(urls[name]), lambda *a, **k: None)
    engine.dialect.server_version_info = ASSUMED_VERSIONS[name]
    return engine  # type: ignore[return-value]


class _Sizes:
    """Live rows, bytes and columns of the tables the migrations touch (with --db)."""

    def __init__(self, engine: sa.Engine | None, dialect: Any) -> None:
        self.engine = engine
        self.dialect = dialect
        self.cache: dict[str, tuple[int | None, int | None, dict[str, dict[str, Any]] | None]] = {}

    def get(self, table: str) -> tuple[int | None, int | None, dict[str, dict[str, Any]] | None]:
        if self.engine is None:
            return None, None, None
        if table not in self.cache:
            self.cache[table] = self._read(table)
        return self.cache[table]

    def columns(self, table: str) -> dict[str, dict[str, Any]] | None:
        return self.get(table)[2]

    def _read(self, table: str) -> tuple[int | None, int | None, dict[str, dict[str, Any]] | None]:
        assert self.engine is not None
        with self.engine.connect() as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table(table):
                return None, None, None
            columns = {c["name"]: dict(c) for c in inspector.get_columns(table)}
            rows = self.dialect.estimated_rows(conn, table)
            size = _table_bytes(conn, self.dialect, table)
        return rows, size, columns


def _table_bytes(conn: sa.Connection, dialect: Any, table: str) -> int | None:
    name = conn.dialect.name
    try:
        if name == "postgresql":
            value = conn.execute(
                sa.text("SELECT pg_total_relation_size(to_regclass(:t))"), {"t": dialect.q(table)}
            ).scalar()
        elif name in ("mysql", "mariadb"):
            value = conn.execute(
                sa.text(
                    "SELECT data_length + index_length FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name = :t"
                ),
                {"t": table},
            ).scalar()
        else:
            value = conn.execute(sa.text("SELECT sum(pgsize) FROM dbstat WHERE name = :t"), {"t": table}).scalar()
    except sa.exc.DBAPIError:  # SQLite without the dbstat table: rows only
        conn.rollback()
        return None
    return None if value is None else int(value)


def mappable(op: LintOp, env: Env) -> bool:
    """Whether op.online_alter_table takes this call as it is (its batch recorder maps it)."""
    from shadowswap.alembic.batch import OnlineBatchOperations

    if op.table is None or op.error:
        return False
    batch = OnlineBatchOperations(op.table, env.dialect.sa_dialect)
    if op.batch is not None:
        # the call as the batch block made it: the online block takes the same arguments
        name, args = (op.args[0], op.args[1:]) if op.name == "batch_rebuild" else (op.name, op.args)
        getattr(batch, name)(*args, **op.kwargs)
        return not batch.recorded.refused and bool(batch.recorded.calls)
    alter = op.operation
    if op.name == "alter_column":
        kw: dict[str, Any] = {}
        for attr, name in (
            ("modify_type", "type_"),
            ("modify_nullable", "nullable"),
            ("modify_name", "new_column_name"),
        ):
            if getattr(alter, attr, None) is not None:
                kw[name] = getattr(alter, attr)
        if getattr(alter, "modify_server_default", False) is not False:
            kw["server_default"] = alter.modify_server_default  # type: ignore[union-attr]
        if getattr(alter, "modify_comment", False) is not False:
            kw["comment"] = alter.modify_comment  # type: ignore[union-attr]
        kw.update(getattr(alter, "kw", None) or {})
        batch.alter_column(alter.column_name, **kw)  # type: ignore[union-attr]
    elif op.name == "add_column":
        batch.add_column(alter.column)  # type: ignore[union-attr]
    elif op.name == "drop_column":
        batch.drop_column(alter.column_name)  # type: ignore[union-attr]
    elif op.name == "create_index":
        columns = [c if isinstance(c, str) else getattr(c, "name", c) for c in alter.columns]  # type: ignore[union-attr]
        kw = dict(alter.kw or {})  # type: ignore[union-attr]
        if alter.unique:  # type: ignore[union-attr]
            kw["unique"] = True
        batch.create_index(alter.index_name, columns, **kw)  # type: ignore[union-attr]
    elif op.name == "create_unique_constraint":
        batch.create_unique_constraint(alter.constraint_name, list(alter.columns))  # type: ignore[union-attr]
    else:
        return False
    return not batch.recorded.refused


def lint(
    target: Path,
    dialect_name: str | None = None,
    engine: sa.Engine | None = None,
    functions: tuple[str, ...] = ("upgrade",),
) -> LintResult:
    """Lint the migration file or directory ``target`` for the engine of ``engine`` (live sizes) or ``dialect_name``."""
    from shadowswap.dialects import for_engine

    ss_dialect = for_engine(engine if engine is not None else offline_engine(dialect_name or "postgresql"))
    sa_dialect = ss_dialect.sa_dialect
    family = {"mariadb": "mysql"}.get(sa_dialect.name, sa_dialect.name)
    sizes = _Sizes(engine, ss_dialect)
    env = Env(engine=family, dialect=ss_dialect, columns=sizes.columns)
    result = LintResult(engine=family, dialect=ss_dialect)
    recorded = [record_file(path, sa_dialect, function) for path in migration_files(target) for function in functions]
    for migration in sorted(recorded, key=_history_order(recorded)):
        result.files.append(migration)
        for op in migration.operations:
            result.findings.append(_judge(op, env, sizes))
    result.fix_plan = _plan_fixes(result, env)
    planned = {(path, r.line) for path, requests in result.fix_plan.items() for r in requests}
    for f in result.findings:
        # a flagged call --fix cannot move (not at the start of its migration) is the author's to move
        f.fixable = f.fixable and (f.op.path, f.op.line) in planned
    return result


def _plan_fixes(result: LintResult, env: Env) -> dict[Path, list[FixRequest]]:
    """Which calls --fix moves into an online block: per function, the leading run of calls on one table
    that the block takes (flagged or not), when it holds a flagged one. An online block must come first
    in its migration (runner.py refuses it after uncommitted statements), so one block per function."""
    finding_of = {id(f.op): f for f in result.findings}
    requests: dict[Path, list[FixRequest]] = {}
    for migration in result.files:
        ops = migration.operations
        if not ops or ops[0].error or ops[0].online or ops[0].line is None:
            continue
        first = ops[0]
        run = []
        for op in ops:
            if op.batch != first.batch or op.table != first.table or op.line is None:
                break
            run.append(op)
        if first.batch is not None and len(run) < len([o for o in ops if o.batch == first.batch]):
            continue  # the batch block holds calls on other tables, or calls made elsewhere
        if not all(mappable(op, env) for op in run):
            if first.batch is not None:
                continue  # a batch block is renamed whole or not at all
            # the leading calls the block would not take stay where they are
            run = run[: next(i for i, op in enumerate(run) if not mappable(op, env))]
        if not any(finding_of[id(op)].blocking and finding_of[id(op)].fixable for op in run):
            continue
        found = requests.setdefault(migration.path, [])
        if first.batch is not None:
            found.extend(FixRequest(line=op.line, batch=first.batch) for op in run if op.line is not None)
        else:
            found.extend(FixRequest(line=op.line) for op in run if op.line is not None)
    return requests


def _history_order(files: list[MigrationFile]) -> Any:
    """Migrations in the order alembic applies them (down_revision chains), then by file name."""
    by_revision = {f.revision: f for f in files if f.revision}
    depth: dict[str, int] = {}

    def depth_of(revision: str, seen: frozenset[str] = frozenset()) -> int:
        if revision not in depth:
            migration = by_revision.get(revision)
            downs = [d for d in (migration.down_revision if migration else ()) if d in by_revision and d not in seen]
            depth[revision] = 1 + max((depth_of(d, seen | {revision}) for d in downs), default=-1)
        return depth[revision]

    position = {id(f): i for i, f in enumerate(files)}  # upgrade() before downgrade() of one file
    return lambda f: (depth_of(f.revision) if f.revision else 0, str(f.path), position[id(f)])


def _judge(op: LintOp, env: Env, sizes: _Sizes) -> Finding:
    if op.error is not None:
        return Finding(op, env.engine, blocking=True, reason=f"could not be run offline: {op.error}")
    if op.online and not any(not b.online for b in op.before):
        return Finding(op, env.engine, blocking=False, reason="online: shadowswap copies the table while writes go on")
    if op.table and any(b.name == "create_table" and b.table == op.table for b in op.before):
        return Finding(op, env.engine, blocking=False, reason=f"{op.table} is created by this migration: no writes yet")
    for rule in rules_for(env.engine, op.name):
        why = rule.check(op, env)
        if why is None:
            continue
        finding = Finding(op, env.engine, blocking=True, rule=rule, reason=f"{rule.blocks} ({why})")
        if op.table and rule.id != "online-block-not-first":
            finding.rows, finding.bytes, _ = sizes.get(op.table)
            if finding.rows is not None:
                finding.seconds = finding.rows * SECONDS_PER_ROW[env.engine]
        finding.fixable = rule.fixable and mappable(op, env)
        return finding
    return Finding(op, env.engine, blocking=False, reason=_why_not(op, env))


def _why_not(op: LintOp, env: Env) -> str:
    """Why an unflagged operation does not block: the planner's own reason where it has one."""
    from shadowswap.strategy import ChangeFacts

    kinds = {"drop_column": "drop", "drop_index": "drop_index"}
    if op.name in kinds:
        in_place, why = env.dialect.instant_reason(ChangeFacts(kind=kinds[op.name], description=""))
        if in_place:
            return why
    if op.name == "add_column":
        return "the column is added without rewriting the rows"
    if op.name == "create_table":
        return "a new table: no one writes to it yet"
    if op.name == "create_index" and env.engine == "mysql":
        return "InnoDB builds it in place with LOCK=NONE: writes go on"
    if op.name == "create_index":
        return "built CONCURRENTLY"
    return "no rule flags it"
