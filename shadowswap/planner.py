"""Reads the live table and decides everything ``execute`` will do; writes nothing to the database.

The planner only reads (SQLAlchemy Inspector plus read-only probes); the executor only writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shadowswap import checks, strategy
from shadowswap.changes import (
    AddColumn,
    AddIndex,
    AlterColumn,
    Change,
    ChangeSet,
    ConvertCharset,
    DropColumn,
    DropIndex,
    Rebuild,
    RenameColumn,
    TableOption,
)
from shadowswap.dialects import Dialect
from shadowswap.dialects.base import LOG_SEQUENCE
from shadowswap.errors import UsageError
from shadowswap.plan import (
    CHANGE_LOG,
    DUAL_WRITE,
    Capture,
    CaptureMode,
    ChangePlan,
    ColumnPlan,
    ConstraintAfterCopy,
    IndexPlan,
    Plan,
    WayBack,
)
from shadowswap.sqlguard import one_expression
from shadowswap.state import STATE_TABLE
from shadowswap.strategy import ChangeFacts, ColumnTypeSQL, Decision

LiteralType = ColumnTypeSQL


@dataclass
class Reflection:
    """The original table as the Inspector sees it; its fingerprint detects a stale plan."""

    table: str
    columns: list[dict[str, Any]]
    primary_key: dict[str, Any]
    unique_constraints: list[dict[str, Any]]
    indexes: list[dict[str, Any]]
    check_constraints: list[dict[str, Any]]
    foreign_keys: list[dict[str, Any]]
    referenced_by: list[str] = field(default_factory=list)
    #: the table options the new table is created with (``Dialect.shadow_table_options``), minus
    #: MySQL's AUTO_INCREMENT counter, which every insert moves
    options: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.columns if c["name"] == name), None)

    def row_key(self) -> tuple[list[str], bool]:
        """The columns the copy, triggers, replay and verification track rows by, and whether they
        are the primary key. Without one, a unique constraint over NOT NULL columns identifies each
        row just as well (the narrowest, then by name); the new table gets no primary key either."""
        pk = list(self.primary_key.get("constrained_columns") or [])
        if pk:
            return pk, True
        not_null = {c["name"] for c in self.columns if not c["nullable"] and not c.get("computed")}
        candidates = sorted(
            (len(u["column_names"]), str(u.get("name")), list(u["column_names"]))
            for u in self.unique_constraints
            if u.get("column_names") and all(c in not_null for c in u["column_names"])
        )
        return (candidates[0][2], False) if candidates else ([], False)

    def fingerprint(self) -> str:
        doc = {
            "columns": [[c["name"], str(c["type"]), bool(c["nullable"]), str(c.get("default"))] for c in self.columns],
            "pk": self.primary_key.get("constrained_columns"),
            "unique": sorted([str(u.get("name")), u["column_names"]] for u in self.unique_constraints),
            "indexes": sorted(
                [str(i.get("name")), [str(c) for c in i["column_names"]], bool(i.get("unique"))] for i in self.indexes
            ),
            "checks": sorted([str(c.get("name")), str(c.get("sqltext"))] for c in self.check_constraints),
        }
        if self.options:
            # ENGINE/ROW_FORMAT/COMMENT/charset, reloptions/tablespace/UNLOGGED: read at plan time and
            # written on the new table, so one changed since would be undone by the swap (invariant 1).
            # Only when present, so a fingerprint of a table without options is the one it always was.
            doc["options"] = sorted([k, str(v)] for k, v in self.options.items())
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def reflect(conn: Connection, table: str) -> Reflection:
    inspector = sa.inspect(conn)
    if not inspector.has_table(table):
        names = [n for n in inspector.get_table_names() if n != STATE_TABLE]
        close = [n for n in names if n.lower() == table.lower() or table.lower() in n.lower()]
        hint = f"did you mean {', '.join(close[:3])}?" if close else "check the table name and the database URL"
        if "." in table and not close:
            # a qualified name is read as one identifier: shadowswap works in the URL's default schema
            schema = table.split(".", 1)[0]
            hint = (
                f"{table!r} is taken as one table name, dots included; shadowswap changes tables in the "
                f"connection's default schema: put {schema!r} in the URL (PostgreSQL: "
                f"?options=-csearch_path%3D{schema}; MySQL: the database name) and give the bare table name"
            )
        raise UsageError(f"table {table!r} does not exist", hint=hint)
    uniques = inspector.get_unique_constraints(table)
    # MySQL reports a unique key both as a constraint and as an index; the shadow gets it once
    backing = {u.get("duplicates_index") for u in uniques} - {None}
    indexes = [
        ix
        for ix in inspector.get_indexes(table)
        if not ix.get("duplicates_constraint") and not (ix.get("unique") and ix.get("name") in backing)
    ]
    referenced_by = []
    for other in inspector.get_table_names():
        if other == table:
            continue
        for fk in inspector.get_foreign_keys(other):
            if fk.get("referred_table") == table:
                referenced_by.append(other)
    try:
        checks = inspector.get_check_constraints(table)
    except NotImplementedError:
        checks = []
    from shadowswap.dialects import for_engine

    options = for_engine(conn.engine).shadow_table_options(conn, table)
    options.pop("mysql_auto_increment", None)
    return Reflection(
        table=table,
        columns=[dict(c) for c in inspector.get_columns(table)],
        primary_key=dict(inspector.get_pk_constraint(table)),
        unique_constraints=[dict(u) for u in uniques],
        indexes=[dict(i) for i in indexes],
        check_constraints=[dict(c) for c in checks],
        foreign_keys=[dict(f) for f in inspector.get_foreign_keys(table)],
        referenced_by=referenced_by,
        options=options,
    )


def _type_sql(dialect: Dialect, type_: sa.types.TypeEngine[Any]) -> str:
    return type_.compile(dialect=dialect.sa_dialect)


def build_plan(
    engine: Engine,
    dialect: Dialect,
    table: str,
    changes: Sequence[Change] | ChangeSet,
    usings: dict[str, str] | None = None,
    *,
    strategy_name: str = "auto",
    check_casts: bool = False,
    order_by: str | None = None,
    transform: str | None = None,
    check_transform: bool = False,
    reverse_usings: dict[str, str] | None = None,
) -> Plan:
    if isinstance(changes, ChangeSet):
        usings = {**changes.usings, **(usings or {})}
        changes = changes.changes
    if order_by is not None and transform is not None:
        # the ordered copy is one server-side INSERT … SELECT … ORDER BY; a transform's rows pass
        # through Python chunk by chunk in key order, so the two cannot be the same copy
        raise UsageError(
            "--order-by and --transform cannot be combined: the ordered copy runs in the server, a transform in Python",
            hint="run the transform first, then a second migration with --rebuild --order-by",
        )
    if order_by is not None and not any(isinstance(ch, Rebuild) for ch in changes):
        # an ordered copy is a rebuild (CLUSTER, pg_repack --order-by), whatever else the plan changes
        changes = [*changes, Rebuild()]
    changes, usings = guard_fragments(list(changes), dict(usings or {}), dialect.sqlglot_dialect)
    with engine.connect() as conn:
        # Planning reads only; the user's fragments run in the checks below, so the whole transaction
        # is read-only and rolled back (a fragment that slipped past the parse still changes nothing).
        dialect.begin_read_only(conn)
        try:
            ref = reflect(conn, table)
            plan = _plan_from_reflection(
                conn, dialect, ref, list(changes), usings, strategy_name, order_by=order_by, transform=transform
            )
            plan.way_back = _way_back(dialect, plan, reverse_usings or {})
        finally:
            conn.rollback()
            dialect.end_read_only(conn)
    if check_casts:
        from shadowswap.castcheck import check_casts as run_check

        plan.cast_check = run_check(engine, dialect, plan)
        if plan.cast_check.rows_changed:
            _flag_changed_values(plan)
    if check_transform:
        if plan.transform is None:
            raise UsageError("--check-transform needs --transform MODULE:FUNCTION")
        from shadowswap.transform import check_rows

        plan.transform.check = check_rows(engine, dialect, plan)
    plan.verdict = verdict(plan)
    return plan


def _way_back(dialect: Dialect, plan: Plan, reverse_usings: dict[str, str]) -> WayBack:
    """How ``revert`` undoes the swap (shadowswap/revert.py); ``--reverse-using`` fragments guarded
    like ``--using`` and qualified over the new table's columns."""
    from shadowswap.revert import way_back

    read = dialect.sqlglot_dialect
    new_columns = [c.name for c in [*plan.columns, *plan.default_columns]]
    guarded = {
        name: f"({qualify(one_expression(expr, read, f'--reverse-using expression for {name}'), new_columns, read)})"
        for name, expr in reverse_usings.items()
    }
    return way_back(dialect, plan, guarded)


