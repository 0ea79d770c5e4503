"""Fidelity (issue 14): after shadowswap the table is the one the engine's blocking ALTER gives.

Each case of tests/differential.py runs on each of its engines: one fresh database migrated by the
blocking ALTER, another by shadowswap's command line, then catalogs, probe answers and rows compared.
The pairs that differ today are listed in ``differential.KNOWN_GAPS`` with their difference.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DIALECTS, fresh_database
from differential import (
    CASES,
    ITEMS_SQLITE,
    REFUSED,
    REFUSED_CASES,
    Case,
    all_rows,
    blocking_alter,
    catalog,
    cli,
    collected,
    differences,
    migrate_both,
    row_differences,
    run_probes,
    run_sql,
)


@pytest.mark.parametrize(("case", "engine"), [pytest.param(c, e, id=f"{c.name}-{e}") for c, e in collected()])
def test_shadowswap_gives_the_blocking_alters_table(case: Case, engine: str, tmp_path: Path) -> None:
    diffs = migrate_both(case, engine, tmp_path)
    assert not diffs, f"{case.name} on {engine} (blocking ALTER vs shadowswap):\n" + "\n".join(diffs)


@pytest.mark.parametrize(
    ("name", "engine", "said"), [pytest.param(n, e, said, id=f"{n}-{e}") for n, e, said in REFUSED if e in DIALECTS]
)
def test_what_cannot_be_carried_over_is_refused_in_one_line(name: str, engine: str, said: str, tmp_path: Path) -> None:
    """What a shadow copy cannot carry over online is refused by ``plan`` (exit 2) in one line that
    names the object and what to do, and the database is left as it was: no plan, no shadow."""
    case = next(c for c in [*REFUSED_CASES, *CASES] if c.name == name)
    for url in fresh_database(engine, tmp_path):
        run_sql(url, case.for_engine(case.setup, engine))
        before = catalog(url)
        code, output = cli("plan", case.table, *case.flags, url=url, cwd=tmp_path)
        errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
        assert (code, len(errors), "Traceback" in output) == (2, 1, False), output
        assert said in errors[0], output
        assert differences(before, catalog(url)) == []
        assert not (tmp_path / "shadowswap.plan.json").exists()


def test_the_message_names_the_difference(tmp_path: Path) -> None:
    """The harness is sensitive: a descending index made ascending is one line naming the index and both forms."""
    urls = []
    for name, order in (("a.db", "qty DESC, name"), ("b.db", "qty, name")):
        url = f"sqlite:///{tmp_path / name}"
        run_sql(url, [ITEMS_SQLITE, f"CREATE INDEX ix_qty_name ON items ({order})"])
        urls.append(url)
    assert differences(catalog(urls[0]), catalog(urls[1])) == [
        "index items.ix_qty_name: unique=0 origin=c partial=0 columns qty DESC BINARY, name BINARY"
        " vs unique=0 origin=c partial=0 columns qty BINARY, name BINARY",
        "index ix_qty_name sql: create index ix_qty_name on items (qty desc, name)"
        " vs create index ix_qty_name on items (qty, name)",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "check_constraint",
        "app_trigger",
        "view_over_table",
        "sqlite_autoincrement",
        "sqlite_collate",
        "sqlite_unknown_type",
        "sqlite_without_rowid",
        "sqlite_self_reference",
        "sqlite_fk_to_table_column_level",
    ],
)
def test_the_sqlite_rebuild_is_what_add_column_gives(name: str, tmp_path: Path) -> None:
    """The reference itself: for an added column, SQLite's own ALTER TABLE ADD COLUMN and the 12-step
    rebuild the harness runs leave the same catalog and rows, so the rebuild loses nothing on its own."""
    case = next(c for c in CASES if c.name == name)
    rebuilt, native = f"sqlite:///{tmp_path / 'rebuilt.db'}", f"sqlite:///{tmp_path / 'native.db'}"
    for url in (rebuilt, native):
        run_sql(url, case.for_engine(case.setup, "sqlite"))
    blocking_alter(case, "sqlite", rebuilt)
    run_sql(native, [f"ALTER TABLE {case.table} ADD COLUMN note varchar(50)"])
    assert differences(catalog(rebuilt), catalog(native)) == []
    probes = case.for_engine(case.probes, "sqlite")
    assert run_probes(rebuilt, probes) == run_probes(native, probes)
    assert row_differences(all_rows(rebuilt), all_rows(native)) == []
