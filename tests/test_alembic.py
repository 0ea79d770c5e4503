"""``op.online_alter_table`` in a real Alembic project (``alembic init``'s own env.py and alembic.ini),
run through alembic's command line against each engine, under concurrent writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from conftest import DIALECTS
from harness import Writers, compare, create_products

from shadowswap.alembic.batch import OnlineBatchOperations
from shadowswap.alembic.settings import resolve
from shadowswap.changes import AddColumn, AddIndex, AlterColumn, DropColumn, DropIndex, RenameColumn
from shadowswap.db import connect
from shadowswap.errors import UsageError

HEADER = '''"""{message}"""
import sqlalchemy as sa
from alembic import op

import shadowswap.alembic  # noqa: F401

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None

'''

PRICE = """
def upgrade():
    with op.online_alter_table("products") as batch_op:
        batch_op.alter_column("price", type_=sa.String(20))
        batch_op.add_column(sa.Column("note", sa.Text()))
        batch_op.create_index("ix_products_sku_price", ["sku", "price"])


def downgrade():
    with op.online_alter_table("products") as batch_op:
        batch_op.drop_index("ix_products_sku_price")
        batch_op.drop_column("note")
        batch_op.alter_column("price", type_=sa.Numeric(10, 2))
"""


def migration(revision: str, down: str | None, body: str, message: str = "change") -> str:
    return HEADER.format(message=message, revision=revision, down=down) + textwrap.dedent(body)


def project(tmp_path: Path, url: str, migrations: dict[str, str], ini: str = "", per_migration: bool = False) -> Path:
    """``alembic init`` in tmp_path, pointed at url, with the given version files."""
    root = tmp_path / "project"
    root.mkdir()
    command.init(Config(str(root / "alembic.ini")), str(root / "migrations"))
    ini_path = root / "alembic.ini"
    text = ini_path.read_text()
    lines = [
        f"sqlalchemy.url = {url.replace('%', '%%')}" if line.startswith("sqlalchemy.url") else line
        for line in text.splitlines()
    ]
    ini_path.write_text("\n".join(lines) + "\n" + ini)
    if per_migration:
        env = root / "migrations" / "env.py"
        source = env.read_text()
        patched = source.replace(
            "connection=connection, target_metadata=target_metadata",
            "connection=connection, target_metadata=target_metadata, transaction_per_migration=True",
        )
        assert patched != source
        env.write_text(patched)
    for name, body in migrations.items():
        (root / "migrations" / "versions" / f"{name}.py").write_text(body)
    return root


def alembic(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), **(env or {})},
        text=True,
        capture_output=True,
        timeout=300,
    )


def logged_at(log: str, event: str) -> float:
    """When shadowswap logged ``event`` (its console lines begin with an ISO UTC timestamp)."""
    import datetime as dt

    line = next(line for line in log.splitlines() if f"] {event}" in line)
    return dt.datetime.fromisoformat(line.split()[0]).timestamp()


def database(url: str) -> sa.Engine:
    """The test's own engine; shadowswap's connect, so a SQLite file is in WAL mode before the writers start
    (as a SQLite database shared by concurrent writers is: the mode switch needs the file to itself)."""
    engine, _dialect = connect(url)
    return engine


def version(engine: sa.Engine) -> list[str]:
    if not sa.inspect(engine).has_table("alembic_version"):
        return []
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]


def columns(engine: sa.Engine, table: str = "products") -> dict[str, Any]:
    return {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(table)}


def migrations_rows(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(sa.text("SELECT id, table_name, phase FROM shadowswap_migrations ORDER BY id"))
        ]


# -- upgrade / downgrade under writers ---------------------------------------------------------------


def test_upgrade_and_downgrade_under_writers(db_url: str, tmp_path: Path) -> None:
    engine = database(db_url)
    initial = create_products(engine, 6000)
    # the downgrade drops a column and an index: allowed by the operator in alembic.ini, not in the file
    root = project(
        tmp_path, db_url, {"0001_price": migration("0001", None, PRICE)}, "\n[shadowswap]\nallow_destructive = true\n"
    )
    hook = tmp_path / "hook.py"
    seen = tmp_path / "versions-before-cutover.txt"
    # the on-before-cutover hook reads alembic's version table from another connection: it must not have moved
    hook.write_text(
        textwrap.dedent(f"""
        import sqlalchemy as sa
        try:
            engine = sa.create_engine({db_url!r})
            with engine.connect() as conn:
                rows = [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
            text = ",".join(rows)
        except Exception as exc:  # written for the test to show; a failing hook would hold the swap
            text = f"error: {{exc}}"
        with open({str(seen)!r}, "a") as f:
            f.write(text + "\\n")
        """)
    )
    # slow enough that the writers meet every phase; the hook through the environment (operator override)
    env = {"SHADOWSWAP_MAX_ROWS_PER_SECOND": "6000", "SHADOWSWAP_HOOKS": f"on-before-cutover={sys.executable} {hook}"}
    with Writers(db_url, initial, threads=3, seed=4) as writers:
        time.sleep(0.2)
        up = alembic(root, "upgrade", "head", env=env)
        time.sleep(0.2)
    assert up.returncode == 0, up.stderr
    assert writers.total.errors == []
    assert writers.total.inserts and writers.total.rekeys and writers.total.deletes
    compare(engine, writers.model).assert_exact()
    assert version(engine) == ["0001"]
    assert seen.read_text() == "\n"  # at the cut-over the version table was still empty
    cols = columns(engine)
    assert isinstance(cols["price"], sa.String) and "note" in cols
    assert "ix_products_sku_price" in {ix["name"] for ix in sa.inspect(engine).get_indexes("products")}
    assert "online migration done" in up.stderr
    # the application's writes landed while the copy ran, not only around it
    started, swapped = logged_at(up.stderr, "copy started"), logged_at(up.stderr, "swapped")
    assert any(started < t < swapped for t in writers.total.commits)

    again = Writers(db_url, writers.model, threads=3, seed=5)
    if again.is_pg:
        # psycopg 3 prepares a statement after 5 runs, fixing its parameter types from the table as it was
        # (price varchar): after the swap to numeric no assignment cast exists back and the application's
        # prepared writes fail, as they would after a blocking ALTER. The writers here do not prepare.
        again.engine.dispose()
        again.engine = sa.create_engine(db_url, pool_size=4, connect_args={"prepare_threshold": None})
    with again:
        time.sleep(0.2)
        down = alembic(root, "downgrade", "-1", env={"SHADOWSWAP_MAX_ROWS_PER_SECOND": "6000"})
        time.sleep(0.2)
    assert down.returncode == 0, down.stderr
    assert again.total.errors == []
    compare(engine, again.model).assert_exact()
    assert version(engine) == []
    cols = columns(engine)
    assert isinstance(cols["price"], sa.Numeric) and "note" not in cols
    assert "ix_products_sku_price" not in {ix["name"] for ix in sa.inspect(engine).get_indexes("products")}
    # the upgrade's kept old table was dropped before the downgrade kept its own
    assert [(r[1], r[2]) for r in migrations_rows(engine)] == [("products", "cleaned_up"), ("products", "cut_over")]
    engine.dispose()


@pytest.mark.parametrize(
    ("db_url", "per_migration"),
    [(d, False) for d in DIALECTS] + ([("postgresql", True)] if "postgresql" in DIALECTS else []),
    ids=lambda v: {False: "one-transaction", True: "transaction-per-migration"}.get(v, v),
    indirect=["db_url"],
)
def test_table_created_earlier_in_the_same_run(db_url: str, tmp_path: Path, per_migration: bool) -> None:
    """A migration creating the table, then one changing it online, in one `upgrade head`: the first is
    committed (with its version row) before the online block, so shadowswap's connections see the table.

    Both of alembic's transaction settings on PostgreSQL (transactional DDL: one transaction for the
    whole run by default); elsewhere alembic runs each migration in its own transaction either way."""
    create = migration(
        "0001",
        None,
        """
        def upgrade():
            items = op.create_table(
                "items",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("qty", sa.Integer, nullable=False),
            )
            op.bulk_insert(items, [{"id": i, "qty": i * 3} for i in range(1, 501)])


        def downgrade():
            op.drop_table("items")
        """,
    )
    widen = migration(
        "0002",
        "0001",
        """
        def upgrade():
            with op.online_alter_table("items", strategy="shadow") as batch_op:
                batch_op.alter_column("qty", type_=sa.BigInteger(), new_column_name="quantity")
            op.create_index("ix_items_quantity", "items", ["quantity"])


        def downgrade():
            # an op.drop_index before the block would be refused (uncommitted): it goes in the block;
            # keep_old=False: 0001's drop_table would meet the kept old table (on PostgreSQL its key
            # default still uses the moved sequence)
            with op.online_alter_table(
                "items", strategy="shadow", allow_destructive=True, keep_old=False
            ) as batch_op:
                batch_op.drop_index("ix_items_quantity")
                batch_op.alter_column("quantity", type_=sa.Integer(), new_column_name="qty")
        """,
    )
    root = project(tmp_path, db_url, {"0001_items": create, "0002_widen": widen}, per_migration=per_migration)
    up = alembic(root, "upgrade", "head")
    assert up.returncode == 0, up.stderr
    engine = sa.create_engine(db_url)
    assert version(engine) == ["0002"]
    assert set(columns(engine, "items")) == {"id", "quantity"}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sum(quantity) FROM items")).scalar_one() == 3 * 500 * 501 // 2
    down = alembic(root, "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert version(engine) == []
    assert not sa.inspect(engine).has_table("items")
    engine.dispose()


def test_uncommitted_statements_before_the_block_are_refused(db_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(db_url)
    create_products(engine, 200)
    body = """
    def upgrade():
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
        with op.online_alter_table("products") as batch_op:
            batch_op.alter_column("price", type_=sa.String(20))


    def downgrade():
        pass
    """
    root = project(tmp_path, db_url, {"0001_mixed": migration("0001", None, body)})
    result = alembic(root, "upgrade", "head")
    assert result.returncode != 0
    assert "FAILED: shadowswap: op.online_alter_table('products') follows uncommitted statements" in result.stdout
    assert "CREATE TABLE audit" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert version(engine) == []
    assert isinstance(columns(engine)["price"], sa.Numeric)
    if engine.dialect.name == "postgresql":  # transactional DDL: the whole migration rolled back
        assert not sa.inspect(engine).has_table("audit")
    engine.dispose()


# -- crash and resume --------------------------------------------------------------------------------


def test_killed_mid_copy_then_upgrade_resumes(db_url: str, tmp_path: Path) -> None:
    engine = database(db_url)
    initial = create_products(engine, 10_000)
    root = project(tmp_path, db_url, {"0001_price": migration("0001", None, PRICE)})
    slow = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "SHADOWSWAP_MAX_ROWS_PER_SECOND": "2000"}
    with Writers(db_url, initial, threads=3, seed=6) as writers:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=root,
            env=slow,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        copied = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and copied < 3000:
            time.sleep(0.2)
            if sa.inspect(engine).has_table("shadowswap_migrations"):
                with engine.connect() as conn:
                    copied = conn.execute(sa.text("SELECT max(rows_copied) FROM shadowswap_migrations")).scalar() or 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert 0 < copied < 10_000
        rows = migrations_rows(engine)
        assert len(rows) == 1 and rows[0][2] == "triggers_installed"
        assert version(engine) == []  # alembic's version table did not move
        assert isinstance(columns(engine)["price"], sa.Numeric)  # the original is intact
        resumed = alembic(root, "upgrade", "head")
        time.sleep(0.2)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the interrupted online migration" in resumed.stderr
    assert writers.total.errors == []
    compare(engine, writers.model).assert_exact()
    assert version(engine) == ["0001"]
    assert [r[2] for r in migrations_rows(engine)] == ["cut_over"]  # the same migration, finished
    assert isinstance(columns(engine)["price"], sa.String)
    engine.dispose()


def test_swap_done_but_version_not_moved(tmp_path: Path) -> None:
    """A crash after the swap and before alembic's commit: the next upgrade records it, changes nothing."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    create_products(engine, 300)
    root = project(tmp_path, url, {"0001_price": migration("0001", None, PRICE)})
    first = alembic(root, "upgrade", "head", env={"SHADOWSWAP_PROGRESS": "1"})  # the bar, off a terminal too
    assert first.returncode == 0, first.stderr
    assert "copying products" in first.stderr and "300/300" in first.stderr
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
    again = alembic(root, "upgrade", "head")
    assert again.returncode == 0, again.stderr
    assert "swapped in before alembic recorded it" in again.stderr
    assert version(engine) == ["0001"]
    assert len(migrations_rows(engine)) == 1
    engine.dispose()