def guard_fragments(
    changes: list[Change], usings: dict[str, str], read: str | None
) -> tuple[list[Change], dict[str, str]]:
    """Every user SQL fragment (``--using``, defaults) proven one expression in the engine's dialect
    and replaced by its rendering from the parse tree (see ``sqlguard``), before any connection."""
    out: list[Change] = []
    for ch in changes:
        if isinstance(ch, AlterColumn | AddColumn) and ch.default is not None:
            ch = replace(ch, default=one_expression(ch.default, read, f"default for {ch.column}"))
        if isinstance(ch, AlterColumn | AddColumn) and ch.generated:
            ch = replace(ch, generated=one_expression(ch.generated, read, f"generated expression of {ch.column}"))
        out.append(ch)
    guarded = {name: one_expression(expr, read, f"--using expression for {name}") for name, expr in usings.items()}
    return out, guarded


def verdict(plan: Plan) -> str:
    if plan.cast_check is not None and plan.cast_check.rows_failing:
        return "blocked"
    if plan.transform is not None and plan.transform.check is not None and plan.transform.check.rows_failing:
        return "blocked"
    return "destructive" if plan.destructive else "safe"


def _flag_changed_values(plan: Plan) -> None:
    """Values the cast check saw change make the change that converts them destructive."""
    assert plan.cast_check is not None
    source = {c.name: c.source_column for c in plan.columns}
    for check in plan.cast_check.columns:
        if not check.rows_changed:
            continue
        why = f"{check.rows_changed} existing value(s) of {check.column} change in the new type"
        for change in plan.change_plans:
            if (change.kind, change.column) in (("alter", source.get(check.column)), ("add", check.column)):
                change.destructive = f"{change.destructive}; {why}" if change.destructive else why


# -- resolving the changes against the live table ----------------------------------------------


@dataclass
class Target:
    """A column of the new table and where its values come from."""

    name: str
    source: str | None
    reflected: dict[str, Any] | None
    type_sql: str | None = None
    nullable: bool = True
    default: str | None = None
    default_changed: bool = False
    using: str | None = None
    alter: AlterColumn | None = None
    add: AddColumn | None = None
    #: None: the column's own (reflected) comment; "" none
    comment: str | None = None
    #: a generated column's expression and STORED-ness, as the new table declares it (None: not generated)
    generated: str | None = None
    stored: bool | None = None


@dataclass
class Resolved:
    targets: list[Target]
    drops: list[str]
    renames: dict[str, str]
    new_indexes: list[AddIndex]
    dropped_indexes: list[str]
    #: source column → target name, for every kept column
    target_name: dict[str, str]
    recomputed: list[str]
    hidden_indexes: dict[str, str] = field(default_factory=dict)
    #: table-level options the new table sets (value) or resets (None), in the order given
    table_options: list[TableOption] = field(default_factory=list)
    #: what MySQL's CONVERT TO changes of the table (its default character set and collation), as
    #: SQLAlchemy table keywords
    convert_options: dict[str, str] = field(default_factory=dict)
    #: columns CONVERT TO CHARACTER SET converts (they keep their own CHECK, as the engine keeps it)
    converted: list[str] = field(default_factory=list)


