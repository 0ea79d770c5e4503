"""Table-level changes in the alter language: ``--rebuild``, ``--table-option`` and the table
options of ``--ddl`` (MySQL ``ENGINE``/``FORCE``/``ROW_FORMAT``/…, PostgreSQL ``SET (…)``/``RESET (…)``/
``SET TABLESPACE``/``SET [UN]LOGGED``): rows of (input, the changes it means, or the refusal). No database.
"""

from __future__ import annotations

import pytest

from shadowswap.changes import AddColumn, Rebuild, TableOption, parse_ddl, parse_options
from shadowswap.errors import UsageError

T = TableOption

DDL_ROWS: list[tuple[str, str, list[object] | str]] = [
    # the plain rebuild, as a MySQL user writes it: every migrated table is InnoDB (mysql-not-innodb)
    ("mysql", "ALTER TABLE t ENGINE=InnoDB", [Rebuild()]),
    ("mysql", "alter table t engine = innodb", [Rebuild()]),
    ("mysql", "ALTER TABLE t FORCE", [Rebuild()]),
    ("mysql", "ALTER TABLE t ENGINE=MyISAM", [T("ENGINE", "MyISAM")]),  # refused when planning, with why
    (
        "mysql",
        "ALTER TABLE t ROW_FORMAT=COMPRESSED, KEY_BLOCK_SIZE=8",
        [T("ROW_FORMAT", "COMPRESSED"), T("KEY_BLOCK_SIZE", "8")],
    ),
    ("mysql", "ALTER TABLE t ENGINE=InnoDB ROW_FORMAT=DYNAMIC", [Rebuild(), T("ROW_FORMAT", "DYNAMIC")]),
    ("mysql", "ALTER TABLE t AUTO_INCREMENT=1000", [T("AUTO_INCREMENT", "1000")]),
    ("mysql", "ALTER TABLE t COMMENT='it''s; DROP TABLE x'", [T("COMMENT", "it's; DROP TABLE x")]),
    (
        "mysql",
        "ALTER TABLE t DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        [T("DEFAULT CHARSET", "utf8mb4"), T("COLLATE", "utf8mb4_bin")],
    ),
    ("mysql", "ALTER TABLE t CHARACTER SET utf8mb4", [T("DEFAULT CHARSET", "utf8mb4")]),
    (
        "mysql",
        "ALTER TABLE t ADD COLUMN n int, ROW_FORMAT=DYNAMIC",
        [AddColumn("n", "INT"), T("ROW_FORMAT", "DYNAMIC")],
    ),
    # the clause is named, not a misleading category
    ("mysql", "ALTER TABLE t ENGINE=InnoDB, ALGORITHM=INPLACE", "cannot express 'ALGORITHM=INPLACE' (ALGORITHM / LOCK"),
    ("mysql", "ALTER TABLE t ENGINE=InnoDB, LOCK=NONE", "cannot express 'LOCK=NONE' (ALGORITHM / LOCK"),
    (
        "postgres",
        "ALTER TABLE t SET (fillfactor = 70, autovacuum_enabled = false)",
        [T("fillfactor", "70"), T("autovacuum_enabled", "false")],
    ),
    ("postgres", "ALTER TABLE t SET (toast.autovacuum_enabled = off)", [T("toast.autovacuum_enabled", "off")]),
    (
        "postgres",
        "ALTER TABLE T RESET (fillfactor, toast.autovacuum_enabled)",
        [T("fillfactor", None), T("toast.autovacuum_enabled", None)],
    ),
    ("postgres", "ALTER TABLE t SET TABLESPACE fast", [T("TABLESPACE", "fast")]),
    ("postgres", 'ALTER TABLE t SET TABLESPACE "Fast Disk"', [T("TABLESPACE", "Fast Disk")]),
    ("postgres", "ALTER TABLE t SET UNLOGGED", [T("LOGGED", "false")]),
    ("postgres", "ALTER TABLE t SET LOGGED", [T("LOGGED", "true")]),
    (
        "postgres",
        "ALTER TABLE t SET (fillfactor = 70), ADD COLUMN n int",
        [T("fillfactor", "70"), AddColumn("n", "INT")],
    ),
    ("postgres", "ALTER TABLE t SET WITHOUT CLUSTER", "SET WITHOUT CLUSTER is not supported"),
    ("postgres", "ALTER TABLE t SET (fillfactor = '7); DROP TABLE x')", "must be a number or a word"),
    ("postgres", "ALTER TABLE t CLUSTER ON ix", "--rebuild --order-by INDEX"),
]


@pytest.mark.parametrize(("read", "text", "expected"), DDL_ROWS, ids=[f"{r}-{t[:50]}" for r, t, _ in DDL_ROWS])
def test_ddl_table_options(read: str, text: str, expected: list[object] | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            parse_ddl(text, read)
        return
    parsed = parse_ddl(text, read)
    assert parsed.changes == expected
    assert parsed.table == "t"


OPTION_ROWS: list[tuple[list[str], list[object] | str]] = [
    (["ROW_FORMAT=COMPRESSED"], [T("ROW_FORMAT", "COMPRESSED")]),
    (["row_format = compressed"], [T("ROW_FORMAT", "compressed")]),
    (["charset=utf8mb4", "collate=utf8mb4_bin"], [T("DEFAULT CHARSET", "utf8mb4"), T("COLLATE", "utf8mb4_bin")]),
    (["DEFAULT CHARACTER SET=latin1"], [T("DEFAULT CHARSET", "latin1")]),
    (["comment='a b'"], [T("COMMENT", "a b")]),
    (["auto_increment=10"], [T("AUTO_INCREMENT", "10")]),
    (["fillfactor=70"], [T("fillfactor", "70")]),
    (["fillfactor"], [T("fillfactor", None)]),  # no value: RESET
    (["tablespace=fast"], [T("TABLESPACE", "fast")]),
    (["logged=false"], [T("LOGGED", "false")]),
    (["engine=InnoDB"], [Rebuild()]),  # as --ddl reads it
    (["ENGINE=Aria"], [T("ENGINE", "Aria")]),  # refused when planning, with why
    (["ENGINE=InnoDB; DROP TABLE x"], "ENGINE takes a name"),
    (["ROW_FORMAT"], "ROW_FORMAT needs a value"),
    (["AUTO_INCREMENT=1e3"], "AUTO_INCREMENT takes a whole number"),
    (["fillfactor=70)"], "must be a number or a word"),
    (["fill factor=70"], "is not a table option name"),
    (["=70"], "names no option"),
    (["logged=maybe"], "LOGGED takes true or false"),
]


@pytest.mark.parametrize(("specs", "expected"), OPTION_ROWS, ids=[" ".join(s) for s, _ in OPTION_ROWS])
def test_table_option(specs: list[str], expected: list[object] | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(UsageError, match=expected):
            parse_options(table_option=specs)
        return
    assert parse_options(table_option=specs).changes == expected


def test_rebuild_option_and_ddl_mean_the_same_change() -> None:
    assert parse_options(rebuild=True).changes == [Rebuild()]
    assert parse_ddl("ALTER TABLE t FORCE", "mysql").changes == parse_options(rebuild=True).changes
    # the mini-language and --ddl reach the same option changes
    assert (
        parse_ddl("ALTER TABLE t ROW_FORMAT=COMPRESSED", "mysql").changes
        == parse_options(table_option=["ROW_FORMAT=COMPRESSED"]).changes
    )
    assert (
        parse_ddl("ALTER TABLE t RESET (fillfactor)", "postgres").changes
        == parse_options(table_option=["fillfactor"]).changes
    )