# -- offline ------------------------------------------------------------------------------------------


def test_offline_sql_prints_the_plan(db_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(db_url)
    create_products(engine, 100)
    add = migration(
        "0002",
        "0001",
        """
        def upgrade():
            with op.online_alter_table("products") as batch_op:
                batch_op.add_column(sa.Column("label", sa.String(30)))


        def downgrade():
            pass
        """,
    )
    root = project(tmp_path, db_url, {"0001_price": migration("0001", None, PRICE), "0002_label": add})
    before = sorted(sa.inspect(engine).get_table_names())
    result = alembic(root, "upgrade", "head", "--sql")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "-- shadowswap: online change of products: alter price type VARCHAR(20); add note TEXT" in out
    assert "runs ONLINE only; offline mode cannot run it" in out
    assert "--   CREATE TABLE" in out and "[swap, under a lock timeout" in out
    # every line of the shadow copy is a comment: nothing of it runs from the script
    shadow = out[out.index("runs ONLINE only") : out.index("INSERT INTO alembic_version")]
    assert all(line.startswith("--") or not line.strip() for line in shadow.splitlines()[1:])
    # the second block, planned against the table as it is now, adds a nullable column in place
    second = out[out.index("online change of products: add label") :]
    assert "strategy instant" in second
    assert any(line.startswith("ALTER TABLE") and "label" in line for line in second.splitlines())
    assert sorted(sa.inspect(engine).get_table_names()) == before  # offline planning wrote nothing
    engine.dispose()


# -- refusals and the batch interface -------------------------------------------------------------------


def test_unmappable_call_is_refused_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    create_products(engine, 50)
    body = """
    def upgrade():
        with op.online_alter_table("products") as batch_op:
            batch_op.alter_column("price", type_=sa.String(20))
            batch_op.create_check_constraint("ck_price", "price <> ''")


    def downgrade():
        pass
    """
    root = project(tmp_path, url, {"0001_fk": migration("0001", None, body)})
    result = alembic(root, "upgrade", "head")
    assert result.returncode != 0
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED:")]
    assert len(failed) == 1
    assert "cannot run batch_op.create_check_constraint('ck_price', \"price <> ''\") online" in failed[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert version(engine) == [] and isinstance(columns(engine)["price"], sa.Numeric)
    assert not sa.inspect(engine).has_table("shadowswap_migrations")
    # the same, run by a program: alembic's CommandError, with shadowswap's error behind it
    from shadowswap.alembic import OnlineMigrationFailed

    config = Config(str(root / "alembic.ini"))
    with pytest.raises(OnlineMigrationFailed) as failed:
        command.upgrade(config, "head")
    assert isinstance(failed.value.original, UsageError)
    assert "create_check_constraint" in str(failed.value)
    engine.dispose()


def test_batch_calls_map_to_changes() -> None:
    from sqlalchemy.dialects import postgresql

    batch = OnlineBatchOperations("products", postgresql.dialect())
    batch.alter_column("price", type_=sa.String(20), nullable=True, postgresql_using="price::text")
    batch.alter_column("name", new_column_name="title", existing_type=sa.String(255))
    batch.alter_column("stock_quantity", server_default=None)
    batch.alter_column("is_active", server_default=sa.text("true"))
    batch.add_column(sa.Column("note", sa.Text(), nullable=False, server_default="it's"))
    batch.drop_column("description")
    batch.create_index("ix_sku_price", ["sku", "price"], postgresql_concurrently=True)
    batch.create_unique_constraint("uq_sku", ["sku"])
    batch.drop_index("ix_products_name")
    batch.drop_constraint("products_sku_key", type_="unique")
    recorded = batch.recorded
    assert recorded.refused == []
    assert recorded.changes.changes == [
        AlterColumn("price", type_sql="VARCHAR(20)", nullable=True),
        RenameColumn("name", "title"),
        AlterColumn("stock_quantity", drop_default=True),
        AlterColumn("is_active", default="true"),
        AddColumn("note", "TEXT", nullable=False, default="'it''s'"),
        DropColumn("description"),
        AddIndex("ix_sku_price", ("sku", "price")),
        AddIndex("uq_sku", ("sku",), unique=True),
        DropIndex("ix_products_name"),
        DropIndex("products_sku_key"),
    ]
    assert recorded.changes.usings == {"price": "price::text"}


@pytest.mark.parametrize(
    ("call", "why"),
    [
        (lambda b: b.alter_column("price", comment="money"), "comments"),
        (lambda b: b.alter_column("price", insert_after="sku"), "'insert_after'"),
        (lambda b: b.alter_column("price"), "changes nothing"),
        (lambda b: b.add_column(sa.Column("ref", sa.Integer, sa.ForeignKey("other.id"))), "foreign keys"),
        (lambda b: b.add_column(sa.Column("n", sa.Integer, default=5)), "Python-side default"),
        (lambda b: b.drop_constraint("fk_other", type_="foreignkey"), "not foreignkey constraints"),
        (lambda b: b.create_foreign_key("fk", "other", ["a"], ["id"]), "no online form"),
        (lambda b: b.create_index("ix", [sa.text("lower(name)")]), "plain column names"),
        (lambda b: b.alter_column("price", type_=sa.String(20), postgresql_using="1; DROP TABLE x"), "invalid"),
    ],
)
def test_unmappable_calls_are_recorded_as_refused(call: Any, why: str) -> None:
    from sqlalchemy.dialects import postgresql

    batch = OnlineBatchOperations("products", postgresql.dialect())
    call(batch)
    assert len(batch.recorded.refused) == 1
    assert why in batch.recorded.refused[0][1]


def test_option_layers() -> None:
    settings = resolve(
        {"chunk_time": 0.5, "lock_timeout": 100, "postpone_cutover": False},
        {"lock_timeout": "300", "replicas": "mysql://r1/db, mysql://r2/db"},
        {"SHADOWSWAP_LOCK_TIMEOUT": "400", "SHADOWSWAP_POSTPONE_CUTOVER": "yes", "SHADOWSWAP_REQUIRE_DBS": "1"},
    )
    assert settings.chunk_time == 0.5
    assert settings.lock_timeout == 400
    assert settings.postpone_cutover is True
    assert settings.replicas == ["mysql://r1/db", "mysql://r2/db"]
    assert settings.sources["lock_timeout"] == "environment"
    with pytest.raises(UsageError, match="unknown shadowswap option 'chunk_tme' in online_alter_table"):
        resolve({"chunk_tme": 1}, {}, {})
    with pytest.raises(UsageError, match="SHADOWSWAP_CHUNK_TIME in environment: must be positive"):
        resolve({}, {}, {"SHADOWSWAP_CHUNK_TIME": "0"})
    assert resolve({"hooks": {"on-start": "true"}}, {}, {}).hooks == ["on-start=true"]


def test_ctrl_c_mid_copy_then_upgrade_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = database(url)
    create_products(engine, 8000)
    root = project(tmp_path, url, {"0001_price": migration("0001", None, PRICE)})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "SHADOWSWAP_MAX_ROWS_PER_SECOND": "2000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    copied = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and copied < 1000:
        time.sleep(0.2)
        if sa.inspect(engine).has_table("shadowswap_migrations"):
            with engine.connect() as conn:
                copied = conn.execute(sa.text("SELECT max(rows_copied) FROM shadowswap_migrations")).scalar() or 0
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "FAILED: shadowswap: interrupted: 'products' is intact and writable" in stdout, stderr[-1500:]
    assert "Traceback" not in stdout + stderr
    assert version(engine) == [] and isinstance(columns(engine)["price"], sa.Numeric)
    resumed = alembic(root, "upgrade", "head")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the interrupted online migration" in resumed.stderr
    assert version(engine) == ["0001"] and [r[2] for r in migrations_rows(engine)] == ["cut_over"]
    engine.dispose()


def test_env_py_owning_the_transaction_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    create_products(engine, 50)
    root = project(tmp_path, url, {"0001_price": migration("0001", None, PRICE)})
    env_py = root / "migrations" / "env.py"
    source = env_py.read_text()
    patched = source.replace("with connectable.connect() as connection:", "with connectable.begin() as connection:")
    assert patched != source
    env_py.write_text(patched)
    result = alembic(root, "upgrade", "head")
    assert result.returncode != 0
    assert "env.py began the connection's transaction itself" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert isinstance(columns(engine)["price"], sa.Numeric)
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+asyncpg://u:pw@h/db", "postgresql+psycopg://u:pw@h/db"),
        ("sqlite+aiosqlite:////tmp/app.db", "sqlite:////tmp/app.db"),
        ("mysql+aiomysql://root@h/db", "mysql+pymysql://root@h/db"),
        ("mariadb+asyncmy://root@h/db", "mariadb+pymysql://root@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg2://u@h/db?sslmode=require", "postgresql+psycopg://u@h/db?sslmode=require"),
        ("mysql+mysqldb://root@h/db?charset=utf8mb4", "mysql+pymysql://root@h/db?charset=utf8mb4"),
    ],
)
def test_migration_urls_get_shadowswaps_driver(url: str, expected: str) -> None:
    from shadowswap.alembic.runner import sync_url

    assert sync_url(sa.make_url(url)).render_as_string(hide_password=False) == expected
    with pytest.raises(UsageError, match="in-memory SQLite"):
        sync_url(sa.make_url("sqlite://"))