def resolve(
    ref: Reflection,
    changes: list[Change],
    usings: dict[str, str],
    hidden_indexes: dict[str, str] | None = None,
    *,
    engine: str = "",
) -> Resolved:
    """Check every change against the table as it is, and produce the target columns in order.

    ``hidden_indexes`` are indexes the Inspector does not report (SQLite's expression indexes), by
    name and definition: they too must not lean on a dropped column, nor share a new index's name.
    The refusals are the checks of the stages "changes" and "table" (``shadowswap/checks.py``);
    what follows them may take every name it meets to exist and to be used once.
    """
    hidden_indexes = hidden_indexes or {}
    ctx = checks.Context(ref=ref, changes=changes, usings=usings, hidden_indexes=hidden_indexes, engine=engine)
    checks.run("changes", ctx)
    checks.run("table", ctx)
    original, pk = ctx.original, ctx.pk
    renames, drops, adds = ctx.renames, ctx.drops, ctx.adds
    new_to_old = {new: old for old, new in renames.items()}

    def source_of(name: str) -> str:
        """An original column named by its current or its new name."""
        return name if name in original else new_to_old[name]

    alters = {source_of(ch.column): ch for ch in changes if isinstance(ch, AlterColumn)}
    using_by_target: dict[str, str] = {}
    recomputed = []
    for name, expr in usings.items():
        if name in adds:
            using_by_target[name] = expr
            continue
        source = source_of(name)
        using_by_target[renames.get(source, source)] = expr
        if source not in alters:
            recomputed.append(renames.get(source, source))

    targets: list[Target] = []
    for col in ref.columns:
        source = col["name"]
        if source in drops:
            continue
        name = renames.get(source, source)
        alter = alters.get(source)
        target = Target(
            name=name,
            source=source,
            reflected=col,
            nullable=bool(col["nullable"]),
            default=col.get("default"),
            using=using_by_target.get(name),
            alter=alter,
        )
        if alter is not None:
            target.type_sql = alter.type_sql
            if alter.nullable is not None:
                target.nullable = alter.nullable
            if alter.default is not None:
                target.default, target.default_changed = alter.default, True
            elif alter.drop_default:
                target.default, target.default_changed = None, True
            target.comment = alter.comment
        computed = col.get("computed")
        if alter is not None and alter.generated is not None:
            target.generated, target.stored = alter.generated or None, alter.stored
        elif alter is not None and alter.drop_expression:
            pass  # PostgreSQL's DROP EXPRESSION: a plain column, its values copied
        elif computed:
            # (SQLite's reflection may give "" for an expression it could not read: still generated)
            target.generated, target.stored = str(computed.get("sqltext") or ""), computed.get("persisted")
        if source in pk:
            # a key column is NOT NULL even where the engine reflects it as nullable (SQLite); making
            # it nullable is refused (check primary-key-nullable)
            target.nullable = False
        targets.append(target)
    for add in adds.values():
        targets.append(
            Target(
                name=add.column,
                source=None,
                reflected=None,
                type_sql=add.type_sql,
                nullable=add.nullable,
                default=add.default,
                default_changed=add.default is not None,
                using=using_by_target.get(add.column),
                add=add,
                comment=add.comment,
                generated=add.generated,
                stored=add.stored,
            )
        )
    targets = _place(targets, changes)
    return Resolved(
        targets=targets,
        drops=drops,
        renames=renames,
        new_indexes=[ch for ch in changes if isinstance(ch, AddIndex)],
        dropped_indexes=[ch.name for ch in changes if isinstance(ch, DropIndex)],
        target_name={t.source: t.name for t in targets if t.source is not None},
        recomputed=recomputed,
        hidden_indexes=hidden_indexes,
        table_options=[ch for ch in changes if isinstance(ch, TableOption)],
    )


def fold_column_names(
    ref: Reflection, changes: list[Change], usings: dict[str, str]
) -> tuple[list[Change], dict[str, str]]:
    """Where column names compare case-insensitively (MySQL), a change naming ``C2`` names the
    table's ``c2``: each name that is not a column of the table (or one this plan adds or renames
    to) as written is replaced by the one it matches ignoring case."""
    known = [c["name"] for c in ref.columns]
    known += [ch.new for ch in changes if isinstance(ch, RenameColumn)]
    known += [ch.column for ch in changes if isinstance(ch, AddColumn)]
    by_lower: dict[str, str] = {}
    for name in known:
        by_lower.setdefault(name.lower(), name)

    def fold(name: str) -> str:
        return name if name in known else by_lower.get(name.lower(), name)

    def fold_position(position: Any) -> Any:
        return position if position is None or position[1] is None else (position[0], fold(position[1]))

    out: list[Change] = []
    for ch in changes:
        if isinstance(ch, AlterColumn):
            folded = fold(ch.column)
            restated = ch.comment is not None and ch.generated is not None  # MODIFY/CHANGE: the whole column
            if (
                restated
                and folded != ch.column
                and not any(isinstance(c, RenameColumn) and c.old == folded for c in changes)
            ):
                # `MODIFY C2 …` also names the column C2, as the engine's ALTER does
                out.append(RenameColumn(folded, ch.column))
            ch = replace(ch, column=folded, position=fold_position(ch.position))
        elif isinstance(ch, AddColumn):
            ch = replace(ch, position=fold_position(ch.position))
        elif isinstance(ch, DropColumn):
            ch = replace(ch, column=fold(ch.column))
        elif isinstance(ch, RenameColumn):
            ch = replace(ch, old=fold(ch.old))
        elif isinstance(ch, AddIndex):
            ch = replace(ch, columns=tuple(fold(c) for c in ch.columns))
        out.append(ch)
    return out, {fold(name): expr for name, expr in usings.items()}


def _expand_convert(
    conn: Connection, dialect: Dialect, table: str, changes: list[Change]
) -> tuple[list[Change], dict[str, str], list[str]]:
    """MySQL's ``CONVERT TO CHARACTER SET``: one change per text column, as the engine converts them
    (``convert_charset``), the table options it changes, and the columns it converts."""
    converts = [ch for ch in changes if isinstance(ch, ConvertCharset)]
    if not converts:
        return changes, {}, []
    if len(converts) > 1:
        raise UsageError("CONVERT TO CHARACTER SET is given twice")
    expanded, options = dialect.convert_charset(conn, table, converts[0].charset, converts[0].collation)
    mine = {ch.column for ch in expanded}
    for ch in changes:
        named = ch.old if isinstance(ch, RenameColumn) else getattr(ch, "column", None)
        if isinstance(ch, AlterColumn | DropColumn | RenameColumn) and named in mine:
            raise UsageError(
                f"CONVERT TO CHARACTER SET converts column {named!r}, which another change also changes: "
                "give CONVERT TO in a plan of its own"
            )
    out: list[Change] = []
    for ch in changes:
        out.extend(expanded if isinstance(ch, ConvertCharset) else [ch])
    return out, options, sorted(mine)


def _copy_only(ref: Reflection, changes: list[Change]) -> dict[str, str]:
    """Changes whose column position, comment or generation the in-place path does not render:
    made by the copy (description → why)."""
    out = {}
    for ch in changes:
        if not isinstance(ch, AlterColumn | AddColumn):
            continue
        col = ref.column(ch.column) if isinstance(ch, AlterColumn) else None
        comment_changes = ch.comment is not None and ch.comment != ((col or {}).get("comment") or "")
        generated = bool(ch.generated) or (ch.generated == "" and bool((col or {}).get("computed")))
        # the in-place path (alembic's MODIFY) does not restate AUTO_INCREMENT
        auto_increment = (
            isinstance(ch, AlterColumn)
            and ch.auto_increment is not None
            and bool((col or {}).get("autoincrement") is True or ch.auto_increment)
        )
        if ch.position is not None or comment_changes or generated or auto_increment:
            out[ch.describe()] = (
                "column position, comment, AUTO_INCREMENT and generated columns are made by the shadow copy"
            )
    return out


