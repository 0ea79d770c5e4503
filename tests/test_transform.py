"""``--transform MODULE:FUNCTION`` (issue 17): new columns computed in Python, exactly, online.

Against the real engines: the new table equals the function applied to what concurrent writers
committed; a failure in the function (mid-copy, mid-replay) stops with one line naming the key and
the user's own line and leaves nothing behind; kill -9 mid-copy resumes; a changed function makes
the plan stale; values of each kind arrive as the driver adapts them. SQLite takes the change log
for --transform plans only (test_sqlite_change_log_only_for_transform).
"""

from __future__ import annotations

import datetime as dt
import decimal
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import transform_products
from conftest import only_dialects
from differential import cli, cli_error
from harness import Writers, compare, create_products

from shadowswap import state
from shadowswap.changes import parse_options
from shadowswap.db import connect
from shadowswap.errors import CopyFailed, StalePlan, UsageError, VerificationFailed
from shadowswap.executor import Executor, Options
from shadowswap.plan import Plan
from shadowswap.planner import build_plan

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent

#: the new columns ``transform_products.summary`` fills, per engine
SUMMARY = {
    "postgresql": ["summary:jsonb", "price_cents:bigint"],
    "mysql": ["summary:json", "price_cents:bigint"],
    "sqlite": ["summary:json", "price_cents:bigint"],
}
TYPED = {
    "postgresql": ["doc:jsonb", "amount:numeric(12,4)", "stamp:timestamp", "raw:bytea", "label:text"],
    "mysql": ["doc:json", "amount:decimal(12,4)", "stamp:datetime(6)", "raw:blob", "label:text"],
    "sqlite": ["doc:json", "amount:numeric(12,4)", "stamp:datetime", "raw:blob", "label:text"],
}


def _plan(engine: sa.Engine, dialect: Any, adds: list[str], function: str, **kw: Any) -> Plan:
    changes = parse_options(add=adds)
    return build_plan(engine, dialect, "products", changes, transform=f"transform_products:{function}", **kw)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _leftovers(engine: sa.Engine, plan: Plan) -> list[str]:
    """Tables and triggers the migration made that are still there."""
    names = set(sa.inspect(engine).get_table_names())
    left = sorted(names & {plan.shadow_table, plan.capture.logged_table})
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'products'::regclass AND NOT tgisinternal"
        elif engine.dialect.name == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'products'"
        else:
            sql = "SELECT trigger_name FROM information_schema.triggers WHERE event_object_schema = DATABASE()"
        left += [r[0] for r in conn.exec_driver_sql(sql)]
    return left


def _line_of(marker: str) -> int:
    source = inspect.getsource(transform_products).splitlines()
    return next(i for i, line in enumerate(source, 1) if marker in line)


def test_transform_equals_function_of_committed_rows_under_writers(db_url: str) -> None:
    """Inserts, updates, key updates and deletes during the copy and the replays: every row of the new
    table holds the function of the row the writers committed, and the other columns are exact."""
    engine, dialect = connect(db_url)
    initial = create_products(engine, 800)
    plan = _plan(engine, dialect, SUMMARY[dialect.name], "summary")
    assert plan.capture.change_log and plan.transform is not None
    assert plan.transform.columns == ["summary", "price_cents"]
    # The writers stop before the swap: after it the application writes the new columns itself
    # (the function runs only while shadowswap copies). The swap's last replay applies the
    # entries they left since the verification's last catch-up.
    with Writers(db_url, initial, threads=2, seed=11) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=100, max_chunk=100, stop_after=state.VERIFIED)).run()
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {plan.capture.logged_table}")).scalar_one() > 0
    Executor(engine, dialect, plan).run()
    assert writers.total.errors == []
    assert writers.total.rekeys > 0 and writers.total.deletes > 0 and writers.total.updates > 0
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        got = {r[0]: (_json(r[1]), r[2]) for r in conn.exec_driver_sql("SELECT id, summary, price_cents FROM products")}
    assert set(got) == set(writers.model)
    wrong = []
    for key, row in writers.model.items():
        want = transform_products.summary(row)
        if got[key] != (want["summary"], want["price_cents"]):
            wrong.append((key, got[key], want))
    assert wrong == []


