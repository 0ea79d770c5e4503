"""Differential fidelity harness (issue 14): one fixture, migrated two ways, compared.

Database A gets the engine's own blocking ``ALTER TABLE`` (SQLite: the documented 12-step rebuild,
see :func:`sqlite_rebuild`); database B gets shadowswap through its command line, as a user runs
it (``plan`` + ``execute`` + ``cleanup --drop-old --yes``). Then both are compared: the catalogs
(:func:`catalog`), the answers to behaviour probes (:func:`run_probes`) and every row of every
table and view (:func:`all_rows`). Each difference is one line, ``what: blocking vs shadowswap``.

A case is one :class:`Case` value; adding a fixture is adding one to ``CASES`` (passes today) or to
``KNOWN_GAPS`` (differs today, with the difference the harness printed, until it is fixed).
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from conftest import DIALECTS, fresh_database
from typer.testing import CliRunner

from shadowswap.cli import app

SQLITE, PG, MY = "sqlite", "postgresql", "mysql"
ALL = (SQLITE, PG, MY)

#: shadowswap's own bookkeeping table: present only in the database it ran in.
STATE_PREFIX = "shadowswap_"


@dataclass(frozen=True)
class Case:
    """One fixture. ``setup``/``alter``/``probes`` map an engine to statements; ``"*"``: for all, run first.

    ``alter`` is the blocking form of the change; for SQLite its first statement is the new
    ``CREATE TABLE`` of the 12-step rebuild (any name), or ``add COLUMN-DEF`` for the table's current
    text with that column added; :func:`sqlite_rebuild` does the rest.
    ``probes`` run after the migration in both databases, each in its own transaction; whether a
    statement succeeds (and what a SELECT returns) must be the same in both.
    """

    name: str
    engines: tuple[str, ...]
    table: str
    setup: Mapping[str, Sequence[str]]
    flags: tuple[str, ...]
    alter: Mapping[str, Sequence[str]]
    probes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: options of ``execute`` (``--allow-destructive`` for a change that drops a column)
    execute: tuple[str, ...] = ()

    def for_engine(self, what: Mapping[str, Sequence[str]], engine: str) -> list[str]:
        return [*what.get("*", ()), *what.get(engine, ())]


# --------------------------------------------------------------------------- running


def run_sql(url: str, statements: Sequence[str]) -> None:
    if url.startswith("sqlite"):
        # executescript: triggers contain semicolons, and PRAGMA foreign_keys must run outside BEGIN
        con = sqlite3.connect(sa.make_url(url).database or "")
        try:
            con.executescript(";\n".join(statements) + ";")
        finally:
            con.close()
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for stmt in statements:
                conn.exec_driver_sql(stmt.replace("%", "%%"))
    finally:
        engine.dispose()


def sqlite_rebuild(url: str, table: str, create_new: str) -> None:
    """SQLite's documented 12-step ALTER: new table, copy, drop, rename, re-create the schema around it.

    https://www.sqlite.org/lang_altertable.html#otheralter: foreign keys off, one transaction,
    remember the table's indexes and triggers and the views, create the new table, copy the columns
    both share, drop the old, rename the new, re-create indexes/triggers/views, foreign_key_check.
    """
    con = sqlite3.connect(sa.make_url(url).database or "")
    con.isolation_level = None
    try:
        con.execute("PRAGMA foreign_keys=OFF")
        con.execute("BEGIN")
        saved = [
            r[0]
            for r in con.execute(
                "SELECT sql FROM sqlite_master WHERE ((type IN ('index','trigger') AND tbl_name=?) OR type='view')"
                " AND sql IS NOT NULL ORDER BY type='view', rowid",
                (table,),
            )
        ]
        for (view,) in con.execute("SELECT name FROM sqlite_master WHERE type='view'").fetchall():
            con.execute(f'DROP VIEW "{view}"')
        if not re.match(r"(?is)\s*create\s+table", create_new):
            # "add COLUMN-DEF": the user's edit of the table's current text, the column put before any
            # table constraint (SQLite wants the columns first)
            current = con.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()[0]
            create_new = _add_column_to_text(current, re.sub(r"(?i)^\s*add\s+", "", create_new))
        new_sql = re.sub(r"(?is)^\s*create\s+table\s+(\"[^\"]+\"|\S+)", 'CREATE TABLE "_rebuild_new"', create_new)
        con.execute(new_sql)
        old_cols = [r[1] for r in con.execute(f'PRAGMA table_xinfo("{table}")') if r[6] == 0]
        new_cols = {r[1] for r in con.execute('PRAGMA table_xinfo("_rebuild_new")') if r[6] == 0}
        cols = ", ".join(f'"{c}"' for c in old_cols if c in new_cols)
        con.execute(f'INSERT INTO "_rebuild_new" ({cols}) SELECT {cols} FROM "{table}"')
        # AUTOINCREMENT's high-water mark lives in sqlite_sequence and goes with the dropped table;
        # an ALTER keeps it (ids of deleted rows are never reused), so the rebuild carries it over
        has_seq = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone()
        seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone() if has_seq else None
        con.execute(f'DROP TABLE "{table}"')
        con.execute(f'ALTER TABLE "_rebuild_new" RENAME TO "{table}"')
        if seq is not None:
            con.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
            con.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, seq[0]))
        for stmt in saved:
            con.execute(stmt)
        problems = con.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise AssertionError(f"foreign_key_check after the rebuild: {problems}")
        con.execute("COMMIT")
    finally:
        con.close()


def _add_column_to_text(create: str, column: str) -> str:
    body_start = create.index("(") + 1
    depth, cut = 0, create.rindex(")")
    for i in range(body_start, len(create)):
        ch = create[i]
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            cut = i
            break
        if (
            depth == 0
            and ch == ","
            and re.match(r"(?is),\s*(constraint|primary\s+key|unique\s*\(|check\s*\(|foreign\s+key)", create[i:])
        ):
            cut = i
            break
    return f"{create[:cut]}, {column}{create[cut:]}"


def blocking_alter(case: Case, engine: str, url: str) -> None:
    statements = case.for_engine(case.alter, engine)
    if engine == SQLITE:
        sqlite_rebuild(url, case.table, statements[0])
        if statements[1:]:
            run_sql(url, statements[1:])
    else:
        run_sql(url, statements)


def run_probes(url: str, statements: Sequence[str]) -> list[str]:
    """Each statement in its own transaction: ``ok``, ``ok <rows>`` or ``refused``."""
    engine = sa.create_engine(url)
    out: list[str] = []
    try:
        for stmt in statements:
            try:
                with engine.begin() as conn:
                    if engine.dialect.name == "sqlite":
                        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    result = conn.exec_driver_sql(stmt.replace("%", "%%"))
                    rows = [tuple(_norm(v) for v in r) for r in result.fetchall()] if result.returns_rows else None
                out.append("ok" if rows is None else f"ok {rows}")
            except sa.exc.DBAPIError:
                out.append("refused")
    finally:
        engine.dispose()
    return out


def _norm(v: Any) -> Any:
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    if isinstance(v, float | int) or v is None:
        return v
    return str(v)


def cli(*args: str, url: str, cwd: Path) -> tuple[int, str]:
    """``shadowswap ARGS`` as typed, through the CLI's own argument parsing and commands.

    In this process rather than a child: the subprocess form costs ~3 s of interpreter start and
    imports per command on a loaded 2-core machine, three commands a case, and the suite must stay
    around two minutes; what runs (argument parsing, $DATABASE_URL, exit codes, messages) is the same.
    """
    here = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args), env={"DATABASE_URL": url, "COLUMNS": "200"})
    finally:
        os.chdir(here)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = result.exception
        output += f"\nTraceback (uncaught)\n{''.join(traceback.format_exception_only(exc)).strip()}"
    return result.exit_code, output


def cli_error(output: str) -> str:
    """The line that says what went wrong: ``error: ...`` or the exception of a traceback."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    said = [ln for ln in lines if ln.startswith("error:") or re.match(r"^[\w.]*(Error|Exception)\b.*:", ln)]
    line = said[-1] if said else (lines[-1] if lines else "(no output)")
    return f"{line} (with a traceback)" if "Traceback" in output else line


def _db(engine: str, tmp_path: Path, sub: str) -> Iterator[str]:
    path = tmp_path / sub
    path.mkdir()
    return fresh_database(engine, path)


def migrate_both(case: Case, engine: str, tmp_path: Path) -> list[str]:
    """Build the fixture twice, migrate each way, and return every difference (empty when faithful)."""
    blocking_gen, online_gen = _db(engine, tmp_path, "blocking"), _db(engine, tmp_path, "online")
    blocking, online = next(blocking_gen), next(online_gen)
    try:
        setup = case.for_engine(case.setup, engine)
        run_sql(blocking, setup)
        run_sql(online, setup)
        blocking_alter(case, engine, blocking)
        # a case that drops a column needs --allow-destructive; other execute options are the Case's
        execute = ("execute", "--allow-destructive", *case.execute)
        for args in (("plan", case.table, *case.flags), execute, ("cleanup", "--drop-old", "--yes")):
            code, output = cli(*args, url=online, cwd=tmp_path / "online")
            if code != 0:
                return [f"shadowswap {args[0]} exited {code}: {cli_error(output)}"]
        diffs = differences(catalog(blocking), catalog(online))
        probes = case.for_engine(case.probes, engine)
        answers_a, answers_b = run_probes(blocking, probes), run_probes(online, probes)
        diffs += [f"probe {p!r}: {a} vs {b}" for p, a, b in zip(probes, answers_a, answers_b, strict=True) if a != b]
        return diffs + row_differences(all_rows(blocking), all_rows(online))
    finally:
        for gen in (blocking_gen, online_gen):
            for _ in gen:  # the fixture's teardown: drops the server database
                pass


# --------------------------------------------------------------------------- comparing


def _tables(insp: sa.Inspector) -> list[str]:
    return sorted(t for t in insp.get_table_names() if not t.startswith(STATE_PREFIX))


def all_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        q = engine.dialect.identifier_preparer.quote
        out: dict[str, list[tuple[Any, ...]]] = {}
        with engine.connect() as conn:
            for name in [*_tables(insp), *insp.get_view_names()]:
                try:
                    result = conn.exec_driver_sql(f"SELECT * FROM {q(name)}")
                    cols = tuple(result.keys())
                    out[name] = [cols, *sorted((tuple(_norm(v) for v in r) for r in result), key=repr)]
                except sa.exc.DBAPIError as exc:
                    conn.rollback()
                    out[name] = [("unreadable", type(exc.orig).__name__)]
        return out
    finally:
        engine.dispose()


def catalog(url: str) -> dict[str, str]:
    """Everything a blocking ALTER keeps, as ``{what: definition}``, from the Inspector and the engine."""
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        out: dict[str, str] = {}
        # the Inspector warns that it skips expression indexes; the engine's own catalog below has them
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        tables = _tables(insp)
        out["tables"] = ", ".join(tables)
        out["views"] = ", ".join(sorted(insp.get_view_names()))
        for t in tables:
            for c in insp.get_columns(t):
                out[f"column {t}.{c['name']}"] = (
                    f"{c['type']} {'NULL' if c['nullable'] else 'NOT NULL'} default={c.get('default')}"
                    f" comment={c.get('comment')} computed={c.get('computed')}"
                )
            pk = insp.get_pk_constraint(t)
            out[f"primary key {t}"] = (
                f"{pk.get('name') if engine.dialect.name == PG else ''}{pk['constrained_columns']}"
            )
            for u in insp.get_unique_constraints(t):
                out[f"unique {t}.{u['name']}"] = str(u["column_names"])
            for ck in insp.get_check_constraints(t):
                out[f"check {t}.{ck['name']}"] = re.sub(r"\s+", " ", str(ck["sqltext"]))
            for fk in insp.get_foreign_keys(t):
                out[f"foreign key {t}.{fk['name']}"] = (
                    f"{fk['constrained_columns']} -> {fk['referred_table']}{fk['referred_columns']} {fk.get('options')}"
                )
        with engine.connect() as conn:
            {SQLITE: _sqlite_catalog, PG: _pg_catalog, MY: _mysql_catalog}[engine.dialect.name](conn, tables, out)
        return out
    finally:
        engine.dispose()


def _ws(s: Any) -> str:
    return re.sub(r"\s+", " ", str(s)).strip()