def _place(targets: list[Target], changes: list[Change]) -> list[Target]:
    """The new table's column order: each FIRST / AFTER moves its column, in the order written, as the
    engine's ALTER does (AFTER names a column of the new table; the check column-position-unknown
    refused one it does not have)."""
    order = list(targets)
    by_change = {id(t.alter or t.add): t for t in targets if (t.alter or t.add) is not None}
    for ch in changes:
        if not isinstance(ch, AlterColumn | AddColumn) or ch.position is None:
            continue
        target = by_change[id(ch)]
        order.remove(target)
        if ch.position[0] == "first":
            order.insert(0, target)
        else:
            # AFTER names a column of the new table; positions are MySQL's, whose names ignore case
            # (`MODIFY A …, ADD … AFTER a`: the first clause renamed a to A)
            named = str(ch.position[1])
            after = next(
                (i for i, t in enumerate(order) if t.name == named),
                next(i for i, t in enumerate(order) if t.name.lower() == named.lower()),
            )
            order.insert(after + 1, target)
    return order


# -- the plan ---------------------------------------------------------------------------------


def _facts(dialect: Dialect, ref: Reflection, resolved: Resolved, changes: list[Change]) -> list[ChangeFacts]:
    read = dialect.sqlglot_dialect
    by_name = {t.name: t for t in resolved.targets}
    facts = []
    for ch in changes:
        if isinstance(ch, AlterColumn):
            target = next(t for t in resolved.targets if t.alter is ch)
            col = target.reflected or {}
            facts.append(
                ChangeFacts(
                    kind="alter",
                    description=ch.describe(),
                    column=target.source,
                    old_type=_type_sql(dialect, col["type"]),
                    new_type=ch.type_sql,
                    old_nullable=bool(col.get("nullable")),
                    new_nullable=ch.nullable,
                    default=target.default,
                    default_changed=target.default_changed,
                    default_is_constant=strategy.is_constant(target.default, read),
                    has_using=target.using is not None,
                    settings=tuple(column_settings(dialect, ref.table, target.source or "", ch, identity=True)),
                )
            )
        elif isinstance(ch, AddColumn):
            target = by_name[ch.column]
            facts.append(
                ChangeFacts(
                    kind="add",
                    description=ch.describe(),
                    column=ch.column,
                    new_type=ch.type_sql,
                    new_nullable=ch.nullable,
                    default=ch.default,
                    default_changed=ch.default is not None,
                    default_is_constant=strategy.is_constant(ch.default, read),
                    has_using=target.using is not None,
                    generated=None if ch.generated is None else ("stored" if ch.stored else "virtual"),
                    identity=ch.identity,
                )
            )
        elif isinstance(ch, DropColumn | RenameColumn):
            column = ch.column if isinstance(ch, DropColumn) else ch.old
            computed = (ref.column(column) or {}).get("computed")
            generated = None if not computed else "stored" if computed.get("persisted", True) else "virtual"
            facts.append(ChangeFacts(kind=ch.kind, description=ch.describe(), column=column, generated=generated))
        elif isinstance(ch, DropIndex):
            unique = any(u.get("name") == ch.name for u in ref.unique_constraints)
            facts.append(ChangeFacts(kind="drop_index", description=ch.describe(), column=ch.name, unique=unique))
        elif isinstance(ch, AddIndex):
            facts.append(ChangeFacts(kind=ch.kind, description=ch.describe(), unique=ch.unique))
        elif isinstance(ch, Rebuild | TableOption):
            facts.append(ChangeFacts(kind=ch.kind, description=ch.describe(), column=getattr(ch, "name", None)))
    for name in resolved.recomputed:
        target = by_name[name]
        facts.append(
            ChangeFacts(
                kind="using",
                description=f"recompute {name} as {target.using}",
                column=target.source,
                has_using=True,
            )
        )
    return facts


def fold_names(ref: Reflection, changes: list[Change], usings: dict[str, str]) -> tuple[list[Change], dict[str, str]]:
    """Column names as the table spells them, where the engine compares them case-insensitively
    (SQLite: ``--alter QTY:bigint`` is column qty, ``--add QTY:int`` clashes with it)."""
    spelled = {c["name"].lower(): c["name"] for c in ref.columns}

    def fold(name: str) -> str:
        return name if name in spelled.values() else spelled.get(name.lower(), name)

    out: list[Change] = []
    for ch in changes:
        if isinstance(ch, AlterColumn | AddColumn | DropColumn):
            ch = replace(ch, column=fold(ch.column))
        elif isinstance(ch, RenameColumn):
            old = fold(ch.old)
            # a rename that changes only the case of the name is the engine's to make, not a clash
            ch = replace(ch, old=old, new=ch.new if ch.new.lower() == old.lower() else fold(ch.new))
        elif isinstance(ch, AddIndex):
            ch = replace(ch, columns=tuple(fold(c) for c in ch.columns))
        out.append(ch)
    return out, {fold(name): expr for name, expr in usings.items()}


def _destructive(dialect: Dialect, fact: ChangeFacts) -> str | None:
    if fact.kind == "drop" and fact.generated is None:
        # a generated column's values are computed from the others: dropping it loses nothing
        return f"drops column {fact.column} and its data"
    if fact.kind == "drop_index":
        return f"drops {'unique constraint' if fact.unique else 'index'} {fact.column}"
    if fact.kind == "alter" and fact.new_type is not None and fact.column is not None:
        return dialect.narrowing_reason(fact.column, fact.old_type, fact.new_type)
    return None


def _table_level_reason(fact: ChangeFacts) -> tuple[bool, str] | None:
    """A rebuild or a table option is made by the copy: the new table is created with the option,
    as the engine's own ALTER rewrites the table for it (None: not a table-level change)."""
    if fact.kind == "rebuild":
        return False, "a rebuild is the copy itself: every row rewritten into fresh pages, online"
    if fact.kind == "table_option":
        return False, "the new table is created with the option and filled by the copy"
    return None


