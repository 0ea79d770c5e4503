"""Type narrowing: which type changes can lose data (a destructive change, refused without
``--allow-destructive``), as table rows of (old type, new type, expected reason or None).

No database: the rules are ``shadowswap.strategy.narrowing_reason`` as each dialect applies it.
"""

from __future__ import annotations

import pytest
from offline_dialects import mariadb, postgres, sqlite_

from shadowswap.strategy import narrowing_reason

LONGER = "longer values do not fit"
LARGE = "large values do not fit"
ROUNDED = "digits after the point are rounded away"
UNCONSTRAINED = "an unconstrained numeric holds more"
FRACTIONS = "fractions are rounded away"
PRECISION = "precision is lost"
FRACTIONS_OR_MAGNITUDE = "fractions or magnitude are lost"
PART = "part of each value is dropped"

# (old, new, the end of the reason, or None when the new type holds every old value or it is not knowable)
POSTGRES_ROWS: list[tuple[str | None, str, str | None]] = [
    # strings: a bound below the old bound, or any bound on an unbounded string
    ("varchar(20)", "varchar(10)", LONGER),
    ("varchar(10)", "varchar(20)", None),
    ("varchar(10)", "varchar(10)", None),
    ("character varying(30)", "varchar(29)", LONGER),
    ("text", "varchar(255)", LONGER),
    ("varchar", "varchar(255)", LONGER),  # varchar without a length is unbounded
    ("varchar(10)", "text", None),
    ("varchar(10)", "varchar", None),
    ("char(5)", "varchar(3)", LONGER),
    ("varchar(5)", "char(5)", None),
    # integers by rank
    ("bigint", "integer", LARGE),
    ("integer", "smallint", LARGE),
    ("bigint", "smallint", LARGE),
    ("smallint", "integer", None),
    ("integer", "bigint", None),
    ("int", "integer", None),
    # numeric: scale first, then the digits before the point
    ("numeric(10,2)", "numeric(10,1)", ROUNDED),
    ("numeric(10,2)", "numeric(8,2)", LARGE),
    ("numeric(10,2)", "numeric(12,4)", None),  # 8 digits before the point either way
    ("numeric(10,2)", "numeric(11,4)", LARGE),  # 7 digits before the point instead of 8
    ("numeric(10,2)", "numeric(10,2)", None),
    ("numeric(10)", "numeric(10,0)", None),
    ("numeric", "numeric(10,2)", UNCONSTRAINED),
    ("numeric(10,2)", "numeric", None),
    ("decimal(5,2)", "numeric(5,3)", LARGE),  # 2 digits before the point instead of 3
    # numeric to integer: only a fraction counts (the magnitude is for the cast check to find)
    ("numeric(10,2)", "integer", FRACTIONS),
    ("numeric", "bigint", FRACTIONS),
    ("numeric(10)", "bigint", None),
    ("numeric(10,0)", "integer", None),
    # floating point
    ("double precision", "real", PRECISION),
    ("real", "double precision", None),
    ("double precision", "integer", FRACTIONS_OR_MAGNITUDE),
    ("real", "numeric(10,2)", FRACTIONS_OR_MAGNITUDE),
    # date and time
    ("timestamp", "date", PART),
    ("timestamptz", "date", PART),
    ("timestamp", "time", PART),
    ("date", "timestamp", None),
    ("timestamp", "timestamptz", None),
    # across families, or unknown: not knowably narrower (the cast check and the copy judge values)
    ("integer", "varchar(5)", None),
    ("varchar(5)", "integer", None),
    ("text", "jsonb", None),
    (None, "varchar(5)", None),
    ("varchar(10)", "", None),
]

MYSQL_ROWS: list[tuple[str | None, str, str | None]] = [
    ("varchar(255)", "varchar(100)", LONGER),
    ("longtext", "varchar(100)", LONGER),
    ("mediumtext", "char(10)", LONGER),
    ("varchar(100)", "mediumtext", None),
    ("int", "mediumint", LARGE),
    ("mediumint", "smallint", LARGE),
    ("smallint", "tinyint", LARGE),
    ("tinyint", "mediumint", None),
    ("mediumint", "bigint", None),
    ("decimal(12,4)", "decimal(12,2)", ROUNDED),
    ("decimal(12,2)", "decimal(14,2)", None),
    ("decimal(12,2)", "int", FRACTIONS),
    ("double", "float", PRECISION),
    ("float", "double", None),
    ("double", "decimal(20,6)", FRACTIONS_OR_MAGNITUDE),
    ("datetime", "date", PART),
    ("datetime", "time", PART),
    ("date", "datetime", None),
]


def _check(reason: str | None, column: str, old: str | None, new: str, expected: str | None) -> None:
    if expected is None:
        assert reason is None, f"{old} -> {new} is not narrowing, but got {reason!r}"
    else:
        assert reason == f"narrows {column} from {old} to {new}: {expected}"


@pytest.mark.parametrize(("old", "new", "expected"), POSTGRES_ROWS)
def test_postgres_narrowing(old: str | None, new: str, expected: str | None) -> None:
    _check(postgres().narrowing_reason("c", old, new), "c", old, new, expected)


@pytest.mark.parametrize(("old", "new", "expected"), MYSQL_ROWS)
def test_mysql_narrowing(old: str | None, new: str, expected: str | None) -> None:
    _check(mariadb().narrowing_reason("price", old, new), "price", old, new, expected)


@pytest.mark.parametrize(("old", "new", "expected"), POSTGRES_ROWS[:10])
def test_the_rule_without_a_dialect_reads_standard_sql(old: str | None, new: str, expected: str | None) -> None:
    _check(narrowing_reason("c", old, new, None), "c", old, new, expected)


@pytest.mark.parametrize(
    ("old", "new"),
    [(old, new) for old, new, expected in POSTGRES_ROWS if expected is not None and old is not None],
)
def test_sqlite_stores_values_whole_so_no_type_change_narrows(old: str, new: str) -> None:
    # the same changes that narrow elsewhere: a declared length or scale is only a name in SQLite
    assert postgres().narrowing_reason("c", old, new) is not None
    assert sqlite_().narrowing_reason("c", old, new) is None
