"""The alter language (``--alter/--add/--drop/--rename/--add-index/--add-unique/--drop-index/--using``
and ``--ddl``): rows of (input, the change it means, or the refusal), hostile strings among them,
and properties over any text. Parsing happens before any connection, so no database here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowswap.changes import (
    AddColumn,
    AddIndex,
    AlterColumn,
    ChangeSet,
    ConvertCharset,
    DropColumn,
    DropIndex,
    RenameColumn,
    parse_add,
    parse_alter,
    parse_ddl,
    parse_drop,
    parse_drop_index,
    parse_index,
    parse_options,
    parse_rename,
    parse_using,
)
from shadowswap.errors import UsageError

ALTER_ROWS: list[tuple[str, AlterColumn]] = [
    ("price:varchar(20)", AlterColumn("price", "varchar(20)")),
    ("price:  numeric( 10 , 2 )   not null", AlterColumn("price", "numeric( 10 , 2 )", nullable=False)),
    ("price:NOT NULL", AlterColumn("price", nullable=False)),
    ("price:null", AlterColumn("price", nullable=True)),
    ("price:default 0", AlterColumn("price", default="0")),
    ("price:drop default", AlterColumn("price", drop_default=True)),
    ("price:text not null drop default", AlterColumn("price", "text", nullable=False, drop_default=True)),
    ("price:varchar(20) default 'a b' not null", AlterColumn("price", "varchar(20)", nullable=False, default="'a b'")),
    ("price:varchar(20) not null default 'a b'", AlterColumn("price", "varchar(20)", nullable=False, default="'a b'")),
    # what is inside a string literal cannot end the statement
    ("price:text default 'a; DROP TABLE t; --'", AlterColumn("price", "text", default="'a; DROP TABLE t; --'")),
    ("price:text default 'it''s'", AlterColumn("price", "text", default="'it''s'")),
    ("status:enum('a','b c')", AlterColumn("status", "enum('a','b c')")),
    ("tags:text[]", AlterColumn("tags", "text[]")),
    ("name:varchar(20) character set utf8mb4 collate utf8mb4_bin",
     AlterColumn("name", "varchar(20) character set utf8mb4 collate utf8mb4_bin")),
    ("at:timestamp(3) with time zone", AlterColumn("at", "timestamp(3) with time zone")),
    ("at:myschema.mytype", AlterColumn("at", "myschema.mytype")),
    # names are literal, or double-quoted to hold the separator (doubled quotes inside)
    ("unit price:int", AlterColumn("unit price", "int")),
    ('"a:b":int', AlterColumn("a:b", "int")),
    ('"say ""hi""":int', AlterColumn('say "hi"', "int")),
    ("größe:bigint", AlterColumn("größe", "bigint")),
    ("a;b -- c:int", AlterColumn("a;b -- c", "int")),
    # MySQL's column position (issue 15): a trailing first / after COLUMN, outside any quoted default
    ("qty:first", AlterColumn("qty", position=("first", None))),
    ("qty:int not null after name", AlterColumn("qty", "int", nullable=False, position=("after", "name"))),
    ('qty:after "unit price"', AlterColumn("qty", position=("after", "unit price"))),
    ("note:text default 'x after y'", AlterColumn("note", "text", default="'x after y'")),
]  # fmt: skip

ALTER_REFUSALS: list[tuple[str, str]] = [
    ("", "is not of the form COLUMN:TYPE"),
    ("price", "is not of the form COLUMN:TYPE"),
    (":int", "names no column"),
    ("price:", "changes nothing"),
    ("price:   ", "changes nothing"),
    ('"a"b":int', "is not of the form COLUMN:TYPE"),
    ("a\x00b:int", "NUL"),
    ("price:varchar(20); DROP TABLE t", "invalid type"),
    ("price:varchar(20) -- rest", "invalid type"),
    ("price:int)", "invalid type"),
    ("price:varchar('a)", "invalid type"),
    ("price:int default 1; DROP TABLE t", "invalid default expression"),
    ("price:int default 1 -- rest", "invalid default expression"),
    ("price:int default 1 /* rest */", "invalid default expression"),
    ("price:int default 1 # rest", "invalid default expression"),
    ("price:text default $$x$$", "invalid default expression"),
    ("price:text default 'x", "invalid default expression"),
    ("price:text default (1", "invalid default expression"),
    ("price:int default (SELECT max(id) FROM t)", "invalid default expression"),
]