def _plan_from_reflection(
    conn: Connection,
    dialect: Dialect,
    ref: Reflection,
    changes: list[Change],
    usings: dict[str, str],
    strategy_name: str = "auto",
    order_by: str | None = None,
    transform: str | None = None,
) -> Plan:
    table = ref.table
    if transform is not None and strategy_name == strategy.INSTANT:
        raise UsageError(
            "--transform computes columns in Python, so the rows are copied: --strategy instant cannot run it",
            hint="drop --strategy instant (auto copies)",
        )
    changes, convert_options, converted = _expand_convert(conn, dialect, table, changes)
    if dialect.column_names_fold_case:
        changes, usings = fold_column_names(ref, changes, usings)
    elif dialect.name == "sqlite":
        changes, usings = fold_names(ref, changes, usings)
    resolved = resolve(ref, changes, usings, dialect.unreflected_indexes(conn, table), engine=dialect.name)
    resolved.convert_options, resolved.converted = convert_options, converted
    checks.run(
        "database",
        checks.Context(
            ref=ref,
            changes=changes,
            engine=dialect.name,
            conn=conn,
            dialect=dialect,
            resolved=resolved,
            order_by=order_by,
        ),
    )

    facts = _facts(dialect, ref, resolved, changes)
    by_copy = _copy_only(ref, changes)
    decisions = []
    for fact in facts:
        in_place = dialect.table_option_in_place(fact.column) if fact.kind == "table_option" else None
        instant, reason = (True, in_place) if in_place else _table_level_reason(fact) or dialect.instant_reason(fact)
        if instant and fact.description in by_copy:
            instant, reason = False, by_copy[fact.description]
        if instant and convert_options:
            instant, reason = False, "CONVERT TO CHARACTER SET changes the table's default too: made by the shadow copy"
        decisions.append(Decision(fact, instant, reason, _destructive(dialect, fact)))
    chosen, why = strategy.choose(decisions, strategy.SHADOW if transform is not None else strategy_name)
    if transform is not None and strategy_name != strategy.SHADOW:
        why = "--transform computes columns in Python, so the rows are copied"
    change_plans = []
    for d in decisions:
        reason = d.reason
        if chosen == strategy.SHADOW and d.instant:
            reason = f"in place on its own ({d.reason}), but made by the copy with the other changes"
        if chosen == strategy.SHADOW and strategy_name == strategy.SHADOW:
            reason = "forced by --strategy shadow" + (f" (in place would do: {d.reason})" if d.instant else "")
        change_plans.append(
            ChangePlan(d.facts.kind, d.facts.description, chosen, reason, d.destructive, column=d.facts.column)
        )

    column_plans, default_columns = _column_plans(dialect, resolved, [c["name"] for c in ref.columns])
    transform_plan = None
    if transform is not None:
        from shadowswap.transform import plan_transform

        transform_plan, column_plans, default_columns = plan_transform(
            conn,
            dialect,
            transform,
            table,
            [c["name"] for c in ref.columns],
            ref.row_key()[0],
            column_plans,
            default_columns,
        )
    common: dict[str, Any] = {
        "dialect": dialect.name,
        "table": table,
        "shadow_table": dialect.shadow_name(table),
        "old_table": dialect.old_name(table),
        "primary_key": ref.row_key()[0],
        "source_columns": [c["name"] for c in ref.columns],
        "columns": column_plans,
        "default_columns": default_columns,
        "fingerprint": ref.fingerprint(),
        "changes": [f.description for f in facts],
        "strategy": chosen,
        "strategy_reason": why,
        "change_plans": change_plans,
        "transform": transform_plan,
    }
    if chosen == strategy.INSTANT:
        plan = Plan(
            **common,
            estimated_rows=dialect.estimated_rows(conn, table),
            shadow_ddl=[],
            indexes=[],
            trigger_names=[],
            trigger_ddl=[],
            drop_trigger_ddl=[],
            swap_sql=[],
            post_swap_sql=[],
        )
        # table options made in place (PostgreSQL's storage parameters, MariaDB's COMMENT and
        # AUTO_INCREMENT): the engine's own statements, folded with the rest where the engine folds
        plan.instant_sql = strategy.render_instant_sql(
            dialect,
            _instant_ops(dialect, ref, resolved),
            dialect.table_option_in_place_sql(table, resolved.table_options),
        )
        # after alembic's: a type change resets storage and compression to the new type's defaults
        for t in resolved.targets:
            if t.alter is not None and t.source is not None:
                plan.instant_sql += column_settings(dialect, table, t.source, t.alter, identity=True)
        plan.notes = dialect.instant_plan_notes()
        return plan
    plan = _shadow_plan(conn, dialect, ref, resolved, common, order_by)
    if order_by is not None:
        plan.notes.append(
            f"--order-by {order_by}: the copy is one INSERT … SELECT … ORDER BY {', '.join(plan.order_by)} "
            "(as CLUSTER and pg_repack: not chunked, resumed from the start); rows written during the copy "
            "land where the engine puts them"
        )
    return plan


def qualify(expr: str, columns: Sequence[str], read: str | None) -> str:
    """``price * 2`` → ``src.price * 2``: the expression means the same wherever the original row is joined
    (verification may join it with the shadow, which has columns of the same names). Left as written
    when nothing needs qualifying or sqlglot cannot read it (the database validates it either way)."""
    import sqlglot
    from sqlglot import exp

    try:
        node = sqlglot.parse_one(expr, read=read)
    except sqlglot.errors.SqlglotError:
        return expr
    names = set(columns)
    bare = [c for c in node.find_all(exp.Column) if not c.table and c.name in names]
    if not bare:
        return expr
    for column in bare:
        column.set("table", exp.to_identifier("src"))
    return str(node.sql(dialect=read))


def _column_plans(
    dialect: Dialect, resolved: Resolved, source_columns: Sequence[str]
) -> tuple[list[ColumnPlan], list[ColumnPlan]]:
    """The copy's columns (each with its expression over ``src``), and the columns left to their default."""
    copied, defaulted = [], []
    for t in resolved.targets:
        col = t.reflected
        new_type = (t.type_sql or _type_sql(dialect, col["type"])) if col is not None else t.type_sql
        assert new_type is not None
        if t.generated is not None:
            # A generated column is the engine's to compute from the copied ones, as its blocking
            # ALTER does: never written by the copy, the triggers or the replay, nor checksummed
            # (an added or changed one too: the shadow declares it with its new expression).
            defaulted.append(
                ColumnPlan(
                    name=t.name,
                    old_type=_type_sql(dialect, col["type"]) if col is not None else None,
                    new_type=new_type,
                    old_nullable=bool(col["nullable"]) if col is not None else None,
                    new_nullable=t.nullable,
                    expression=f"GENERATED ALWAYS AS ({t.generated})",
                    changed=t.alter is not None or t.add is not None,
                    source_column=t.source,
                )
            )
            continue
        if t.using is not None:
            expression = f"({qualify(t.using, source_columns, dialect.sqlglot_dialect)})"
            if t.type_sql is not None:
                expression = dialect.cast_sql(expression, t.type_sql)
        elif t.source is None:
            # an added column: its server default (NULL without one) fills the old rows and new ones
            defaulted.append(
                ColumnPlan(
                    name=t.name,
                    old_type=None,
                    new_type=new_type,
                    old_nullable=None,
                    new_nullable=t.nullable,
                    expression=f"DEFAULT {t.default}" if t.default is not None else "NULL",
                    changed=True,
                    source_column=None,
                )
            )
            continue
        elif t.type_sql is not None:
            expression = dialect.cast_expression(t.source, t.type_sql)
        else:
            expression = dialect.column_reference(t.source)
        copied.append(
            ColumnPlan(
                name=t.name,
                old_type=_type_sql(dialect, col["type"]) if col is not None else None,
                new_type=new_type,
                old_nullable=bool(col["nullable"]) if col is not None else None,
                new_nullable=t.nullable,
                expression=expression,
                changed=t.alter is not None or t.using is not None or t.source is None or t.name != t.source,
                source_column=t.source,
            )
        )
    return copied, defaulted