def test_transform_unique_value_moving_between_keys(db_url: str, monkeypatch: Any) -> None:
    """A UNIQUE value moved from a copied key to one the copy has not reached, then between two
    copied keys after the copy, replayed one entry at a time: no stale row ever meets the row that
    took its value (SQLite keeps the constraint in CREATE TABLE: its chunks replay the copied keys
    first, and a replay batch that meets a duplicate is redone with the whole log)."""
    engine, dialect = connect(db_url)
    model = create_products(engine, 300)
    plan = _plan(engine, dialect, SUMMARY[dialect.name], "summary")

    def swap_skus(a: int, b: int) -> None:
        with engine.begin() as conn:
            for key, sku in ((a, "moving"), (b, model[a]["sku"]), (a, model[b]["sku"])):
                conn.execute(sa.text("UPDATE products SET sku = :sku WHERE id = :id"), {"sku": sku, "id": key})
        model[a]["sku"], model[b]["sku"] = model[b]["sku"], model[a]["sku"]

    chunks = []
    begin_chunk = dialect.begin_chunk

    def before_third_chunk(conn: sa.Connection) -> None:
        chunks.append(1)
        if len(chunks) == 3:  # keys up to 200 copied
            swap_skus(5, 250)
        begin_chunk(conn)

    monkeypatch.setattr(dialect, "begin_chunk", before_third_chunk)
    monkeypatch.setattr(dialect, "replay_batch", 1, raising=False)
    options = Options(chunk_size=100, min_chunk=100, max_chunk=100, stop_after=state.COPIED)
    Executor(engine, dialect, plan, options).run()
    assert len(chunks) == 3
    swap_skus(10, 20)
    Executor(engine, dialect, plan).run()
    compare(engine, model).assert_exact()
    with engine.connect() as conn:
        got = {r[0]: r[1] for r in conn.exec_driver_sql("SELECT id, price_cents FROM products")}
    assert got == {k: transform_products.summary(r)["price_cents"] for k, r in model.items()}


@only_dialects("sqlite")
def test_sqlite_nocase_key_replayed_in_its_own_order(db_url: str, monkeypatch: Any, tmp_path: Path) -> None:
    """A NOCASE text key: the copy walks 'a…' before 'B…', and a chunk's replay must take the
    entries of the keys copied in that order, not in the log's byte order ('B…' < 'a…'), or it
    would write a row the copy has not reached and the copy would meet it later."""
    engine, dialect = connect(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k TEXT COLLATE NOCASE PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID")
        keys = [f"{prefix}{i:02}" for prefix in ("a", "B") for i in range(50)]
        conn.execute(sa.text("INSERT INTO t VALUES (:k, 'x')"), [{"k": k} for k in keys])
    (tmp_path / "nocase_xform.py").write_text("def f(row):\n    return {'n': len(row['v'])}\n")
    monkeypatch.chdir(tmp_path)
    plan = build_plan(engine, dialect, "t", parse_options(add=["n:int"]), transform="nocase_xform:f")
    chunks = []
    begin_chunk = dialect.begin_chunk

    def before_third_chunk(conn: sa.Connection) -> None:
        chunks.append(1)
        if len(chunks) == 3:  # 'a00'…'a19' copied
            with engine.begin() as other:
                other.exec_driver_sql("UPDATE t SET v = 'xyz' WHERE k IN ('a05', 'B05')")
        begin_chunk(conn)

    monkeypatch.setattr(dialect, "begin_chunk", before_third_chunk)
    Executor(engine, dialect, plan, Options(chunk_size=10, min_chunk=10, max_chunk=10)).run()
    with engine.connect() as conn:
        got = {r[0]: r[1] for r in conn.exec_driver_sql("SELECT k, n FROM t")}
    assert len(got) == 100 and got["a05"] == got["B05"] == 3 and got["a06"] == 1


def test_transform_replays_drain_the_log_before_the_swap(db_url: str) -> None:
    """More entries than one replay batch (SQLite: 500 per BEGIN IMMEDIATE) are all applied before
    the verification, not left for the swap's lock."""
    engine, dialect = connect(db_url)
    create_products(engine, 50)
    plan = _plan(engine, dialect, SUMMARY[dialect.name], "summary")
    Executor(engine, dialect, plan, Options(stop_after=state.COPIED)).run()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO products (name, sku, price, stock_quantity, is_active) VALUES (:name, :sku, 2.5, 1, true)"
            ),
            [{"name": f"late {i}", "sku": f"late-{i}"} for i in range(1200)],
        )
    Executor(engine, dialect, plan, Options(stop_after=state.INDEXES_BUILT)).run()
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {plan.capture.logged_table}")).scalar_one() == 0
        assert conn.execute(sa.text(f"SELECT count(*) FROM {plan.shadow_table}")).scalar_one() == 1250
    Executor(engine, dialect, plan).run()