@pytest.mark.parametrize(("spec", "expected"), ALTER_ROWS)
def test_alter(spec: str, expected: AlterColumn) -> None:
    assert parse_alter(spec) == expected


@pytest.mark.parametrize(("spec", "message"), ALTER_REFUSALS)
def test_alter_refused(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("$", r"\$")):
        parse_alter(spec)


ADD_ROWS: list[tuple[str, AddColumn | str]] = [
    ("note:varchar(50) after name", AddColumn("note", "varchar(50)", position=("after", "name"))),
    (
        "note:text not null default '' FIRST",
        AddColumn("note", "text", nullable=False, default="''", position=("first", None)),
    ),
    ("note:text", AddColumn("note", "text")),
    ("note:text not null default ''", AddColumn("note", "text", nullable=False, default="''")),
    ("note:text default 'x' not null", AddColumn("note", "text", nullable=False, default="'x'")),
    ("note:text null", AddColumn("note", "text", nullable=True)),
    ("rate %:text not null default '100%'", AddColumn("rate %", "text", nullable=False, default="'100%'")),
    ("at:timestamp default now()", AddColumn("at", "timestamp", default="now()")),
    ("note", "is not of the form COLUMN:TYPE"),
    ("note:", "no type given"),
    ("note:not null", "no type given"),
    ("note:default 1", "no type given"),
    ("note:text drop default", "has no default to drop"),
    ("note:text; DROP TABLE t", "invalid type"),
]


@pytest.mark.parametrize(("spec", "expected"), ADD_ROWS)
def test_add(spec: str, expected: AddColumn | str) -> None:
    _row(parse_add, spec, expected)