def _sqlite_catalog(conn: sa.Connection, tables: list[str], out: dict[str, str]) -> None:
    for t in tables:
        info = list(conn.exec_driver_sql(f'PRAGMA table_xinfo("{t}")'))
        for cid, name, typ, notnull, dflt, pk, hidden in info:
            if pk and typ.upper() == "INTEGER" and sum(1 for r in info if r[5]) == 1:
                # the rowid alias: NULL becomes the next rowid with or without NOT NULL, so the flag is moot
                notnull = "rowid"
            out[f"column {t}.{name}"] = f"#{cid} {typ.upper()} notnull={notnull} default={dflt} pk={pk} hidden={hidden}"
        for _seq, name, unique, origin, partial in conn.exec_driver_sql(f'PRAGMA index_list("{t}")'):
            cols = [
                f"{r[2]}{' DESC' if r[3] else ''} {r[4]}"
                for r in conn.exec_driver_sql(f'PRAGMA index_xinfo("{name}")')
                if r[5]
            ]
            key = f"index {t}.{name}" if origin == "c" else f"{'unique' if origin == 'u' else 'pk'} index {t}{cols}"
            out[key] = f"unique={unique} origin={origin} partial={partial} columns {', '.join(cols)}"
        sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (t,)).scalar()
        out[f"table {t} text features"] = _sqlite_features(sql or "")
    for typ, name, sql in conn.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index','trigger','view') AND sql IS NOT NULL"
    ):
        out[f"{typ} {name} sql"] = _ws(sql).lower().replace('"', "")


def _sqlite_features(sql: str) -> str:
    """What the CREATE TABLE text holds beyond PRAGMA table_xinfo: collations, checks, AUTOINCREMENT, table options.

    The text itself is not compared verbatim: shadowswap writes ``id INTEGER NOT NULL, PRIMARY KEY (id)``
    where the user wrote ``id integer primary key``, which is the same table.
    """
    s = _ws(sql).lower().replace('"', "").replace("`", "")
    feats = [f"collate {m}" for m in re.findall(r"(\w+ [^,]*?collate \w+)", s)]
    feats += [f"check {m}" for m in re.findall(r"check\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)", s)]
    feats += ["autoincrement"] if "autoincrement" in s else []
    feats += ["without rowid"] if re.search(r"\)\s*without rowid", s) else []
    feats += ["strict"] if re.search(r"\)\s*(without rowid\s*,\s*)?strict\s*$", s) else []
    feats += [f"generated {m}" for m in re.findall(r"generated always as \(([^)]*)\)(?: (stored|virtual))?", s)]
    return "; ".join(sorted(map(str, feats))) or "-"


def _pg_catalog(conn: sa.Connection, tables: list[str], out: dict[str, str]) -> None:
    def rows(sql: str) -> list[Any]:
        return list(conn.exec_driver_sql(sql.replace("%", "%%")))  # psycopg reads % as a placeholder

    for r in rows(
        "SELECT c.relname, pg_get_userbyid(c.relowner), c.relacl::text, obj_description(c.oid, 'pg_class'),"
        " c.relrowsecurity, c.relforcerowsecurity, c.reloptions::text, c.relreplident, c.relkind, c.relpersistence,"
        " pg_get_partkeydef(c.oid), (SELECT string_agg(p.relname, ',') FROM pg_inherits i"
        "  JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid),"
        " (SELECT t.reloptions::text FROM pg_class t WHERE t.oid = c.reltoastrelid)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r','p','v','m') AND c.relname NOT LIKE 'shadowswap\\_%'"
    ):
        name = r[0]
        out[f"owner {name}"] = str(r[1])
        out[f"grants {name}"] = str(r[2])
        out[f"comment {name}"] = str(r[3])
        out[f"row level security {name}"] = f"enabled={r[4]} forced={r[5]}"
        out[f"storage parameters {name}"] = f"{r[6]} toast={r[12]}"
        out[f"replica identity {name}"] = str(r[7])
        out[f"kind {name}"] = f"relkind={r[8]} persistence={r[9]} partition by={r[10]} inherits={r[11]}"
    for r in rows(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
        " pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attstattarget, co.collname,"
        " col_description(c.oid, a.attnum), a.attacl::text, a.attnum, a.attoptions::text, a.attstorage,"
        " a.attcompression"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r','p','v') AND a.attnum > 0 AND NOT a.attisdropped"
        " AND c.relname NOT LIKE 'shadowswap\\_%'"
    ):
        out[f"column {r[0]}.{r[1]} (pg)"] = (
            f"{r[2]} notnull={r[3]} default={r[4]} identity={r[5]!r} generated={r[6]!r} statistics={r[7]}"
            f" collation={r[8]} comment={r[9]} grants={r[10]} options={_user_options(r[12])} storage={r[13]}"
            f" compression={r[14]!r}"
        )
    for r in rows(
        "SELECT t.relname, i.relname, regexp_replace(pg_get_indexdef(i.oid), '^.* USING ', 'USING '),"
        " ix.indisclustered, i.reloptions::text, ix.indisreplident, obj_description(i.oid, 'pg_class')"
        " FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'"
        " AND t.relname NOT LIKE 'shadowswap\\_%'"
    ):
        unique = "UNIQUE " if "UNIQUE" in str(r[2]) else ""
        out[f"index {r[1]}"] = (
            f"{unique}on {r[0]} {r[2]} clustered={r[3]} options={r[4]} replica identity={r[5]} comment={r[6]}"
        )
    for r in rows(
        "SELECT t.relname, con.conname, pg_get_constraintdef(con.oid), con.convalidated, con.condeferrable"
        " FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = 'public' AND t.relname NOT LIKE 'shadowswap\\_%'"
    ):
        out[f"constraint {r[0]}.{r[1]}"] = f"{r[2]} validated={r[3]} deferrable={r[4]}"
    for r in rows(
        "SELECT t.relname, tg.tgname, regexp_replace(pg_get_triggerdef(tg.oid), ' ON \\S+ ', ' ON <t> '), tg.tgenabled"
        " FROM pg_trigger tg JOIN pg_class t ON t.oid = tg.tgrelid WHERE NOT tg.tgisinternal"
    ):
        out[f"trigger {r[0]}.{r[1]}"] = f"{r[2]} enabled={r[3]}"
    for r in rows(
        "SELECT c.relname, s.stxname, regexp_replace(pg_get_statisticsobjdef(s.oid), ' FROM \\S+$', ''),"
        " s.stxstattarget FROM pg_statistic_ext s JOIN pg_class c ON c.oid = s.stxrelid"
        " WHERE c.relname NOT LIKE 'shadowswap\\_%'"
    ):
        out[f"statistics {r[0]}.{r[1]}"] = f"{r[2]} target={r[3]}"
    for r in rows("SELECT tablename, policyname, permissive, roles::text, cmd, qual, with_check FROM pg_policies"):
        out[f"policy {r[0]}.{r[1]}"] = f"{r[2]} {r[3]} {r[4]} using={r[5]} check={r[6]}"
    for r in rows(
        "SELECT pubname, string_agg(tablename || coalesce(' ' || attnames::text, '')"
        " || coalesce(' where ' || rowfilter, ''), ',' ORDER BY tablename) FROM pg_publication_tables GROUP BY 1"
    ):
        out[f"publication {r[0]}"] = str(r[1])
    for r in rows("SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'"):
        out[f"view {r[0]}"] = _ws(r[1])
    for r in rows(
        "SELECT d.refobjid::regclass::text, v.relname FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid"
        " JOIN pg_class v ON v.oid = w.ev_class WHERE d.refobjid <> w.ev_class AND d.classid = 'pg_rewrite'::regclass"
        " AND d.refclassid = 'pg_class'::regclass GROUP BY 1, 2"
    ):
        out[f"view {r[1]} depends on {r[0]}"] = "yes"


def _user_options(options: str | None) -> str | None:
    """A column's attoptions without ``pg_attver``, which this server build stamps on every column anew."""
    if options is None:
        return None
    kept = [o for o in options.strip("{}").split(",") if o and not o.startswith("pg_attver=")]
    return "{" + ",".join(kept) + "}" if kept else None