def _instant_ops(dialect: Dialect, ref: Reflection, resolved: Resolved) -> strategy.InstantOps:
    uniques = {u.get("name") for u in ref.unique_constraints}

    def existing(col: dict[str, Any]) -> dict[str, Any]:
        default = col.get("default")
        return {
            "existing_type": col["type"],
            "existing_nullable": bool(col["nullable"]),
            "existing_server_default": sa.text(default) if default is not None else None,
            "existing_comment": col.get("comment"),
        }

    alters = []
    for t in resolved.targets:
        if t.alter is None or t.reflected is None:
            continue
        kwargs: dict[str, Any] = {"column_name": t.source, **existing(t.reflected)}
        if t.alter.type_sql is not None:
            kwargs["type_"] = ColumnTypeSQL(t.alter.type_sql)
        if t.alter.nullable is not None and t.alter.nullable != bool(t.reflected["nullable"]):
            kwargs["nullable"] = t.alter.nullable
        if t.default_changed:
            kwargs["server_default"] = sa.text(t.default) if t.default is not None else None
        alters.append(kwargs)
    renames = []
    for old, new in resolved.renames.items():
        col = ref.column(old)
        assert col is not None
        renames.append((old, new, existing(col)))
    adds = [
        sa.Column(
            t.name,
            ColumnTypeSQL(t.type_sql or ""),
            *_generated(t.add),
            nullable=t.nullable,
            server_default=sa.text(t.default) if t.default is not None else None,
        )
        for t in resolved.targets
        if t.source is None
    ]
    return strategy.InstantOps(
        table=ref.table,
        drop_indexes=[(name, name in uniques) for name in resolved.dropped_indexes],
        alters=alters,
        # generated columns first: dropping the column one is computed from before it fails (PostgreSQL
        # runs one ALTER per drop, and its generated columns cannot reference each other)
        drops=sorted(resolved.drops, key=lambda c: not (ref.column(c) or {}).get("computed")),
        renames=renames,
        adds=adds,
    )


def _generated(add: AddColumn | None) -> list[sa.Computed]:
    if add is None or add.generated is None:
        return []
    return [sa.Computed(sa.text(add.generated), persisted=add.stored)]


def column_settings(dialect: Dialect, table: str, column: str, alter: AlterColumn, identity: bool = False) -> list[str]:
    """The ``ALTER TABLE ... ALTER COLUMN`` statements of an alter's PostgreSQL column settings
    (catalog only); ``identity``: its identity and DROP EXPRESSION clauses too (made in place only;
    the copy makes DROP EXPRESSION by copying the values). Values are checked words and numbers."""
    head = f"ALTER TABLE {dialect.q(table)} ALTER COLUMN {dialect.q(column)}"
    out = []
    if alter.statistics is not None:
        out.append(f"{head} SET STATISTICS {int(alter.statistics)}")
    if alter.storage is not None:
        out.append(f"{head} SET STORAGE {alter.storage.upper()}")
    if alter.compression is not None:
        out.append(f"{head} SET COMPRESSION {dialect.q(alter.compression)}")
    if identity and alter.identity is not None:
        verb, _, kind = alter.identity.partition(" ")
        if verb == "add":
            out.append(f"{head} ADD GENERATED {kind.upper()} AS IDENTITY")
        elif verb == "set":
            out.append(f"{head} SET GENERATED {kind.upper()}")
        else:
            out.append(f"{head} DROP IDENTITY" + (" IF EXISTS" if kind else ""))
    if identity and alter.drop_expression:
        out.append(f"{head} DROP EXPRESSION")
    return out