OTHER_ROWS: list[tuple[Callable[[str], Any], str, Any]] = [
    (parse_drop, "price", DropColumn("price")),
    (parse_drop, "  a;b -- c  ", DropColumn("a;b -- c")),
    (parse_drop, '"  spaced  "', DropColumn("  spaced  ")),
    (parse_drop, '"x""y"', DropColumn('x"y')),
    (parse_drop, "", "names no column"),
    (parse_drop, '""', "names no column"),
    (parse_drop, "a\x00", "NUL"),
    (parse_drop, '"a"b"', "unbalanced quotes in name"),
    (parse_rename, "a:b", RenameColumn("a", "b")),
    (parse_rename, 'say "hi":größe 2', RenameColumn('say "hi"', "größe 2")),
    (parse_rename, '"a:b":"c:d"', RenameColumn("a:b", "c:d")),
    (parse_rename, "a:a", "renames a column to its own name"),
    (parse_rename, "a:", "names no column"),
    (parse_rename, ":b", "names no column"),
    (parse_rename, "ab", "is not of the form OLD:NEW"),
    (parse_drop_index, "ix_a", DropIndex("ix_a")),
    (parse_drop_index, "", "names no column"),
    (parse_index, "ix:(a, b)", AddIndex("ix", ("a", "b"))),
    (parse_index, "ix:a", AddIndex("ix", ("a",))),
    (parse_index, 'ix:("a,b", c)', AddIndex("ix", ("a,b", "c"))),
    (parse_index, 'ix "quoted"; DROP TABLE order; --:(unit price, größe)',
     AddIndex('ix "quoted"; DROP TABLE order; --', ("unit price", "größe"))),
    (parse_index, "ix:()", "names no column"),
    (parse_index, "ix:", "names no column"),
    (parse_index, "ix:(a,)", "names no column"),
    (parse_index, "ix:(a, a)", "names a column twice"),
    (parse_index, "ix", "is not of the form NAME:"),
    (parse_using, "price=price * 2", ("price", "price * 2")),
    (parse_using, "a=b = c", ("a", "b = c")),
    (parse_using, "v=to_char(ts, 'HH24:MI; --')", ("v", "to_char(ts, 'HH24:MI; --')")),
    (parse_using, "price=", "needs both a column and an expression"),
    (parse_using, "price", "is not of the form COLUMN=EXPRESSION"),
    (parse_using, "price=1; DROP TABLE t", "invalid --using expression for price"),
    (parse_using, "price=(SELECT 1)", "invalid --using expression for price"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("parse", "spec", "expected"), OTHER_ROWS, ids=[f"{p.__name__}-{s!r}" for p, s, _ in OTHER_ROWS]
)
def test_other_options(parse: Callable[[str], Any], spec: str, expected: Any) -> None:
    _row(parse, spec, expected)


def test_add_unique_is_a_unique_index() -> None:
    assert parse_index("uq:(a)", unique=True) == AddIndex("uq", ("a",), unique=True)
    assert parse_index("uq:(a)", unique=True).kind == "add_unique"
    with pytest.raises(UsageError, match="--add-unique"):
        parse_index("uq:()", unique=True)


def test_options_keep_their_order_by_kind_and_refuse_two_usings() -> None:
    changes = parse_options(
        alter=["a:int"], add=["b:text"], drop=["c"], rename=["d:e"], add_index=["ix:(a)"], add_unique=["uq:(b)"],
        drop_index=["old"], using=["a=a + 1"],
    )  # fmt: skip
    assert [c.kind for c in changes.changes] == [
        "alter", "add", "drop", "rename", "drop_index", "add_index", "add_unique",
    ]  # fmt: skip
    assert changes.usings == {"a": "a + 1"}
    with pytest.raises(UsageError, match="two --using expressions for column 'a'"):
        parse_options(using=["a=1", "a=2"])
    with pytest.raises(UsageError, match="two copy expressions"):
        ChangeSet(usings={"a": "1"}).extend(ChangeSet(usings={"a": "2"}))


# -- --ddl ----------------------------------------------------------------------------------------

DDL_ROWS: list[tuple[str, str, ChangeSet | str]] = [
    ("postgres", "ALTER TABLE t ALTER COLUMN price TYPE varchar(20)",
     ChangeSet([AlterColumn("price", "VARCHAR(20)")], table="t")),
    # unquoted names fold as the engine folds them; the clauses on one column become one change
    ("postgres", "ALTER TABLE T ALTER COLUMN Price SET NOT NULL, ALTER COLUMN Price SET DEFAULT 5",
     ChangeSet([AlterColumn("price", nullable=False, default="5")], table="t")),
    ("postgres", 'ALTER TABLE "T" ALTER COLUMN "Price" DROP DEFAULT',
     ChangeSet([AlterColumn("Price", drop_default=True)], table="T")),
    ("postgres", "ALTER TABLE t ADD COLUMN note text NOT NULL DEFAULT ''",
     ChangeSet([AddColumn("note", "TEXT", nullable=False, default="''")], table="t")),
    ("postgres", "ALTER TABLE t DROP COLUMN a, DROP COLUMN b",
     ChangeSet([DropColumn("a"), DropColumn("b")], table="t")),
    ("postgres", "ALTER TABLE t RENAME COLUMN a TO b", ChangeSet([RenameColumn("a", "b")], table="t")),
    ("postgres", "ALTER TABLE t ADD CONSTRAINT uq UNIQUE (a, b)",
     ChangeSet([AddIndex("uq", ("a", "b"), unique=True)], table="t")),
    ("postgres", "CREATE UNIQUE INDEX ix ON t (a, b); DROP INDEX old_ix",
     ChangeSet([AddIndex("ix", ("a", "b"), unique=True), DropIndex("old_ix")], table="t")),
    # MySQL's MODIFY restates the whole column: what it leaves out is reset
    ("mysql", "ALTER TABLE `T` MODIFY `Price` varchar(20) NOT NULL",
     ChangeSet([AlterColumn("Price", "VARCHAR(20)", nullable=False, drop_default=True, comment="", generated="",
                            auto_increment=False)],
               table="T")),
    ("mysql", "ALTER TABLE t CHANGE a b int",
     ChangeSet([RenameColumn("a", "b"), AlterColumn("a", "INT", nullable=True, drop_default=True, comment="",
                                                    generated="", auto_increment=False)], table="t")),
    # issue 15: COLLATE after DEFAULT NULL is the column's collation (sqlglot reads it into the default)
    ("mysql", "ALTER TABLE t CHANGE e e enum('a','b') NULL DEFAULT NULL COLLATE 'utf8_bin'",
     ChangeSet([AlterColumn("e", "ENUM('a', 'b') COLLATE utf8_bin", nullable=True, default="NULL", comment="",
                            generated="", auto_increment=False)], table="t")),
    ("mysql", "ALTER TABLE t ADD COLUMN x varchar(5) DEFAULT 'a' COLLATE latin1_bin",
     ChangeSet([AddColumn("x", "VARCHAR(5) COLLATE latin1_bin", default="'a'")], table="t")),
    # CHARACTER SET / COLLATE are part of MySQL's type; COMMENT and the position are the column's
    ("mysql", "ALTER TABLE t MODIFY c2 varchar(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'hi'"
              " AFTER c1",
     ChangeSet([AlterColumn("c2", "VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", nullable=False,
                            drop_default=True, comment="hi", generated="", position=("after", "c1"),
                            auto_increment=False)], table="t")),
    ("mysql", "ALTER TABLE t ADD COLUMN x int FIRST, ADD COLUMN y text CHARSET latin1 COMMENT 'why' AFTER x",
     ChangeSet([AddColumn("x", "INT", position=("first", None)),
                AddColumn("y", "TEXT CHARACTER SET latin1", comment="why", position=("after", "x"))], table="t")),
    ("mysql", "ALTER TABLE t DROP COLUMN c1, ADD COLUMN c1 int",
     ChangeSet([DropColumn("c1"), AddColumn("c1", "INT")], table="t")),
    # CONVERT TO CHARACTER SET: which columns it converts is the table's (the planner expands it)
    ("mysql", "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 COLLATE 'utf8mb4_bin'",
     ChangeSet([ConvertCharset("utf8mb4", "utf8mb4_bin")], table="t")),
    ("mysql", "alter table `T` convert to charset latin1", ChangeSet([ConvertCharset("latin1")], table="T")),
    # generated columns: added, restated with a new expression; the copy never writes them
    ("mysql", "ALTER TABLE t ADD COLUMN g int AS (a + 1) STORED, ADD COLUMN v int GENERATED ALWAYS AS (a * 2)",
     ChangeSet([AddColumn("g", "INT", generated="a + 1", stored=True),
                AddColumn("v", "INT", generated="a * 2", stored=False)], table="t")),
    ("mysql", "ALTER TABLE t MODIFY g bigint AS (a + 2) VIRTUAL",
     ChangeSet([AlterColumn("g", "BIGINT", nullable=True, drop_default=True, comment="", generated="a + 2",
                            stored=False, auto_increment=False)], table="t")),
    ("mysql", "ALTER TABLE t ADD INDEX ix (a), DROP INDEX old",
     ChangeSet([AddIndex("ix", ("a",)), DropIndex("old")], table="t")),
    # SQLite has no ALTER COLUMN: read as standard SQL instead
    ("sqlite", "ALTER TABLE t ALTER COLUMN a TYPE text", ChangeSet([AlterColumn("a", "TEXT")], table="t")),
    # refusals: whatever is not mapped exactly is refused whole, never half-applied
    ("postgres", "", "--ddl is empty"),
    ("postgres", ";", "--ddl is empty"),
    ("postgres", "DROP TABLE t", "only ALTER TABLE, CREATE INDEX and DROP INDEX"),
    ("postgres", "SELECT 1", "only ALTER TABLE, CREATE INDEX and DROP INDEX"),
    ("postgres", "ALTER TABLE t ADD COLUMN x int; DROP TABLE t", "only ALTER TABLE, CREATE INDEX and DROP INDEX"),
    ("postgres", "ALTER TABLE a ADD COLUMN x int; ALTER TABLE b ADD COLUMN y int", "changes two tables"),
    ("postgres", "ALTER TABLE s.t ADD COLUMN x int", "schema-qualified tables are not supported"),
    ("postgres", "ALTER TABLE t ADD COLUMN IF NOT EXISTS x int", "cannot express"),
    ("postgres", "ALTER TABLE t ALTER COLUMN a TYPE int, ALTER COLUMN a TYPE bigint", "a changed twice"),
    ("postgres", "ALTER TABLE t ADD COLUMN x int REFERENCES u (id)", "column attribute REFERENCES"),
    ("postgres", "ALTER TABLE t ADD COLUMN x int DEFAULT (SELECT 1)", "invalid default expression"),
    ("postgres", "CREATE INDEX ix ON t (a DESC)", "descending index columns"),
    ("postgres", "CREATE INDEX ON t (a)", "give the index a name"),
    ("postgres", "CREATE INDEX ix ON t (lower(a))", "only plain columns in an index"),
    ("postgres", "ALTER TABLE t ALTER COLUMN a TYPE int USING 1; SELECT 2", "only ALTER TABLE"),
    # refused clauses name the clause and why, never a parser message
    ("mysql", "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (a, b)",
     "DROP / ADD PRIMARY KEY: changing the primary key is not done online"),
    ("mysql", "ALTER TABLE t ADD PRIMARY KEY (a)", "DROP / ADD PRIMARY KEY"),
    ("mysql", "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4, ADD COLUMN x int", "is read alone"),
    ("mysql", "ALTER TABLE t CONVERT TO CHARACTER SET DEFAULT", "name the character set"),
    ("postgres", "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", "clause 'CONVERT TO CHARACTER' is not understood"),
    ("mysql", "ALTER TABLE t ADD COLUMN g int AS (a + 1) PERSISTENT", "PERSISTENT"),
    ("mysql", "ALTER TABLE t ADD COLUMN id2 int NOT NULL AUTO_INCREMENT", "column attribute AUTO_INCREMENT"),
    # MODIFY/CHANGE restate AUTO_INCREMENT: kept when given, dropped when not (as the engine does)
    ("mysql", "ALTER TABLE t MODIFY id bigint NOT NULL AUTO_INCREMENT",
     ChangeSet([AlterColumn("id", "BIGINT", nullable=False, drop_default=True, comment="", generated="",
                            auto_increment=True)], table="t")),
    ("mysql", "ALTER TABLE t ADD COLUMN x int INVISIBLE", "column attribute INVISIBLE"),
    ("mysql", "ALTER TABLE t ADD COLUMN x varchar(5) COLLATE 'a b'", "invalid character set or collation"),
    ("mysql", "ALTER TABLE t ADD COLUMN g int AS (a + 1) DEFAULT 1", "a generated column has no DEFAULT"),
    ("mysql", "ALTER TABLE t ADD COLUMN x int, ALGORITHM=INSTANT", "cannot express"),
]  # fmt: skip


@pytest.mark.parametrize(("read", "text", "expected"), DDL_ROWS, ids=[f"{r}-{t[:50]}" for r, t, _ in DDL_ROWS])
def test_ddl(read: str, text: str, expected: ChangeSet | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace("/", "/")):
            parse_ddl(text, read)
    else:
        assert parse_ddl(text, read) == expected


def _row(parse: Callable[[str], Any], spec: str, expected: Any) -> None:
    if isinstance(expected, str):
        with pytest.raises(UsageError, match=expected.replace("(", r"\(")):
            parse(spec)
    else:
        assert parse(spec) == expected


# -- properties over any text ---------------------------------------------------------------------

PARSERS: list[Callable[[str], Any]] = [parse_alter, parse_add, parse_drop, parse_rename, parse_index, parse_drop_index,
                                       parse_using]  # fmt: skip
# text that looks like the language: separators, quotes, comments and keywords more often than chance
TOKENS = [
    *"ab :=\"'`();,-/*#$[]\\\x00\n\t é",
    "default",
    "not null",
    "null",
    "drop",
    "varchar(20)",
    "--",
    "/*",
    "''",
    '""',
]
HOSTILE = st.lists(st.sampled_from(TOKENS), max_size=20).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=60), HOSTILE)


