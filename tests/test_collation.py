"""Conformance: a text primary key under a collation whose order is not Python's (byte) order.

The copy bounds its chunks with SQL comparisons, so in the key column's collation order; the
change log, the replays and the verification name keys by value. Keys that sort differently in
the database than in Python ('a' < 'B' < '_x' under MariaDB's utf8mb4_general_ci, '_x' < 'a' <
'B' under ICU, 'B' < '_x' < 'a' in bytes), keys equal but for case or accents (one row under a
case- and accent-insensitive collation), and writers that insert, update, re-key (to a new key,
or to the same key in another case) and delete while the copy runs chunks of a few rows: every
chunk bound falls between such keys. The table must then hold exactly what the writers
committed, byte for byte.

Collations: MariaDB utf8mb4_general_ci; PostgreSQL a nondeterministic ICU collation of primary
strength (case- and accent-insensitive) and en-US (linguistic, case-sensitive). SQLite's NOCASE
is not here: shadowswap refuses, at plan time, a SQLite table that declares a COLLATE.
"""

from __future__ import annotations

import random
import time
import unicodedata
import zlib
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import only_dialects
from harness import Writer, WriterPool

from shadowswap import state
from shadowswap.changes import parse_alter
from shadowswap.db import connect
from shadowswap.errors import VerificationFailed
from shadowswap.executor import Executor, Options
from shadowswap.planner import build_plan

ROWS = 2000
THREADS = 3
#: first letters whose collation order differs from their byte order: case, accents, '_' (which
#: sorts after the letters under MariaDB's general_ci, between 'Z' and 'a' in bytes)
FAMILIES = ["a", "B", "c", "Äq", "_x", "Z", "z-", "é", "Ö"]


def fold(key: str) -> str:
    """The key as a case- and accent-insensitive collation sees it: two keys with one fold are one row."""
    return "".join(c for c in unicodedata.normalize("NFKD", key) if not unicodedata.combining(c)).casefold()


def recase(key: str, rng: Any) -> str:
    return "".join(c.swapcase() if rng.random() < 0.5 else c for c in key)


def key_column(engine: sa.Engine, linguistic: bool = False) -> str:
    """A text key column under the engine's case-insensitive collation; on PostgreSQL, with
    ``linguistic``, a case-sensitive one whose order is still not byte order (en-US)."""
    name = engine.dialect.name
    if name in ("mysql", "mariadb"):
        return "VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
    if name == "sqlite":
        return "TEXT COLLATE NOCASE"
    with engine.begin() as conn:
        if not linguistic:
            # case- and accent-insensitive like MariaDB's general_ci: ICU's primary strength
            conn.exec_driver_sql(
                "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level1', deterministic = false)"
            )
            return 'TEXT COLLATE "ci"'
        available = {r[0] for r in conn.exec_driver_sql("SELECT collname FROM pg_collation")}
        for collation in ("en-US-x-icu", "en_US.utf8", "en_US"):
            if collation in available:
                return f'TEXT COLLATE "{collation}"'
        other = conn.exec_driver_sql(
            "SELECT collname FROM pg_collation WHERE collname NOT IN ('C', 'POSIX', 'default', 'ucs_basic') "
            "AND collencoding IN (-1, pg_char_to_encoding('UTF8')) ORDER BY collname LIMIT 1"
        ).scalar_one()
    return f'TEXT COLLATE "{other}"'


def create_words(engine: sa.Engine, linguistic: bool = False) -> dict[str, tuple[int, str | None]]:
    """ROWS keys of every family, in random case, none two equal under any fold; returns the model."""
    column = key_column(engine, linguistic)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE words (k {column} NOT NULL PRIMARY KEY, v INTEGER NOT NULL, note VARCHAR(50))"
        )
    rng = random.Random(12)
    initial: dict[str, tuple[int, str | None]] = {}
    for i in range(ROWS):
        key = recase(f"{FAMILIES[i % len(FAMILIES)]}{i}", rng)
        initial[key] = (i, rng.choice([None, f"note {i}", "ünïcode ✓"]))
    assert len({fold(k) for k in initial}) == ROWS  # no two keys are one row under the collation
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO words (k, v, note) VALUES (:k, :v, :note)"),
            [{"k": k, "v": v, "note": note} for k, (v, note) in initial.items()],
        )
    return initial


def collation_order(engine: sa.Engine, table: str = "words") -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql(f"SELECT k FROM {table} ORDER BY k")]


