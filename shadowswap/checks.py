"""Every plan-time refusal, one small function each, registered with its stage, engines, reason and hint.

A refusal stops ``plan`` before anything changes (exit code 2) because the result would be wrong or
not online. Each check is a function of a :class:`Context` that returns ``None`` (no objection), a
message (refused, with the check's registered hint), or a :class:`Refusal` (refused, with a hint
built for the case: the columns that exist, the index to drop). :func:`run` runs a stage's checks
in registration order and raises the first refusal as a :class:`~shadowswap.errors.UsageError`.
Registration order matters: a check may assume that the checks registered before it in its stage
passed (a rename's target is checked for a clash only once its source is known to exist).

The stages, in the order the planner runs them:

``changes``
    the changes on their own (at the start of resolving, once the table is found);
``table``
    the changes against the reflected table: names that exist or clash, what a drop leaves behind;
``database``
    what only the database can answer about the resolved changes: a type or default it accepts,
    an index name free in the whole database;
``shadow``
    whether the table can be migrated by a shadow copy at all (changes that run in place skip it);
``copy``
    the copy's SELECT, once the shadow is designed, prepared by the database.

Engine-only checks live in their dialect package (``dialects/<engine>/checks.py``) and register
here too, so :func:`all` is the one list of every refusal: ``shadowswap checks`` prints it, and
docs/planning.md names each check (a test keeps the two in step).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from shadowswap.changes import (
    AddColumn,
    AddIndex,
    AlterColumn,
    Change,
    DropColumn,
    DropIndex,
    RenameColumn,
)
from shadowswap.db import first_line
from shadowswap.errors import UsageError
from shadowswap.sqltext import mentions

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shadowswap.dialects import Dialect
    from shadowswap.plan import ColumnPlan
    from shadowswap.planner import Reflection, Resolved

STAGES = ("changes", "table", "database", "shadow", "copy")

#: the dialect packages whose ``checks`` module registers engine-only checks
_ENGINE_MODULES = (
    "shadowswap.dialects.mysql.checks",
    "shadowswap.dialects.postgresql.checks",
    "shadowswap.dialects.sqlite.checks",
)


@dataclass(frozen=True)
class Refusal:
    """A refusal whose hint is built for the case (``None``: the message stands without one)."""

    message: str
    hint: str | None = None


Outcome = Refusal | str | None


@dataclass(frozen=True)
class Check:
    """One refusal: its name (cited by docs and ``shadowswap checks``), when it runs, and for whom."""

    name: str
    stage: str
    #: one line: what is refused and why (docs/planning.md lists it)
    reason: str
    #: what the user can do instead
    hint: str
    #: engine names the check applies to; ``None``: every engine
    engines: frozenset[str] | None
    function: Callable[[Context], Outcome]

    def applies_to(self, engine: str) -> bool:
        return self.engines is None or engine in self.engines


_REGISTRY: list[Check] = []


def check(
    name: str, stage: str, reason: str, hint: str, engines: Sequence[str] | None = None
) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    """Register the decorated function as the check ``name`` (names are unique: docs cite them)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")

    def register(function: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        if any(c.name == name for c in _REGISTRY):
            raise ValueError(f"check {name!r} is registered twice")
        _REGISTRY.append(
            Check(name, stage, reason, hint, frozenset(engines) if engines is not None else None, function)
        )
        return function

    return register


def all() -> list[Check]:
    """Every registered check, the engines' included, in the order they run.

    The engines' modules are imported here, after this module's own checks are registered, so in
    each stage the common checks run before an engine's own."""
    for module in _ENGINE_MODULES:
        importlib.import_module(module)
    return list(_REGISTRY)


def run(stage: str, ctx: Context) -> None:
    """Run the stage's checks that apply to ``ctx.engine``; raise the first refusal."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    for registered in all():
        if registered.stage != stage or not registered.applies_to(ctx.engine):
            continue
        outcome = registered.function(ctx)
        if outcome is None:
            continue
        if isinstance(outcome, Refusal):
            raise UsageError(outcome.message, hint=outcome.hint)
        raise UsageError(outcome, hint=registered.hint)


@dataclass
class Context:
    """What the checks see. Fields a stage does not have yet stay ``None``."""

    ref: Reflection | None = None
    changes: Sequence[Change] = ()
    usings: Mapping[str, str] = field(default_factory=dict)
    #: indexes the Inspector does not report (SQLite's expression indexes): name → definition
    hidden_indexes: Mapping[str, str] = field(default_factory=dict)
    #: the dialect's name; engine-only checks run only for their engines
    engine: str = ""
    conn: Connection | None = None
    dialect: Dialect | None = None
    resolved: Resolved | None = None
    #: the copy's columns (stage ``copy``)
    columns: Sequence[ColumnPlan] = ()
    #: ``--order-by``: the index the copy writes the rows in the order of
    order_by: str | None = None
    #: the capture mode chosen for the copy (stage ``copy``)
    capture_mode: str | None = None
    #: ``--transform MODULE:FUNCTION``, the capture mode the planner chose, and why not the log (``copy``)
    transform: str | None = None
    dual_write_reason: str | None = None

    # -- the stage's inputs, asserted present -------------------------------------------------

    @property
    def reflection(self) -> Reflection:
        assert self.ref is not None, "this check needs the reflected table"
        return self.ref

    @property
    def db(self) -> Connection:
        assert self.conn is not None, "this check needs a connection"
        return self.conn

    @property
    def engine_dialect(self) -> Dialect:
        assert self.dialect is not None, "this check needs the dialect"
        return self.dialect

    @property
    def plan(self) -> Resolved:
        assert self.resolved is not None, "this check needs the resolved changes"
        return self.resolved

    # -- what the changes say, read the way the planner resolves them ---------------------------

    @property
    def table(self) -> str:
        return self.reflection.table

    @cached_property
    def original(self) -> list[str]:
        return [c["name"] for c in self.reflection.columns]

    @cached_property
    def pk(self) -> list[str]:
        """The row key: the primary key, or a unique key over NOT NULL columns (``Reflection.row_key``)."""
        return self.reflection.row_key()[0]

    @cached_property
    def renames(self) -> dict[str, str]:
        """Old name → new name, the first rename of each column."""
        out: dict[str, str] = {}
        for ch in self.changes:
            if isinstance(ch, RenameColumn):
                out.setdefault(ch.old, ch.new)
        return out

    @cached_property
    def drops(self) -> list[str]:
        return list(dict.fromkeys(ch.column for ch in self.changes if isinstance(ch, DropColumn)))

    @cached_property
    def adds(self) -> dict[str, AddColumn]:
        out: dict[str, AddColumn] = {}
        for ch in self.changes:
            if isinstance(ch, AddColumn):
                out.setdefault(ch.column, ch)
        return out

    def source_of(self, name: str) -> str | None:
        """The original column a change names by its current or its new name."""
        if name in self.original:
            return name
        return next((old for old, new in self.renames.items() if new == name), None)

    def target_names(self) -> list[str]:
        """The new table's columns in order (once the column checks passed)."""
        kept = [self.renames.get(c, c) for c in self.original if c not in self.drops]
        return kept + list(self.adds)

    def alter_and_using_names(self) -> list[tuple[str, str]]:
        """(column named, what it would be) for each --alter and each --using of an existing column."""
        named = [(ch.column, "altered") for ch in self.changes if isinstance(ch, AlterColumn)]
        named += [(n, "given a --using expression") for n in self.usings if n not in self.adds]
        return named


def columns_hint(ref: Reflection) -> str:
    return "columns: " + ", ".join(c["name"] for c in ref.columns)


def _unknown(ctx: Context, name: str) -> Refusal:
    hint = columns_hint(ctx.reflection)
    other = [c for c in ctx.original if c.lower() == name.lower()]
    if other:
        # the options take names literally; PostgreSQL folds only unquoted names in SQL
        hint = f"did you mean {other[0]!r}? names in the options are exact (their case too); {hint}"
    return Refusal(f"column {name!r} does not exist in table {ctx.table!r}", hint=hint)


def _exists(ctx: Context, name: str) -> str:
    return f"column {name!r} already exists in table {ctx.table!r}"


# -- stage "changes" ---------------------------------------------------------------------------


@check(
    "no-change",
    "changes",
    "no change given",
    'e.g. --alter "price:varchar(20)" or --add "note:text"',
)
def no_change(ctx: Context) -> Outcome:
    return "no change given" if not ctx.changes and not ctx.usings else None


# -- stage "table": columns --------------------------------------------------------------------


def _named(ctx: Context, kind: type, attr: str) -> list[str]:
    """The column each change of ``kind`` names (its ``attr``), in the order given."""
    return [getattr(ch, attr) for ch in ctx.changes if isinstance(ch, kind)]


def _first_unknown(ctx: Context, names: list[str]) -> Refusal | None:
    missing = next((n for n in names if n not in ctx.original), None)
    return None if missing is None else _unknown(ctx, missing)


def _first_repeated(names: list[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _first_taken(ctx: Context, names: list[str]) -> str | None:
    """The refusal for the first name the table (or an earlier of ``names``) already has."""
    taken = set(ctx.original)
    for name in names:
        if name in taken:
            return _exists(ctx, name)
        taken.add(name)
    return None


@check(
    "rename-unknown-column",
    "table",
    "a renamed column does not exist",
    "name a column the table has (the error lists them)",
)
def rename_unknown_column(ctx: Context) -> Outcome:
    return _first_unknown(ctx, _named(ctx, RenameColumn, "old"))


@check("rename-twice", "table", "a column is renamed twice", "give one --rename per column")
def rename_twice(ctx: Context) -> Outcome:
    twice = _first_repeated(_named(ctx, RenameColumn, "old"))
    return None if twice is None else Refusal(f"column {twice!r} is renamed twice")


@check("rename-to-existing", "table", "a column is renamed to a name the table already has", "choose another name")
def rename_to_existing(ctx: Context) -> Outcome:
    return _first_taken(ctx, _named(ctx, RenameColumn, "new"))


@check("drop-unknown-column", "table", "a dropped column does not exist", "the hint lists the table's columns")
def drop_unknown_column(ctx: Context) -> Outcome:
    return _first_unknown(ctx, _named(ctx, DropColumn, "column"))


@check(
    "drop-primary-key-column",
    "table",
    "a primary-key column is dropped",
    "shadowswap keeps the primary key; change the key in a separate migration",
)
def drop_primary_key_column(ctx: Context) -> Outcome:
    for column in _named(ctx, DropColumn, "column"):
        if column in ctx.pk:
            return f"column {column!r} is part of the primary key of {ctx.table!r} and cannot be dropped"
    return None


@check("drop-twice", "table", "a column is dropped twice", "give one --drop per column")
def drop_twice(ctx: Context) -> Outcome:
    twice = _first_repeated(_named(ctx, DropColumn, "column"))
    return None if twice is None else Refusal(f"column {twice!r} is dropped twice")


@check("add-existing-column", "table", "an added column's name is taken", "choose another name")
def add_existing_column(ctx: Context) -> Outcome:
    # a column this plan drops frees its name (`DROP COLUMN c1, ADD COLUMN c1 …`); MySQL compares
    # column names ignoring case
    fold = str.lower if ctx.engine == "mysql" else str
    taken = {fold(c) for c in ctx.original if c not in ctx.drops}
    for ch in ctx.changes:
        if isinstance(ch, AddColumn):
            if fold(ch.column) in taken:
                return _exists(ctx, ch.column)
            taken.add(fold(ch.column))
    return None


@check(
    "column-position-unknown",
    "table",
    "FIRST / AFTER names a column the new table does not have",
    "AFTER names a column of the new table (by its new name)",
)
def column_position_unknown(ctx: Context) -> Outcome:
    # positions are MySQL's, whose column names ignore case
    names = {n.lower() for n in ctx.target_names()}
    for ch in ctx.changes:
        after = ch.position[1] if isinstance(ch, AlterColumn | AddColumn) and ch.position is not None else None
        if after is not None and (after.lower() not in names or after.lower() == ch.column.lower()):  # type: ignore[union-attr]
            return Refusal(
                f"AFTER {after}: column {after!r} is not another column of the new table",
                hint="columns: " + ", ".join(ctx.target_names()),
            )
    return None


@check(
    "column-position-unsupported",
    "database",
    "FIRST / AFTER on an engine that adds a column at the end and cannot move one",
    "leave the position out: PostgreSQL and SQLite add the column at the end, as their ALTER does",
)
def column_position_unsupported(ctx: Context) -> Outcome:
    if ctx.dialect is None or ctx.dialect.maps_column_attributes:
        return None
    for ch in ctx.changes:
        if isinstance(ch, AlterColumn | AddColumn) and ch.position is not None:
            where = "first" if ch.position[0] == "first" else f"after {ch.position[1]}"
            return f"{where} ({ch.column}): {ctx.dialect.name} puts a new column at the end and cannot move one"
    return None


@check(
    "auto-increment-added",
    "table",
    "MODIFY/CHANGE gives AUTO_INCREMENT to a column that does not have it",
    "add AUTO_INCREMENT with a blocking ALTER TABLE; the copy keeps a column's AUTO_INCREMENT, it does not add one",
)
def auto_increment_added(ctx: Context) -> Outcome:
    for ch in ctx.changes:
        if isinstance(ch, AlterColumn) and ch.auto_increment:
            col = ctx.reflection.column(ctx.source_of(ch.column) or ch.column)
            if col is not None and col.get("autoincrement") is not True:
                return f"AUTO_INCREMENT on column {ch.column!r}: the column has none, and the copy does not add one"
    return None


@check(
    "add-not-null-without-default",
    "table",
    "a new NOT NULL column has neither a default nor a --using expression for the existing rows",
    "add `default EXPR`, or give --using COLUMN=EXPR to compute it from each row",
)
def add_not_null_without_default(ctx: Context) -> Outcome:
    for ch in ctx.changes:
        if not isinstance(ch, AddColumn) or ch.generated is not None or ch.identity is not None:
            continue  # the engine computes a generated or identity column's values
        if not ch.nullable and ch.default is None and ch.column not in ctx.usings:
            return Refusal(
                f"new column {ch.column!r} is NOT NULL without a default: the existing rows need a value",
                hint=f"add `default EXPR`, or give --using {ch.column}=EXPR to compute it from each row",
            )
    return None


@check("add-named-as-rename", "table", "a column is added under a name a rename also gives", "choose another name")
def add_named_as_rename(ctx: Context) -> Outcome:
    for name in ctx.adds:
        if name in ctx.renames.values():
            return _exists(ctx, name)
    return None


@check("drop-and-rename", "table", "a column is both dropped and renamed", "either drop the column or rename it")
def drop_and_rename(ctx: Context) -> Outcome:
    both = set(ctx.drops) & set(ctx.renames)
    return Refusal(f"column {sorted(both)[0]!r} is both dropped and renamed") if both else None


@check("drop-every-column", "table", "the changes drop every column", "keep at least one column")
def drop_every_column(ctx: Context) -> Outcome:
    return Refusal(f"the changes drop every column of {ctx.table!r}") if len(ctx.drops) == len(ctx.original) else None


@check(
    "alter-added-column",
    "table",
    "--alter names a column this plan adds",
    "give the added column's whole definition in --add",
)
def alter_added_column(ctx: Context) -> Outcome:
    for name, _what in ctx.alter_and_using_names():
        if ctx.source_of(name) is None and name in ctx.adds:
            return Refusal(f"column {name!r} is added by this plan; give its whole definition in --add")
    return None


@check(
    "alter-unknown-column",
    "table",
    "--alter or --using names a column that does not exist",
    "name a column the table has (the error lists them)",
)
def alter_unknown_column(ctx: Context) -> Outcome:
    for name, _what in ctx.alter_and_using_names():
        if ctx.source_of(name) is None:
            return _unknown(ctx, name)
    return None


@check(
    "alter-dropped-column",
    "table",
    "--alter or --using names a column this plan drops",
    "drop the column or change it, not both",
)
def alter_dropped_column(ctx: Context) -> Outcome:
    for name, what in ctx.alter_and_using_names():
        if ctx.source_of(name) in ctx.drops:
            return Refusal(f"column {name!r} is dropped by this plan, so it cannot also be {what}")
    return None


@check("alter-twice", "table", "a column is altered twice", "give one --alter with everything")
def alter_twice(ctx: Context) -> Outcome:
    seen: set[str | None] = set()
    for ch in ctx.changes:
        if isinstance(ch, AlterColumn):
            source = ctx.source_of(ch.column)
            if source in seen:
                return f"column {ch.column!r} is altered twice"
            seen.add(source)
    return None


@check(
    "primary-key-nullable",
    "table",
    "a primary-key column is made nullable",
    "a primary key is NOT NULL; keep the column NOT NULL",
)
def primary_key_nullable(ctx: Context) -> Outcome:
    for ch in ctx.changes:
        if isinstance(ch, AlterColumn) and ch.nullable is True:
            source = ctx.source_of(ch.column)
            if source in ctx.pk:
                return Refusal(f"column {source!r} is part of the primary key and cannot be made nullable")
    return None


@check(
    "column-clause-of-another-engine",
    "table",
    "SET STATISTICS / STORAGE / COMPRESSION and identity columns are PostgreSQL's; this engine has no such clause",
    "leave the clause out on this engine",
)
def column_clause_of_another_engine(ctx: Context) -> Outcome:
    if ctx.engine == "postgresql":
        return None
    for ch in ctx.changes:
        if isinstance(ch, AlterColumn) and ch.catalog_only:
            clause = ch.describe().split(" ", 2)[-1]
            return f"column {ch.column!r}: {clause} is PostgreSQL's; {ctx.engine} has no such clause"
        if isinstance(ch, AddColumn) and ch.identity is not None:
            return f"column {ch.column!r}: identity columns are PostgreSQL's; {ctx.engine} has none"
    return None


@check(
    "using-on-generated-column",
    "table",
    "--using names a generated column, which the engine computes and the copy never writes",
    "change the generated column's expression instead (drop it and add it again)",
)
def using_on_generated_column(ctx: Context) -> Outcome:
    for name in ctx.usings:
        add = ctx.adds.get(name)
        source = ctx.source_of(name)
        col = ctx.reflection.column(source) if source is not None and add is None else None
        if (add is not None and add.generated is not None) or (col is not None and col.get("computed")):
            return f"--using {name}=...: {name!r} is a generated column, computed by the engine, not the copy"
    return None


@check(
    "generated-column-over-dropped-column",
    "table",
    "an added generated column is computed from a column the change drops",
    "keep the column, or compute the generated column from others",
)
def added_generated_over_dropped(ctx: Context) -> Outcome:
    for ch in ctx.changes:
        if isinstance(ch, AddColumn) and ch.generated is not None:
            touched = sorted(mentions(ch.generated, [d for d in ctx.drops if d not in ctx.adds]))
            if touched:
                return (
                    f"new generated column {ch.column!r} is computed from column {touched[0]!r}, which the change drops"
                )
    return None


# -- stage "table": indexes --------------------------------------------------------------------


def _existing_indexes(ref: Reflection) -> dict[str, dict[str, Any]]:
    return {str(ix["name"]): ix for ix in ref.indexes if ix.get("name")}


def _existing_uniques(ref: Reflection) -> dict[str, dict[str, Any]]:
    return {str(uq["name"]): uq for uq in ref.unique_constraints if uq.get("name")}


@check(
    "drop-primary-key",
    "table",
    "--drop-index names the primary key",
    "shadowswap keeps the primary key; change the key in a separate migration",
)
def drop_primary_key(ctx: Context) -> Outcome:
    pk_name = ctx.reflection.primary_key.get("name")
    for ch in ctx.changes:
        if isinstance(ch, DropIndex) and ch.name == pk_name:
            return Refusal(f"{ch.name!r} is the primary key of {ctx.table!r}; shadowswap keeps it")
    return None


@check(
    "drop-unknown-index",
    "table",
    "a dropped index or unique constraint does not exist",
    "name an index or unique constraint the table has (the error lists them)",
)
def drop_unknown_index(ctx: Context) -> Outcome:
    names = sorted([*_existing_indexes(ctx.reflection), *_existing_uniques(ctx.reflection)])
    for ch in ctx.changes:
        if isinstance(ch, DropIndex) and ch.name not in names:
            return Refusal(
                f"table {ctx.table!r} has no index or unique constraint named {ch.name!r}",
                hint=("indexes: " + ", ".join(names)) if names else "the table has no secondary indexes",
            )
    return None


@check("drop-index-twice", "table", "an index is dropped twice", "give one --drop-index per index")
def drop_index_twice(ctx: Context) -> Outcome:
    seen: set[str] = set()
    for ch in ctx.changes:
        if isinstance(ch, DropIndex):
            if ch.name in seen:
                return Refusal(f"index {ch.name!r} is dropped twice")
            seen.add(ch.name)
    return None


@check("add-existing-index", "table", "an added index's name is taken on the table", "choose another name")
def add_existing_index(ctx: Context) -> Outcome:
    ref = ctx.reflection
    taken = {*_existing_indexes(ref), *_existing_uniques(ref), *ctx.hidden_indexes, ref.primary_key.get("name")}
    for ch in ctx.changes:
        if isinstance(ch, AddIndex) and ch.name in taken:
            return f"index {ch.name!r} already exists on {ctx.table!r}"
    return None


@check("add-index-twice", "table", "an index is added twice", "give each new index its own name")
def add_index_twice(ctx: Context) -> Outcome:
    seen: set[str] = set()
    for ch in ctx.changes:
        if isinstance(ch, AddIndex):
            if ch.name in seen:
                return Refusal(f"index {ch.name!r} is added twice")
            seen.add(ch.name)
    return None


def _new_index_hint(ctx: Context) -> str:
    return "an index names the columns of the new table: " + ", ".join(ctx.target_names())


@check(
    "add-index-on-dropped-column",
    "table",
    "a new index uses a column this plan drops",
    "an index names the columns of the new table (the hint lists them)",
)
def add_index_on_dropped_column(ctx: Context) -> Outcome:
    targets = set(ctx.target_names())
    for ch in ctx.changes:
        if isinstance(ch, AddIndex):
            for column in ch.columns:
                if column not in targets and column in ctx.drops:
                    return Refusal(
                        f"index {ch.name!r} uses column {column!r}, which is dropped", hint=_new_index_hint(ctx)
                    )
    return None


@check(
    "add-index-on-unknown-column",
    "table",
    "a new index uses a column the new table does not have",
    "an index names the columns of the new table (the hint lists them)",
)
def add_index_on_unknown_column(ctx: Context) -> Outcome:
    targets = set(ctx.target_names())
    for ch in ctx.changes:
        if isinstance(ch, AddIndex):
            for column in ch.columns:
                if column not in targets:
                    return Refusal(f"index {ch.name!r}: column {column!r} does not exist", hint=_new_index_hint(ctx))
    return None


# What survives must not lean on a dropped column: the engine would drop it silently.


@check(
    "index-uses-dropped-column",
    "table",
    "a kept index or unique constraint uses a dropped column (the engine would drop it silently)",
    "drop the index too: --drop-index NAME",
)
def index_uses_dropped_column(ctx: Context) -> Outcome:
    dropped_indexes = {ch.name for ch in ctx.changes if isinstance(ch, DropIndex)}
    drops = ctx.drops
    kept = [*_existing_indexes(ctx.reflection).items(), *_existing_uniques(ctx.reflection).items()]
    for name, ix in kept:
        if name in dropped_indexes:
            continue
        used = set(ix.get("column_names") or []) | mentions(
            " ".join(str(e) for e in ix.get("expressions") or []), drops
        )
        options = ix.get("dialect_options") or {}
        where = options.get("postgresql_where") or options.get("sqlite_where")
        used |= mentions(str(where) if where is not None else "", drops)
        gone = sorted(used & set(drops))
        if gone:
            return Refusal(
                f"index {name!r} uses column {gone[0]!r}, which is dropped",
                hint=f"drop the index too: --drop-index {name}",
            )
    return None


@check(
    "unreflected-index-uses-dropped-column",
    "table",
    "an expression index the Inspector does not report (SQLite) uses a dropped column",
    "drop the index first (DROP INDEX is instant)",
)
def unreflected_index_uses_dropped_column(ctx: Context) -> Outcome:
    for name, definition in ctx.hidden_indexes.items():
        gone = sorted(mentions(definition[definition.find("(") :], ctx.drops))
        if gone:
            return Refusal(
                f"index {name!r} uses column {gone[0]!r}, which is dropped",
                hint=f"drop the index first (DROP INDEX {name} is instant)",
            )
    return None


@check(
    "foreign-key-uses-dropped-column",
    "table",
    "a foreign key of the table uses a dropped column",
    "drop the foreign key first (ALTER TABLE ... DROP CONSTRAINT is instant)",
)
def foreign_key_uses_dropped_column(ctx: Context) -> Outcome:
    for fk in ctx.reflection.foreign_keys:
        gone = sorted(set(fk["constrained_columns"]) & set(ctx.drops))
        if gone:
            return f"foreign key {fk.get('name')!r} uses column {gone[0]!r}, which is dropped"
    return None


@check(
    "check-uses-dropped-column",
    "table",
    "a check constraint uses a dropped column",
    "drop the constraint first (ALTER TABLE ... DROP CONSTRAINT is instant)",
)
def check_uses_dropped_column(ctx: Context) -> Outcome:
    for constraint in ctx.reflection.check_constraints:
        gone = sorted(mentions(str(constraint.get("sqltext") or ""), ctx.drops))
        if gone:
            return f"check constraint {constraint.get('name')!r} uses column {gone[0]!r}, which is dropped"
    return None


@check(
    "generated-column-uses-dropped-column",
    "table",
    "a generated column is computed from a dropped column (the engine's own ALTER refuses the drop)",
    "drop the generated column first (--drop NAME) and add it again after the migration",
)
def generated_column_uses_dropped_column(ctx: Context) -> Outcome:
    # In the table stage, so a plan that drops in place (strategy instant) is refused here rather
    # than by the server at execute; the shadow stage's check covers renames and retypes as well.
    for col in ctx.reflection.columns:
        computed = col.get("computed")
        if not computed or col["name"] in ctx.drops:
            continue
        gone = sorted(mentions(str(computed.get("sqltext") or ""), ctx.drops))
        if gone:
            return Refusal(
                f"generated column {col['name']!r} is computed from column {gone[0]!r}, which is dropped",
                hint=f"drop the generated column first (--drop {col['name']}) and add it again after the migration",
            )
    return None


# -- stage "database" --------------------------------------------------------------------------


def prepare(conn: Connection, dialect: Dialect, sql: str) -> str | None:
    """The database's first line of complaint about ``sql``, run in a savepoint rolled back; None if none.

    ``sql`` carries user text: it runs as exactly one statement (``run_one``) inside the planner's
    read-only transaction (``begin_read_only``), so even a fragment we misread changes nothing."""
    try:
        with conn.begin_nested():
            dialect.run_one(conn, sql)
    except DBAPIError as exc:
        return first_line(exc)
    return None


def _type_sql(dialect: Dialect, type_: sa.types.TypeEngine[Any]) -> str:
    return type_.compile(dialect=dialect.sa_dialect)


@check(
    "invalid-type",
    "database",
    "the database does not accept a new column type",
    "give a type this database knows, e.g. varchar(20)",
)
def invalid_type(ctx: Context) -> Outcome:
    dialect = ctx.engine_dialect
    for target in ctx.plan.targets:
        if target.type_sql is not None:
            error = prepare(ctx.db, dialect, dialect.validate_type_sql(target.type_sql))
            if error is not None:
                return f"invalid type {target.type_sql!r} for column {target.name!r}: {error}"
    return None


@check(
    "invalid-default",
    "database",
    "the database does not accept a new default for the column's type",
    "give a value of the column's type, e.g. default '0'",
)
def invalid_default(ctx: Context) -> Outcome:
    dialect = ctx.engine_dialect
    for target in ctx.plan.targets:
        if target.default_changed and target.default is not None:
            type_sql = target.type_sql or _type_sql(dialect, (target.reflected or {})["type"])
            error = prepare(ctx.db, dialect, dialect.validate_default_sql(target.default, type_sql))
            if error is not None:
                return f"invalid default {target.default!r} for column {target.name!r}: {error}"
    return None


@check(
    "invalid-generated-expression",
    "database",
    "the database does not accept an added generated column's expression over the table",
    "give an expression over the table's columns the engine accepts in a generated column",
)
def invalid_generated_expression(ctx: Context) -> Outcome:
    dialect = ctx.engine_dialect
    for target in ctx.plan.targets:
        add = target.add
        if add is None or add.generated is None:
            continue
        # over the original table; an expression naming a renamed or added column is left to the engine
        if mentions(add.generated, [*ctx.plan.renames.values(), *ctx.adds]):
            continue
        error = prepare(ctx.db, dialect, f"SELECT ({add.generated}) FROM {dialect.q(ctx.table)}")
        if error is not None:
            return f"invalid generated expression {add.generated!r} for column {add.column!r}: {error}"
    return None


@check(
    "index-name-taken",
    "database",
    "a new index's name is taken elsewhere in the database (names are per schema there)",
    "choose another name",
)
def index_name_taken(ctx: Context) -> Outcome:
    for index in ctx.plan.new_indexes:
        if ctx.engine_dialect.name_taken(ctx.db, ctx.table, index.name):
            return f"the name {index.name!r} is already taken in this database"
    return None


@check(
    "table-option-unsupported",
    "database",
    "a table option the engine does not have, or cannot set on a table filled by copy-and-swap",
    "MySQL: ENGINE=InnoDB, ROW_FORMAT, KEY_BLOCK_SIZE, AUTO_INCREMENT, COMMENT, DEFAULT CHARSET, COLLATE; "
    "PostgreSQL: storage parameters, TABLESPACE, [UN]LOGGED; SQLite: none",
)
def table_option_unsupported(ctx: Context) -> Outcome:
    for option in ctx.plan.table_options:
        why = ctx.engine_dialect.table_option_refusal(option)
        if why is not None:
            return f"table option {option.describe()!r}: {why}"
    return None


@check(
    "table-option-invalid",
    "database",
    "the database does not accept a table option's value (an unknown tablespace, character set or row format, "
    "a fillfactor out of range)",
    "give a value the engine's ALTER TABLE accepts",
)
def table_option_invalid(ctx: Context) -> Outcome:
    for option in ctx.plan.table_options:
        if ctx.engine_dialect.table_option_refusal(option) is not None:
            continue  # table-option-unsupported says why
        why = ctx.engine_dialect.table_option_invalid(ctx.db, option)
        if why is not None:
            return f"table option {option.describe()!r}: {why}"
    return None


@check(
    "table-option-twice",
    "database",
    "one table option set or reset twice in one plan",
    "give each table option once",
)
def table_option_twice(ctx: Context) -> Outcome:
    seen: set[str] = set()
    for option in ctx.plan.table_options:
        if option.name in seen:
            return f"table option {option.name} is changed twice"
        seen.add(option.name)
    return None


@check(
    "order-by-engine",
    "database",
    "--order-by on an engine whose tables keep their rows in key order (InnoDB's clustered index, SQLite's b-tree)",
    "drop --order-by: the rows are already stored in primary key order",
)
def order_by_engine(ctx: Context) -> Outcome:
    if ctx.order_by is None:
        return None
    why = ctx.engine_dialect.order_by_refusal()
    return f"--order-by {ctx.order_by}: {why}" if why else None


@check(
    "order-by-unknown-index",
    "database",
    "--order-by names no b-tree index of the table",
    "give the name of one of the table's b-tree indexes",
)
def order_by_unknown_index(ctx: Context) -> Outcome:
    if ctx.order_by is None:
        return None
    keys = ctx.engine_dialect.order_by_keys(ctx.db, ctx.table, ctx.order_by)
    if keys is None:
        names = ", ".join(str(i.get("name")) for i in ctx.reflection.indexes) or "none"
        return Refusal(f"--order-by: table {ctx.table!r} has no index {ctx.order_by!r}", hint=f"its indexes: {names}")
    if not keys:
        return f"--order-by: index {ctx.order_by!r} is not a b-tree index; it has no order to copy the rows in"
    return None


# -- stage "shadow" ----------------------------------------------------------------------------


@check(
    "no-primary-key",
    "shadow",
    "the table has no primary key nor a unique key over NOT NULL columns, by which the shadow copy tracks rows",
    "add one first over a unique, NOT NULL column (changes that run in place need none)",
)
def no_primary_key(ctx: Context) -> Outcome:
    if ctx.pk:
        return None
    return Refusal(
        f"table {ctx.table!r} has no primary key nor a unique key over NOT NULL columns; the shadow copy "
        "tracks rows by one",
        hint=f"add one first, e.g. ALTER TABLE {ctx.engine_dialect.q(ctx.table)} ADD PRIMARY KEY (id) over a "
        "unique, NOT NULL column (changes that run in place need none)",
    )


@check(
    "row-key-dropped",
    "shadow",
    "the unique constraint the shadow copy tracks rows by (the table has no primary key) is dropped",
    "drop it in a separate migration, after this one",
)
def row_key_dropped(ctx: Context) -> Outcome:
    pk, is_primary = ctx.reflection.row_key()
    if is_primary or not pk:
        return None
    key_name = next(u.get("name") for u in ctx.reflection.unique_constraints if list(u["column_names"]) == pk)
    if key_name in ctx.plan.dropped_indexes:
        return Refusal(
            f"unique constraint {key_name!r} is the key the shadow copy tracks rows of {ctx.table!r} by",
            hint="drop it in a separate migration, after this one",
        )
    return None


@check(
    "referenced-by-foreign-keys",
    "shadow",
    "other tables' foreign keys reference the table; after the swap they would point at the old table",
    "drop them before migrating",
)
def referenced_by_foreign_keys(ctx: Context) -> Outcome:
    ref = ctx.reflection
    if not ref.referenced_by or (ctx.dialect is not None and ctx.dialect.repoints_referencing_keys):
        return None
    return Refusal(
        f"table {ref.table!r} is referenced by foreign keys from {', '.join(sorted(set(ref.referenced_by)))}",
        hint="after the swap those keys would point at the old table; drop them before migrating",
    )


@check(
    "generated-column-changed",
    "shadow",
    "a generated column is part of the key, renamed or converted by the change; the shadow declares it as written",
    "drop the generation (or the column) first, or make the change in place",
)
def generated_column_changed(ctx: Context) -> Outcome:
    # The shadow declares each generated column with its reflected expression, as written; the engine
    # recomputes it, the copy never writes it. A change under it (the engines' own ALTER refuses most
    # of them) is refused.
    pk = ctx.pk
    retyped = _retyped(ctx)
    plain = {t.source for t in ctx.plan.targets if t.alter is not None and t.alter.drop_expression}
    # restated by MySQL's MODIFY/CHANGE as generated (new expression), or a STORED one made plain
    # (its stored values are copied, as the engine keeps them): the shadow declares what it says
    retyped -= _restated_generated(ctx)
    for col in ctx.reflection.columns:
        name = col["name"]
        if col.get("computed") and name not in plain and (name in pk or name in ctx.plan.renames or name in retyped):
            what = "is part of the key" if name in pk else "is renamed or converted by the change"
            return f"generated column {name!r} {what}, which the shadow copy cannot carry over"
    return None


@check(
    "generated-column-over-changed-column",
    "shadow",
    "a generated column is computed from a column the change drops, renames or converts",
    "drop the generated column first (--drop NAME) and add it again after the migration",
)
def generated_column_over_changed_column(ctx: Context) -> Outcome:
    retyped = _retyped(ctx)
    restated = _restated_generated(ctx)
    plain = {t.source for t in ctx.plan.targets if t.alter is not None and t.alter.drop_expression}
    for col in ctx.reflection.columns:
        computed = col.get("computed")
        if not computed or col["name"] in ctx.plan.drops or col["name"] in plain or col["name"] in restated:
            # dropped or made plain: nothing to carry; restated: an expression over the new table,
            # as the engine reads it
            continue
        changed = [*ctx.plan.drops, *ctx.plan.renames, *retyped]
        if ctx.dialect is not None and ctx.dialect.renames_columns_in_constraints:
            # the shadow is the table's own text (SQLite): the expression is kept, a rename rewritten
            # in it by the engine, a retype under it is the engine's own concern, as in its rebuild
            changed = list(ctx.plan.drops)
        touched = sorted(mentions(str(computed.get("sqltext") or ""), changed))
        if touched:
            return Refusal(
                f"generated column {col['name']!r} is computed from column {touched[0]!r}, which the change drops, "
                "renames or converts",
                hint=f"drop the generated column first (--drop {col['name']}) and add it again after the migration",
            )
    return None


def _restated_generated(ctx: Context) -> set[str]:
    """Generated columns a change restates (MySQL's MODIFY/CHANGE): given a new expression or made
    plain (a VIRTUAL one is refused by generated-virtual-made-plain)."""
    out = set()
    for t in ctx.plan.targets:
        computed = (t.reflected or {}).get("computed")
        if t.source is not None and computed and t.alter is not None and t.alter.generated is not None:
            out.add(t.source)
    return out


_INT_WIDTH = re.compile(r"\b(tinyint|smallint|mediumint|int|bigint)\(\d+\)")


def _same_type(ctx: Context, reflected: Any, type_sql: str) -> bool:
    """``type_sql`` names the type the column has (MySQL's MODIFY restates it to move a column): ``INT``
    for a reflected ``INTEGER``/``int(11)``, case and spaces aside."""
    if ctx.dialect is None or reflected is None or not ctx.dialect.column_names_fold_case:
        return False  # (MySQL only: its MODIFY restates a column's type to move or comment it)

    def norm(text: str) -> str:
        text = " ".join(text.lower().split()).replace("integer", "int")
        return _INT_WIDTH.sub(r"\1", text).replace(" (", "(").replace(", ", ",")

    return norm(_type_sql(ctx.dialect, reflected)) == norm(type_sql)


def _retyped(ctx: Context) -> set[str]:
    """Original columns whose values the copy converts: a new type (not one restating the column's
    own), or a --using expression."""
    out = set()
    for t in ctx.plan.targets:
        if t.source is None:
            continue
        if t.using is not None or (
            t.type_sql is not None and not _same_type(ctx, (t.reflected or {}).get("type"), t.type_sql)
        ):
            out.add(t.source)
    return out


@check(
    "generated-virtual-made-plain",
    "shadow",
    "a VIRTUAL generated column is made a plain column; the engine's ALTER refuses it too (it has no stored values)",
    "drop the column and add a plain one, or make it STORED first",
)
def generated_virtual_made_plain(ctx: Context) -> Outcome:
    for t in ctx.plan.targets:
        computed = (t.reflected or {}).get("computed")
        if t.alter is not None and computed and t.alter.generated == "" and not computed.get("persisted"):
            return f"VIRTUAL generated column {t.source!r} would become a plain column: it has no stored values to copy"
    return None


@check(
    "index-expression-over-renamed-column",
    "shadow",
    "an index expression or predicate names a renamed column; shadowswap does not rewrite expressions",
    "drop the index (--drop-index NAME) and create it again after the migration",
)
def index_expression_over_renamed_column(ctx: Context) -> Outcome:
    renamed = sorted(ctx.plan.renames)
    for ix in ctx.reflection.indexes:
        if ix["name"] in ctx.plan.dropped_indexes:
            continue
        options = ix.get("dialect_options") or {}
        text = " ".join(
            [str(e) for e in ix.get("expressions") or []]
            + [str(options.get(k, "")) for k in ("postgresql_where", "sqlite_where")]
        )
        hit = sorted(mentions(text, renamed))
        if hit:
            return Refusal(
                f"index {ix['name']!r} has an expression or predicate over column {hit[0]!r}, which is renamed; "
                "shadowswap does not rewrite expressions",
                hint=f"drop the index (--drop-index {ix['name']}) and create it again after the migration",
            )
    return None


@check(
    "unreflected-index-over-renamed-column",
    "shadow",
    "an expression index the Inspector does not report (SQLite) names a renamed column",
    "drop the index (DROP INDEX is instant) and create it again after the migration",
)
def unreflected_index_over_renamed_column(ctx: Context) -> Outcome:
    renamed = sorted(ctx.plan.renames)
    for name, definition in ctx.plan.hidden_indexes.items():
        hit = sorted(mentions(definition[definition.find("(") :], renamed))
        if hit:
            return Refusal(
                f"index {name!r} has an expression over column {hit[0]!r}, which is renamed; "
                "shadowswap does not rewrite expressions",
                hint=f"drop the index (DROP INDEX {name} is instant) and create it again after the migration",
            )
    return None


@check(
    "check-over-renamed-column",
    "shadow",
    "a check constraint names a renamed column; shadowswap does not rewrite expressions",
    "drop the constraint first and add it again after the migration",
)
def check_over_renamed_column(ctx: Context) -> Outcome:
    # the engine's own RENAME COLUMN on the shadow rewrites them (SQLite)
    if ctx.dialect is not None and ctx.dialect.renames_columns_in_constraints:
        return None
    renamed = sorted(ctx.plan.renames)
    for constraint in ctx.reflection.check_constraints:
        hit = sorted(mentions(str(constraint.get("sqltext") or ""), renamed))
        if hit:
            return (
                f"check constraint {constraint.get('name')!r} uses column {hit[0]!r}, which is renamed; "
                "shadowswap does not rewrite expressions"
            )
    return None


@check(
    "leftover-table",
    "shadow",
    "the shadow or old table's name is taken, usually by a previous migration",
    "a previous migration left it; `shadowswap status` tells, `shadowswap cleanup --drop-old` "
    "or `shadowswap abort` removes it",
)
def leftover_table(ctx: Context) -> Outcome:
    dialect = ctx.engine_dialect
    inspector = sa.inspect(ctx.db)
    for name in (dialect.shadow_name(ctx.table), dialect.old_name(ctx.table)):
        if inspector.has_table(name):
            return f"table {name!r} already exists"
    return None


@check(
    "self-referencing-foreign-key",
    "shadow",
    "the table has a foreign key to itself; after the swap it would point at the old table",
    "drop the self-referencing key before migrating and add it back after",
)
def self_referencing_foreign_key(ctx: Context) -> Outcome:
    # the reference follows the name through the swap (SQLite)
    if ctx.dialect is not None and ctx.dialect.carries_self_references:
        return None
    for fk in ctx.reflection.foreign_keys:
        if fk.get("referred_table") == ctx.table:
            return (
                f"table {ctx.table!r} has a foreign key to itself ({fk.get('name')}); after the swap it would point "
                "at the old table"
            )
    return None


# -- stage "copy" ------------------------------------------------------------------------------


@check(
    "invalid-copy-expression",
    "copy",
    "the database cannot prepare the copy's SELECT (a --using expression is invalid)",
    "check the --using expressions; they are SQL evaluated against the original row",
)
def invalid_copy_expression(ctx: Context) -> Outcome:
    dialect = ctx.engine_dialect
    sql = f"SELECT {dialect.select_list(list(ctx.columns))} FROM {dialect.q(ctx.table)} AS src WHERE 1 = 0"
    error = prepare(ctx.db, dialect, sql)
    return f"a copy expression is invalid: {error}" if error is not None else None


def _key_family(type_sql: str | None, read: str | None) -> str | None:
    """How values of a key column compare and sort: exact numbers (integers among them), strings,
    binary floats; None when the type is not one of those (or not known)."""
    from shadowswap.strategy import _FLOATS, _INT_BITS, _STRINGS, parse_type

    parsed = parse_type(type_sql, read)
    if parsed is None:
        return None
    name = parsed.this.name
    if name in _INT_BITS or name == "DECIMAL":
        return "exact"
    if name in _STRINGS:
        return "string"
    return "float" if name in _FLOATS else None


@check(
    "primary-key-changes-order",
    "copy",
    "a primary-key column's type changes how its values compare and sort (an integer key made text)",
    "add a column of the new type, fill it, and make it the key in a migration of its own",
)
def primary_key_changes_order(ctx: Context) -> Outcome:
    # The copy, the change log's replay and the verification walk the original key and match
    # shadow rows by it; across a change of comparison (3 < 20, '3' > '20') their ranges and
    # joins no longer line up, and the migration could never finish.
    read = ctx.engine_dialect.sqlglot_dialect
    for c in ctx.columns:
        if c.source_column not in ctx.pk or not c.old_type or c.old_type == c.new_type:
            continue
        old, new = _key_family(c.old_type, read), _key_family(c.new_type, read)
        if old != new:
            return (
                f"column {c.source_column!r} is part of the primary key and {c.new_type!r} compares and sorts "
                f"its values differently from {c.old_type!r} ({old or 'other'} → {new or 'other'}); "
                "shadowswap cannot retype a key that way online"
            )
    return None


@check(
    "order-by-dual-write",
    "copy",
    "--order-by on a plan that changes the primary key (direct dual-write): the ordered copy is one "
    "statement, and under dual-write it would share-lock every row of the table for its duration",
    "make the key change and the ordered rebuild two migrations",
)
def order_by_dual_write(ctx: Context) -> Outcome:
    if ctx.order_by is None or ctx.capture_mode != "dual_write":
        return None
    return (
        f"--order-by {ctx.order_by}: this plan copies with direct dual-write (it changes the primary key), where "
        "one ordered copy statement would share-lock every row of the table until it ends"
    )


@check(
    "transform-needs-change-log",
    "copy",
    "--transform runs Python, which only the change log's replays can run; this plan needs direct dual-write",
    "keep the key as it is (change it in a migration of its own), or use --using COL=EXPR for what SQL can compute",
)
def transform_needs_change_log(ctx: Context) -> Outcome:
    # The dual-write triggers compute the new row inside the application's own write, in SQL; a
    # Python function can run only where shadowswap reads the rows: the copy and the replays.
    if ctx.transform is None or ctx.capture_mode == "change_log":
        return None
    return (
        f"--transform {ctx.transform} needs the change log (the function runs in the copy and its replays, never "
        f"in the triggers), and this plan would use direct dual-write: {ctx.dual_write_reason}"
    )