def _mysql_catalog(conn: sa.Connection, tables: list[str], out: dict[str, str]) -> None:
    for t in tables:
        ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE `{t}`").fetchone()[1]  # type: ignore[index]
        lines = [ln.strip().rstrip(",") for ln in ddl.splitlines()[1:]]
        for ln in lines:
            if ln.startswith(")"):
                out[f"table options {t}"] = ln
            elif ln.startswith("`"):
                out[f"column {t}.{ln.split('`')[1]} (ddl)"] = ln
            else:
                m = re.match(r"((?:PRIMARY |UNIQUE |FULLTEXT |SPATIAL )?KEY|CONSTRAINT)\s*(`[^`]*`)?", ln)
                out[f"{m.group(1).lower() if m else 'line'} {t}.{(m.group(2) or '') if m else ln}"] = ln
    for r in conn.exec_driver_sql(
        "SELECT event_object_table, trigger_name, action_timing, event_manipulation, action_statement"
        " FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
    ):
        out[f"trigger {r[0]}.{r[1]}"] = _ws(f"{r[2]} {r[3]} {r[4]}")
    for r in conn.exec_driver_sql(
        "SELECT table_name, view_definition FROM information_schema.views WHERE table_schema = DATABASE()"
    ):
        out[f"view {r[0]}"] = _ws(r[1]).replace(f"`{conn.exec_driver_sql('SELECT DATABASE()').scalar()}`.", "")
    for r in conn.exec_driver_sql(
        "SELECT table_name, constraint_name, referenced_table_name, update_rule, delete_rule"
        " FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE()"
    ):
        out[f"foreign key rule {r[0]}.{r[1]}"] = f"-> {r[2]} on update {r[3]} on delete {r[4]}"


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``what: blocking vs shadowswap`` for every key whose value differs (``(none)`` when absent)."""
    out = []
    # what the table is (its kind, which tables exist) and table-level properties first: the rest
    # usually follows from them
    first = ("tables", "views", "kind ", "owner ", "grants ", "comment ", "row level security ", "storage parameters ")
    for key in sorted(set(a) | set(b), key=lambda k: (not k.startswith(first), k)):
        va, vb = a.get(key, "(none)"), b.get(key, "(none)")
        if va != vb:
            out.append(f"{key}: {_short(va)} vs {_short(vb)}")
    return out


def row_differences(a: Mapping[str, list[Any]], b: Mapping[str, list[Any]]) -> list[str]:
    out = []
    for name in sorted(set(a) | set(b)):
        ra, rb = a.get(name), b.get(name)
        if ra == rb:
            continue
        if ra is None or rb is None:
            count_a, count_b = ("(none)" if r is None else len(r) - 1 for r in (ra, rb))
            out.append(f"rows of {name}: {count_a} vs {count_b}")
        elif ra[0] != rb[0]:
            out.append(f"rows of {name}: columns {ra[0]} vs {rb[0]}")
        else:
            only_a = [r for r in ra[1:] if r not in rb[1:]]
            only_b = [r for r in rb[1:] if r not in ra[1:]]
            out.append(
                f"rows of {name}: {len(ra) - 1} vs {len(rb) - 1} rows;"
                f" first differing {_short(only_a[:1])} vs {_short(only_b[:1])}"
            )
    return out


def _short(v: Any, n: int = 160) -> str:
    s = str(v)
    return s if len(s) <= n else s[: n - 3] + "..."


# --------------------------------------------------------------------------- cases
#
# Most cases add a column with the copy forced (``--strategy shadow``), so what is compared is what the
# shadow copy rebuilds around the rows; the blocking form is the engine's ALTER (SQLite: the rebuild).

SHADOW = ("--strategy", "shadow")
ADD = ("--add", "note:varchar(50)", *SHADOW)


def add_note(table: str) -> dict[str, Sequence[str]]:
    """The blocking form of ``--add note:varchar(50)``: PostgreSQL/MySQL ALTER, SQLite rebuild."""
    return {
        SQLITE: ["add note varchar(50)"],
        PG: [f"ALTER TABLE {table} ADD COLUMN note varchar(50)"],
        MY: [f"ALTER TABLE {table} ADD COLUMN note varchar(50)"],
    }


def seed(table: str, columns: str, select_pg: str, n: int = 200) -> dict[str, list[str]]:
    """Insert ``n`` rows: ``select_pg`` is a select list over ``i`` (1..n), portable across the engines."""
    return {
        SQLITE: [
            f"INSERT INTO {table} ({columns}) WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s"
            f" WHERE i < {n}) SELECT {select_pg} FROM s"
        ],
        PG: [f"INSERT INTO {table} ({columns}) SELECT {select_pg} FROM generate_series(1, {n}) AS s(i)"],
        MY: [f"INSERT INTO {table} ({columns}) SELECT {select_pg} FROM (SELECT seq AS i FROM seq_1_to_{n}) s"],
    }


def per_engine(create: Mapping[str, str], *rest: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {e: [create.get(e, create.get("*", ""))] for e in ALL}
    for more in rest:
        for e in ALL:
            out[e] += [*more.get("*", ()), *more.get(e, ())]
    return out


ITEMS_SQLITE = "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null default 0)"
ITEMS = {
    SQLITE: ITEMS_SQLITE,
    PG: "CREATE TABLE items (id serial primary key, name varchar(40) not null, qty integer not null default 0)",
    MY: "CREATE TABLE items (id int auto_increment primary key, name varchar(40) not null, qty int not null default 0)",
}
ITEMS_ROWS = seed("items", "name, qty", "'item ' || i, i % 7") | {
    MY: ["INSERT INTO items (name, qty) SELECT concat('item ', seq), seq % 7 FROM seq_1_to_200"]
}
ITEMS_SETUP = per_engine(ITEMS, ITEMS_ROWS, {PG: ["SELECT setval('items_id_seq', 200)"]})


def items_case(name: str, engines: tuple[str, ...], extra: Mapping[str, Sequence[str]], **kw: Any) -> Case:
    """A case on the ``items`` table: its setup plus ``extra`` statements, migrated by ADD unless told."""
    setup = per_engine(ITEMS, ITEMS_ROWS, {PG: ["SELECT setval('items_id_seq', 200)"]}, extra)
    return Case(
        name=name,
        engines=engines,
        table=kw.pop("table", "items"),
        setup=setup,
        flags=kw.pop("flags", ADD),
        alter=kw.pop("alter", add_note("items")),
        **kw,
    )


NEXT_ID = ("INSERT INTO items (name) VALUES ('new one')", "SELECT id, qty FROM items WHERE name = 'new one'")
#: items with an identity key in place of the serial one, its sequence not at 1 nor stepping by 1
PG_IDENTITY_ITEMS = [
    "ALTER TABLE items ALTER COLUMN id DROP DEFAULT",
    "DROP SEQUENCE items_id_seq",
    "ALTER TABLE items ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH 300 INCREMENT BY 3)",
]
PG_TWICE_AGAIN = "DROP COLUMN twice, ADD COLUMN twice bigint GENERATED ALWAYS AS (qty * 3 + 1) STORED"

CASES: list[Case] = [
    items_case("plain", ALL, {}, probes={"*": NEXT_ID}),
    # in place, a generated column dropped with the column it is computed from goes first (PostgreSQL
    # runs one ALTER per drop, and dropping the column first fails on its dependent)
    items_case(
        "generated_dropped_with_its_column_in_place",
        (PG, MY),
        {
            PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"],
            MY: ["ALTER TABLE items ADD COLUMN twice int AS (qty * 2) STORED"],
        },
        flags=("--drop", "qty", "--drop", "twice", "--strategy", "instant"),
        alter={"*": ["ALTER TABLE items DROP COLUMN twice, DROP COLUMN qty"]},
    ),
    items_case(
        "alter_type",
        ALL,
        {},
        flags=("--alter", "qty:bigint", *SHADOW),
        alter={
            SQLITE: [ITEMS_SQLITE.replace("qty integer", "qty bigint")],
            PG: ["ALTER TABLE items ALTER COLUMN qty TYPE bigint"],
            MY: ["ALTER TABLE items MODIFY qty bigint not null default 0"],
        },
        probes={"*": NEXT_ID},
    ),
    Case(
        name="column_unique",
        engines=ALL,
        table="products",
        setup=per_engine(
            {
                "*": "CREATE TABLE products (id integer primary key, sku varchar(100) not null unique,"
                " price numeric(10,2) not null)"
            },
            seed("products", "id, sku, price", "i, 's' || i, i * 1.5")
            | {MY: ["INSERT INTO products SELECT seq, concat('s', seq), seq * 1.5 FROM seq_1_to_200"]},
        ),
        flags=("--alter", "price:varchar(20)", *SHADOW),
        alter={
            SQLITE: [
                "CREATE TABLE products (id integer primary key, sku varchar(100) not null unique,"
                " price varchar(20) not null)"
            ],
            PG: ["ALTER TABLE products ALTER COLUMN price TYPE varchar(20)"],
            MY: ["ALTER TABLE products MODIFY price varchar(20) not null"],
        },
        probes={"*": ("INSERT INTO products (id, sku, price) VALUES (1000, 's1', '1')",)},
    ),
    items_case(
        "table_unique_named",
        ALL,
        {
            "*": ["CREATE UNIQUE INDEX uq_items_name_qty ON items (name, qty)"],
            PG: ["ALTER TABLE items ADD CONSTRAINT uq_name UNIQUE (name)"],
            MY: ["ALTER TABLE items ADD CONSTRAINT uq_name UNIQUE (name)"],
        },
        probes={"*": ("INSERT INTO items (name, qty) VALUES ('item 1', 1)",)},
    ),
    items_case(
        "desc_index",
        ALL,
        {"*": ["CREATE INDEX ix_qty_name ON items (qty DESC, name)"]},
    ),
    items_case(
        "partial_index",
        (SQLITE, PG),
        {"*": ["CREATE UNIQUE INDEX ix_big ON items (name) WHERE qty > 3"]},
        probes={
            "*": (
                "INSERT INTO items (name, qty) VALUES ('item 6', 5)",
                "INSERT INTO items (name, qty) VALUES ('item 1', 0)",
            )
        },
    ),
    items_case(
        "expression_index",
        (SQLITE, PG),
        {"*": ["CREATE INDEX ix_lower ON items (lower(name))"]},
    ),
    items_case(
        "include_nulls_opclass_index",
        (PG,),
        {
            PG: [
                "CREATE INDEX ix_inc ON items (name varchar_pattern_ops) INCLUDE (qty)",
                "CREATE INDEX ix_nulls ON items (qty DESC NULLS LAST)",
                "CREATE INDEX ix_hash ON items USING hash (name)",
            ]
        },
    ),
    items_case(
        "prefix_index",
        (MY,),
        {MY: ["CREATE INDEX ix_prefix ON items (name(10))"]},
    ),
    items_case(
        "check_constraint",
        ALL,
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null"
                " default 0, CONSTRAINT ck_qty CHECK (qty >= 0))",
            ],
            PG: ["ALTER TABLE items ADD CONSTRAINT ck_qty CHECK (qty >= 0)"],
            MY: ["ALTER TABLE items ADD CONSTRAINT ck_qty CHECK (qty >= 0)"],
        },
        alter=add_note("items"),
        probes={"*": ("INSERT INTO items (name, qty) VALUES ('neg', -1)",)},
    ),
    items_case(
        "defaults",
        ALL,
        {"*": ["ALTER TABLE items ADD COLUMN label varchar(10) DEFAULT 'none'"]},
        probes={"*": ("INSERT INTO items (name) VALUES ('d')", "SELECT label, qty FROM items WHERE name = 'd'")},
    ),
    items_case(
        "app_trigger",
        ALL,
        {
            "*": ["CREATE TABLE audit (item_id integer, what varchar(10))"],
            SQLITE: [
                "CREATE TRIGGER trg_audit AFTER INSERT ON items BEGIN INSERT INTO audit VALUES (NEW.id, 'insert'); END"
            ],
            PG: [
                "CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN INSERT INTO audit VALUES (NEW.id, 'insert'); RETURN NEW; END$$",
                "CREATE TRIGGER trg_audit AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION audit_fn()",
            ],
            MY: [
                "CREATE TRIGGER trg_audit AFTER INSERT ON items FOR EACH ROW"
                " INSERT INTO audit VALUES (NEW.id, 'insert')"
            ],
        },
        probes={"*": ("INSERT INTO items (name) VALUES ('audited')", "SELECT count(*) FROM audit")},
    ),
    items_case(
        "view_over_table",
        ALL,
        {"*": ["CREATE VIEW v_items AS SELECT id, name FROM items WHERE qty > 2"]},
        probes={
            "*": ("INSERT INTO items (name, qty) VALUES ('seen', 5)", "SELECT name FROM v_items WHERE name = 'seen'")
        },
    ),
    items_case(
        "fk_from_table",
        ALL,
        {
            SQLITE: [
                "CREATE TABLE kinds (id integer primary key)",
                "INSERT INTO kinds VALUES (0), (1), (2)",
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null"
                " default 0, kind integer REFERENCES kinds (id))",
            ],
            PG: [
                "CREATE TABLE kinds (id integer primary key)",
                "INSERT INTO kinds VALUES (0), (1), (2)",
                "ALTER TABLE items ADD COLUMN kind integer CONSTRAINT fk_kind REFERENCES kinds (id)",
            ],
            MY: [
                "CREATE TABLE kinds (id int primary key)",
                "INSERT INTO kinds VALUES (0), (1), (2)",
                "ALTER TABLE items ADD COLUMN kind int,"
                " ADD CONSTRAINT fk_kind FOREIGN KEY (kind) REFERENCES kinds (id)",
            ],
        },
        alter=add_note("items"),
        probes={"*": ("INSERT INTO items (name, kind) VALUES ('orphan', 99)",)},
    ),
    items_case(
        "fk_to_table",
        ALL,
        {
            "*": [
                "CREATE TABLE orders (id integer primary key, item_id integer,"
                " CONSTRAINT fk_item FOREIGN KEY (item_id) REFERENCES items (id) ON DELETE CASCADE)",
                "INSERT INTO orders VALUES (1, 1), (2, 2)",
            ]
        },
        probes={
            "*": (
                "INSERT INTO orders VALUES (3, 100000)",
                "DELETE FROM items WHERE id = 1",
                "SELECT count(*) FROM orders",
            )
        },
    ),
    items_case(
        "generated_column",
        ALL,
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null"
                " default 0, twice integer GENERATED ALWAYS AS (qty * 2) STORED)",
                "INSERT INTO items (name, qty) VALUES ('a', 1), ('b', 2)",
            ],
            PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"],
            MY: ["ALTER TABLE items ADD COLUMN twice int AS (qty * 2) STORED"],
        },
        alter=add_note("items"),
        probes={"*": ("INSERT INTO items (name, qty) VALUES ('g', 21)", "SELECT twice FROM items WHERE name = 'g'")},
    ),
    items_case(
        "generated_virtual_column",
        (SQLITE, MY),
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null"
                " default 0, twice integer GENERATED ALWAYS AS (qty * 2) VIRTUAL)",
                "INSERT INTO items (name, qty) VALUES ('a', 1), ('b', 2)",
            ],
            MY: ["ALTER TABLE items ADD COLUMN twice int AS (qty * 2) VIRTUAL"],
        },
        alter=add_note("items"),
        probes={"*": ("INSERT INTO items (name, qty) VALUES ('g', 21)", "SELECT twice FROM items WHERE name = 'g'")},
    ),
    items_case(
        "generated_column_other_change",
        (PG,),
        {PG: ["ALTER TABLE items ADD COLUMN label text GENERATED ALWAYS AS ('#' || (qty * 10)) STORED"]},
        flags=("--alter", "name:varchar(80)", *SHADOW),
        alter={PG: ["ALTER TABLE items ALTER COLUMN name TYPE varchar(80)"]},
        probes={PG: ("INSERT INTO items (name, qty) VALUES ('g', 21)", "SELECT label FROM items WHERE name = 'g'")},
    ),
    Case(
        name="unique_only_key",
        engines=ALL,
        table="tags",
        setup=per_engine(
            {"*": "CREATE TABLE tags (code varchar(20) not null, label varchar(40), CONSTRAINT uq_code UNIQUE (code))"},
            seed("tags", "code, label", "'c' || i, 'label'")
            | {MY: ["INSERT INTO tags SELECT concat('c', seq), 'label' FROM seq_1_to_200"]},
        ),
        flags=ADD,
        alter=add_note("tags"),
        probes={"*": ("INSERT INTO tags (code) VALUES ('c1')",)},
    ),
    Case(
        name="unique_only_key_composite",
        engines=ALL,
        table="tags",
        setup=per_engine(
            {
                "*": "CREATE TABLE tags (ns varchar(10) not null, code varchar(20) not null, label varchar(40),"
                " alt integer, CONSTRAINT uq_alt UNIQUE (alt), CONSTRAINT uq_ns_code UNIQUE (ns, code))"
            },
            seed("tags", "ns, code, label, alt", "'n' || (i % 3), 'c' || i, 'label', i")
            | {MY: ["INSERT INTO tags SELECT concat('n', seq % 3), concat('c', seq), 'label', seq FROM seq_1_to_200"]},
        ),
        flags=("--alter", "label:varchar(80)", *SHADOW),
        alter={
            SQLITE: [
                "CREATE TABLE tags (ns varchar(10) not null, code varchar(20) not null, label varchar(80),"
                " alt integer, CONSTRAINT uq_alt UNIQUE (alt), CONSTRAINT uq_ns_code UNIQUE (ns, code))"
            ],
            PG: ["ALTER TABLE tags ALTER COLUMN label TYPE varchar(80)"],
            MY: ["ALTER TABLE tags MODIFY label varchar(80)"],
        },
        probes={
            "*": (
                "INSERT INTO tags (ns, code) VALUES ('n1', 'c1')",
                "INSERT INTO tags (ns, code) VALUES ('n9', 'c1')",
                "SELECT count(*) FROM tags",
            )
        },
    ),
    Case(
        name="binary_key",
        engines=ALL,
        table="zoo",
        setup={
            SQLITE: [
                "CREATE TABLE zoo (id blob primary key, name varchar(20))",
                "INSERT INTO zoo WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200)"
                # deterministic, so the two databases hold the same rows; the bytes still sort unlike the ids
                " SELECT CAST(printf('%016d', (i * 7919) % 1000003) AS BLOB), 'z' || i FROM s",
            ],
            PG: [
                "CREATE TABLE zoo (id bytea primary key, name varchar(20))",
                "INSERT INTO zoo SELECT decode(md5(i::text), 'hex'), 'z' || i FROM generate_series(1, 200) s(i)",
            ],
            MY: [
                "CREATE TABLE zoo (id binary(16) primary key, name varchar(20))",
                "INSERT INTO zoo SELECT unhex(md5(seq)), concat('z', seq) FROM seq_1_to_200",
            ],
        },
        flags=ADD,
        alter=add_note("zoo"),
    ),
    Case(
        name="big_negative_keys",
        engines=ALL,
        table="nums",
        setup=per_engine(
            {"*": "CREATE TABLE nums (id bigint primary key, v integer)"},
            {
                "*": [
                    "INSERT INTO nums VALUES (-9223372036854775808, 1), (-1, 2), (0, 3), (1, 4),"
                    " (9223372036854775807, 5)"
                ]
            },
        ),
        flags=ADD,
        alter=add_note("nums"),
    ),
    Case(
        name="text_key_collation",
        engines=(PG, MY),
        table="words",
        setup=per_engine(
            {
                PG: 'CREATE TABLE words (w varchar(20) COLLATE "en-x-icu" primary key, n integer)',
                MY: "CREATE TABLE words (w varchar(20) COLLATE utf8mb4_general_ci primary key, n int)",
            },
            {"*": ["INSERT INTO words VALUES ('a', 1), ('B', 2), ('c', 3), ('Ö', 4), ('_x', 5), ('Z', 6)"]},
        ),
        flags=ADD,
        alter=add_note("words"),
        probes={MY: ("INSERT INTO words VALUES ('A', 9)",), PG: ("INSERT INTO words VALUES ('a', 9)",)},
    ),
    # PostgreSQL: what surrounds the table
    items_case(
        "pg_grants",
        (PG,),
        {
            PG: [
                "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ss_fid_reader') THEN"
                " CREATE ROLE ss_fid_reader; END IF; END$$",
                "GRANT SELECT ON items TO ss_fid_reader",
                "GRANT UPDATE (qty) ON items TO ss_fid_reader",
            ]
        },
    ),
    items_case(
        "pg_comments",
        (PG,),
        {PG: ["COMMENT ON TABLE items IS 'the items'", "COMMENT ON COLUMN items.qty IS 'how many'"]},
    ),
    items_case(
        "pg_owner",
        (PG,),
        {
            PG: [
                "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ss_fid_app') THEN"
                " CREATE ROLE ss_fid_app; END IF; END$$",
                "ALTER TABLE items OWNER TO ss_fid_app",
                "ALTER SEQUENCE items_id_seq OWNER TO ss_fid_app",
            ]
        },
    ),
    items_case(
        "pg_row_level_security",
        (PG,),
        {PG: ["ALTER TABLE items ENABLE ROW LEVEL SECURITY", "CREATE POLICY p_small ON items USING (qty < 5)"]},
    ),
    items_case(
        "pg_storage_parameters",
        (PG,),
        {PG: ["ALTER TABLE items SET (fillfactor = 70)", "ALTER TABLE items ALTER COLUMN name SET STATISTICS 500"]},
    ),
    items_case("pg_replica_identity", (PG,), {PG: ["ALTER TABLE items REPLICA IDENTITY FULL"]}),
    items_case("pg_publication", (PG,), {PG: ["CREATE PUBLICATION pub_items FOR TABLE items"]}),
    items_case(
        "pg_trigger_kinds",
        (PG,),
        {
            PG: [
                "CREATE TABLE audit (item_id integer, what varchar(20))",
                "CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO audit"
                " VALUES (coalesce(NEW.id, OLD.id), TG_NAME || ':' || TG_OP); RETURN coalesce(NEW, OLD); END$$",
                "CREATE FUNCTION audit_stmt_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO audit"
                " VALUES (NULL, TG_NAME || ':' || TG_OP); RETURN NULL; END$$",
                "CREATE FUNCTION upper_fn() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN NEW.name := upper(NEW.name); RETURN NEW; END$$",
                "CREATE TRIGGER trg_before BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION upper_fn()",
                "CREATE TRIGGER trg_upd AFTER UPDATE OF qty ON items FOR EACH ROW"
                " WHEN (OLD.qty IS DISTINCT FROM NEW.qty) EXECUTE FUNCTION audit_fn()",
                "CREATE TRIGGER trg_stmt AFTER DELETE ON items FOR EACH STATEMENT EXECUTE FUNCTION audit_stmt_fn()",
                "CREATE TRIGGER trg_off AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION audit_fn()",
                "ALTER TABLE items DISABLE TRIGGER trg_off",
                "CREATE TRIGGER trg_always AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION audit_fn()",
                "ALTER TABLE items ENABLE ALWAYS TRIGGER trg_always",
                "CREATE TRIGGER trg_replica AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION audit_fn()",
                "ALTER TABLE items ENABLE REPLICA TRIGGER trg_replica",
                "CREATE CONSTRAINT TRIGGER trg_deferred AFTER INSERT ON items DEFERRABLE INITIALLY DEFERRED"
                " FOR EACH ROW EXECUTE FUNCTION audit_fn()",
            ]
        },
        probes={
            PG: (
                "INSERT INTO items (name) VALUES ('lower')",
                "SELECT name FROM items WHERE name ILIKE 'lower'",
                "UPDATE items SET qty = 99 WHERE id = 1",
                "UPDATE items SET name = 'renamed' WHERE id = 3",
                "DELETE FROM items WHERE id = 2",
                "SELECT what, count(*) FROM audit GROUP BY 1 ORDER BY 1",
            )
        },
    ),
    items_case(
        "pg_grants_chain",
        (PG,),
        {
            PG: [
                *(
                    f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN"
                    f" CREATE ROLE {role}; END IF; END$$"
                    for role in ("ss_fid_reader", "ss_fid_lead")
                ),
                "GRANT SELECT, INSERT ON items TO ss_fid_lead WITH GRANT OPTION",
                "SET ROLE ss_fid_lead",
                "GRANT SELECT ON items TO ss_fid_reader",
                "RESET ROLE",
                "GRANT SELECT ON items TO PUBLIC",
                "GRANT UPDATE (qty), SELECT (name) ON items TO ss_fid_reader",
                "REVOKE TRUNCATE ON items FROM postgres",
            ]
        },
    ),
    items_case(
        "pg_rls_forced",
        (PG,),
        {
            PG: [
                "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ss_fid_reader') THEN"
                " CREATE ROLE ss_fid_reader; END IF; END$$",
                "ALTER TABLE items ENABLE ROW LEVEL SECURITY",
                "ALTER TABLE items FORCE ROW LEVEL SECURITY",
                "CREATE POLICY p_read ON items FOR SELECT USING (qty < 5)",
                "CREATE POLICY p_ins ON items AS RESTRICTIVE FOR INSERT TO ss_fid_reader WITH CHECK (qty >= 0)",
                "CREATE POLICY p_upd ON items FOR UPDATE TO ss_fid_reader, PUBLIC USING (true) WITH CHECK (qty < 100)",
            ]
        },
    ),
    items_case(
        "pg_replica_identity_index",
        (PG,),
        {
            PG: [
                "CREATE UNIQUE INDEX ix_name ON items (name)",
                "ALTER TABLE items REPLICA IDENTITY USING INDEX ix_name",
            ]
        },
    ),
    items_case(
        "pg_publication_columns_filter",
        (PG,),
        {
            PG: [
                "CREATE PUBLICATION pub_cols FOR TABLE items (id, name) WHERE (qty > 2)",
                "CREATE PUBLICATION pub_plain FOR TABLE items",
            ]
        },
    ),
    items_case(
        "pg_index_details",
        (PG,),
        {
            PG: [
                'CREATE INDEX ix_c ON items (name COLLATE "C" DESC NULLS FIRST) WITH (fillfactor = 50)',
                "CREATE INDEX ix_brin ON items USING brin (qty)",
                "CREATE UNIQUE INDEX ix_expr ON items (lower(name) DESC) WHERE qty > 0",
                "COMMENT ON INDEX ix_c IS 'by name, C order'",
                "ALTER TABLE items CLUSTER ON ix_c",
            ]
        },
        probes={PG: ("INSERT INTO items (name, qty) VALUES ('ITEM 1', 1)",)},
    ),
    items_case(
        "pg_storage_more",
        (PG,),
        {
            PG: [
                "ALTER TABLE items SET (autovacuum_vacuum_scale_factor = 0.01, toast.autovacuum_enabled = false)",
                "ALTER TABLE items ALTER COLUMN qty SET (n_distinct = 7)",
                "ALTER TABLE items ALTER COLUMN name SET STORAGE EXTERNAL",
                "ALTER TABLE items ALTER COLUMN name SET COMPRESSION pglz",
                "COMMENT ON COLUMN items.name IS 'what it is called'",
            ]
        },
    ),
    items_case("pg_unlogged", (PG,), {PG: ["ALTER TABLE items SET UNLOGGED"]}),
    items_case(
        "pg_extended_statistics",
        (PG,),
        {
            PG: [
                "CREATE STATISTICS st_name_qty (ndistinct, dependencies) ON name, qty FROM items",
                "ALTER STATISTICS st_name_qty SET STATISTICS 300",
                "CREATE STATISTICS st_expr ON lower(name), qty FROM items",
            ]
        },
    ),
    items_case(
        "pg_trigger_on_renamed_column",
        (PG,),
        {
            PG: [
                "CREATE FUNCTION noop_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
                "CREATE TRIGGER trg_qty BEFORE UPDATE OF qty ON items FOR EACH ROW EXECUTE FUNCTION noop_fn()",
            ]
        },
        flags=("--rename", "qty:quantity", *SHADOW),
        alter={PG: ["ALTER TABLE items RENAME COLUMN qty TO quantity"]},
    ),
    items_case(
        "pg_identity",
        (PG,),
        {
            PG: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name varchar(40) not null,"
                " qty integer not null default 0)",
                "INSERT INTO items (name) SELECT 'i' || i FROM generate_series(1, 50) i",
            ]
        },
        probes={PG: NEXT_ID},
    ),
    items_case(
        "pg_view_grant",
        (PG,),
        {
            PG: [
                "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ss_fid_reader') THEN"
                " CREATE ROLE ss_fid_reader; END IF; END$$",
                "CREATE VIEW v_items AS SELECT id, name FROM items",
                "GRANT SELECT ON v_items TO ss_fid_reader",
            ]
        },
    ),
    Case(
        name="pg_partitioned",
        engines=(PG,),
        table="ev",
        setup={
            PG: [
                "CREATE TABLE ev (id integer not null, at date not null, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
                "CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
                "CREATE TABLE ev_2026 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
                "INSERT INTO ev SELECT i, date '2025-06-01' + i FROM generate_series(1, 300) i",
            ]
        },
        flags=ADD,
        alter=add_note("ev"),
    ),
    Case(
        name="pg_inherited",
        engines=(PG,),
        table="base",
        setup={
            PG: [
                "CREATE TABLE base (id integer primary key, v integer)",
                "CREATE TABLE child (extra text) INHERITS (base)",
                "INSERT INTO base VALUES (1, 1)",
                "INSERT INTO child VALUES (2, 2, 'x')",
            ]
        },
        flags=ADD,
        alter=add_note("base"),
    ),
    items_case(
        "pg_views_nested",
        (PG,),
        {
            PG: [
                "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ss_fid_reader') THEN"
                " CREATE ROLE ss_fid_reader; END IF; END$$",
                "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ss_fid_app') THEN"
                " CREATE ROLE ss_fid_app; END IF; END$$",
                "CREATE VIEW v_items WITH (security_barrier) AS SELECT id, name, qty FROM items WHERE qty > 2",
                "CREATE VIEW v_top AS SELECT v.name, i.qty FROM v_items v JOIN items i ON i.id = v.id WHERE v.qty > 4",
                "CREATE VIEW v_count AS SELECT count(*) AS n FROM v_top",
                "ALTER VIEW v_top OWNER TO ss_fid_app",
                "GRANT SELECT ON v_top TO ss_fid_reader",
                "GRANT SELECT (name) ON v_items TO PUBLIC",
                "REVOKE UPDATE ON v_count FROM postgres",
                "COMMENT ON VIEW v_items IS 'the big ones'",
                "COMMENT ON COLUMN v_top.qty IS 'how many'",
            ]
        },
        probes={
            PG: (
                "INSERT INTO items (name, qty) VALUES ('seen', 5)",
                "SELECT name, qty FROM v_top WHERE name = 'seen'",
                "SELECT n FROM v_count",
            )
        },
    ),
    Case(
        name="pg_fk_to_table_options",
        engines=(PG,),
        table="items",
        setup=per_engine(
            ITEMS,
            ITEMS_ROWS,
            {
                PG: [
                    "SELECT setval('items_id_seq', 200)",
                    "ALTER TABLE items ADD CONSTRAINT uq_name_qty UNIQUE (name, qty)",
                    "CREATE TABLE lines (id integer primary key, item_name varchar(40), item_qty integer,"
                    " CONSTRAINT fk_line_item FOREIGN KEY (item_name, item_qty) REFERENCES items (name, qty)"
                    " MATCH FULL ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED)",
                    "INSERT INTO lines VALUES (1, 'item 1', 1), (2, 'item 2', 2)",
                    "CREATE TABLE notes (id integer primary key, item_id integer)",
                    "INSERT INTO notes VALUES (1, 1), (2, 424242)",
                    "ALTER TABLE notes ADD CONSTRAINT fk_note_item FOREIGN KEY (item_id) REFERENCES items (id)"
                    " ON DELETE RESTRICT NOT VALID",
                ]
            },
        ),
        flags=ADD,
        alter=add_note("items"),
        probes={
            PG: (
                "UPDATE items SET name = 'renamed' WHERE id = 1",
                "SELECT item_name FROM lines WHERE id = 1",
                "DELETE FROM items WHERE id = 2",
                "SELECT item_name, item_qty FROM lines WHERE id = 2",
                "DELETE FROM items WHERE id = 3",
                "INSERT INTO notes VALUES (3, 3)",
                "INSERT INTO notes VALUES (4, 999999)",
                "SELECT count(*) FROM items",
            )
        },
    ),
    Case(
        name="pg_partition",
        engines=(PG,),
        table="ev_2025",
        setup={
            PG: [
                "CREATE TABLE ev (id integer not null, at date not null, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
                "CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
                "INSERT INTO ev SELECT i, date '2025-01-01' + i FROM generate_series(1, 300) i",
            ]
        },
        flags=ADD,
        alter={PG: ["ALTER TABLE ev ADD COLUMN note varchar(50)"]},
    ),
    Case(
        name="pg_inherited_child",
        engines=(PG,),
        table="child",
        setup={
            PG: [
                "CREATE TABLE base (id integer primary key, v integer)",
                "CREATE TABLE child (extra text, PRIMARY KEY (id)) INHERITS (base)",
                "INSERT INTO child VALUES (2, 2, 'x')",
            ]
        },
        flags=ADD,
        alter=add_note("child"),
    ),
    Case(
        name="uuid_key",
        engines=(PG,),
        table="docs",
        setup={
            PG: [
                "CREATE TABLE docs (id uuid primary key DEFAULT gen_random_uuid(), body text)",
                "INSERT INTO docs (id, body) SELECT md5(i::text)::uuid, 'b' FROM generate_series(1, 200) i",
            ]
        },
        flags=ADD,
        alter=add_note("docs"),
    ),
    # MariaDB: what surrounds the table
    items_case(
        "my_json_check",
        (MY,),
        {MY: ["ALTER TABLE items ADD COLUMN attrs JSON"]},
        probes={MY: ("INSERT INTO items (name, attrs) VALUES ('bad json', '{oops')",)},
    ),
    items_case(
        "my_table_options",
        (MY,),
        {
            MY: [
                "ALTER TABLE items ROW_FORMAT=COMPACT COMMENT='the items'"
                " DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci",
                "ALTER TABLE items MODIFY qty int not null default 0 COMMENT 'how many'",
            ]
        },
    ),
    items_case(
        "my_column_charset",
        (MY,),
        {MY: ["ALTER TABLE items MODIFY name varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin not null"]},
    ),
    items_case(
        "my_auto_increment_zero",
        (MY,),
        {
            MY: [
                "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')",
                "INSERT INTO items (id, name) VALUES (0, 'zero')",
            ]
        },
    ),
    items_case(
        "my_geometry",
        (MY,),
        {
            MY: [
                "ALTER TABLE items ADD COLUMN pos POINT, ADD COLUMN area GEOMETRY NULL",
                "UPDATE items SET pos = POINT(id, qty), area = ST_GeomFromText('LINESTRING(0 0, 1 1)')"
                " WHERE id % 3 = 0",
            ]
        },
        probes={MY: ("SELECT ST_AsText(pos) FROM items WHERE id = 3",)},
    ),
    items_case(
        "my_trigger_order",
        (MY,),
        {
            MY: [
                "CREATE TABLE audit (item_id integer, what varchar(10))",
                "CREATE TRIGGER trg_double BEFORE INSERT ON items FOR EACH ROW SET NEW.qty = NEW.qty * 2",
                "CREATE TRIGGER trg_plus BEFORE INSERT ON items FOR EACH ROW PRECEDES trg_double"
                " SET NEW.qty = NEW.qty + 1",
                "CREATE TRIGGER trg_upd AFTER UPDATE ON items FOR EACH ROW"
                " INSERT INTO audit VALUES (NEW.id, concat(OLD.qty, '>', NEW.qty))",
            ]
        },
        probes={
            MY: (
                "INSERT INTO items (name, qty) VALUES ('ordered', 1)",
                "SELECT qty FROM items WHERE name = 'ordered'",
                "UPDATE items SET qty = 50 WHERE id = 7",
                "SELECT * FROM audit",
            )
        },
    ),
    items_case(
        "my_fulltext",
        (MY,),
        {
            MY: [
                "CREATE FULLTEXT INDEX ft_name ON items (name)",
                "ALTER TABLE items ADD COLUMN pos POINT NOT NULL DEFAULT POINT(0, 0), ADD SPATIAL INDEX sp_pos (pos)",
            ]
        },
        probes={
            MY: (
                "SELECT count(*) FROM items WHERE MATCH (name) AGAINST ('item')",
                "SELECT count(*) FROM items"
                " WHERE MBRContains(ST_GeomFromText('POLYGON((-1 -1, 1 -1, 1 1, -1 1, -1 -1))'), pos)",
            )
        },
    ),
    items_case(
        "my_fulltext_renamed",
        (MY,),
        {MY: ["CREATE FULLTEXT INDEX ft_name ON items (name)"]},
        flags=("--rename", "name:title", *SHADOW),
        alter={MY: ["ALTER TABLE items RENAME COLUMN name TO title"]},
    ),
    items_case(
        "my_unique_desc",
        (MY,),
        {MY: ["CREATE UNIQUE INDEX uq_qty_name ON items (qty DESC, name(20)) COMMENT 'kept'"]},
        probes={MY: ("INSERT INTO items (name, qty) VALUES ('item 1', 1)",)},
    ),
    items_case(
        "my_column_check",
        (MY,),
        {MY: ["ALTER TABLE items MODIFY qty int not null default 0 COMMENT 'stock' CHECK (qty >= 0)"]},
        probes={MY: ("INSERT INTO items (name, qty) VALUES ('neg', -1)",)},
    ),
    # SQLite: what the CREATE TABLE text holds
    items_case(
        "sqlite_autoincrement",
        (SQLITE,),
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key autoincrement, name varchar(40) not null,"
                " qty integer not null default 0)",
                "INSERT INTO items (name) VALUES ('a'), ('b'), ('c')",
                "DELETE FROM items WHERE id = 3",
            ]
        },
        alter=add_note("items"),
        probes={SQLITE: NEXT_ID},
    ),
    items_case(
        "sqlite_collate",
        (SQLITE,),
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) collate nocase not null unique,"
                " qty integer not null default 0)",
                "INSERT INTO items (name) VALUES ('a'), ('b')",
            ]
        },
        alter=add_note("items"),
        probes={SQLITE: ("INSERT INTO items (name) VALUES ('A')",)},
    ),
    items_case(
        "sqlite_unknown_type",
        (SQLITE,),
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null default 0,"
                " shape widget)",
                "INSERT INTO items (name, shape) VALUES ('a', 'round')",
            ]
        },
        alter=add_note("items"),
    ),
    Case(
        name="sqlite_without_rowid",
        engines=(SQLITE,),
        table="kv",
        setup={
            SQLITE: [
                "CREATE TABLE kv (k text primary key, v integer not null) WITHOUT ROWID",
                "INSERT INTO kv WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200)"
                " SELECT 'k' || i, i FROM s",
            ]
        },
        flags=ADD,
        alter=add_note("kv"),
        probes={SQLITE: ("INSERT INTO kv (k) VALUES ('k1')", "INSERT INTO kv (k, v) VALUES (NULL, 1)")},
    ),
    items_case(
        "sqlite_strict",
        (SQLITE,),
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name text not null, qty integer not null default 0,"
                " extra any) STRICT",
                "INSERT INTO items (name, qty, extra) VALUES ('a', 1, x'00'), ('b', 2, 2.5)",
            ]
        },
        flags=("--add", "note:text", *SHADOW),
        alter={SQLITE: ["add note text"]},
        probes={SQLITE: ("INSERT INTO items (name, qty) VALUES ('s', 'not a number')",)},
    ),
    items_case(
        "sqlite_column_constraints_kept_on_alter",
        (SQLITE,),
        {
            SQLITE: [
                "CREATE TABLE kinds (id integer primary key)",
                "INSERT INTO kinds VALUES (0), (1), (2)",
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) collate nocase not null"
                " check (length(name) > 0) default 'x', qty integer not null default 0,"
                " kind integer constraint fk_kind references kinds (id) on delete cascade, free)",
                "INSERT INTO items (name, qty, kind, free) VALUES ('a', 1, 1, 'f'), ('b', 2, 2, 3)",
            ]
        },
        flags=("--alter", "qty:bigint default 5", "--alter", "name:varchar(80)", *SHADOW),
        alter={
            SQLITE: [
                "CREATE TABLE items (id integer primary key, name varchar(80) collate nocase not null"
                " check (length(name) > 0) default 'x', qty bigint not null default 5,"
                " kind integer constraint fk_kind references kinds (id) on delete cascade, free)"
            ]
        },
        probes={
            SQLITE: (
                "INSERT INTO items (name) VALUES ('')",
                "INSERT INTO items (name) VALUES ('A')",
                "SELECT qty FROM items WHERE name = 'a' ORDER BY id DESC LIMIT 1",
                "DELETE FROM kinds WHERE id = 1",
                "SELECT count(*) FROM items",
                "INSERT INTO items (name, kind) VALUES ('orphan', 99)",
            )
        },
    ),
    items_case(
        "sqlite_generated_virtual",
        (SQLITE,),
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null"
                " default 0, twice integer GENERATED ALWAYS AS (qty * 2) VIRTUAL, label text AS (upper(name)))",
                "CREATE INDEX ix_twice ON items (twice)",
                "INSERT INTO items (name, qty) VALUES ('a', 1), ('b', 2)",
            ]
        },
        flags=("--alter", "qty:bigint", *SHADOW),
        alter={
            SQLITE: [
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty bigint not null"
                " default 0, twice integer GENERATED ALWAYS AS (qty * 2) VIRTUAL, label text AS (upper(name)))"
            ]
        },
        probes={
            SQLITE: (
                "INSERT INTO items (name, qty) VALUES ('g', 21)",
                "SELECT twice, label FROM items WHERE name = 'g'",
                "SELECT id FROM items WHERE twice = 4",
            )
        },
    ),
    Case(
        name="sqlite_text_key_nocase",
        engines=(SQLITE,),
        table="words",
        setup={
            SQLITE: [
                "CREATE TABLE words (w varchar(20) COLLATE NOCASE primary key, n integer)",
                "INSERT INTO words VALUES ('a', 1), ('B', 2), ('c', 3), ('Ö', 4), ('_x', 5), ('Z', 6), ('ö', 7)",
                "INSERT INTO words WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000)"
                " SELECT CASE i % 2 WHEN 0 THEN 'K' ELSE 'm' END || i, i FROM s",
            ]
        },
        flags=ADD,
        alter=add_note("words"),
        probes={SQLITE: ("INSERT INTO words VALUES ('A', 9)", "SELECT w FROM words WHERE w = 'k2'")},
    ),
    items_case(
        "sqlite_rename_in_check",
        (SQLITE,),
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null"
                " default 0 check (qty >= 0), CONSTRAINT ck_qty CHECK (qty < 1000))",
                "INSERT INTO items (name, qty) VALUES ('a', 1), ('b', 2)",
            ]
        },
        flags=("--rename", "qty:amount", "--add", "note:varchar(50)", *SHADOW),
        # SQLite's own blocking forms: the rebuild for the added column, its RENAME COLUMN for the rename
        alter={SQLITE: ["add note varchar(50)", "ALTER TABLE items RENAME COLUMN qty TO amount"]},
        probes={
            SQLITE: (
                "INSERT INTO items (name, amount) VALUES ('neg', -1)",
                "INSERT INTO items (name, amount) VALUES ('big', 1000)",
                "INSERT INTO items (name, amount) VALUES ('ok', 21)",
                "SELECT amount FROM items WHERE name = 'ok'",
            )
        },
    ),
    Case(
        name="sqlite_self_reference",
        engines=(SQLITE,),
        table="nodes",
        setup={
            SQLITE: [
                "CREATE TABLE nodes (id integer primary key, parent integer references nodes (id) on delete cascade,"
                " label text)",
                "INSERT INTO nodes VALUES (1, NULL, 'root'), (2, 1, 'a'), (3, 2, 'b'), (4, 1, 'c')",
            ]
        },
        flags=ADD,
        alter=add_note("nodes"),
        probes={
            SQLITE: (
                "INSERT INTO nodes VALUES (5, 99, 'orphan')",
                "DELETE FROM nodes WHERE id = 2",
                "SELECT id FROM nodes ORDER BY id",
            )
        },
    ),
    items_case(
        "sqlite_fk_to_table_column_level",
        (SQLITE,),
        {
            SQLITE: [
                "CREATE TABLE lines (id integer primary key, item integer references items on delete cascade)",
                "CREATE TABLE notes (id integer primary key, item_id integer,"
                " FOREIGN KEY (item_id) REFERENCES items (id) ON UPDATE CASCADE)",
                "INSERT INTO lines (item) SELECT id FROM items WHERE id <= 50",
                "INSERT INTO notes (item_id) SELECT id FROM items WHERE id <= 20",
            ]
        },
        probes={
            SQLITE: (
                "INSERT INTO lines (item) VALUES (100000)",
                "DELETE FROM items WHERE id = 1",
                "UPDATE items SET id = 1000 WHERE id = 2",
                "SELECT count(*), max(item_id) FROM notes",
                "SELECT count(*) FROM lines",
            )
        },
    ),
    # -- issue 15: PostgreSQL column settings, identity, generated columns; SQLite generated columns
    items_case(
        "pg_column_settings_ddl",
        (PG,),
        {},
        flags=(
            "--ddl",
            "ALTER TABLE items ALTER COLUMN name SET STATISTICS 300, ALTER COLUMN Name SET STORAGE EXTERNAL,"
            " ALTER COLUMN name SET COMPRESSION lz4",
            *SHADOW,
        ),
        alter={
            PG: [
                "ALTER TABLE items ALTER COLUMN name SET STATISTICS 300, ALTER COLUMN name SET STORAGE EXTERNAL,"
                " ALTER COLUMN name SET COMPRESSION lz4"
            ]
        },
    ),
    items_case(
        "pg_column_settings_in_place",
        (PG,),
        {},
        flags=("--alter", "name:set statistics 300 set storage main compression lz4", "--alter", "qty:statistics 0"),
        alter={
            PG: [
                "ALTER TABLE items ALTER COLUMN name SET STATISTICS 300, ALTER COLUMN name SET STORAGE MAIN,"
                " ALTER COLUMN name SET COMPRESSION lz4, ALTER COLUMN qty SET STATISTICS 0"
            ]
        },
    ),
    items_case(
        # the settings the change does not touch survive a copy: statistics, storage, compression, collation
        "pg_column_settings_carried_with_copy",
        (PG,),
        {
            PG: [
                'ALTER TABLE items ADD COLUMN code text COLLATE "C", ADD COLUMN doc text',
                "ALTER TABLE items ALTER COLUMN code SET STATISTICS 700, ALTER COLUMN code SET STORAGE MAIN,"
                " ALTER COLUMN doc SET COMPRESSION lz4, ALTER COLUMN name SET STATISTICS 20",
                "UPDATE items SET code = 'c' || id, doc = repeat('d', id)",
            ]
        },
        flags=("--ddl", "ALTER TABLE items ALTER COLUMN qty TYPE bigint, ALTER COLUMN name SET STATISTICS 50"),
        alter={PG: ["ALTER TABLE items ALTER COLUMN qty TYPE bigint, ALTER COLUMN name SET STATISTICS 50"]},
        probes={PG: ("SELECT code FROM items ORDER BY code LIMIT 3",)},
    ),
    items_case(
        "pg_identity_add_in_place",
        (PG,),
        {
            PG: [
                "ALTER TABLE items ADD COLUMN num integer",
                "UPDATE items SET num = id",
                "ALTER TABLE items ALTER num SET NOT NULL",
            ]
        },
        flags=("--ddl", "ALTER TABLE items ALTER COLUMN num ADD GENERATED BY DEFAULT AS IDENTITY"),
        alter={PG: ["ALTER TABLE items ALTER COLUMN num ADD GENERATED BY DEFAULT AS IDENTITY"]},
        probes={PG: ("INSERT INTO items (name) VALUES ('n')", "SELECT num FROM items WHERE name = 'n'")},
    ),
    items_case(
        "pg_identity_set_generated",
        (PG,),
        {PG: PG_IDENTITY_ITEMS},
        flags=("--alter", "id:set generated by default"),
        alter={PG: ["ALTER TABLE items ALTER COLUMN id SET GENERATED BY DEFAULT"]},
        probes={PG: ("INSERT INTO items (id, name) VALUES (5000, 'x')", *NEXT_ID)},
    ),
    items_case(
        "pg_identity_drop",
        (PG,),
        {PG: PG_IDENTITY_ITEMS},
        flags=("--ddl", "ALTER TABLE items ALTER COLUMN id DROP IDENTITY IF EXISTS"),
        alter={PG: ["ALTER TABLE items ALTER COLUMN id DROP IDENTITY IF EXISTS"]},
        probes={PG: ("INSERT INTO items (id, name) VALUES (5000, 'x')", "INSERT INTO items (name) VALUES ('y')")},
    ),
    items_case(
        # an identity carried over by the copy (its sequence continuing) while a generated column is added
        "pg_identity_carried_generated_added",
        (PG,),
        {PG: [*PG_IDENTITY_ITEMS, "INSERT INTO items (name) VALUES ('late')"]},
        flags=("--ddl", "ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"),
        alter={PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"]},
        probes={PG: (*NEXT_ID, "SELECT twice FROM items WHERE name = 'item 5'")},
    ),
    items_case(
        # PostgreSQL 15 has no SET EXPRESSION: the change of expression is a drop and an add
        "pg_generated_expression_changed",
        (PG,),
        {PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"]},
        flags=("--ddl", f"ALTER TABLE items {PG_TWICE_AGAIN}"),
        alter={PG: [f"ALTER TABLE items {PG_TWICE_AGAIN}"]},
        probes={PG: ("INSERT INTO items (name, qty) VALUES ('g', 21)", "SELECT twice FROM items WHERE name = 'g'")},
    ),
    items_case(
        # the same change in the mini-language
        "pg_generated_expression_changed_mini",
        (PG,),
        {PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"]},
        flags=("--drop", "twice", "--add", "twice:bigint generated always as (qty * 3 + 1) stored"),
        alter={PG: [f"ALTER TABLE items {PG_TWICE_AGAIN}"]},
    ),
    items_case(
        "sqlite_generated_added_stored",
        (SQLITE,),
        {},
        flags=("--ddl", "ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"),
        alter={SQLITE: ["add twice INTEGER GENERATED ALWAYS AS (qty * 2) STORED"]},
        probes={SQLITE: ("INSERT INTO items (name, qty) VALUES ('g', 21)", "SELECT twice FROM items WHERE name = 'g'")},
    ),
    items_case(
        "sqlite_generated_added_virtual",
        (SQLITE,),
        {},
        flags=("--add", "twice:integer as (qty * 2) virtual"),
        alter={SQLITE: ["add twice INTEGER GENERATED ALWAYS AS (qty * 2) VIRTUAL"]},
        probes={SQLITE: ("INSERT INTO items (name, qty) VALUES ('g', 21)", "SELECT twice FROM items WHERE name = 'g'")},
    ),
    items_case(
        "sqlite_generated_expression_changed",
        (SQLITE,),
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null"
                " default 0, twice integer GENERATED ALWAYS AS (qty * 2) STORED)",
                "INSERT INTO items (name, qty) VALUES ('a', 1), ('b', 2)",
            ]
        },
        flags=(
            "--ddl",
            "ALTER TABLE items DROP COLUMN twice; ALTER TABLE items ADD COLUMN twice integer AS (qty * 3) STORED",
        ),
        alter={
            SQLITE: [
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null"
                " default 0, twice INTEGER GENERATED ALWAYS AS (qty * 3) STORED)"
            ]
        },
        probes={SQLITE: ("INSERT INTO items (name, qty) VALUES ('g', 21)", "SELECT twice FROM items WHERE name = 'g'")},
    ),
    items_case(
        # SQLite compares column names case-insensitively: QTY is qty
        "sqlite_names_any_case",
        (SQLITE,),
        {},
        flags=("--ddl", "ALTER TABLE items ALTER COLUMN QTY TYPE bigint", *SHADOW),
        alter={SQLITE: [ITEMS_SQLITE.replace("qty integer", "qty bigint")]},
    ),
    items_case(
        "pg_generated_drop_expression",
        (PG,),
        {PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"]},
        flags=("--ddl", "ALTER TABLE items ALTER COLUMN twice DROP EXPRESSION"),
        alter={PG: ["ALTER TABLE items ALTER COLUMN twice DROP EXPRESSION"]},
        probes={PG: ("INSERT INTO items (name, qty, twice) VALUES ('g', 21, 5)", "SELECT sum(twice) FROM items")},
    ),
    items_case(
        # by the copy: the column's values are copied, the column under it retyped
        "pg_generated_drop_expression_with_copy",
        (PG,),
        {PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"]},
        flags=("--alter", "twice:drop expression", "--alter", "qty:bigint"),
        alter={PG: ["ALTER TABLE items ALTER COLUMN twice DROP EXPRESSION, ALTER COLUMN qty TYPE bigint"]},
        probes={PG: ("INSERT INTO items (name, qty, twice) VALUES ('g', 21, 5)", "SELECT sum(twice) FROM items")},
    ),
    items_case(
        "sqlite_names_any_case_mini",
        (SQLITE,),
        {},
        flags=("--alter", "QTY:bigint", "--add-index", "ix_qty:(Qty, NAME)", *SHADOW),
        alter={SQLITE: [ITEMS_SQLITE.replace("qty integer", "qty bigint"), "CREATE INDEX ix_qty ON items (qty, name)"]},
    ),
]


# MySQL/MariaDB column clauses of --ddl (issue 15): each ALTER run blocking and by shadowswap's copy.
PEOPLE_MY = (
    "CREATE TABLE people (id int auto_increment primary key, c1 int, c2 varchar(20) CHARACTER SET latin1,"
    " e enum('a','b') NOT NULL DEFAULT 'a', qty int NOT NULL DEFAULT 0, note text COMMENT 'old note',"
    " g int AS (qty * 3) STORED, s int AS (qty + 100) STORED, v int AS (qty - 1) VIRTUAL)"
)
PEOPLE_ROWS = (
    "INSERT INTO people (c1, c2, e, qty, note) SELECT seq, concat('caf', char(233 using latin1), seq),"
    " IF(seq % 2, 'a', 'b'), seq % 7, IF(seq % 5, concat('n', seq), NULL) FROM seq_1_to_150"
)
PEOPLE_PROBES = (
    "INSERT INTO people (c2, qty) VALUES ('Zed', 5)",
    "SELECT * FROM people WHERE c2 = 'zed' ORDER BY id",
)


def my_ddl_case(name: str, ddl: str, probes: Sequence[str] = PEOPLE_PROBES) -> Case:
    """A MySQL ``--ddl`` on ``people``: the same statement run blocking and by shadowswap's copy."""
    return Case(
        name=name,
        engines=(MY,),
        table="people",
        setup={MY: [PEOPLE_MY, PEOPLE_ROWS]},
        flags=("--ddl", ddl, *SHADOW),
        alter={MY: [ddl]},
        probes={MY: probes},
        execute=("--allow-destructive",) if "DROP" in ddl else (),
    )


