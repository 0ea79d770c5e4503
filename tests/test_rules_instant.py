"""In-place rules per engine and server version: which changes run as a metadata-only ALTER
(strategy ``instant``) and which need the shadow copy, as rows of (change, expected verdict, reason).

No database: each dialect object is built on a SQLAlchemy dialect with a chosen server version.
"""

from __future__ import annotations

from typing import Any

import pytest
from offline_dialects import mariadb, mysql8, postgres, sqlite_

from shadowswap.strategy import ChangeFacts

ONLY_BY_COPY = "cannot do this without copying the table"


def add(type_sql: str = "int", default: str | None = None, constant: bool = True, **kw: Any) -> ChangeFacts:
    return ChangeFacts(
        kind="add", description="add c", column="c", new_type=type_sql, default=default,
        default_is_constant=constant, **kw,
    )  # fmt: skip


def alter(old: str | None = None, new: str | None = None, **kw: Any) -> ChangeFacts:
    return ChangeFacts(kind="alter", description="alter c", column="c", old_type=old, new_type=new, **kw)


def kind(name: str, **kw: Any) -> ChangeFacts:
    return ChangeFacts(kind=name, description=name, column="c", **kw)


# -- PostgreSQL --------------------------------------------------------------------------------

PG_ROWS: list[tuple[str, tuple[int, ...], ChangeFacts, bool, str]] = [
    ("drop", (16,), kind("drop"), True, "DROP COLUMN only marks the column dropped in the catalog"),
    ("rename", (16,), kind("rename"), True, "RENAME COLUMN changes the catalog only"),
    ("drop index", (16,), kind("drop_index"), True, "dropping an index removes it without touching the rows"),
    ("add index", (16,), kind("add_index"), False, "new indexes are built CONCURRENTLY on the shadow after the copy"),
    ("add unique", (16,), kind("add_unique"), False, "new indexes are built CONCURRENTLY on the shadow after the copy"),
    ("using", (16,), kind("using"), False, "recomputing values rewrites every row"),
    ("alter with using", (16,), alter("varchar(10)", "varchar(20)", has_using=True), False,
     "a USING expression rewrites every row"),
    ("add, no default, old server", (9, 6), add(), True, "a column without a default is added in the catalog only"),
    ("add constant default, 11", (11, 0), add(default="0"), True,
     "a constant default is stored once in the catalog, not written to each row"),
    ("add constant default, 10", (10, 21), add(default="0"), False,
     "a non-constant default is computed and written for every row"),
    ("add volatile default", (16,), add("timestamptz", default="now()", constant=False), False,
     "a non-constant default is computed and written for every row"),
    ("widen varchar", (16,), alter("varchar(10)", "varchar(20)"), True,
     "widening varchar(10) to varchar(20) changes only the length limit"),
    ("same varchar", (16,), alter("varchar(10)", "varchar(10)"), True,
     "varchar(10) is the type the column already has"),
    ("narrow varchar", (16,), alter("varchar(20)", "varchar(10)"), False,
     "changing varchar(20) to varchar(10) rewrites the table"),
    ("varchar to text", (16,), alter("varchar(20)", "text"), True, "varchar(20) to text removes the length limit only"),
    ("varchar(n) to varchar", (16,), alter("varchar(20)", "varchar"), True,
     "varchar(20) to varchar removes the length limit only"),
    ("text to varchar", (16,), alter("text", "varchar"), True, "text and varchar are the same type on disk"),
    ("text to bounded varchar", (16,), alter("text", "varchar(5)"), False,
     "changing text to varchar(5) rewrites the table"),
    ("int to bigint", (16,), alter("integer", "bigint"), False, "changing integer to bigint rewrites the table"),
    ("unknown old type", (16,), alter(None, "bigint"), False, "changing None to bigint rewrites the table"),
    ("set not null", (16,), alter(old_nullable=True, new_nullable=False), False,
     "SET NOT NULL scans the whole table under an exclusive lock"),
    ("drop not null", (16,), alter(old_nullable=False, new_nullable=True), True,
     "DROP NOT NULL changes the catalog only"),
    ("default", (16,), alter(default="5", default_changed=True, default_is_constant=True), True,
     "a default applies to future inserts only"),
    ("volatile default", (16,), alter(default="now()", default_changed=True), True,
     "a default applies to future inserts only"),
    ("all three", (16,), alter("varchar(10)", "varchar(20)", old_nullable=False, new_nullable=True,
                                default_changed=True), True,
     "widening varchar(10) to varchar(20) changes only the length limit; DROP NOT NULL changes the catalog only; "
     "a default applies to future inserts only"),
    ("nothing", (16,), alter(old_nullable=True, new_nullable=True), True, "nothing to rewrite"),
    ("unknown kind", (16,), kind("add_foreign_key"), False, "no in-place rule for add foreign key on this engine"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("version", "change", "instant", "reason"), [r[1:] for r in PG_ROWS], ids=[r[0] for r in PG_ROWS]
)
def test_postgres(version: tuple[int, ...], change: ChangeFacts, instant: bool, reason: str) -> None:
    assert postgres(version).instant_reason(change) == (instant, reason)


# -- MySQL and MariaDB: what each server version makes without a copy ------------------------

INSTANT = "(ALGORITHM=INSTANT)"
INPLACE = "(LOCK=NONE, no rebuild)"
DROP = "DROP COLUMN changes the data dictionary only"
RENAME = "RENAME COLUMN changes the data dictionary only"
DROP_INDEX = "dropping an index leaves the rows alone"
ADD = "the column is added in the data dictionary, existing rows untouched"
DEFAULT = "a default applies to future inserts only"
WIDEN = "varchar(10) → varchar(20) keeps the same length bytes: only the data dictionary changes"

# per operation, the clause each server version earns it, or None for "only a copy"
VERSIONS: list[tuple[str, bool, tuple[int, ...], dict[str, str | None]]] = [
    ("MariaDB 10.2.44", True, (10, 2, 44),
     {"add": None, "drop": None, "rename": None, "default": None, "widen": None, "drop_index": None}),
    ("MariaDB 10.3.39", True, (10, 3, 39),
     {"add": INSTANT, "drop": None, "rename": None, "default": INSTANT, "widen": None, "drop_index": INPLACE}),
    ("MariaDB 10.4.0", True, (10, 4, 0),
     {"add": INSTANT, "drop": INSTANT, "rename": None, "default": INSTANT, "widen": INSTANT, "drop_index": INPLACE}),
    ("MariaDB 10.5.1", True, (10, 5, 1),
     {"add": INSTANT, "drop": INSTANT, "rename": INSTANT, "default": INSTANT, "widen": INSTANT,
      "drop_index": INPLACE}),
    ("MariaDB 11.4.2", True, (11, 4, 2),
     {"add": INSTANT, "drop": INSTANT, "rename": INSTANT, "default": INSTANT, "widen": INSTANT,
      "drop_index": INPLACE}),
    ("MySQL 5.7.44", False, (5, 7, 44),
     {"add": None, "drop": None, "rename": None, "default": None, "widen": None, "drop_index": None}),
    ("MySQL 8.0.11", False, (8, 0, 11),
     {"add": None, "drop": None, "rename": INPLACE, "default": INPLACE, "widen": INPLACE, "drop_index": INPLACE}),
    ("MySQL 8.0.12", False, (8, 0, 12),
     {"add": INSTANT, "drop": None, "rename": INPLACE, "default": INSTANT, "widen": INPLACE, "drop_index": INPLACE}),
    ("MySQL 8.0.28", False, (8, 0, 28),
     {"add": INSTANT, "drop": None, "rename": INSTANT, "default": INSTANT, "widen": INPLACE, "drop_index": INPLACE}),
    ("MySQL 8.0.29", False, (8, 0, 29),
     {"add": INSTANT, "drop": INSTANT, "rename": INSTANT, "default": INSTANT, "widen": INPLACE,
      "drop_index": INPLACE}),
]  # fmt: skip

OPERATIONS: dict[str, tuple[ChangeFacts, str]] = {
    "add": (add("int unsigned", default="0"), ADD),
    "drop": (kind("drop"), DROP),
    "rename": (kind("rename"), RENAME),
    "default": (alter(default="'x'", default_changed=True, default_is_constant=True), DEFAULT),
    "widen": (alter("varchar(10)", "varchar(20)"), WIDEN),
    "drop_index": (kind("drop_index"), DROP_INDEX),
}


@pytest.mark.parametrize(
    ("server", "mariadb_", "version", "operation", "clause"),
    [(s, m, v, op, clause) for s, m, v, table in VERSIONS for op, clause in table.items()],
    ids=[f"{s}-{op}" for s, _, _, table in VERSIONS for op in table],
)
def test_mysql_family_per_version(
    server: str, mariadb_: bool, version: tuple[int, ...], operation: str, clause: str | None
) -> None:
    dialect = mariadb(version) if mariadb_ else mysql8(version)
    change, why = OPERATIONS[operation]
    if clause is None:
        assert dialect.instant_reason(change) == (False, f"{server} {ONLY_BY_COPY}")
    else:
        assert dialect.instant_reason(change) == (True, f"{why} {clause}")


def test_a_default_and_a_widening_together_are_instant_only_when_both_are() -> None:
    both = alter("varchar(10)", "varchar(20)", default="'x'", default_changed=True, default_is_constant=True)
    assert mariadb((10, 11, 6)).instant_reason(both) == (True, f"{WIDEN}; {DEFAULT} {INSTANT}")
    # MySQL 8 widens a VARCHAR in place but not instantly: the one ALTER gets the weaker clause
    assert mysql8((8, 0, 36)).instant_reason(both) == (True, f"{WIDEN}; {DEFAULT} {INPLACE}")
    # MariaDB 10.3 sets the default instantly but cannot widen without a copy
    assert mariadb((10, 3, 39)).instant_reason(both) == (False, f"MariaDB 10.3.39 {ONLY_BY_COPY}")


# Rules that do not depend on the version: what always needs the copy on MySQL and MariaDB, and
# which VARCHAR changes keep the row format (the length-byte class and the index key limit).
MYSQL_ROWS: list[tuple[str, ChangeFacts, bool, str]] = [
    ("add index", kind("add_index"), False,
     "building an index reads the whole table; the shadow gets it online after the copy"),
    ("add unique", kind("add_unique"), False,
     "building an index reads the whole table; the shadow gets it online after the copy"),
    ("using", kind("using"), False, "recomputing values rewrites every row"),
    ("alter with using", alter("varchar(10)", "varchar(20)", has_using=True), False,
     "recomputing values rewrites every row"),
    ("add volatile default", add("datetime", default="now()", constant=False), False,
     "a non-constant default is computed for every row"),
    ("add not null, no default", add("int", new_nullable=False), False,
     "a NOT NULL column without a default: the copy fills it explicitly"),
    ("add auto_increment", add("int auto_increment"), False,
     "type 'int auto_increment' is more than a plain column type"),
    ("add serial", add("serial"), False, "type 'serial' is more than a plain column type"),
    ("add with charset", add("varchar(10) character set latin1 collate latin1_bin"), True, f"{ADD} {INSTANT}"),
    ("drop not null", alter(old_nullable=False, new_nullable=True), False,
     "dropping NOT NULL rebuilds an InnoDB table"),
    ("set not null", alter(old_nullable=True, new_nullable=False), False,
     "SET NOT NULL rebuilds the table and checks every row"),
    ("volatile default", alter(default="now()", default_changed=True, default_is_constant=False), False,
     "a non-constant default is not set in place here"),
    ("same type", alter("varchar(10)", "varchar(10)"), True, f"the type does not change {INSTANT}"),
    ("narrower", alter("varchar(20)", "varchar(10)"), False,
     "varchar(20) → varchar(10) narrows the column: every row must be checked and rewritten"),
    ("int to bigint", alter("int", "bigint"), False, "changing int → bigint rewrites the table"),
    ("varchar to text", alter("varchar(10)", "text"), False, "changing varchar(10) → text rewrites the table"),
    ("varchar to varbinary", alter("varchar(10)", "varbinary(20)"), False,
     "changing varchar(10) → varbinary(20) rewrites the table"),
    # the table's default character set: 1 to 4 bytes a character, so it must hold for 4
    ("default charset, 63 to 64", alter("varchar(10)", "varchar(63)"), True,
     f"varchar(10) → varchar(63) keeps the same length bytes: only the data dictionary changes {INSTANT}"),
    ("default charset, past 255 bytes", alter("varchar(50)", "varchar(100)"), False,
     "varchar(50) → varchar(100) may cross 255 bytes (one length byte to two), which rewrites every row: the "
     "column has the table's default character set (1 to 4 bytes a character)"),
    ("default charset, already two length bytes", alter("varchar(300)", "varchar(400)"), True,
     f"varchar(300) → varchar(400) keeps the same length bytes: only the data dictionary changes {INSTANT}"),
    ("latin1 within one length byte", alter("varchar(100) character set latin1", "varchar(255) character set latin1"),
     True, "varchar(100) character set latin1 → varchar(255) character set latin1 keeps the same length bytes: "
     f"only the data dictionary changes {INSTANT}"),
    ("latin1 past 255 bytes", alter("varchar(200) character set latin1", "varchar(256) character set latin1"),
     False, "varchar(200) character set latin1 → varchar(256) character set latin1 crosses 255 bytes (one length "
     "byte to two), which rewrites every row"),
    ("utf8mb4 past the index key", alter("varchar(100) charset utf8mb4", "varchar(1000) charset utf8mb4"), False,
     "varchar(100) charset utf8mb4 → varchar(1000) charset utf8mb4 may outgrow an index on the column (3072 bytes), "
     "which rebuilds it"),
    ("utf8mb4 within the index key", alter("varchar(100) charset utf8mb4", "varchar(768) charset utf8mb4"), True,
     "varchar(100) charset utf8mb4 → varchar(768) charset utf8mb4 keeps the same length bytes: only the data "
     f"dictionary changes {INSTANT}"),
    ("varbinary within one length byte", alter("varbinary(100)", "varbinary(255)"), True,
     f"varbinary(100) → varbinary(255) keeps the same length bytes: only the data dictionary changes {INSTANT}"),
    ("varbinary past 255 bytes", alter("varbinary(200)", "varbinary(300)"), False,
     "varbinary(200) → varbinary(300) crosses 255 bytes (one length byte to two), which rewrites every row"),
    ("another character set", alter("varchar(10) charset latin1", "varchar(20) charset utf8mb4"), False,
     "varchar(10) charset latin1 → varchar(20) charset utf8mb4 changes the character set or collation, which "
     "rewrites the column"),
    ("another collation", alter("varchar(10) collate utf8mb4_bin", "varchar(20)"), False,
     "varchar(10) collate utf8mb4_bin → varchar(20) changes the character set or collation, which rewrites the "
     "column"),
    ("unknown character set", alter("varchar(10) charset klingon", "varchar(20) charset klingon"), False,
     "character set klingon is not known here"),
    ("unknown kind", kind("add_foreign_key"), False, "no in-place rule for add foreign key on this engine"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "instant", "reason"), [r[1:] for r in MYSQL_ROWS], ids=[r[0] for r in MYSQL_ROWS])
def test_mariadb_rules(change: ChangeFacts, instant: bool, reason: str) -> None:
    assert mariadb((10, 11, 6)).instant_reason(change) == (instant, reason)


# -- SQLite --------------------------------------------------------------------------------------

SQLITE_ROWS: list[tuple[str, ChangeFacts, bool, str]] = [
    ("add, no default", add(), True, "ADD COLUMN edits the stored CREATE TABLE only; existing rows read NULL"),
    ("add constant default", add(default="'x'"), True,
     "ADD COLUMN edits the stored CREATE TABLE only; existing rows read the constant default"),
    ("add volatile default", add(default="CURRENT_TIMESTAMP", constant=False), False,
     "SQLite adds a column in place only with a constant default"),
    ("add with using", add(has_using=True), False, "no in-place rule for add on this engine"),
    ("rename", kind("rename"), True,
     "RENAME COLUMN edits the schema, and the indexes, triggers and views that name the column"),
    ("drop index", kind("drop_index"), True, "DROP INDEX frees the index's pages without touching the table"),
    ("drop unique index", kind("drop_index", unique=True), False, "no in-place rule for drop index on this engine"),
    ("drop column", kind("drop"), False, "no in-place rule for drop on this engine"),
    ("alter type", alter("varchar(10)", "varchar(20)"), False, "no in-place rule for alter on this engine"),
    ("alter default", alter(default="1", default_changed=True, default_is_constant=True), False,
     "no in-place rule for alter on this engine"),
    ("add index", kind("add_index"), False, "no in-place rule for add index on this engine"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "instant", "reason"), [r[1:] for r in SQLITE_ROWS], ids=[r[0] for r in SQLITE_ROWS])
def test_sqlite(change: ChangeFacts, instant: bool, reason: str) -> None:
    assert sqlite_().instant_reason(change) == (instant, reason)