# On MariaDB the verification
# runs beside the copy: it once compared the copy's progress with its own chunk bound in Python's
# order, started on rows not yet copied and failed with "missing from the new table"; it now asks
# the table (Copier.covers).
@only_dialects("postgresql", "mysql")
@pytest.mark.parametrize("linguistic", [False, True], ids=["case-insensitive", "en-US"])
def test_text_key_under_a_case_insensitive_collation(db_url: str, linguistic: bool) -> None:
    engine, dialect = connect(db_url)
    initial = create_words(engine, linguistic)
    in_collation_order = collation_order(engine)
    # the point of the test: the database's order is not Python's
    assert sorted(in_collation_order) == sorted(initial) and in_collation_order != sorted(initial)

    def fresh(w: Writer) -> str:
        # the writer's index and counter make the key new under any fold; 'w' never follows a family's digits
        return recase(f"{w.rng.choice(FAMILIES)}{w.index}w{w.counter}", w.rng)

    def write(engine: sa.Engine, w: Writer) -> str | None:
        op = w.rng.random()
        if op < 0.25 or not w.keys:
            key, row = fresh(w), (-w.counter, f"w{w.index} insert {w.counter}")
            with engine.begin() as conn:
                conn.execute(
                    sa.text("INSERT INTO words (k, v, note) VALUES (:k, :v, :n)"), {"k": key, "v": row[0], "n": row[1]}
                )
            w.model[key] = row
            w.keys.append(key)
            return "inserts"
        key = w.rng.choice(w.keys)
        if key not in w.model:
            return None
        if op < 0.55:
            row = (w.counter, f"w{w.index} update {w.counter}")
            sql, params, kind = "UPDATE words SET v = :v, note = :n WHERE k = :k", {"v": row[0], "n": row[1]}, "updates"
        elif op < 0.8:
            # half the re-keys change only the case: the same row to a case-insensitive collation,
            # other bytes to the copy, the log and the verification
            new = fresh(w) if op < 0.68 else key.swapcase()
            sql, params, kind = "UPDATE words SET k = :new WHERE k = :k", {"new": new}, "rekeys"
        else:
            sql, params, kind = "DELETE FROM words WHERE k = :k", {}, "deletes"
        with engine.begin() as conn:
            n = conn.execute(sa.text(sql), {**params, "k": key}).rowcount
        if n != 1:
            raise AssertionError(f"{kind[:-1]} of {key!r} touched {n} rows")
        if kind == "updates":
            w.model[key] = row
        elif kind == "rekeys":
            w.model[params["new"]] = w.model.pop(key)
            w.keys.append(params["new"])
        else:
            del w.model[key]
        return kind

    plan = build_plan(engine, dialect, "words", [parse_alter("v:bigint")])
    assert plan.strategy == "shadow"
    owner = lambda key: zlib.crc32(fold(key).encode()) % THREADS  # noqa: E731
    # chunks of a few rows, so their bounds fall between keys whose two orders disagree
    options = Options(chunk_size=9, min_chunk=7, max_chunk=11, chunk_time=0.05)
    with WriterPool(db_url, write, initial, threads=THREADS, seed=12, pause=0.003, owner=owner) as writers:
        time.sleep(0.2)
        summary = Executor(engine, dialect, plan, options).run()
        time.sleep(0.2)  # writes after the swap go to the new table
    stats = writers.total
    assert stats.errors == []
    assert stats.inserts and stats.updates and stats.rekeys and stats.deletes
    assert summary.rows_copied > 0
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT k, v, note FROM words").all()
    got = {r[0]: (r[1], r[2]) for r in rows}
    assert len(got) == len(rows)
    expected = writers.model
    assert sorted(got.keys() - expected.keys()) == [] and sorted(expected.keys() - got.keys()) == []
    assert {k: v for k, v in got.items() if expected[k] != v} == {}
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("words")}
    assert isinstance(columns["v"]["type"], sa.BigInteger)


@only_dialects("postgresql", "mysql")
def test_verification_reaches_the_top_key_in_the_collation_order(db_url: str) -> None:
    """The verification walks up to the larger of the two tables' top keys: larger in the
    collation's order, not Python's, or the rows the shadow lacks at the top go unseen."""
    engine, dialect = connect(db_url)
    create_words(engine)
    plan = build_plan(engine, dialect, "words", [parse_alter("v:bigint")])
    Executor(engine, dialect, plan, Options(stop_after=state.COPIED)).run()
    order = collation_order(engine)
    # the fewest top rows whose removal leaves the shadow a top key that Python ranks above the original's
    lost = next(n for n in range(1, len(order)) if order[-n - 1] > order[-1])
    with engine.begin() as conn:  # behind the triggers' back
        conn.execute(
            sa.text(f"DELETE FROM {dialect.q(plan.shadow_table)} WHERE k = :k"), [{"k": k} for k in order[-lost:]]
        )
    with pytest.raises(VerificationFailed, match="missing from the new table"):
        Executor(engine, dialect, plan).run()
    assert plan.old_table not in sa.inspect(engine).get_table_names()  # nothing was swapped