MY_COLUMN_CASES = [
    # the silent bug: COLLATE after DEFAULT NULL is the column's collation, not part of the default
    my_ddl_case(
        "my_change_enum_collate",
        "ALTER TABLE people CHANGE e e enum('a','b') NULL DEFAULT NULL COLLATE 'utf8_bin'",
        ("INSERT INTO people (c2, e) VALUES ('x', 'A')", "SELECT e FROM people WHERE c2 = 'x'"),
    ),
    # MySQL column names ignore case; a dropped name may be added again in the same statement
    my_ddl_case(
        "my_names_ignore_case",
        "ALTER TABLE people MODIFY C2 varchar(30) CHARACTER SET latin1, DROP COLUMN c1,"
        " ADD COLUMN c1 bigint DEFAULT 7",
    ),
    my_ddl_case(
        "my_charset_collate_comment",
        "ALTER TABLE people MODIFY c2 varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL"
        " DEFAULT '' COMMENT 'the label', MODIFY note text CHARACTER SET latin1,"
        " ADD COLUMN code char(3) CHARACTER SET ascii COLLATE ascii_bin COMMENT 'iso code' DEFAULT 'abc'",
    ),
    my_ddl_case(
        "my_reorder",
        "ALTER TABLE people MODIFY qty int NOT NULL DEFAULT 0 FIRST, ADD COLUMN tag varchar(10) AFTER id,"
        " CHANGE c1 one int AFTER qty, ADD COLUMN first_one int DEFAULT 1 FIRST, MODIFY note text AFTER tag",
    ),
    my_ddl_case(
        "my_generated",
        "ALTER TABLE people ADD COLUMN twice int AS (qty * 2) STORED AFTER qty,"
        " ADD COLUMN label varchar(40) AS (concat(c2, ':', e)) VIRTUAL,"
        " MODIFY g bigint AS (qty * 4 + c1) STORED, MODIFY s int, DROP COLUMN v",
        (
            "INSERT INTO people (c1, qty) VALUES (10, 5)",
            "UPDATE people SET qty = qty + 1 WHERE id < 20",
            "INSERT INTO people (c1, qty, s) VALUES (11, 6, 42)",
            "SELECT * FROM people WHERE id < 30 OR c1 >= 10 ORDER BY id",
        ),
    ),
]
MY_CONVERT_SETUP = [
    "CREATE TABLE docs (id int auto_increment primary key, a varchar(10) CHARACTER SET latin1, b text,"
    " c tinytext CHARACTER SET utf8mb3, d mediumtext, e enum('x','y'), f set('p','q'),"
    " g char(3) CHARACTER SET ascii COLLATE ascii_bin, h varbinary(5), j json, k text CHARACTER SET utf8mb4,"
    " up varchar(20) AS (upper(a)) VIRTUAL, KEY ix_a (a)) DEFAULT CHARSET latin1",
    "INSERT INTO docs (a, b, c, d, e, f, g, h, j, k) SELECT concat('é', seq), repeat('ü', seq), 'ç', 'd',"
    " IF(seq % 2, 'x', 'y'), 'p,q', 'abc', unhex('ff00'), concat('{\"n\": ', seq, '}'), 'k' FROM seq_1_to_120",
]
MY_CONVERT_PROBES = (
    "INSERT INTO docs (a, j) VALUES ('ÉTÉ', '[1]')",
    "INSERT INTO docs (j) VALUES ('not json')",
    "SELECT id, a, up, b = 'Ü' FROM docs WHERE a = 'été'",
)
MY_COLUMN_CASES += [
    Case(
        name="my_convert_to_charset",
        engines=(MY,),
        table="docs",
        setup={MY: MY_CONVERT_SETUP},
        flags=("--ddl", "ALTER TABLE docs CONVERT TO CHARACTER SET utf8mb4", *SHADOW),
        alter={MY: ["ALTER TABLE docs CONVERT TO CHARACTER SET utf8mb4"]},
        probes={MY: MY_CONVERT_PROBES},
    ),
    Case(
        name="my_convert_to_charset_collate",
        engines=(MY,),
        table="docs",
        setup={MY: MY_CONVERT_SETUP},
        # the server would choose in place: CONVERT TO is made by the copy all the same
        flags=("--ddl", "ALTER TABLE docs CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
        alter={MY: ["ALTER TABLE docs CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"]},
        probes={MY: MY_CONVERT_PROBES},
    ),
]
MY_COLUMN_CASES.append(
    # the same through the option language: a trailing first / after COLUMN
    items_case(
        "my_options_position",
        (MY,),
        {},
        flags=("--add", "note:varchar(50) after id", "--alter", "qty:first", "--alter", "name:after note", *SHADOW),
        alter={MY: ["ALTER TABLE items ADD COLUMN note varchar(50) AFTER id, MODIFY qty int not null default 0 FIRST,"
                    " MODIFY name varchar(40) not null AFTER note"]},
        probes={MY: NEXT_ID},
    )
)
MY_COLUMN_CASES += [
    # MODIFY restates AUTO_INCREMENT: kept where written, dropped where not, as the engine does
    items_case(
        f"my_modify_id_{name}",
        (MY,),
        {},
        flags=("--ddl", f"ALTER TABLE items MODIFY id bigint NOT NULL{clause}", *SHADOW),
        alter={MY: [f"ALTER TABLE items MODIFY id bigint NOT NULL{clause}"]},
        probes={MY: NEXT_ID},
    )
    for name, clause in (("keeps_auto_increment", " AUTO_INCREMENT"), ("drops_auto_increment", ""))
]
CASES += MY_COLUMN_CASES

MY_COLUMN_REFUSED = [
    my_ddl_case("my_primary_key_swap", "ALTER TABLE people DROP PRIMARY KEY, ADD PRIMARY KEY (id, qty)"),
    my_ddl_case("my_convert_to_other_clauses", "ALTER TABLE people CONVERT TO CHARACTER SET utf8mb4, ADD x int"),
    my_ddl_case("my_virtual_made_plain", "ALTER TABLE people MODIFY v int"),
    my_ddl_case("my_after_unknown", "ALTER TABLE people ADD COLUMN x int AFTER nope"),
    my_ddl_case("my_generated_unknown_column", "ALTER TABLE people ADD COLUMN g2 int AS (nope + 1) STORED"),
    items_case("position_not_mysql", (SQLITE, PG), {}, flags=("--add", "note:varchar(50) first", *SHADOW)),
    items_case(
        "my_auto_increment_added",
        (MY,),
        {MY: ["ALTER TABLE items ADD UNIQUE KEY uq_qty_id (qty, id)"]},
        flags=("--ddl", "ALTER TABLE items MODIFY qty int NOT NULL AUTO_INCREMENT"),
    ),
]


#: (case, engine, the first difference the harness printed) for each pair that differs today: these
#: pairs are not collected. When a change closes one, `python tests/differential.py` says
#: "no difference" for it: delete its line and the suite runs it from then on.
KNOWN_GAPS: list[tuple[str, str, str]] = [
]


#: (case, engine, what the one-line refusal names) for what cannot be carried over online on that
#: engine: ``plan`` must refuse with exit code 2 and one ``error:`` line naming the object (no
#: traceback), never exit 0 with a different table. Their cases are in REFUSED_CASES, not CASES.
REFUSED_CASES: list[Case] = [
    items_case(
        "pg_materialized_view",
        (PG,),
        {PG: ["CREATE MATERIALIZED VIEW mv_items AS SELECT id, name FROM items"]},
    ),
    items_case(
        "pg_view_over_dropped_column",
        (PG,),
        {PG: ["CREATE VIEW v_qty AS SELECT id, qty FROM items"]},
        flags=("--drop", "qty", *SHADOW),
        alter={PG: ["ALTER TABLE items DROP COLUMN qty"]},
    ),
    # in place too: the drop would otherwise fail only at execute, where the engine's ALTER refuses it
    items_case(
        "pg_view_over_dropped_column_in_place",
        (PG,),
        {PG: ["CREATE VIEW v_qty AS SELECT id, qty FROM items"]},
        flags=("--drop", "qty", "--strategy", "instant"),
        alter={PG: ["ALTER TABLE items DROP COLUMN qty"]},
    ),
    items_case(
        "pg_view_over_retyped_column_in_place",
        (PG,),
        {PG: ["CREATE VIEW v_name AS SELECT id, name FROM items"]},
        flags=("--alter", "name:varchar(80)", "--strategy", "instant"),
        alter={PG: ["ALTER TABLE items ALTER COLUMN name TYPE varchar(80)"]},
    ),
    items_case(
        "pg_view_over_retyped_column",
        (PG,),
        {PG: ["CREATE VIEW v_top AS SELECT v.id FROM (SELECT id, qty FROM items) v WHERE v.qty > 1"]},
        flags=("--alter", "qty:bigint", *SHADOW),
        alter={PG: ["ALTER TABLE items ALTER COLUMN qty TYPE bigint"]},
    ),
    items_case(
        "pg_fk_to_retyped_key",
        (PG,),
        {PG: ["CREATE TABLE orders (id integer primary key, item_id integer REFERENCES items (id))"]},
        flags=("--alter", "id:bigint", *SHADOW),
        alter={PG: ["ALTER TABLE items ALTER COLUMN id TYPE bigint"]},
    ),
    items_case(
        "generated_over_dropped_column",
        ALL,
        {
            SQLITE: [
                "DROP TABLE items",
                "CREATE TABLE items (id integer primary key, name varchar(40) not null, qty integer not null"
                " default 0, twice integer GENERATED ALWAYS AS (qty * 2) STORED)",
            ],
            PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"],
            MY: ["ALTER TABLE items ADD COLUMN twice int AS (qty * 2) STORED"],
        },
        flags=("--drop", "qty", *SHADOW),
    ),
    # `bigint` is not the rowid alias: the ids would stop filling themselves in
    items_case("sqlite_rowid_alias_to_bigint", (SQLITE,), {}, flags=("--alter", "id:bigint", *SHADOW)),
    items_case(
        "generated_over_dropped_column_in_place",
        (PG, MY),
        {
            PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"],
            MY: ["ALTER TABLE items ADD COLUMN twice int AS (qty * 2) STORED"],
        },
        flags=("--drop", "qty", "--strategy", "instant"),
    ),
    Case(
        name="nullable_unique_only",
        engines=ALL,
        table="tags",
        setup=per_engine({"*": "CREATE TABLE tags (code varchar(20), label varchar(40), CONSTRAINT uq UNIQUE (code))"}),
        flags=ADD,
        alter=add_note("tags"),
    ),
    Case(
        name="pg_fk_from_partitioned",
        engines=(PG,),
        table="items",
        setup=per_engine(
            ITEMS,
            ITEMS_ROWS,
            {
                PG: [
                    "CREATE TABLE ev (id integer, at date, item_id integer REFERENCES items (id))"
                    " PARTITION BY RANGE (at)",
                    "CREATE TABLE ev_2026 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
                ]
            },
        ),
        flags=ADD,
        alter=add_note("items"),
    ),
    # issue 15: what a copy cannot make exactly, refused naming the clause
    items_case(
        "pg_add_identity_column",
        (PG,),
        {},
        flags=("--ddl", "ALTER TABLE items ADD COLUMN id2 bigint GENERATED ALWAYS AS IDENTITY"),
    ),
    items_case(
        "primary_key_swap",
        (PG, SQLITE),
        {"*": ["CREATE UNIQUE INDEX ix_name ON items (name)"]},
        flags=("--ddl", "ALTER TABLE items DROP CONSTRAINT items_pkey, ADD PRIMARY KEY (name)"),
    ),
    items_case(
        "pg_primary_key_using_index",
        (PG,),
        {"*": ["CREATE UNIQUE INDEX ix_name ON items (name)"]},
        flags=(
            "--ddl",
            "ALTER TABLE items DROP CONSTRAINT items_pkey, ADD CONSTRAINT items_pkey PRIMARY KEY USING INDEX ix_name",
        ),
    ),
    items_case(
        "pg_set_expression",
        (PG,),
        {PG: ["ALTER TABLE items ADD COLUMN twice integer GENERATED ALWAYS AS (qty * 2) STORED"]},
        flags=("--ddl", "ALTER TABLE items ALTER COLUMN twice SET EXPRESSION AS (qty * 3)"),
    ),
    items_case(
        "pg_identity_change_with_copy",
        (PG,),
        {PG: PG_IDENTITY_ITEMS},
        flags=("--alter", "id:set generated by default", "--alter", "qty:bigint"),
    ),
    items_case("sqlite_add_existing_any_case", (SQLITE,), {}, flags=("--add", "QTY:int")),
    items_case(
        "sqlite_statistics",
        (SQLITE,),
        {},
        flags=("--ddl", "ALTER TABLE items ALTER COLUMN name SET STATISTICS 100"),
    ),
    items_case(
        "my_fk_cascade_from",
        (MY,),
        {
            MY: [
                "CREATE TABLE kinds (id int primary key)",
                "INSERT INTO kinds VALUES (1)",
                "ALTER TABLE items ADD COLUMN kind int,"
                " ADD CONSTRAINT fk_kind FOREIGN KEY (kind) REFERENCES kinds (id) ON DELETE SET NULL",
            ]
        },
    ),
]

REFUSED_CASES += MY_COLUMN_REFUSED

REFUSED: list[tuple[str, str, str]] = [
    ("my_primary_key_swap", MY, "DROP / ADD PRIMARY KEY: changing the primary key is not done online"),
    ("my_convert_to_other_clauses", MY, "CONVERT TO CHARACTER SET name [COLLATE name] is read alone"),
    ("my_virtual_made_plain", MY, "VIRTUAL generated column 'v' would become a plain column"),
    ("my_after_unknown", MY, "AFTER nope: column 'nope' is not another column of the new table"),
    ("my_generated_unknown_column", MY, "invalid generated expression 'nope + 1' for column 'g2': (1054"),
    *[("position_not_mysql", e, "first (note): ") for e in (SQLITE, PG)],
    ("my_auto_increment_added", MY, "AUTO_INCREMENT on column 'qty': the column has none"),
    *[("nullable_unique_only", e, "'tags' has no primary key nor a unique key over NOT NULL columns") for e in ALL],
    *[("generated_over_dropped_column", e, "generated column 'twice' is computed from column 'qty'") for e in ALL],
    ("pg_materialized_view", PG, "materialized view 'mv_items' depends on 'items'"),
    ("pg_view_over_dropped_column", PG, "view 'v_qty' uses column 'qty', which the change drops"),
    ("sqlite_rowid_alias_to_bigint", SQLITE, "column 'id' is the table's INTEGER PRIMARY KEY, the rowid alias"),
    ("pg_view_over_dropped_column_in_place", PG, "view 'v_qty' uses column 'qty', which the change drops"),
    *[
        ("generated_over_dropped_column_in_place", e, "generated column 'twice' is computed from column 'qty'")
        for e in (PG, MY)
    ],
    ("pg_view_over_retyped_column_in_place", PG, "view 'v_name' uses column 'name', which the change retypes"),
    ("pg_view_over_retyped_column", PG, "view 'v_top' uses column 'qty', which the change retypes"),
    ("pg_fk_to_retyped_key", PG, "foreign key 'orders_item_id_fkey' of 'orders' references column 'id'"),
    ("pg_fk_from_partitioned", PG, "foreign key 'ev_item_id_fkey' of 'ev' references 'items'"),
    ("pg_add_identity_column", PG, "ADD COLUMN id2 ... GENERATED ALWAYS AS IDENTITY: the blocking ALTER numbers"),
    *[("primary_key_swap", e, "cannot express 'PRIMARY KEY (name)' (DROP / ADD PRIMARY KEY") for e in (PG, SQLITE)],
    ("pg_primary_key_using_index", PG, "PRIMARY KEY USING INDEX ix_name' (DROP / ADD PRIMARY KEY"),
    ("pg_set_expression", PG, "SET EXPRESSION is PostgreSQL 17's; write DROP COLUMN c, ADD COLUMN c"),
    ("pg_identity_change_with_copy", PG, "column 'id': set generated by default runs in place on its own"),
    ("sqlite_add_existing_any_case", SQLITE, "column 'qty' already exists in table 'items'"),
    ("sqlite_statistics", SQLITE, "column 'name': set statistics 100 is PostgreSQL's; sqlite has no such clause"),
    # InnoDB cascades fire no triggers: the shadow would miss what the key changes in the table
    ("my_fk_cascade_from", MY, "foreign key 'fk_kind' of 'items' cascades (ON DELETE SET NULL)"),
    (
        "pg_partitioned",
        PG,
        "table 'ev' is partitioned (partitions: ev_2025, ev_2026); a shadow copy would flatten it into a plain table: run a blocking ALTER TABLE in a maintenance window instead (it recurses to the partitions)",  # noqa: E501 (the line as printed)
    ),
    (
        "pg_partition",
        PG,
        "table 'ev_2025' is a partition of ev; swapping it would detach it: ALTER the partitioned table ev with a blocking ALTER TABLE instead",  # noqa: E501 (the line as printed)
    ),
    (
        "pg_inherited",
        PG,
        "table 'base' is inherited by child; the copy would take their rows and they would keep inheriting from the old table: run a blocking ALTER TABLE in a maintenance window instead",  # noqa: E501 (the line as printed)
    ),
    (
        "pg_inherited_child",
        PG,
        "table 'child' inherits from base; the new table would leave the inheritance tree: run a blocking ALTER TABLE in a maintenance window instead",  # noqa: E501 (the line as printed)
    ),
    (
        "pg_trigger_on_renamed_column",
        PG,
        "trigger trg_qty (column qty) on 'items' names a column the plan renames or drops; drop it before migrating and recreate it after, over the new column",  # noqa: E501 (the line as printed)
    ),
]


# --------------------------------------------------------------------------- table level (issue 15)

#: a rebuild after mass deletes: the blocking forms are SQLite's 12-step rebuild of the same text,
#: PostgreSQL's VACUUM FULL, MySQL's ALTER TABLE … ENGINE=InnoDB; the counter of the deleted top
#: ids must survive (MySQL: AUTO_INCREMENT in SHOW CREATE TABLE; PostgreSQL: the sequence)
DELETED = {"*": ["DELETE FROM items WHERE id % 3 = 0 OR id > 190"]}
TABLE_CASES: list[Case] = [
    items_case(
        "rebuild",
        ALL,
        DELETED,
        flags=("--rebuild",),
        alter={SQLITE: [ITEMS_SQLITE], PG: ["VACUUM FULL items"], MY: ["ALTER TABLE items ENGINE=InnoDB"]},
        probes={"*": NEXT_ID},
    ),
    *[
        items_case(
            f"my_{name}",
            (MY,),
            {MY: ["DELETE FROM items WHERE id > 190", *setup]},
            flags=("--ddl", f"ALTER TABLE items {clause}", *(SHADOW if name.endswith("_copy") else ())),
            alter={MY: [f"ALTER TABLE items {clause}"]},
            probes={"*": NEXT_ID},
        )
        for name, setup, clause in [
            ("force", [], "FORCE"),
            ("row_format", [], "ROW_FORMAT=COMPRESSED, KEY_BLOCK_SIZE=8"),
            # in place on MariaDB (ALGORITHM=INSTANT); by the copy when forced (the counter kept at the swap)
            ("auto_increment", [], "AUTO_INCREMENT=1000"),
            ("auto_increment_copy", [], "AUTO_INCREMENT=1000"),
            ("auto_increment_lower_copy", ["ALTER TABLE items AUTO_INCREMENT=500"], "AUTO_INCREMENT=195"),
            # below the counter the deleted ids left, above the largest id: the server takes it
            ("auto_increment_lower", ["ALTER TABLE items AUTO_INCREMENT=500"], "AUTO_INCREMENT=195"),
            ("table_comment", ["ALTER TABLE items COMMENT='old'"], "COMMENT='it''s \\\\ new'"),
            ("table_comment_copy", ["ALTER TABLE items COMMENT='old'"], "COMMENT='50% it''s \\\\ new'"),
            # the table's default changes; the columns keep theirs, as written out by the server
            ("default_charset", ["ALTER TABLE items CONVERT TO CHARACTER SET latin1"], "DEFAULT CHARSET=utf8mb4"),
            ("default_collate", [], "DEFAULT COLLATE=utf8mb4_bin"),
            # a column the same ALTER restates takes the new default, the others keep theirs
            (
                "default_charset_modify",
                ["ALTER TABLE items CONVERT TO CHARACTER SET latin1"],
                "MODIFY name varchar(60) not null, DEFAULT CHARSET=utf8mb4",
            ),
            ("options_kept", ["ALTER TABLE items ROW_FORMAT=REDUNDANT COMMENT='kept'"], "ENGINE=InnoDB"),
        ]
    ],
    items_case(
        "pg_storage_parameters",
        (PG,),
        {PG: ["ALTER TABLE items SET (fillfactor = 90, autovacuum_enabled = false, toast.autovacuum_enabled = false)"]},
        flags=(
            "--ddl",
            "ALTER TABLE items SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05);"
            " ALTER TABLE items RESET (autovacuum_enabled)",
        ),
        alter={
            PG: [
                "ALTER TABLE items SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05)",
                "ALTER TABLE items RESET (autovacuum_enabled)",
            ]
        },
    ),
    items_case(
        "pg_storage_parameters_copy",
        (PG,),
        {PG: ["ALTER TABLE items SET (fillfactor = 90, autovacuum_enabled = false)"]},
        flags=(
            "--ddl",
            "ALTER TABLE items SET (fillfactor = 70); ALTER TABLE items RESET (autovacuum_enabled)",
            *SHADOW,
        ),
        alter={PG: ["ALTER TABLE items SET (fillfactor = 70)", "ALTER TABLE items RESET (autovacuum_enabled)"]},
    ),
    items_case(
        "pg_storage_parameters_option",
        (PG,),
        {PG: ["ALTER TABLE items SET (fillfactor = 90)"]},
        # with --rebuild: made by the copy (alone, a storage parameter is set in place)
        flags=("--table-option", "fillfactor", "--table-option", "toast.autovacuum_enabled=false", "--rebuild"),
        alter={
            PG: ["ALTER TABLE items RESET (fillfactor)", "ALTER TABLE items SET (toast.autovacuum_enabled = false)"]
        },
    ),
    items_case(
        "pg_unlogged",
        (PG,),
        {},
        flags=("--ddl", "ALTER TABLE items SET UNLOGGED"),
        alter={PG: ["ALTER TABLE items SET UNLOGGED"]},
        # PostgreSQL 15 makes the table's serial sequence unlogged with it
        probes={"*": [*NEXT_ID, "SELECT relpersistence FROM pg_class WHERE relname = 'items_id_seq'"]},
    ),
    items_case(
        "pg_logged",
        (PG,),
        {PG: ["ALTER TABLE items SET UNLOGGED"]},
        flags=("--ddl", "ALTER TABLE items SET LOGGED"),
        alter={PG: ["ALTER TABLE items SET LOGGED"]},
        probes={"*": [*NEXT_ID, "SELECT relpersistence FROM pg_class WHERE relname = 'items_id_seq'"]},
    ),
]
CASES += TABLE_CASES
REFUSED_CASES += [
    items_case("my_engine_myisam", (MY,), {}, flags=("--ddl", "ALTER TABLE items ENGINE=MyISAM")),
    items_case("sqlite_table_option", (SQLITE,), {}, flags=("--table-option", "ROW_FORMAT=COMPRESSED")),
    items_case("pg_mysql_table_option", (PG,), {}, flags=("--ddl", "ALTER TABLE items SET (row_format = 1)")),
    items_case("my_order_by", (MY,), {MY: ["CREATE INDEX ix_qty ON items (qty)"]}, flags=("--order-by", "ix_qty")),
    items_case("pg_order_by_unknown", (PG,), {}, flags=("--order-by", "ix_nope")),
    items_case("pg_tablespace_unknown", (PG,), {}, flags=("--ddl", "ALTER TABLE items SET TABLESPACE nope")),
    items_case("pg_fillfactor_range", (PG,), {}, flags=("--ddl", "ALTER TABLE items SET (fillfactor = 5)")),
    items_case("my_charset_unknown", (MY,), {}, flags=("--ddl", "ALTER TABLE items DEFAULT CHARSET=utf9")),
    items_case(
        "pg_order_by_key_change",
        (PG,),
        {PG: ["CREATE INDEX ix_qty ON items (qty)"]},
        flags=("--order-by", "ix_qty", "--alter", "id:bigint"),
    ),
]
REFUSED += [
    ("my_engine_myisam", MY, "table option 'set ENGINE = MyISAM': ENGINE=MyISAM: the copy, the change log and"),
    ("sqlite_table_option", SQLITE, "table option 'set ROW_FORMAT = COMPRESSED': sqlite has no table option"),
    ("pg_mysql_table_option", PG, "ROW_FORMAT is a MySQL table option; PostgreSQL has none by that name"),
    ("my_order_by", MY, "--order-by ix_qty: mysql stores a table's rows in its key order"),
    ("pg_order_by_unknown", PG, "--order-by: table 'items' has no index 'ix_nope'"),
    ("pg_tablespace_unknown", PG, "table option 'set TABLESPACE = nope': tablespace 'nope' does not exist"),
    ("pg_fillfactor_range", PG, "fillfactor takes a whole number from 10 to 100, not '5'"),
    ("my_charset_unknown", MY, "character set 'utf9' is unknown to this server"),
    ("pg_order_by_key_change", PG, "--order-by ix_qty: this plan copies with direct dual-write"),
]


def plan_refusal(case: Case, engine: str, tmp_path: Path) -> tuple[int, str]:
    """``shadowswap plan`` on the case's fixture: its exit code and its whole output."""
    gen = _db(engine, tmp_path, "refused")
    url = next(gen)
    try:
        run_sql(url, case.for_engine(case.setup, engine))
        return cli("plan", case.table, *case.flags, url=url, cwd=tmp_path / "refused")
    finally:
        for _ in gen:
            pass




def collected() -> list[tuple[Case, str]]:
    """The (case, engine) pairs the suite runs: every engine of every case but its known gaps."""
    gaps = {(name, engine) for name, engine, _ in KNOWN_GAPS + REFUSED}
    return [(c, e) for c in CASES for e in c.engines if (c.name, e) not in gaps and e in DIALECTS]


if __name__ == "__main__":
    # python tests/differential.py [CASE ...]: run cases (default: the known gaps) and print what
    # differs, to see which gaps a change closed and to write the line of a new one
    names = set(sys.argv[1:])
    gaps = {(name, engine) for name, engine, _ in KNOWN_GAPS}
    for case in CASES:
        for engine in case.engines:
            if (case.name in names) if names else ((case.name, engine) in gaps):
                with tempfile.TemporaryDirectory() as tmp:
                    found = migrate_both(case, engine, Path(tmp))
                print(f"{case.name} [{engine}]: {found[0] if found else 'no difference'}", flush=True)