def test_transform_values_adapted_per_engine(db_url: str) -> None:
    """dict/list → JSON, Decimal, datetime, bytes and None, each into a column of its type, verified."""
    engine, dialect = connect(db_url)
    create_products(engine, 40)
    plan = _plan(engine, dialect, TYPED[dialect.name], "typed")
    Executor(engine, dialect, plan, Options(chunk_size=10, max_chunk=10)).run()
    with engine.connect() as conn:
        if dialect.name == "sqlite":
            # SQLite stores text and numbers: read back as the application would, through the
            # declared types (SQLAlchemy's SQLite DATETIME parses the text the adaptation wrote)
            t = sa.Table("products", sa.MetaData(), autoload_with=conn)
            query = sa.select(t.c.id, t.c.doc, t.c.amount, t.c.stamp, t.c.raw, t.c.label).order_by(t.c.id)
            rows = conn.execute(query).all()
            kinds = "SELECT id, typeof(amount) || ' ' || typeof(stamp) FROM products"
            stored = {r[0]: r[1] for r in conn.exec_driver_sql(kinds)}
            assert {stored[k] for k in (1, 3)} == {"real text"} and stored[2] == "null null"
        else:
            rows = conn.exec_driver_sql("SELECT id, doc, amount, stamp, raw, label FROM products ORDER BY id").all()
    assert len(rows) == 40
    for key, doc, amount, stamp, raw, label in rows:
        want = transform_products.typed({"id": key})
        assert _json(doc) == want["doc"]
        assert amount == want["amount"] and (amount is None or isinstance(amount, decimal.Decimal))
        assert stamp == want["stamp"] and (stamp is None or isinstance(stamp, dt.datetime))
        assert (bytes(raw) if raw is not None else None) == want["raw"]
        assert label == want["label"]


