"""The registry of plan-time refusals: each pure check table-driven, no server needed, and the registry itself
(every check has a reason and a hint, and docs/planning.md lists it)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shadowswap import checks
from shadowswap.changes import AddColumn, AddIndex, AlterColumn, Change, DropColumn, DropIndex, RenameColumn
from shadowswap.errors import UsageError
from shadowswap.planner import Reflection, resolve

DOCS = Path(__file__).resolve().parent.parent / "docs" / "planning.md"
COLUMNS_HINT = "columns: id, name, price, sku, category_id, note"


def column(name: str, nullable: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": sa.Integer(), "nullable": nullable, "default": None, **extra}


def products(**changes: Any) -> Reflection:
    """A table with one of everything a change can collide with."""
    ref = Reflection(
        table="products",
        columns=[
            column("id", nullable=False, autoincrement=True),
            column("name"),
            column("price"),
            column("sku"),
            column("category_id"),
            column("note"),
        ],
        primary_key={"name": "products_pkey", "constrained_columns": ["id"]},
        unique_constraints=[{"name": "uq_sku", "column_names": ["sku"]}],
        indexes=[
            {"name": "ix_name", "column_names": ["name"], "unique": False},
            {
                "name": "ix_cheap",
                "column_names": ["id"],
                "unique": False,
                "dialect_options": {"postgresql_where": "price < 10"},
            },
        ],
        check_constraints=[{"name": "ck_price", "sqltext": "price > 0"}],
        foreign_keys=[
            {
                "name": "fk_category",
                "constrained_columns": ["category_id"],
                "referred_table": "categories",
                "referred_columns": ["id"],
            }
        ],
    )
    return replace(ref, **changes)


HIDDEN = {"ix_lower_note": "CREATE INDEX ix_lower_note ON products (lower(note))"}

# (changes, usings, message, hint): the first refusal of the stages "changes" and "table"
TABLE_CASES: list[tuple[list[Change], dict[str, str], str, str | None]] = [
    ([], {}, "no change given", 'e.g. --alter "price:varchar(20)" or --add "note:text"'),
    (
        [RenameColumn("nope", "x")],
        {},
        "column 'nope' does not exist in table 'products'",
        COLUMNS_HINT,
    ),
    ([RenameColumn("name", "a"), RenameColumn("name", "b")], {}, "column 'name' is renamed twice", None),
    ([RenameColumn("name", "price")], {}, "column 'price' already exists in table 'products'", "choose another name"),
    (
        [RenameColumn("name", "x"), RenameColumn("price", "x")],
        {},
        "column 'x' already exists in table 'products'",
        "choose another name",
    ),
    ([DropColumn("nope")], {}, "column 'nope' does not exist in table 'products'", COLUMNS_HINT),
    (
        [DropColumn("id")],
        {},
        "column 'id' is part of the primary key of 'products' and cannot be dropped",
        "shadowswap keeps the primary key; change the key in a separate migration",
    ),
    ([DropColumn("note"), DropColumn("note")], {}, "column 'note' is dropped twice", None),
    ([AddColumn("price", "int")], {}, "column 'price' already exists in table 'products'", "choose another name"),
    (
        [AddColumn("x", "int"), AddColumn("x", "text")],
        {},
        "column 'x' already exists in table 'products'",
        "choose another name",
    ),
    (
        [AddColumn("x", "int", nullable=False)],
        {},
        "new column 'x' is NOT NULL without a default: the existing rows need a value",
        "add `default EXPR`, or give --using x=EXPR to compute it from each row",
    ),
    (
        [RenameColumn("note", "memo"), AddColumn("memo", "text")],
        {},
        "column 'memo' already exists in table 'products'",
        "choose another name",
    ),
    ([DropColumn("note"), RenameColumn("note", "memo")], {}, "column 'note' is both dropped and renamed", None),
    (
        [DropColumn(c) for c in ("name", "price", "sku", "category_id", "note")] + [DropColumn("id")],
        {},
        "column 'id' is part of the primary key of 'products' and cannot be dropped",
        "shadowswap keeps the primary key; change the key in a separate migration",
    ),
    (
        [AddColumn("x", "int"), AlterColumn("x", type_sql="bigint")],
        {},
        "column 'x' is added by this plan; give its whole definition in --add",
        None,
    ),
    ([AlterColumn("nope", type_sql="int")], {}, "column 'nope' does not exist in table 'products'", COLUMNS_HINT),
    ([], {"nope": "1"}, "column 'nope' does not exist in table 'products'", COLUMNS_HINT),
    (
        [DropColumn("note"), AlterColumn("note", type_sql="text")],
        {},
        "column 'note' is dropped by this plan, so it cannot also be altered",
        None,
    ),
    (
        [DropColumn("note")],
        {"note": "'x'"},
        "column 'note' is dropped by this plan, so it cannot also be given a --using expression",
        None,
    ),
    (
        [RenameColumn("note", "memo"), AlterColumn("note", type_sql="text"), AlterColumn("memo", nullable=False)],
        {},
        "column 'memo' is altered twice",
        "give one --alter with everything",
    ),
    (
        [AlterColumn("id", nullable=True)],
        {},
        "column 'id' is part of the primary key and cannot be made nullable",
        None,
    ),
    ([DropIndex("products_pkey")], {}, "'products_pkey' is the primary key of 'products'; shadowswap keeps it", None),
    (
        [DropIndex("ix_nope")],
        {},
        "table 'products' has no index or unique constraint named 'ix_nope'",
        "indexes: ix_cheap, ix_name, uq_sku",
    ),
    ([DropIndex("ix_name"), DropIndex("ix_name")], {}, "index 'ix_name' is dropped twice", None),
    (
        [AddIndex("ix_lower_note", ("note",))],
        {},
        "index 'ix_lower_note' already exists on 'products'",
        "choose another name",
    ),
    ([AddIndex("uq_sku", ("sku",))], {}, "index 'uq_sku' already exists on 'products'", "choose another name"),
    ([AddIndex("ix_x", ("note",)), AddIndex("ix_x", ("sku",))], {}, "index 'ix_x' is added twice", None),
    (
        [DropColumn("note"), AddIndex("ix_x", ("note",))],
        {},
        "index 'ix_x' uses column 'note', which is dropped",
        "an index names the columns of the new table: id, name, price, sku, category_id",
    ),
    (
        [RenameColumn("note", "memo"), AddColumn("extra", "int"), AddIndex("ix_x", ("note",))],
        {},
        "index 'ix_x': column 'note' does not exist",
        "an index names the columns of the new table: id, name, price, sku, category_id, memo, extra",
    ),
    (
        [DropColumn("name")],
        {},
        "index 'ix_name' uses column 'name', which is dropped",
        "drop the index too: --drop-index ix_name",
    ),
    (
        [DropColumn("sku")],
        {},
        "index 'uq_sku' uses column 'sku', which is dropped",
        "drop the index too: --drop-index uq_sku",
    ),
    (
        [DropIndex("ix_name"), DropColumn("price")],
        {},
        "index 'ix_cheap' uses column 'price', which is dropped",
        "drop the index too: --drop-index ix_cheap",
    ),
    (
        [DropColumn("note")],
        {},
        "index 'ix_lower_note' uses column 'note', which is dropped",
        "drop the index first (DROP INDEX ix_lower_note is instant)",
    ),
    (
        [DropColumn("category_id")],
        {},
        "foreign key 'fk_category' uses column 'category_id', which is dropped",
        "drop the foreign key first (ALTER TABLE ... DROP CONSTRAINT is instant)",
    ),
]


# issue 15: names in another case, generated columns
TABLE_CASES += [
    (
        [AlterColumn("Name", type_sql="text")],
        {},
        "column 'Name' does not exist in table 'products'",
        f"did you mean 'name'? names in the options are exact (their case too); {COLUMNS_HINT}",
    ),
    (
        [AddColumn("x", "int", generated="price * 2")],
        {"x": "1"},
        "--using x=...: 'x' is a generated column, computed by the engine, not the copy",
        "change the generated column's expression instead (drop it and add it again)",
    ),
    (
        [DropIndex("ix_name"), DropColumn("name"), AddColumn("x", "text", generated="upper(name)")],
        {},
        "new generated column 'x' is computed from column 'name', which the change drops",
        "keep the column, or compute the generated column from others",
    ),
    (
        [AddColumn("x", "int", nullable=False, generated="price * 2"), AddColumn("x", "int")],
        {},
        "column 'x' already exists in table 'products'",
        "choose another name",
    ),
]


def test_a_dropped_column_frees_its_name() -> None:
    """DROP COLUMN c, ADD COLUMN c ...: a new column c at the end, whichever order the changes come in;
    a generated NOT NULL column needs no default."""
    for changes in (
        [DropColumn("note"), AddColumn("note", "bigint", nullable=False, generated="price * 2")],
        [AddColumn("note", "bigint", nullable=False, generated="price * 2"), DropColumn("note")],
    ):
        resolved = resolve(products(), changes, {})
        assert [t.name for t in resolved.targets][-2:] == ["category_id", "note"]
        assert resolved.drops == ["note"] and resolved.targets[-1].source is None


@pytest.mark.parametrize(("changes", "usings", "message", "hint"), TABLE_CASES)
def test_table_refusals(changes: list[Change], usings: dict[str, str], message: str, hint: str | None) -> None:
    with pytest.raises(UsageError) as raised:
        resolve(products(), changes, usings, dict(HIDDEN))
    assert str(raised.value) == message
    assert raised.value.hint == hint


def test_check_constraint_over_dropped_column() -> None:
    ref = products(indexes=[], unique_constraints=[])
    with pytest.raises(UsageError, match="check constraint 'ck_price' uses column 'price', which is dropped"):
        resolve(ref, [DropColumn("price")], {})


def test_drop_every_column() -> None:
    ref = products(primary_key={}, indexes=[], unique_constraints=[], check_constraints=[], foreign_keys=[])
    drops: list[Change] = [DropColumn(c["name"]) for c in ref.columns]
    with pytest.raises(UsageError) as raised:
        resolve(ref, drops, {})
    assert str(raised.value) == "the changes drop every column of 'products'"


def test_accepted_changes_resolve() -> None:
    """What passes every check resolves: renamed, altered, added and recomputed columns in order."""
    resolved = resolve(
        products(),
        [
            RenameColumn("note", "memo"),
            AlterColumn("memo", type_sql="text", nullable=False),
            AddColumn("extra", "int", nullable=False),
            AddIndex("ix_memo", ("memo",)),
            DropIndex("ix_cheap"),
        ],
        {"extra": "price * 2", "price": "price + 1"},
        dict(HIDDEN),
    )
    assert [t.name for t in resolved.targets] == ["id", "name", "price", "sku", "category_id", "memo", "extra"]
    memo = next(t for t in resolved.targets if t.name == "memo")
    assert (memo.source, memo.type_sql, memo.nullable) == ("note", "text", False)
    assert resolved.recomputed == ["price"]
    assert resolved.dropped_indexes == ["ix_cheap"]
    assert [ix.name for ix in resolved.new_indexes] == ["ix_memo"]


def shadow_context(ref: Reflection, changes: list[Change], engine: str = "") -> checks.Context:
    return checks.Context(ref=ref, engine=engine, resolved=resolve(ref, changes, {}))


# (check function, table, changes, message): the pure checks of the stage "shadow" and the engines'
SHADOW_CASES: list[tuple[str, Reflection, list[Change], str]] = [
    (
        "referenced-by-foreign-keys",
        products(referenced_by=["orders", "lines", "orders"]),
        [AddColumn("x", "int")],
        "table 'products' is referenced by foreign keys from lines, orders",
    ),
    (
        "generated-column-changed",
        products(columns=[*products().columns, column("total", computed={"sqltext": "price * 2"})]),
        [RenameColumn("total", "sum")],
        "generated column 'total' is renamed or converted by the change, which the shadow copy cannot carry over",
    ),
    (
        "generated-column-over-changed-column",
        products(columns=[*products().columns, column("total", computed={"sqltext": "price * 2"})]),
        [AlterColumn("price", type_sql="varchar(20)")],
        "generated column 'total' is computed from column 'price', which the change drops, renames or converts",
    ),
    (
        "index-expression-over-renamed-column",
        products(),
        [RenameColumn("price", "cost")],
        "index 'ix_cheap' has an expression or predicate over column 'price', which is renamed; "
        "shadowswap does not rewrite expressions",
    ),
    (
        "check-over-renamed-column",
        products(indexes=[]),
        [RenameColumn("price", "cost")],
        "check constraint 'ck_price' uses column 'price', which is renamed; shadowswap does not rewrite expressions",
    ),
    (
        "self-referencing-foreign-key",
        products(
            foreign_keys=[
                {
                    "name": "fk_parent",
                    "constrained_columns": ["category_id"],
                    "referred_table": "products",
                    "referred_columns": ["id"],
                }
            ]
        ),
        [AddColumn("x", "int")],
        "table 'products' has a foreign key to itself (fk_parent); after the swap it would point at the old table",
    ),
    (
        "mysql-auto-increment-type",
        products(),
        [AlterColumn("id", type_sql="varchar(20)")],
        "column 'id' is AUTO_INCREMENT, so its new type must be an integer type",
    ),
    (
        "mysql-auto-increment-not-leading",
        products(
            columns=[column("id", nullable=False), column("seq", autoincrement=True), column("note")],
            unique_constraints=[],
            indexes=[],
            check_constraints=[],
            foreign_keys=[],
        ),
        [AddColumn("x", "int")],
        "AUTO_INCREMENT column 'seq' of 'products' must be in the primary key and lead it or a unique key for "
        "shadowswap",
    ),
    (
        "sqlite-numeric-affinity-type",
        products(),
        [AlterColumn("note", type_sql="varchr(20)")],
        "invalid type 'varchr(20)': SQLite would store it with NUMERIC affinity, which is rarely what a typo meant",
    ),
]


def registered(name: str) -> checks.Check:
    return next(c for c in checks.all() if c.name == name)


@pytest.mark.parametrize(("name", "ref", "changes", "message"), SHADOW_CASES)
def test_shadow_refusals(name: str, ref: Reflection, changes: list[Change], message: str) -> None:
    check = registered(name)
    outcome = check.function(shadow_context(ref, changes))
    assert outcome is not None
    assert (outcome.message if isinstance(outcome, checks.Refusal) else outcome) == message
    # the table as it was declared, before the case broke it, passes the same check
    clean = products(
        columns=products().columns[1:],
        primary_key={"name": "products_pkey", "constrained_columns": ["name"]},
        indexes=[],
        unique_constraints=[],
        check_constraints=[],
        foreign_keys=[],
    )
    assert check.function(shadow_context(clean, [AddColumn("x", "int")])) is None


def test_run_refuses_a_bare_message_with_the_registered_hint() -> None:
    ctx = checks.Context(
        ref=products(), changes=[AlterColumn("name", type_sql="text"), AlterColumn("name", nullable=False)]
    )
    with pytest.raises(UsageError) as raised:
        checks.run("table", ctx)
    assert str(raised.value) == "column 'name' is altered twice"
    assert raised.value.hint == registered("alter-twice").hint == "give one --alter with everything"


def test_engine_checks_apply_to_their_engine_only() -> None:
    for check in checks.all():
        engine = check.name.split("-")[0]
        if engine in ("mysql", "postgresql", "sqlite"):
            assert check.engines == frozenset({engine}), check.name
            assert not check.applies_to("other"), check.name
        else:
            assert check.engines is None and check.applies_to("sqlite"), check.name


def test_every_check_has_a_reason_and_a_hint() -> None:
    every = checks.all()
    assert len({c.name for c in every}) == len(every)
    engines = {"postgresql", "mysql", "sqlite"}
    for check in every:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", check.name), check.name
        assert check.stage in checks.STAGES, check.name
        assert check.reason.strip() and "\n" not in check.reason, check.name
        assert check.hint.strip(), check.name
        assert check.engines is None or check.engines <= engines, check.name
    # the engines with refusals of their own register them (PostgreSQL's swap-time dependents are
    # refused where they are read, dialects/postgresql/dependents.py)
    for engine in ("mysql", "sqlite"):
        assert any(c.engines == frozenset({engine}) for c in every), engine


def test_docs_list_every_check() -> None:
    section = DOCS.read_text().split("## Refusals", 1)[1]
    missing = [c.name for c in checks.all() if f"`{c.name}`" not in section]
    assert missing == [], "checks missing from docs/planning.md's refusal list"


def test_cli_lists_the_checks() -> None:
    from typer.testing import CliRunner

    from shadowswap.cli import app

    result = CliRunner().invoke(app, ["checks", "--engine", "sqlite"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "sqlite-numeric-affinity-type" in result.output and "leftover-table" in result.output
    assert "mysql-foreign-key" not in result.output
    assert CliRunner().invoke(app, ["checks", "--engine", "oracle"]).exit_code == 2
