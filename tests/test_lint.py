"""``shadowswap lint``: every rule on its own example, safe forms unflagged, a directory of migrations
through the command line (text, --json, exit codes), live sizes with --db, and --fix re-linted clean,
importable, and run by alembic."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from harness import create_products

from shadowswap.lint import RULES, lint
from shadowswap.lint.rules import ONLINE_NOT_FIRST, Rule

ROOT = Path(__file__).parent.parent

HEADER = '''"""{name}"""
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}


def upgrade():
'''


def write(directory: Path, name: str, body: str, revision: str, down: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    text = HEADER.format(name=name, revision=revision, down=down) + textwrap.indent(textwrap.dedent(body), "    ")
    path.write_text(text + "\n\ndef downgrade():\n    pass\n")
    return path


def shadowswap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowswap", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250", **(env or {})},
        text=True,
        capture_output=True,
        timeout=120,
    )


# -- each rule, on its own example ---------------------------------------------------------------------

CASES = [
    (rule, dialect)
    for rule in [*RULES, ONLINE_NOT_FIRST]
    for dialect in rule.engines + (("mariadb",) if "mysql" in rule.engines else ())
]


@pytest.mark.parametrize(("rule", "dialect"), CASES, ids=[f"{r.id}-{d}" for r, d in CASES])
def test_each_rule_fires_on_its_example(tmp_path: Path, rule: Rule, dialect: str) -> None:
    path = write(tmp_path, "0001_example", rule.example, "0001")
    result = lint(path, dialect)
    fired = [f for f in result.findings if f.blocking and f.rule is rule]
    assert fired, [(f.op.call(), f.rule and f.rule.id, f.reason) for f in result.findings]
    assert rule.blocks in fired[0].reason
    assert fired[0].op.line is not None and fired[0].op.path == path


def test_rules_are_complete_data() -> None:
    ids = [r.id for r in [*RULES, ONLINE_NOT_FIRST]]
    assert len(ids) == len(set(ids))
    for rule in [*RULES, ONLINE_NOT_FIRST]:
        assert rule.engines and set(rule.engines) <= {"postgresql", "mysql", "sqlite"}
        assert rule.blocks and rule.fix and rule.example


SAFE = {
    "postgresql": [
        'op.add_column("products", sa.Column("note", sa.Text()))',
        'op.add_column("products", sa.Column("n", sa.Integer(), nullable=False, server_default="0"))',
        'op.alter_column("products", "name", type_=sa.String(300), existing_type=sa.String(255))',
        'op.alter_column("products", "name", type_=sa.Text(), existing_type=sa.String(255))',
        'op.drop_column("products", "description")',
        'op.create_check_constraint("ck_d", "products", "description IS NOT NULL", postgresql_not_valid=True)\n'
        'op.execute("ALTER TABLE products VALIDATE CONSTRAINT ck_d")\n'
        'op.alter_column("products", "description", nullable=False)',
        'op.create_foreign_key("fk", "products", "products", ["stock_quantity"], ["id"], postgresql_not_valid=True)',
        'op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True))\n'
        'op.create_index("ix_orders_id", "orders", ["id"])',
        "with op.get_context().autocommit_block():\n"
        '    op.create_index("ix_stock", "products", ["stock_quantity"], postgresql_concurrently=True)',
        'with op.online_alter_table("products") as batch_op:\n    batch_op.alter_column("price", type_=sa.String(20))\n'
        'op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True))',
        "with op.get_context().autocommit_block():\n"
        '    op.execute("CREATE INDEX CONCURRENTLY ix_stock ON products (stock_quantity)")',
        'op.execute("UPDATE products SET stock_quantity = 0 WHERE stock_quantity < 0")',
        'op.execute("ALTER TABLE products ADD CONSTRAINT fk FOREIGN KEY (stock_quantity) REFERENCES products (id) '
        'NOT VALID")',
        'op.execute("ALTER TABLE products ALTER COLUMN description DROP NOT NULL, ADD COLUMN note text")',
    ],
    "mysql": [
        'op.add_column("products", sa.Column("note", sa.Text()))',
        'op.create_index("ix_stock", "products", ["stock_quantity"])',
        'op.drop_column("products", "description")',
        'op.alter_column("products", "name", new_column_name="title", existing_type=sa.String(255), '
        "existing_nullable=False)",
    ],
    "sqlite": [
        'op.add_column("products", sa.Column("note", sa.Text()))',
        'op.add_column("products", sa.Column("n", sa.Integer(), nullable=False, server_default="0"))',
        'op.drop_index("ix_products_name", table_name="products")',
        'with op.online_alter_table("products") as batch_op:\n    batch_op.drop_column("description")',
    ],
}
SAFE_CASES = [(d, body) for d, bodies in SAFE.items() for body in bodies]


@pytest.mark.parametrize(("dialect", "body"), SAFE_CASES, ids=[f"{d}-{i}" for i, (d, _) in enumerate(SAFE_CASES)])
def test_safe_forms_are_not_flagged(tmp_path: Path, dialect: str, body: str) -> None:
    path = write(tmp_path, "0001_safe", body, "0001")
    result = lint(path, dialect)
    assert result.findings
    assert result.blocking == [], [(f.op.call(), f.rule and f.rule.id, f.reason) for f in result.blocking]


def test_reads_what_runs_not_the_source_text(tmp_path: Path) -> None:
    """Operations made by a helper and in a loop are found; a call in a comment or a string is not."""
    body = """
    def widen(column):
        op.alter_column("products", column, type_=sa.String(50), existing_type=sa.Integer())

    # op.alter_column("products", "price", type_=sa.String(20))
    note = 'op.create_index("ix", "products", ["sku"])'
    for column in ("stock_quantity", "id"):
        widen(column)
    """
    path = write(tmp_path, "0001_helper", body, "0001")
    result = lint(path, "postgresql")
    assert [(f.op.name, f.rule.id if f.rule else None) for f in result.findings] == [
        ("alter_column", "pg-alter-type"),
        ("alter_column", "pg-alter-type"),
    ]
    assert all(f.op.sql[0].startswith("ALTER TABLE products ALTER COLUMN") for f in result.findings)


# -- a directory through the command line, then --fix ------------------------------------------------

DIRECTORY = {
    "0001_orders": (
        """
        op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True), sa.Column("qty", sa.Integer))
        op.create_index("ix_orders_qty", "orders", ["qty"])
        """,
        None,
    ),
    "0002_price": (
        """
        # price becomes text: the shop shows "call us" for some products
        op.alter_column(
            "products",
            "price",
            type_=sa.String(20),  # was Numeric(10, 2)
            existing_type=sa.Numeric(10, 2),
        )
        op.add_column("products", sa.Column("note", sa.Text()))
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
        """,
        "0001",
    ),
    "0003_stock": (
        """
        op.create_index('ix_products_stock', 'products', ['stock_quantity'])
        """,
        "0002",
    ),
    "0004_description": (
        """
        with op.batch_alter_table("products") as batch_op:
            batch_op.drop_column("description")
        """,
        "0003",
    ),
    "0005_label": (
        """
        op.add_column("products", sa.Column("label", sa.String(30)))
        op.drop_index("ix_products_name", table_name="products")
        """,
        "0004",
    ),
}

EXPECTED = {
    "postgresql": {("0002_price", "pg-alter-type"), ("0003_stock", "pg-create-index")},
    "mysql": {("0002_price", "mysql-alter-type-copy")},
    "mariadb": {("0002_price", "mysql-alter-type-copy")},
    "sqlite": {
        ("0002_price", "sqlite-alter-column-rebuild"),
        ("0003_stock", "sqlite-create-index"),
        ("0004_description", "sqlite-drop-column-rebuild"),
    },
}


def make_directory(tmp_path: Path) -> Path:
    versions = tmp_path / "versions"
    revisions = {name: name[:4] for name in DIRECTORY}
    for name, (body, down) in DIRECTORY.items():
        write(versions, name, body, revisions[name], down)
    return versions


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "mariadb", "sqlite"])
def test_directory_json_exit_codes_and_fix(tmp_path: Path, dialect: str) -> None:
    versions = make_directory(tmp_path)
    before = {p.name: p.read_text() for p in versions.glob("*.py")}

    checked = shadowswap("lint", str(versions), "--dialect", dialect, "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    flagged = {(Path(o["file"]).stem, o["rule"]) for o in report["operations"] if o["blocks_writes"]}
    assert flagged == EXPECTED[dialect]
    assert report["blocking"] == len(EXPECTED[dialect])
    assert len(report["operations"]) == 9
    assert all(o["fixable"] for o in report["operations"] if o["blocks_writes"])

    text = shadowswap("lint", str(versions), "--dialect", dialect)
    assert text.returncode == 1
    assert text.stdout.count("BLOCKS WRITES") == len(EXPECTED[dialect])
    assert 'fix: op.online_alter_table("products") (--fix rewrites it)' in text.stdout

    fixed = shadowswap("lint", str(versions), "--dialect", dialect, "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert fixed.stdout.count("fixed ") == len(EXPECTED[dialect])
    assert "none blocks writes" in fixed.stdout
    again = shadowswap("lint", str(versions), "--dialect", dialect)
    assert again.returncode == 0, again.stdout

    for path in versions.glob("*.py"):
        spec = importlib.util.spec_from_file_location(f"fixed_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # still importable
        assert callable(module.upgrade)
    price = (versions / "0002_price.py").read_text()
    if ("0002_price", "pg-alter-type") in EXPECTED[dialect] or dialect != "postgresql":
        # the author's comments and layout are kept; the add_column on the same table joined the block
        assert price == before["0002_price.py"].replace(
            "from alembic import op\n", "from alembic import op\nimport shadowswap.alembic  # noqa: F401\n"
        ).replace(
            """    # price becomes text: the shop shows "call us" for some products
    op.alter_column(
        "products",
        "price",
        type_=sa.String(20),  # was Numeric(10, 2)
        existing_type=sa.Numeric(10, 2),
    )
    op.add_column("products", sa.Column("note", sa.Text()))