def _shadow_plan(
    conn: Connection,
    dialect: Dialect,
    ref: Reflection,
    resolved: Resolved,
    common: dict[str, Any],
    order_by: str | None = None,
) -> Plan:
    table = ref.table
    pk, is_primary = ref.row_key()
    checks.run("shadow", checks.Context(ref=ref, engine=dialect.name, conn=conn, dialect=dialect, resolved=resolved))
    shadow = dialect.shadow_name(table)

    metadata = sa.MetaData()
    columns: list[sa.Column[Any]] = []
    for t in resolved.targets:
        if t.reflected is not None:
            reflected = {**t.reflected, "name": t.name}
            type_: sa.types.TypeEngine[Any] = ColumnTypeSQL(t.type_sql) if t.type_sql else t.reflected["type"]
        else:
            reflected = {"name": t.name, "type": None, "nullable": t.nullable, "default": t.default, "comment": None}
            type_ = ColumnTypeSQL(t.type_sql or "")
        if t.comment is not None:
            reflected["comment"] = t.comment or None
        if t.source in resolved.converted:
            reflected["mysql_keep_column_check"] = True
        if t.alter is not None and t.alter.auto_increment is False:
            # MODIFY without AUTO_INCREMENT drops it (adding one is refused: auto-increment-added)
            reflected["autoincrement"] = False
        computed = (t.reflected or {}).get("computed")
        if t.generated != (str(computed.get("sqltext") or "") if computed else None):
            # added, changed or no longer generated: the shadow declares what the change says
            reflected["computed"] = {"sqltext": t.generated, "persisted": t.stored} if t.generated is not None else None
        columns.append(dialect.shadow_column(reflected, type_, t.nullable, t.default))

    rename = resolved.target_name
    pk_target = [rename[c] for c in pk]
    pk_name = ref.primary_key.get("name")
    mode = _capture_mode(dialect, conn, ref, common["columns"], pk, transform=common.get("transform") is not None)
    change_log = mode == CHANGE_LOG
    layout = dialect.shadow_layout(mode)
    unique_after_copy: list[tuple[str, list[str]]] = []
    primary_after_copy: tuple[str, list[str]] | None = None
    constraint_renames: list[tuple[str, str, str]] = []
    constraints: list[sa.schema.Constraint] = []
    if pk_name and dialect.names_constraints and layout.primary_key_after_copy:
        # built by the index builds, after the copy (ShadowLayout says why where it applies)
        shadow_pk = dialect.shadow_index_name(table, pk_name)
        constraint_renames.append((dialect.old_index_name(table, pk_name), shadow_pk, pk_name))
        primary_after_copy = (shadow_pk, pk_target)
    elif pk_name and dialect.names_constraints:
        shadow_pk = dialect.shadow_index_name(table, pk_name)
        constraint_renames.append((dialect.old_index_name(table, pk_name), shadow_pk, pk_name))
        constraints.append(sa.PrimaryKeyConstraint(*pk_target, name=shadow_pk))
    elif is_primary:
        constraints.append(sa.PrimaryKeyConstraint(*pk_target))
    for uq in ref.unique_constraints:
        uq_name = uq.get("name")
        if uq_name in resolved.dropped_indexes:
            continue
        uq_columns = [rename[c] for c in uq["column_names"]]
        if change_log and uq_name and layout.unique_after_copy:
            # Built after the copy and a full replay: before that, a row the copy took late can
            # meet a stale row whose change is still in the log (see changelog.py).
            shadow_uq = dialect.shadow_index_name(table, uq_name)
            constraint_renames.append((dialect.old_index_name(table, uq_name), shadow_uq, uq_name))
            unique_after_copy.append((shadow_uq, uq_columns))
        elif uq_name and dialect.names_constraints:
            shadow_uq = dialect.shadow_index_name(table, uq_name)
            constraint_renames.append((dialect.old_index_name(table, uq_name), shadow_uq, uq_name))
            constraints.append(sa.UniqueConstraint(*uq_columns, name=shadow_uq))
        else:
            constraints.append(sa.UniqueConstraint(*uq_columns, name=uq_name))
    for check in ref.check_constraints:
        constraints.append(sa.CheckConstraint(sa.text(check["sqltext"]), name=check.get("name")))
    table_options = {**dialect.shadow_table_options(conn, table), **resolved.convert_options}
    if resolved.table_options:
        table_options = dialect.change_table_options(conn, table, table_options, resolved.table_options)
    shadow_table = sa.Table(shadow, metadata, *columns, *constraints, **table_options)
    if resolved.table_options:
        dialect.keep_column_defaults(conn, table, shadow_table, resolved.table_options)
    # compiled before the foreign keys join the table: those are added after the copy
    # (not compiled twice: SQLAlchemy memoizes a table's constraints at its first compile)
    shadow_ddl = [] if layout.foreign_keys_in_create_table else dialect.create_table_sql(shadow_table)
    capture = _capture(dialect, conn, ref, mode, shadow_table, primary_after_copy, unique_after_copy)
    log_ddl: list[str] = []
    if capture.log_table is not None:
        log_table = capture.log_table
        log = sa.Table(
            log_table,
            metadata,
            dialect.log_sequence_column(),
            *[
                sa.Column(k, dialect.log_key_type(conn, table, k, shadow_table.c[rename[k]].type), nullable=False)
                for k in pk
            ],
        )
        log_ddl += dialect.create_table_sql(log)
        if layout.index_log_keys:
            key_index = sa.Index(dialect.fit_name(f"{log_table}_key"), *[log.c[k] for k in pk])
            key_index._set_parent(log)
            log_ddl.append(dialect.compile_ddl(sa.schema.CreateIndex(key_index)))

    foreign_key_ddl: list[str] = []
    for fk in ref.foreign_keys:
        referred = sa.Table(
            fk["referred_table"],
            metadata,
            *[sa.Column(c, sa.Integer) for c in fk["referred_columns"]],
            schema=fk.get("referred_schema"),
            extend_existing=True,
        )
        constraint = sa.ForeignKeyConstraint(
            [rename[c] for c in fk["constrained_columns"]],
            [referred.c[c] for c in fk["referred_columns"]],
            name=fk.get("name"),
            **{
                k: v
                for k, v in (fk.get("options") or {}).items()
                if k in ("onupdate", "ondelete", "deferrable", "initially")
            },
        )
        shadow_table.append_constraint(constraint)
        foreign_key_ddl.extend(dialect.add_foreign_key_sql(constraint))
    if layout.foreign_keys_in_create_table:
        shadow_ddl = dialect.shadow_create_sql(conn, ref, resolved, shadow_table)
        foreign_key_ddl = []
    shadow_ddl += log_ddl  # after the shadow's own, whichever way that was made

    index_plans = [
        _index_plan(dialect, table, shadow_table, ix, rename, online=not change_log)
        for ix in ref.indexes
        if ix["name"] not in resolved.dropped_indexes
    ]
    index_plans = dialect.shadow_indexes(conn, table, shadow, index_plans, renamed=sorted(resolved.renames))
    for new in resolved.new_indexes:
        shadow_ix_name = dialect.shadow_index_name(table, new.name)
        index = sa.Index(shadow_ix_name, *[shadow_table.c[c] for c in new.columns], unique=new.unique)
        index._set_parent(shadow_table)  # bind to the shadow without adding it to CreateTable
        index_plans.append(
            IndexPlan(
                shadow_name=shadow_ix_name,
                final_name=new.name,
                old_name=dialect.old_index_name(table, new.name),
                create_sql=dialect.create_index_sql(index, online=not change_log),
                unique=new.unique,
                new=True,
                columns=list(new.columns),
            )
        )

    settings = [(t.name, t.alter) for t in resolved.targets if t.alter is not None and t.alter.settings]
    # on the shadow before the copy, so the rows are written as a rewriting ALTER would write them;
    # and on the new table in the swap, after the old values are carried over (surroundings.py)
    shadow_ddl += [stmt for name, alter in settings for stmt in column_settings(dialect, shadow, name, alter)]
    plan = Plan(
        **common,
        estimated_rows=dialect.estimated_rows(conn, table),
        shadow_ddl=shadow_ddl,
        foreign_key_ddl=foreign_key_ddl,
        indexes=index_plans,
        trigger_names=[dialect.trigger_name(table, kind) for kind in ("ins", "upd", "del")],
        trigger_ddl=[],
        drop_trigger_ddl=[],
        swap_sql=[],
        post_swap_sql=[],
        capture=capture,
        column_settings_sql=[stmt for name, alter in settings for stmt in column_settings(dialect, table, name, alter)],
    )
    plan.table_option_sql = dialect.table_option_sql(conn, plan, resolved.table_options)
    plan.trigger_ddl = dialect.trigger_ddl(plan)
    plan.drop_trigger_ddl = dialect.drop_trigger_ddl(plan)
    plan.moved_at_swap = dialect.moved_at_swap(conn, plan, ref)
    swap_facts = dialect.swap_facts(conn, plan, ref)
    swap_facts["constraint_renames"] = constraint_renames
    plan.swap_sql, plan.post_swap_sql = dialect.swap_sql(plan, swap_facts)
    if order_by is not None:
        plan.order_by_index = order_by
        plan.order_by = dialect.order_by_keys(conn, table, order_by) or []
    checks.run(
        "copy",
        checks.Context(
            ref=ref,
            engine=dialect.name,
            conn=conn,
            dialect=dialect,
            columns=plan.columns,
            order_by=order_by,
            capture_mode=plan.capture.mode,
            transform=plan.transform.spec if plan.transform else None,
            dual_write_reason=_dual_write_reason(dialect, conn, ref, plan.columns, pk) if plan.transform else None,
        ),
    )
    plan.notes = dialect.plan_notes(plan)
    return plan


