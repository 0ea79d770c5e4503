"""``python -m benchmarks.transform``: the seed's data migration three ways, under writes (issue 17).

The seed's table (``products`` with a legacy ``old_spec_field`` of ``"key1:value1,key2:value2"``)
becomes ``specifications`` and ``metadata`` JSON columns, by

* ``transform``: ``shadowswap plan … --transform legacy:transform`` (examples/legacy.py), online;
* ``offset-loop``: the seed's own loop, ``SELECT … WHERE migrated_at IS NULL ORDER BY id LIMIT n
  OFFSET k`` with one UPDATE a row, after adding the columns in place;
* ``using``: the same transformation as ``--using`` SQL expressions (PostgreSQL only: MySQL has no
  aggregate over a split string to write it with).

A writer thread offers ``--rate`` writes per second throughout (updates of the legacy field and the
name, inserts, deletes), keeping what it committed. Afterwards every row is checked against
``legacy.transform`` of the row as committed: rows the approach never filled are *skipped*, rows
filled from a version of the row the writer has since changed are *stale*. The writer stops before
shadowswap's swap (``--postpone-cutover``): after it the application writes the new columns itself.

Keep ``--rows`` small on a shared machine; the issue's figure is 1M rows under 200 writes/s.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(EXAMPLES))
import legacy  # noqa: E402  (examples/legacy.py: the transformation every approach computes)

URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/shadowswap_bench_transform",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/shadowswap_bench_transform",
}
JSON_TYPE = {"postgresql": "jsonb", "mysql": "json"}

#: the seed's transformation in SQL, for ``--using`` (PostgreSQL)
USING_PG = {
    "specifications": (
        "COALESCE((SELECT jsonb_object_agg(btrim(split_part(p, ':', 1)), btrim(substr(p, strpos(p, ':') + 1))) "
        "FROM unnest(string_to_array(old_spec_field, ',')) AS p WHERE strpos(p, ':') > 0), '{}'::jsonb)"
    ),
    "metadata": (
        "jsonb_build_object('migration_source', 'legacy_system', 'original_format', 'csv_specs', "
        "'data_quality_score', GREATEST(0, 100"
        " - CASE WHEN name IS NULL OR length(name) < 3 THEN 20 ELSE 0 END"
        " - CASE WHEN description IS NULL OR description = '' THEN 15 ELSE 0 END"
        " - CASE WHEN old_spec_field IS NULL OR old_spec_field = '' THEN 10 ELSE 0 END))"
    ),
}


def spec_of(i: int) -> str:
    return f"color:{('red', 'blue', 'green')[i % 3]},size:{i % 40},weight:{i % 50}kg"


def seed(engine: sa.Engine, rows: int) -> None:
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS products")
        if pg:
            conn.exec_driver_sql(
                "CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, description text, "
                "old_spec_field text)"
            )
            series, i = f"generate_series(1, {rows}) AS s(i)", "i"
            concat = (
                "'color:' || (ARRAY['red','blue','green'])[i % 3 + 1] || ',size:' || i % 40 "
                "|| ',weight:' || i % 50 || 'kg'"
            )
            name, desc = "'product ' || i", "CASE WHEN i % 7 = 0 THEN NULL ELSE 'description of ' || i END"
        else:
            conn.exec_driver_sql(
                "CREATE TABLE products (id int AUTO_INCREMENT PRIMARY KEY, name varchar(255) NOT NULL, "
                "description text, old_spec_field text)"
            )
            series, i = f"seq_1_to_{rows}", "seq"
            concat = (
                "CONCAT('color:', ELT(seq % 3 + 1, 'red', 'blue', 'green'), ',size:', seq % 40, "
                "',weight:', seq % 50, 'kg')"
            )
            name, desc = "CONCAT('product ', seq)", "IF(seq % 7 = 0, NULL, CONCAT('description of ', seq))"
        conn.execute(
            sa.text(
                f"INSERT INTO products (id, name, description, old_spec_field) SELECT {i}, {name}, {desc}, {concat} "
                f"FROM {series}"
            )
        )
        if pg:
            conn.exec_driver_sql("SELECT setval('products_id_seq', (SELECT max(id) FROM products))")
            conn.exec_driver_sql("ANALYZE products")


def seed_row(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"product {i}",
        "description": None if i % 7 == 0 else f"description of {i}",
        "old_spec_field": spec_of(i),
    }


class Writer(threading.Thread):
    """``rate`` committed writes a second: 50 % legacy-field updates, 20 % name updates, 20 % inserts,
    10 % deletes; ``model`` holds what it committed (None: deleted)."""

    def __init__(self, engine: sa.Engine, rows: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.engine, self.rows, self.rate = engine, rows, rate
        self.model: dict[int, dict[str, Any] | None] = {}
        self.stopping = threading.Event()
        self.writes = 0
        self.errors: list[str] = []

    def run(self) -> None:
        rng = random.Random(7)
        start = time.monotonic()
        pg = self.engine.dialect.name == "postgresql"
        while not self.stopping.is_set():
            due = start + self.writes / self.rate
            wait = due - time.monotonic()
            if wait > 0:
                self.stopping.wait(wait)
                continue
            op, key = rng.random(), rng.randrange(1, self.rows + 1)
            try:
                with self.engine.begin() as conn:
                    row = self.model[key] if key in self.model else seed_row(key)  # None: deleted
                    if op < 0.2:
                        new = {
                            "name": f"inserted {self.writes}",
                            "description": None,
                            "old_spec_field": spec_of(self.writes),
                        }
                        sql = (
                            "INSERT INTO products (name, description, old_spec_field) "
                            "VALUES (:name, :description, :old_spec_field)"
                        )
                        if pg:
                            got = conn.execute(sa.text(sql + " RETURNING id"), new).scalar_one()
                        else:
                            got = conn.execute(sa.text(sql), new).lastrowid
                        self.model[int(got)] = {"id": int(got), **new}
                    elif row is None:
                        pass
                    elif op < 0.3:
                        conn.execute(sa.text("DELETE FROM products WHERE id = :id"), {"id": key})
                        self.model[key] = None
                    elif op < 0.5:
                        row = {**row, "name": f"renamed {self.writes}"}
                        conn.execute(sa.text("UPDATE products SET name = :name WHERE id = :id"), row)
                        self.model[key] = row
                    else:
                        row = {**row, "old_spec_field": f"{spec_of(self.writes)},edited:{self.writes}"}
                        conn.execute(
                            sa.text("UPDATE products SET old_spec_field = :old_spec_field WHERE id = :id"), row
                        )
                        self.model[key] = row
            except sa.exc.DBAPIError as exc:  # a lock wait the approach imposed, counted, not fatal
                self.errors.append(str(exc.orig).splitlines()[0])
            self.writes += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def expected(writer: Writer, rows: int) -> dict[int, dict[str, Any]]:
    out = {i: seed_row(i) for i in range(1, rows + 1)}
    for key, row in writer.model.items():
        if row is None:
            out.pop(key, None)
        else:
            out[key] = row
    return out


def check(engine: sa.Engine, want: dict[int, dict[str, Any]]) -> dict[str, int]:
    """Rows never filled (skipped) and rows filled from an older version of the row (stale)."""
    skipped = stale = 0
    with engine.connect() as conn:
        for key, spec, meta in conn.exec_driver_sql("SELECT id, specifications, metadata FROM products"):
            row = want.get(key)
            if row is None:
                continue
            if spec is None:
                skipped += 1
                continue
            value = legacy.transform(row)
            got = (
                json.loads(spec) if isinstance(spec, str) else spec,
                json.loads(meta) if isinstance(meta, str) else meta,
            )
            if got != (value["specifications"], value["metadata"]):
                stale += 1
    return {"skipped": skipped, "stale": stale}


def offset_loop(engine: sa.Engine, batch: int = 1000) -> dict[str, Any]:
    """The seed's loop, as written: it skips rows because the WHERE shrinks while the OFFSET grows."""
    kind = JSON_TYPE[engine.dialect.name]
    stamp = "timestamp" if engine.dialect.name == "postgresql" else "datetime"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"ALTER TABLE products ADD COLUMN specifications {kind}, ADD COLUMN metadata {kind}, "
            f"ADD COLUMN migrated_at {stamp}"
        )
    offset = processed = 0
    while True:
        with engine.begin() as conn:
            rows = (
                conn.execute(
                    sa.text(
                        "SELECT id, name, description, old_spec_field FROM products WHERE migrated_at IS NULL "
                        "ORDER BY id LIMIT :n OFFSET :o"
                    ),
                    {"n": batch, "o": offset},
                )
                .mappings()
                .all()
            )
            if not rows:
                break
            for row in rows:
                value = legacy.transform(row)
                conn.execute(
                    sa.text("UPDATE products SET specifications = :s, metadata = :m, migrated_at = :t WHERE id = :id"),
                    {"s": json.dumps(value["specifications"]), "m": json.dumps(value["metadata"]),
                     "t": time.strftime("%Y-%m-%d %H:%M:%S"), "id": row["id"]},
                )  # fmt: skip
        processed += len(rows)
        offset += batch
    return {"rows_processed": processed}