def test_block_maps_defaults_nullability_renames_and_using(db_url: str, tmp_path: Path) -> None:
    engine = database(db_url)
    initial = create_products(engine, 300)
    using = ", postgresql_using=\"to_char(price, 'FM999990.000')\"" if engine.dialect.name == "postgresql" else ""
    body = f"""
    def upgrade():
        with op.online_alter_table("products", strategy="shadow") as batch_op:
            batch_op.alter_column("stock_quantity", server_default="7")
            batch_op.alter_column("name", nullable=True, new_column_name="title")
            batch_op.add_column(sa.Column("label", sa.String(10), nullable=False, server_default="new"))
            batch_op.alter_column("price", type_=sa.String(20){using})


    def downgrade():
        pass
    """
    root = project(tmp_path, db_url, {"0001_mixed": migration("0001", None, body)})
    result = alembic(root, "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    cols = {c["name"]: c for c in sa.inspect(engine).get_columns("products")}
    assert "name" not in cols and cols["title"]["nullable"] and not cols["label"]["nullable"]
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO products (title, sku, price) VALUES (NULL, 'SKU-x', '1.50')"))
        added = conn.execute(sa.text("SELECT stock_quantity, label FROM products WHERE sku = 'SKU-x'")).one()
        rows = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(sa.text("SELECT id, title, label, price FROM products"))}
    assert tuple(added) == (7, "new")
    for key, row in initial.items():
        price = f"{float(row['price']):.3f}" if using else None
        assert rows[key][:2] == (row["name"], "new")
        if price is not None:  # the copy expression, not a plain cast
            assert rows[key][2] == price
    engine.dispose()