""",
            """    # price becomes text: the shop shows "call us" for some products
    with op.online_alter_table("products") as batch_op:
        batch_op.alter_column(
            "price",
            type_=sa.String(20),  # was Numeric(10, 2)
            existing_type=sa.Numeric(10, 2),
        )
        batch_op.add_column(sa.Column("note", sa.Text()))
""",
        )
    assert (versions / "0005_label.py").read_text() == before["0005_label.py"]  # nothing flagged: untouched


def test_fixed_migrations_run_under_alembic(tmp_path: Path) -> None:
    """The rewritten files are real migrations: alembic runs them, online, on SQLite."""
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    create_products(engine, 500)
    project = tmp_path / "project"
    project.mkdir()
    command.init(Config(str(project / "alembic.ini")), str(project / "migrations"))
    ini = project / "alembic.ini"
    ini.write_text(
        "\n".join(
            f"sqlalchemy.url = {url}" if line.startswith("sqlalchemy.url") else line
            for line in ini.read_text().splitlines()
        )
    )
    versions = project / "migrations" / "versions"
    for name, (body, down) in DIRECTORY.items():
        write(versions, name, body, name[:4], down)
    assert shadowswap("lint", str(versions), "--dialect", "sqlite", "--fix").returncode == 0
    run = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SHADOWSWAP_ALLOW_DESTRUCTIVE": "1"},
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("products")}
    assert isinstance(columns["price"], sa.String) and "description" not in columns and "label" in columns
    assert "ix_products_stock" in {ix["name"] for ix in sa.inspect(engine).get_indexes("products")}
    engine.dispose()


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    missing = shadowswap("lint", str(tmp_path / "nope"), "--dialect", "postgresql")
    assert missing.returncode == 2 and "is neither a migration file nor a directory" in missing.stderr
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    which = subprocess.run(
        [sys.executable, "-m", "shadowswap", "lint", str(tmp_path)], cwd=ROOT, env=env, text=True, capture_output=True
    )
    assert which.returncode == 2 and "which engine?" in which.stderr
    broken = tmp_path / "broken"
    write(broken, "0001_broken", "op.alter_column(", "0001")
    result = shadowswap("lint", str(broken), "--dialect", "sqlite")
    assert result.returncode == 2 and "cannot be imported: SyntaxError" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# -- live sizes ---------------------------------------------------------------------------------------


def test_db_gives_sizes_estimates_and_the_old_type(db_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(db_url)
    create_products(engine, 5000)
    body = """
    op.alter_column("products", "price", type_=sa.String(20))
    """
    path = write(tmp_path / "v", "0001_price", body, "0001")
    result = shadowswap("lint", str(path), "--json", env={"DATABASE_URL": db_url})
    assert result.returncode == 1, result.stderr
    (finding,) = json.loads(result.stdout)["operations"]
    assert finding["blocks_writes"] is True
    # the old type came from the live table, not from existing_type
    assert "give existing_type" not in finding["why"]
    assert 2500 <= finding["rows"] <= 10_000
    assert finding["estimated_seconds"] > 0
    if engine.dialect.name != "sqlite":  # SQLite's page statistics (dbstat) are optional
        assert finding["bytes"] > 10_000  # InnoDB statistics lag: the order of magnitude only
    text = shadowswap("lint", str(path), "--db", db_url)
    assert "rows (" in text.stdout and "measured rewrite rate" in text.stdout
    engine.dispose()


def test_db_knows_a_widening_is_in_place(pg_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(pg_url)
    create_products(engine, 100)
    path = write(tmp_path / "v", "0001_name", 'op.alter_column("products", "name", type_=sa.String(300))', "0001")
    offline = lint(path, "postgresql")
    assert [f.rule.id for f in offline.blocking if f.rule] == ["pg-alter-type"]
    assert "give existing_type= or --db to know" in offline.blocking[0].reason
    live = lint(path, None, engine)
    assert live.blocking == []
    engine.dispose()


def test_docs_list_every_rule() -> None:
    docs = (ROOT / "docs" / "alembic.md").read_text()
    for rule in [*RULES, ONLINE_NOT_FIRST]:
        assert f"`{rule.id}`" in docs, rule.id


def test_downgrade_and_project_imports(tmp_path: Path) -> None:
    """--downgrade lints downgrade() too; a migration importing the project's own module (alembic's
    `prepend_sys_path = .`) is read from the project directory."""
    project = tmp_path / "app"
    (project / "versions").mkdir(parents=True)
    (project / "myapp_types.py").write_text("import sqlalchemy as sa\nPRICE = sa.Numeric(10, 2)\n")
    (project / "versions" / "0001_x.py").write_text(
        textwrap.dedent("""
        import sqlalchemy as sa
        from alembic import op
        from myapp_types import PRICE

        revision = "0001"
        down_revision = None


        def upgrade():
            op.add_column("products", sa.Column("note", sa.Text()))


        def downgrade():
            op.alter_column("products", "price", type_=PRICE, existing_type=sa.String(20))
        """)
    )
    run = subprocess.run(
        [sys.executable, "-m", "shadowswap", "lint", "versions", "--dialect", "postgresql", "--json"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
        capture_output=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    both = subprocess.run(
        [sys.executable, "-m", "shadowswap", "lint", "versions", "--dialect", "postgresql", "--json", "--downgrade"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
        capture_output=True,
    )
    assert both.returncode == 1
    ops = json.loads(both.stdout)["operations"]
    assert [(o["function"], o["rule"]) for o in ops] == [("upgrade", None), ("downgrade", "pg-alter-type")]


def test_project_directory_in_history_order(tmp_path: Path) -> None:
    """An alembic project directory (alembic.ini) is linted from its version locations, in the order
    alembic applies the migrations (down_revision), not the order of the file names."""
    from alembic import command
    from alembic.config import Config

    project = tmp_path / "proj"
    project.mkdir()
    command.init(Config(str(project / "alembic.ini")), str(project / "migrations"))
    versions = project / "migrations" / "versions"
    write(versions, "b_first", 'op.add_column("products", sa.Column("a", sa.Text()))', "aaa1")
    write(versions, "a_second", 'op.drop_column("products", "a")', "aaa2", "aaa1")
    result = lint(project, "postgresql")
    assert [(f.op.path.stem, f.op.name) for f in result.findings] == [
        ("b_first", "add_column"),
        ("a_second", "drop_column"),
    ]


def test_fix_leaves_a_call_that_is_not_first(tmp_path: Path) -> None:
    """An online block must come first in its migration: --fix does not move a flagged call that follows
    other operations, says so, and the file stays as it was."""
    body = """
    op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
    op.alter_column("products", "price", type_=sa.String(20), existing_type=sa.Numeric(10, 2))
    """
    path = write(tmp_path / "v", "0001_late", body, "0001")
    before = path.read_text()
    result = lint(path, "postgresql")
    (flagged,) = result.blocking
    assert flagged.rule is not None and flagged.rule.id == "pg-alter-type" and not flagged.fixable
    fixed = shadowswap("lint", str(path), "--dialect", "postgresql", "--fix")
    assert fixed.returncode == 1
    assert "(it must come first in its migration)" in fixed.stdout and "fixed " not in fixed.stdout
    assert path.read_text() == before