def _only_usage_errors(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except UsageError:
        return None


@settings(max_examples=300, deadline=None)
@given(spec=ANY_TEXT, which=st.sampled_from(PARSERS))
def test_an_option_parses_or_raises_a_usage_error(spec: str, which: Callable[[str], Any]) -> None:
    _only_usage_errors(which, spec)


@settings(max_examples=150, deadline=None)
@given(text=ANY_TEXT, read=st.sampled_from(["postgres", "mysql", "sqlite"]))
def test_ddl_parses_or_raises_a_usage_error(text: str, read: str) -> None:
    _only_usage_errors(lambda t: parse_ddl(t, read), text)


@settings(max_examples=150, deadline=None)
@given(
    text=st.one_of(ANY_TEXT, st.builds(lambda a, b: f"ALTER TABLE t {a} COLUMN x {b}", st.sampled_from(
        ["ADD", "DROP", "ALTER", "RENAME", "MODIFY"]), ANY_TEXT)),
    read=st.sampled_from(["postgres", "mysql", "sqlite"]),
)  # fmt: skip
def test_ddl_statements_with_hostile_tails_parse_or_raise_a_usage_error(text: str, read: str) -> None:
    _only_usage_errors(lambda t: parse_ddl(t, read), text)


@settings(max_examples=200, deadline=None)
@given(spec=ANY_TEXT)
def test_an_accepted_change_has_no_statement_break_outside_quotes(spec: str) -> None:
    """Whatever --alter accepts holds no statement end, comment or dollar quote outside a literal."""
    change = _only_usage_errors(parse_alter, spec)
    if change is None:
        return
    for sql in (change.type_sql, change.default):
        if sql is not None:
            # a literal may hold anything (enum('a;b') is a type); outside one, nothing that ends or hides SQL
            bare = re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`", "", sql)
            for bad in (";", "--", "/*", "#", "$", "\x00"):
                assert bad not in bare, (spec, sql)


NAMES = st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@settings(max_examples=200, deadline=None)
@given(name=NAMES)
def test_any_name_survives_quoting(name: str) -> None:
    assert parse_drop(_quoted(name)) == DropColumn(name)
    assert parse_alter(f"{_quoted(name)}:bigint") == AlterColumn(name, "bigint")
    assert parse_rename(f"{_quoted(name)}:{_quoted(name + 'x')}") == RenameColumn(name, name + "x")
    assert parse_index(f"ix:({_quoted(name)})") == AddIndex("ix", (name,))


# -- MySQL column clauses in any order (issue 15) ---------------------------------------------------

_MY_TYPES = ["int", "varchar(20)", "text", "enum('a','b')"]
_MY_CLAUSES = {
    "charset": st.sampled_from(["utf8mb4", "latin1"]).map(lambda c: ("charset", c, f"CHARACTER SET {c}")),
    "collate": st.sampled_from(["utf8mb4_bin", "latin1_bin"]).map(lambda c: ("collate", c, f"COLLATE {c}")),
    "null": st.booleans().map(lambda n: ("null", n, "NULL" if n else "NOT NULL")),
    "default": st.sampled_from(["1", "'x'", "NULL"]).map(lambda d: ("default", d, f"DEFAULT {d}")),
    "comment": st.sampled_from(["c", "it''s"]).map(lambda c: ("comment", c.replace("''", "'"), f"COMMENT '{c}'")),
}


@settings(max_examples=150, deadline=None)
@given(
    type_sql=st.sampled_from(_MY_TYPES),
    clauses=st.lists(st.sampled_from(sorted(_MY_CLAUSES)), unique=True).flatmap(
        lambda keys: st.permutations(keys).flatmap(lambda ks: st.tuples(*[_MY_CLAUSES[k] for k in ks]))
    ),
    position=st.sampled_from([None, ("first", None), ("after", "c1")]),
    modify=st.booleans(),
)
def test_mysql_column_clauses_in_any_order_map_exactly(
    type_sql: str, clauses: tuple[tuple[str, Any, str], ...], position: Any, modify: bool
) -> None:
    """Each clause of a MySQL column definition, in any order (charset and collation before the others,
    as MySQL's grammar has them) lands in its field, and none is lost or read into another."""
    ordered = sorted(clauses, key=lambda c: c[0] not in ("charset", "collate"))
    text = " ".join([type_sql, *(c[2] for c in ordered)])
    if position is not None:
        text += " FIRST" if position[0] == "first" else " AFTER c1"
    verb = "MODIFY" if modify else "ADD COLUMN"
    changes = parse_ddl(f"ALTER TABLE t {verb} x {text}", "mysql").changes
    assert len(changes) == 1
    change = changes[0]
    got = dict((c[0], c[1]) for c in clauses)
    assert isinstance(change, AlterColumn if modify else AddColumn)
    assert change.type_sql is not None
    words = change.type_sql.upper()
    assert ("CHARACTER SET " + str(got.get("charset")).upper() in words) == ("charset" in got)
    assert ("COLLATE " + str(got.get("collate")).upper() in words) == ("collate" in got)
    assert change.nullable == (got.get("null", True))
    assert change.default == got.get("default")
    assert change.comment == (got.get("comment", "" if modify else None))
    assert change.position == position


@pytest.mark.parametrize(
    ("ddl", "options"),
    [
        ("ALTER TABLE t ADD COLUMN note varchar(50) AFTER name", {"add": ["note:varchar(50) after name"]}),
        (
            "ALTER TABLE t ADD COLUMN note text NOT NULL DEFAULT '' FIRST",
            {"add": ["note:text not null default '' first"]},
        ),
    ],
)
def test_ddl_and_options_say_the_same_position(ddl: str, options: dict[str, list[str]]) -> None:
    """Both ways of saying a column's position reach the same change (types aside, which --ddl spells upper case)."""
    assert [c.describe().lower() for c in parse_ddl(ddl, "mysql").changes] == [
        c.describe().lower() for c in parse_options(**options).changes
    ]