def shadowswap(url: str, workdir: Path, writer: Writer, dialect: str, using: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{EXAMPLES}{os.pathsep}{REPO}", "DATABASE_URL": url}
    kind = JSON_TYPE[dialect]
    how = (
        [f"--using=specifications={USING_PG['specifications']}", f"--using=metadata={USING_PG['metadata']}"]
        if using
        else ["--transform", "legacy:transform"]
    )
    plan = subprocess.run(
        [sys.executable, "-m", "shadowswap", "plan", "products", f"--add=specifications:{kind}",
         f"--add=metadata:{kind}", "--drop", "old_spec_field", *how],
        cwd=workdir, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if plan.returncode != 0:
        return {"failed": (plan.stderr or plan.stdout).strip().splitlines()[-1]}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowswap", "--log-format", "json", "execute", "--allow-destructive",
         "--postpone-cutover"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    engine = sa.create_engine(url)
    phase = None
    while proc.poll() is None and phase != "verified":
        time.sleep(0.5)
        if not sa.inspect(engine).has_table("shadowswap_migrations"):
            continue
        with engine.connect() as conn:
            found = conn.exec_driver_sql("SELECT phase FROM shadowswap_migrations ORDER BY id DESC LIMIT 1").first()
            phase = found[0] if found else None
    online = time.monotonic() - started
    writer.stop()  # the application now writes the new columns itself (see the module docstring)
    subprocess.run([sys.executable, "-m", "shadowswap", "cutover", "products"], cwd=workdir, env=env, check=True)
    output, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        return {"failed": output.strip().splitlines()[-1]}
    copy_s = None
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "phase" and event.get("phase") == "triggers_installed":
            t0 = event.get("timestamp")
        if event.get("event") == "phase" and event.get("phase") == "copied":
            copy_s = _seconds(t0, event.get("timestamp"))
    with engine.connect() as conn:
        copied = conn.exec_driver_sql("SELECT rows_copied FROM shadowswap_migrations ORDER BY id DESC LIMIT 1").scalar()
    engine.dispose()
    return {"online_s": round(online, 2), "copy_s": copy_s, "rows_copied": copied,
            "copy_rows_per_s": round(copied / copy_s) if copy_s and copied else None}  # fmt: skip


def _seconds(a: str | None, b: str | None) -> float | None:
    from datetime import datetime

    if not a or not b:
        return None
    return round((datetime.fromisoformat(b.rstrip("Z")) - datetime.fromisoformat(a.rstrip("Z"))).total_seconds(), 3)


def main(
    dialect: Annotated[str, typer.Option(help="postgresql or mysql (MariaDB)")] = "postgresql",
    rows: Annotated[int, typer.Option(help="initial rows (the issue's figure: 1000000)")] = 100_000,
    rate: Annotated[float, typer.Option(help="writes per second offered throughout")] = 200.0,
    approaches: Annotated[
        str, typer.Option(help="comma list of transform, offset-loop, using")
    ] = "transform,offset-loop,using",
    db: Annotated[str | None, typer.Option(help="benchmark database URL (dropped and recreated)")] = None,
    out: Annotated[Path, typer.Option(help="where results.json goes")] = Path("benchmarks/results/transform"),
) -> None:
    """The seed's data migration via --transform, via its OFFSET loop and via --using, under writes."""
    dialect = "mysql" if dialect in ("mysql", "mariadb") else dialect
    url = sa.make_url(db or URLS[dialect])
    admin = sa.create_engine(
        url.set(database="postgres" if dialect == "postgresql" else "mysql"), isolation_level="AUTOCOMMIT"
    )
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"dialect": dialect, "rows": rows, "rate": rate, "loadavg_start": os.getloadavg()}
    for approach in [a.strip() for a in approaches.split(",") if a.strip()]:
        if approach == "using" and dialect != "postgresql":
            results[approach] = {"failed": "no --using equivalent on MySQL (no aggregate over a split string)"}
            continue
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {url.database}")
            conn.exec_driver_sql(f"CREATE DATABASE {url.database}")
        engine = sa.create_engine(url)
        seed(engine, rows)
        writer = Writer(engine, rows, rate)
        writer.start()
        started = time.monotonic()
        if approach == "offset-loop":
            facts = offset_loop(engine)
            writer.stop()
        else:
            facts = shadowswap(url.render_as_string(hide_password=False), out, writer, dialect, approach == "using")
        facts["seconds"] = round(time.monotonic() - started, 2)
        facts["writes"] = writer.writes
        facts["write_errors"] = len(writer.errors)
        if "failed" not in facts:
            facts.update(check(engine, expected(writer, rows)))
        engine.dispose()
        results[approach] = facts
        typer.echo(f"{approach}: {json.dumps(facts)}")
    results["loadavg_end"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(results, indent=2))
    typer.echo(f"results: {out / 'results.json'}")


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(main)

if __name__ == "__main__":
    app()