def _capture_mode(
    dialect: Dialect, conn: Connection, ref: Any, columns: list[ColumnPlan], pk: list[str], transform: bool = False
) -> CaptureMode:
    """Change log where it fits (shadowswap/changelog.py says why it is cheaper), else direct dual-write.

    Where constraint names are schema-wide, the change log builds the shadow's constraints after the
    copy under names of their own, so an unnamed primary key keeps dual-write. A dialect whose
    dual-write is the faster route (SQLite) takes the log only for a ``--transform``."""
    if dialect.change_log_only_for_transform and not transform:
        return DUAL_WRITE
    named = bool(ref.primary_key.get("name")) or not dialect.names_constraints
    return CHANGE_LOG if named and _change_log_fits(dialect, conn, ref, columns, pk) else DUAL_WRITE


def _capture(
    dialect: Dialect,
    conn: Connection,
    ref: Any,
    mode: CaptureMode,
    shadow_table: sa.Table,
    primary_after_copy: tuple[str, list[str]] | None,
    unique_after_copy: list[tuple[str, list[str]]],
) -> Capture:
    """The plan's ``Capture``, the one place it is built: the mode, the log's name, the copy route,
    and the constraints left for after the copy."""
    route = dialect.copy_route(conn, ref, mode)
    if mode != CHANGE_LOG:
        return Capture(mode=mode, route=route)

    def after_copy(name: str, columns: list[str], primary: bool = False) -> ConstraintAfterCopy:
        index = sa.Index(name, *[shadow_table.c[c] for c in columns], unique=True)
        index._set_parent(shadow_table)  # bind to the shadow without adding it to CreateTable
        index_sql = dialect.create_index_sql(index, online=False)
        sql = dialect.unique_constraint_sql(shadow_table.name, index_sql, name, primary=primary)
        return ConstraintAfterCopy(name=name, sql=tuple(sql))

    return Capture(
        mode=mode,
        log_table=dialect.change_log_name(ref.table),
        route=route,
        primary_key_after_copy=after_copy(*primary_after_copy, primary=True) if primary_after_copy else None,
        unique_after_copy=tuple(after_copy(name, columns) for name, columns in unique_after_copy),
    )


def _dual_write_reason(dialect: Dialect, conn: Connection, ref: Any, columns: list[ColumnPlan], pk: list[str]) -> str:
    """Why ``_capture_mode`` chose direct dual-write, in words (the transform check says it)."""
    if not dialect.supports_change_log:
        return f"{dialect.name} has no change-log capture"
    if not pk or LOG_SEQUENCE in pk:
        return "the table has no usable row key"
    if not dialect.change_log_allowed(conn, ref):
        return "this server or table cannot use the change log (statement-based binary logging, or an "\
            "AUTO_INCREMENT column that does not lead the key)"
    by_source = {c.source_column: c for c in columns}
    if not all(k in by_source and by_source[k].expression == dialect.column_reference(k) for k in pk):
        return "the key itself changes (retyped, renamed or computed by --using), and the log tracks rows by key"
    return "the primary key has no name for the constraint built after the copy"


def _change_log_fits(dialect: Dialect, conn: Connection, ref: Any, columns: list[ColumnPlan], pk: list[str]) -> bool:
    """The change log tracks rows by the original's key, so the copy must keep each key as it is."""
    if not dialect.supports_change_log or LOG_SEQUENCE in pk or not pk:
        return False
    if not dialect.change_log_allowed(conn, ref):
        return False
    by_source = {c.source_column: c for c in columns}
    return all(k in by_source and by_source[k].expression == dialect.column_reference(k) for k in pk)


def _index_plan(
    dialect: Dialect,
    table: str,
    shadow_table: sa.Table,
    ix: dict[str, Any],
    rename: dict[str, str],
    online: bool = True,
) -> IndexPlan:
    name = ix["name"]
    expressions = ix.get("expressions") or []
    elements: list[Any] = []
    for i, col in enumerate(ix["column_names"]):
        if col is None:
            elements.append(sa.text(expressions[i]))
        else:
            elements.append(shadow_table.c[rename[col]])
    kwargs: dict[str, Any] = {}
    for key, value in (ix.get("dialect_options") or {}).items():
        if key == "postgresql_where":
            kwargs[key] = sa.text(str(value))
        elif key in (
            "postgresql_using",
            "postgresql_include",
            "mysql_length",
            "mysql_prefix",
            "mysql_using",
            "postgresql_nulls_not_distinct",
            "sqlite_where",
        ):
            kwargs[key] = value
    if ix.get("include_columns") and "postgresql_include" not in kwargs:
        kwargs["postgresql_include"] = [rename.get(c, c) for c in ix["include_columns"]]
    shadow_ix_name = dialect.shadow_index_name(table, name)
    index = sa.Index(shadow_ix_name, *elements, unique=bool(ix.get("unique")), **kwargs)
    index._set_parent(shadow_table)  # bind to the shadow without adding it to CreateTable
    return IndexPlan(
        shadow_name=shadow_ix_name,
        final_name=name,
        old_name=dialect.old_index_name(table, name),
        create_sql=dialect.create_index_sql(index, online=online),
        unique=bool(ix.get("unique")),
        columns=[] if None in ix["column_names"] else [rename[c] for c in ix["column_names"]],
    )


def check_fresh(engine: Engine, plan: Plan) -> None:
    """Refuse a plan whose table changed since it was written (invariant: plan is what runs)."""
    from shadowswap.errors import StalePlan

    with engine.connect() as conn:
        ref = reflect(conn, plan.table)
    if ref.fingerprint() != plan.fingerprint:
        raise StalePlan(
            f"the plan is stale: table {plan.table!r} changed since it was planned",
            hint="run `shadowswap plan` again",
        )
    if plan.transform is not None:
        from shadowswap.transform import check_unchanged

        check_unchanged(plan.transform)