def test_transform_failure_mid_copy_one_line_nothing_left(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 300)
    transform_products.FAIL_KEY = 137
    try:
        code, output = cli(
            "plan", "products", *[f"--add={a}" for a in SUMMARY[dialect.name]],
            "--transform", "transform_products:failing", url=db_url, cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, output
        plan = Plan.read(tmp_path / "shadowswap.plan.json")
        code, output = cli(
            "execute", "--chunk-size", "50", "--min-chunk", "10", "--max-chunk", "50", url=db_url, cwd=tmp_path
        )
    finally:
        transform_products.FAIL_KEY = -1
    assert code == CopyFailed.exit_code, output
    line = cli_error(output)
    assert "Traceback" not in output
    assert "transform_products:failing failed on the row id=137: ValueError: cannot summarise" in line
    assert f"(transform_products.py:{_line_of('the line the error must name')})" in line
    assert _leftovers(engine, plan) == []
    with engine.begin() as conn:  # the original is intact and writable
        assert conn.exec_driver_sql("SELECT count(*) FROM products").scalar_one() == 300
        conn.exec_driver_sql("UPDATE products SET name = 'after' WHERE id = 137")
        assert "summary" not in {c["name"] for c in sa.inspect(conn).get_columns("products")}


@only_dialects("postgresql", "mysql")
def test_transform_replay_reads_the_log_in_bounded_batches(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay over a log larger than one batch reads the original's rows a batch at a time (PostgreSQL
    streams them, MySQL walks the key), and the new table is exactly the function of what was committed."""
    from shadowswap import transform
    from shadowswap.transform import Transformer

    engine, dialect = connect(db_url)
    initial = create_products(engine, 200)
    plan = _plan(engine, dialect, SUMMARY[dialect.name], "summary")
    with Writers(db_url, initial, threads=2, seed=5) as writers:
        Executor(engine, dialect, plan, Options(stop_after=state.COPIED)).run()
        time.sleep(0.5)  # the writers' entries wait in the log for the replays below
    with engine.connect() as conn:
        logged = conn.execute(sa.text(f"SELECT count(*) FROM {plan.capture.logged_table}")).scalar_one()
    monkeypatch.setattr(transform, "REPLAY_BATCH", 7)
    assert logged > 7 * 3
    reads: list[int] = []
    write = Transformer._write

    def counted(self: Transformer, conn: Any, raw_rows: Any) -> int:
        reads.append(len(raw_rows))
        return write(self, conn, raw_rows)

    monkeypatch.setattr(Transformer, "_write", counted)
    Executor(engine, dialect, plan).run()
    assert reads and max(reads) <= 7 and sum(reads) > 7 * 3
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        got = {r[0]: (_json(r[1]), r[2]) for r in conn.exec_driver_sql("SELECT id, summary, price_cents FROM products")}
    want = {k: tuple(transform_products.summary(row).values()) for k, row in writers.model.items()}
    assert got == want


def test_transform_failure_mid_replay(db_url: str) -> None:
    """A row written after the copy reaches the function in a replay: the same one-line failure."""
    engine, dialect = connect(db_url)
    create_products(engine, 200)
    plan = _plan(engine, dialect, SUMMARY[dialect.name], "failing")
    Executor(engine, dialect, plan, Options(stop_after=state.COPIED)).run()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO products (name, sku, price, stock_quantity, is_active) VALUES ('boom one', 'boom', 1, 0, true)"
        )
        key = conn.exec_driver_sql("SELECT id FROM products WHERE sku = 'boom'").scalar_one()
    with pytest.raises(CopyFailed) as failed:
        Executor(engine, dialect, plan).run()
    message = str(failed.value)
    assert "\n" not in message
    assert f"failed on the row id={key}: ValueError: cannot summarise 'boom one'" in message
    assert f"(transform_products.py:{_line_of('the line the error must name')})" in message
    assert _leftovers(engine, plan) == []
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM products").scalar_one() == 201
        conn.exec_driver_sql(f"DELETE FROM products WHERE id = {int(key)}")


def test_transform_killed_mid_copy_then_resumed(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    initial = create_products(engine, 1500)
    plan = _plan(engine, dialect, SUMMARY[dialect.name], "summary")
    plan.write(tmp_path / "plan.json")
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": f"{REPO}{os.pathsep}{HERE}"}
    with Writers(db_url, initial, threads=2, seed=3) as writers:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shadowswap", "execute", "plan.json", "--max-rows-per-second", "400"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        copied, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline and copied < 200:
            time.sleep(0.1)
            if sa.inspect(engine).has_table(state.STATE_TABLE):
                with engine.connect() as conn:
                    copied = conn.execute(sa.text(f"SELECT max(rows_copied) FROM {state.STATE_TABLE}")).scalar() or 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert 0 < copied < 1500
        Executor(engine, dialect, plan, Options(chunk_size=200, stop_after=state.VERIFIED)).run()
    Executor(engine, dialect, plan).run()  # the swap, once the writers stopped (see the test above)
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    with engine.connect() as conn:
        got = {r[0]: (_json(r[1]), r[2]) for r in conn.exec_driver_sql("SELECT id, summary, price_cents FROM products")}
    want = {k: tuple(transform_products.summary(r).values()) for k, r in writers.model.items()}
    assert got == want


@only_dialects("postgresql")
def test_transform_changed_function_makes_the_plan_stale(db_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 20)
    module = tmp_path / "stale_xform.py"
    module.write_text("def f(row):\n    return {'n': len(row['name'])}\n")
    monkeypatch.chdir(tmp_path)
    plan = build_plan(engine, dialect, "products", parse_options(add=["n:int"]), transform="stale_xform:f")
    assert plan.transform is not None and plan.transform.source_file == str(module)
    module.write_text("def f(row):\n    return {'n': len(row['name']) + 1}\n")
    with pytest.raises(StalePlan, match=r"stale_xform:f .* changed since it was planned"):
        Executor(engine, dialect, plan).run()
    assert _leftovers(engine, plan) == []


def test_check_transform_reports_failing_keys(db_url: str, tmp_path: Path) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 100)
    transform_products.FAIL_KEY = 42
    try:
        plan = _plan(engine, dialect, SUMMARY[dialect.name], "failing", check_transform=True)
    finally:
        transform_products.FAIL_KEY = -1
    assert plan.transform is not None and plan.transform.check is not None
    assert plan.transform.check.rows_scanned == 100 and plan.transform.check.rows_failing == 1
    assert "id=42: ValueError" in plan.transform.check.failures[0]
    assert plan.verdict == "blocked"
    assert _leftovers(engine, plan) == []  # read-only


@only_dialects("sqlite")
def test_sqlite_value_it_cannot_keep_stops_at_its_row(db_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    """A zoned datetime would lose its offset in SQLAlchemy's SQLite text: refused, by key, nothing left."""
    engine, dialect = connect(db_url)
    create_products(engine, 30)
    (tmp_path / "zoned_xform.py").write_text(
        "import datetime as dt\n\n\ndef f(row):\n"
        "    zone = dt.timezone.utc if row['id'] == 17 else None\n"
        "    return {'stamp': dt.datetime(2024, 1, 1, tzinfo=zone)}\n"
    )
    monkeypatch.chdir(tmp_path)
    plan = build_plan(engine, dialect, "products", parse_options(add=["stamp:datetime"]), transform="zoned_xform:f")
    with pytest.raises(CopyFailed, match=r"failed on the row id=17: 'stamp': TypeError: .* has a timezone"):
        Executor(engine, dialect, plan, Options(chunk_size=10, max_chunk=10)).run()
    assert _leftovers(engine, plan) == []


@only_dialects("postgresql", "sqlite")
def test_transform_refused_where_the_key_changes(db_url: str) -> None:
    engine, dialect = connect(db_url)
    create_products(engine, 10)
    # SQLite: a computed key (retyping its INTEGER PRIMARY KEY is refused before: the rowid alias)
    key = {"alter": ["id:bigint"]} if dialect.name != "sqlite" else {"alter": ["id:integer"], "using": ["id=id * 2"]}
    changes = parse_options(add=SUMMARY[dialect.name], **key)
    with pytest.raises(UsageError, match=r"needs the change log .* the key itself changes"):
        build_plan(engine, dialect, "products", changes, transform="transform_products:summary")


@only_dialects("sqlite")
def test_sqlite_change_log_only_for_transform(db_url: str) -> None:
    """SQLite keeps its dual-write triggers for every plan but a --transform one, which logs keys."""
    engine, dialect = connect(db_url)
    create_products(engine, 10)
    plain = build_plan(engine, dialect, "products", parse_options(add=["price_cents:bigint"]))
    assert not plain.capture.change_log
    plan = _plan(engine, dialect, SUMMARY["sqlite"], "summary")
    assert plan.capture.change_log
    assert any(plan.capture.logged_table in ddl for ddl in plan.shadow_ddl)  # kept beside the shadow's own text
    assert all(plan.capture.logged_table in ddl for ddl in plan.trigger_ddl)
    assert all(plan.shadow_table not in ddl for ddl in plan.trigger_ddl)


@only_dialects("postgresql")
def test_readme_seed_example_runs_as_written(db_url: str, tmp_path: Path) -> None:
    """The README's walk-through: the seed's legacy specs to JSON, examples/legacy.py, the commands as written."""
    engine, _ = connect(db_url)
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python transformations", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("\n", 1)[1] for b in section.split("```")[1::2]]
    setup = next(b for b in blocks if "CREATE TABLE products" in b)
    with engine.begin() as conn:
        for statement in filter(str.strip, setup.split(";")):
            conn.exec_driver_sql(statement)
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    commands = [
        line.split(" ", 1)[1]
        for b in blocks
        for line in b.replace("\\\n", " ").splitlines()
        if line.startswith("shadowswap ")
    ]
    assert any("--transform legacy:transform" in c for c in commands)
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(tmp_path / "examples")}
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "shadowswap", *command.split()], cwd=tmp_path, env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, specifications, metadata FROM products ORDER BY id").all()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("products")}
    assert "old_spec_field" not in columns
    assert rows[0][1] == {"color": "red", "size": "M"}
    assert rows[0][2]["migration_source"] == "legacy_system"


def test_verification_compares_filled_columns_with_the_function(db_url: str) -> None:
    """The server cannot checksum Python: a filled column that differs from f(original) in the
    shadow is found by the Python half of the verification, by key, and nothing is swapped."""
    engine, dialect = connect(db_url)
    create_products(engine, 120)
    plan = _plan(engine, dialect, SUMMARY[dialect.name], "summary")
    Executor(engine, dialect, plan, Options(stop_after=state.INDEXES_BUILT)).run()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {plan.shadow_table} SET price_cents = price_cents + 1 WHERE id = 77")
    with pytest.raises(VerificationFailed, match=r"id=77 \(different\)"):
        Executor(engine, dialect, plan).run()
    assert "summary" not in {c["name"] for c in sa.inspect(engine).get_columns("products")}
