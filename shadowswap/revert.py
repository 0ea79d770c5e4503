"""The way back: ``shadowswap revert`` swaps a migrated table back to the original, with every write
made since the swap (design.md, invariant 10).

It is the forward machinery with the roles swapped. Inside the swap's own transaction, capture
triggers are installed on the new table T that log changed keys into a reverse log R
(``_<table>_ss_rlog``), exactly as the forward triggers log into the change log: the trigger only
inserts a key, so the application's write never fails or waits because of the way back (no cast
runs in it). The original, now ``_<table>_old`` (O), is exact at that instant: it was T until then.

``revert`` then runs a migration whose original is T, whose shadow is O, whose change log is R and
whose copy expressions are the reverse conversion (the cast back to the old type, or
``--reverse-using``): nothing to copy (O is full), replays of R into O, the verification of O against
T through the reverse conversion, and the swap under the same lock timeout, retries and backoff,
with the last replay under its lock. T is kept as ``_<table>_reverted`` until ``cleanup``. Its state
row is an ordinary migration (``Plan.reverts`` names the migration it undoes), so it resumes after
``kill -9`` from any host and ``abort`` gives up the revert (the capture stays on).

A value written since the swap that the reverse conversion refuses would fail that replay: it is
found read-only before (``blockers``), and ``revert`` refuses with it (exit 2), losing nothing.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap import changelog, state
from shadowswap.db import first_line
from shadowswap.dialects import Dialect
from shadowswap.errors import CopyFailed, MigrationLocked, UsageError
from shadowswap.options import Options, Reporter, Summary
from shadowswap.plan import CHANGE_LOG, Capture, ColumnPlan, CopyRoute, IndexPlan, Plan, WayBack
from shadowswap.strategy import INSTANT, ColumnTypeSQL

log = structlog.get_logger("shadowswap.revert")

#: the reverse capture's trigger kinds (``Dialect.trigger_name``): beside the forward ins/upd/del
KINDS = ("rins", "rupd", "rdel")
#: keys checked per statement by ``blockers``
BATCH = 200


class NotRevertible(UsageError):
    """The way back would lose something (a value written since the swap that the reverse
    conversion refuses), or there is no way back; nothing was changed (exit 2)."""


# -- planning the way back ----------------------------------------------------------------------


def log_name(dialect: Dialect, table: str) -> str:
    return dialect.fit_name(f"_{table}_ss_rlog")


def reverted_name(dialect: Dialect, table: str) -> str:
    return dialect.fit_name(f"_{table}_reverted")


def way_back(dialect: Dialect, plan: Plan, reverse_usings: dict[str, str] | None = None) -> WayBack:
    """How this plan's swap can be undone, decided with the plan and shown by ``plan``.

    ``reverse_usings`` maps an original column to its expression over the new table's row ``src``
    (already guarded and qualified by the planner)."""
    reverse_usings = dict(reverse_usings or {})
    if plan.strategy == INSTANT:
        inverse = _inverse_in_place(dialect, plan)
        if inverse is not None:
            return WayBack(
                possible=True,
                inverse_sql=inverse,
                notes=[f"in place: {stmt}" for stmt in inverse],
            )
        return WayBack(
            possible=False,
            reason="the table is altered in place, so there is no old table to go back to: the way back is a "
            "new migration (plan the inverse change)",
        )
    if not plan.primary_key:
        return WayBack(possible=False, reason="the table has no key to track rows by: the way back is a new migration")
    if any("AS IDENTITY" in stmt for stmt in plan.swap_sql):
        return WayBack(
            possible=False,
            reason="an identity column's sequence moves to the new table at the swap: the way back is a new migration",
        )
    by_source = {c.source_column: c for c in plan.columns if c.source_column is not None}
    for key in plan.primary_key:
        column = by_source.get(key)
        # the reverse log tracks rows by the new table's key: it must be the original's, unconverted
        if column is None or column.expression != dialect.column_reference(key):
            return WayBack(
                possible=False, reason=f"the key column {key!r} is converted: the way back is a new migration"
            )
    unknown = sorted(set(reverse_usings) - set(by_source))
    if unknown:
        raise UsageError(
            f"--reverse-using names {', '.join(map(repr, unknown))}, not a column the new table keeps from "
            "the original",
            hint="give the original column's name: --reverse-using COL=EXPR over the new table's columns",
        )
    generated = {c.source_column for c in plan.default_columns if c.source_column is not None}
    columns: list[ColumnPlan] = []
    notes: list[str] = []
    for name in plan.source_columns:
        column = by_source.get(name)
        if column is None:
            if name not in generated:
                notes.append(
                    f"{name}: dropped by the plan; on the way back rows not written since the swap keep their "
                    "value, rows written since get the column's default"
                )
            continue
        plain = column.expression == dialect.column_reference(name)
        if name in reverse_usings:
            expression = reverse_usings[name]
            notes.append(f"{name}: {expression} (--reverse-using)")
        elif plain or column.old_type is None:
            expression = dialect.column_reference(column.name)
        else:
            expression = dialect.cast_expression(column.name, column.old_type)
            # the engine's expression can be long (SQLite's refusing cast): the plan says what it does
            notes.append(f"{name}: CAST({column.name} AS {column.old_type}), the cast back to its old type")
        columns.append(
            ColumnPlan(
                name=name,
                old_type=column.new_type,
                new_type=column.old_type or column.new_type,
                old_nullable=column.new_nullable,
                new_nullable=bool(column.old_nullable) if column.old_nullable is not None else column.new_nullable,
                expression=expression,
                changed=expression != dialect.column_reference(column.name) or name != column.name,
                source_column=column.name,
            )
        )
    for column in [*plan.columns, *plan.default_columns]:
        if column.source_column is None:
            notes.append(f"{column.name}: added by the plan; dropped on the way back")
    log_table = log_name(dialect, plan.table)
    metadata = sa.MetaData()
    key_types = {c.name: c.new_type for c in plan.columns}
    rlog = sa.Table(
        log_table,
        metadata,
        dialect.log_sequence_column(),
        *[
            sa.Column(by_source[k].name, ColumnTypeSQL(key_types[by_source[k].name]), nullable=False)
            for k in plan.primary_key
        ],
    )
    ddl = dialect.create_table_sql(rlog)
    if dialect.shadow_layout(CHANGE_LOG).index_log_keys:
        index = sa.Index(dialect.fit_name(f"{log_table}_key"), *[rlog.c[by_source[k].name] for k in plan.primary_key])
        index._set_parent(rlog)
        ddl.append(dialect.compile_ddl(sa.schema.CreateIndex(index)))
    return WayBack(
        possible=True,
        log_table=log_table,
        trigger_names=[dialect.trigger_name(plan.table, kind) for kind in KINDS],
        columns=columns,
        log_ddl=ddl,
        reverted_table=reverted_name(dialect, plan.table),
        notes=notes,
    )


def _inverse_in_place(dialect: Dialect, plan: Plan) -> list[str] | None:
    """The in-place ALTERs that undo an in-place plan, where each change has one that is itself in
    place and loses nothing the table held before: an added column is dropped (with what was
    written to it since, as the copy's way back drops it), a renamed one renamed back. Any other
    change (a type, a default, an index, a dropped column) has no such inverse: None."""
    if not plan.change_plans or any(c.kind not in ("add", "rename") for c in plan.change_plans):
        return None
    table = dialect.q(plan.table)
    added = [c.name for c in [*plan.columns, *plan.default_columns] if c.source_column is None]
    renamed = [(c.name, c.source_column) for c in plan.columns if c.source_column not in (None, c.name)]
    return [
        *[f"ALTER TABLE {table} DROP COLUMN {dialect.q(name)}" for name in reversed(added)],
        *[f"ALTER TABLE {table} RENAME COLUMN {dialect.q(new)} TO {dialect.q(str(old))}" for new, old in renamed],
    ]


def _revert_in_place(engine: Engine, dialect: Dialect, m: state.Migration, plan: Plan, options: Options) -> Summary:
    """An in-place plan's inverse ALTERs, in one transaction under the lock timeout and its retries
    (invariant 5), as ``execute`` ran the plan's; the migration is then recorded reverted."""
    from shadowswap.retry import with_lock_retries

    back = plan.way_back
    assert back is not None
    started = time.perf_counter()

    def alter() -> float:
        t0 = time.perf_counter()
        with engine.begin() as conn:
            for stmt in dialect.lock_timeout_sql(options.lock_timeout_ms):
                dialect.run(conn, stmt)
            for stmt in back.inverse_sql:
                dialect.run(conn, stmt)
            state.update(conn, m.id, phase=state.REVERTED)
        return time.perf_counter() - t0

    held: float = with_lock_retries(dialect, "alter in place", alter, options.lock_retries)
    return Summary(
        migration_id=m.id,
        table=plan.table,
        old_table="",
        rows_copied=0,
        seconds=time.perf_counter() - started,
        cutover_lock_ms=held * 1000,
        strategy=INSTANT,
    )


def reverse_plan(dialect: Dialect, plan: Plan, migration_id: int, old_table: str | None = None) -> Plan:
    """The plan ``revert`` runs: original T (the migrated table), shadow O (the kept old table),
    change log R, copy expressions the reverse conversion. Its swap statements are left empty
    here (``ready``: they need the live catalog)."""
    back = plan.way_back
    assert back is not None and back.possible
    by_source = {c.source_column: c for c in plan.columns if c.source_column is not None}
    indexes = [
        IndexPlan(
            shadow_name=ix.old_name,
            final_name=ix.final_name,
            old_name=dialect.fit_name(f"_{ix.final_name}_rv"),
            create_sql="",
            unique=ix.unique,
        )
        for ix in plan.indexes
        if not ix.new and ix.old_name != ix.final_name
    ]
    reverse = Plan(
        dialect=plan.dialect,
        table=plan.table,
        shadow_table=old_table or plan.old_table,
        old_table=back.reverted_table,
        primary_key=[by_source[k].name for k in plan.primary_key],
        source_columns=[c.name for c in [*plan.columns, *plan.default_columns]],
        columns=[replace(c) for c in back.columns],
        fingerprint="",
        estimated_rows=plan.estimated_rows,
        shadow_ddl=[],
        indexes=indexes,
        trigger_names=list(back.trigger_names),
        trigger_ddl=[],
        drop_trigger_ddl=[],
        swap_sql=[],
        post_swap_sql=[],
        changes=[f"revert migration {migration_id}: {'; '.join(plan.changes)}"],
        # the AUTO_INCREMENT column's counter follows the table back (MySQL's swap carries it)
        capture=Capture(
            mode=CHANGE_LOG,
            log_table=back.log_table,
            route=CopyRoute(autoinc_column=plan.capture.route.autoinc_column),
        ),
        reverts=migration_id,
    )
    reverse.trigger_ddl = dialect.trigger_ddl(reverse)
    reverse.drop_trigger_ddl = dialect.drop_trigger_ddl(reverse)
    return reverse


def _ready(engine: Engine, dialect: Dialect, plan: Plan, reverse: Plan) -> Plan:
    """The reverse plan with its fingerprint and swap statements, from the catalog as it is now."""
    from shadowswap.planner import reflect

    with engine.connect() as conn:
        ref = reflect(conn, reverse.table)
        reverse.fingerprint = ref.fingerprint()
        if dialect.name == "sqlite":
            # SQLite renames an index by editing its stored text (dialects/sqlite/swap.py): the old
            # table's index as it is stored now
            rows = conn.execute(
                sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"),
                {"t": reverse.shadow_table},
            )
            stored = {str(name): str(sql) for name, sql in rows}
            reverse.indexes = [replace(ix, create_sql=stored.get(ix.shadow_name) or "") for ix in reverse.indexes]
        # MySQL's facts are the shadow's key text from its CREATE TABLE, which the old table has
        # already: its swap needs none (dialects/mysql/swap.py)
        facts = {} if dialect.name == "mysql" else dialect.swap_facts(conn, reverse, ref)
        facts["constraint_renames"] = _constraint_renames(dialect, conn, reverse)
        reverse.moved_at_swap = dialect.moved_at_swap(conn, reverse, ref)
    reverse.swap_sql, reverse.post_swap_sql = dialect.swap_sql(reverse, facts)
    return reverse


def _constraint_renames(dialect: Dialect, conn: Connection, reverse: Plan) -> list[tuple[str, str, str]]:
    """(name for the reverted table, O's name, the name T has and O gets back) for each named key
    the forward swap renamed on O (``Dialect.old_index_name``)."""
    if not dialect.names_constraints:
        return []
    inspector = sa.inspect(conn)

    def named(table: str) -> set[str]:
        names = {inspector.get_pk_constraint(table).get("name")}
        names |= {u.get("name") for u in inspector.get_unique_constraints(table)}
        return {n for n in names if n}

    on_old = named(reverse.shadow_table)
    return [
        (dialect.fit_name(f"_{name}_rv"), dialect.old_index_name(reverse.table, name), name)
        for name in sorted(named(reverse.table))
        if dialect.old_index_name(reverse.table, name) in on_old and dialect.old_index_name(reverse.table, name) != name
    ]


# -- at the swap ----------------------------------------------------------------------------------


def at_swap(conn: Connection, dialect: Dialect, plan: Plan, migration_id: int, capture: bool) -> None:
    """Inside a swap's transaction, after its renames: a revert's swap ends the migration it undoes;
    a forward swap starts the reverse capture (unless ``capture`` is False: ``--no-revert``)."""
    if plan.reverts is not None:
        forward = Plan.from_json(state.get(conn, plan.reverts).plan_json)
        for ix in forward.indexes:
            if ix.new and dialect.names_constraints:  # MySQL's index names are the table's own
                # an index the migration added is on the migrated table only, now the reverted one:
                # out of the way of its name (names are schema-wide), so the plan can run again
                dialect.run(conn, _set_aside_index_sql(dialect, ix.final_name))
        state.update(conn, plan.reverts, phase=state.REVERTED, reverse_log=None)
        return
    back = plan.way_back
    if not capture or back is None or not back.possible:
        return
    if dialect.name == "postgresql":
        # The swap recreated the application's triggers on the new table and left the originals on
        # the old one, where the way back's replays would fire them a second time for writes that
        # already fired them on the new table. They go: the swap back recreates them from the new
        # table's (dialects/postgresql/surroundings.py), with their enabled state.
        names = conn.execute(
            sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal"),
            {"t": dialect.q(plan.old_table)},
        ).scalars()
        for name in list(names):
            dialect.run(conn, f"DROP TRIGGER {dialect.q(name)} ON {dialect.q(plan.old_table)}")
    if not _captures_before_swap(dialect):
        reverse = reverse_plan(dialect, plan, migration_id)
        # under the swap's lock no writer has touched the new table yet: every write after it is logged
        for stmt in [*back.log_ddl, *reverse.trigger_ddl]:
            dialect.run(conn, stmt)
    state.update(conn, migration_id, reverse_log=back.log_table, revertible_since=state.now())


def _captures_before_swap(dialect: Dialect) -> bool:
    """MySQL/MariaDB: the swap's RENAME TABLE commits on its own and lets the queued writes in as it
    ends; there is no transaction after it in which nothing has been written yet."""
    return dialect.name == "mysql"


def with_shadow(conn: Connection, dialect: Dialect, plan: Plan, options: Options) -> None:
    """Where the reverse capture goes on before the swap (``_captures_before_swap``), its log is
    created with the shadow, before the forward triggers exist, and is neither renamed nor dropped
    until the revert window ends: the forward triggers name it (dialects/mysql/triggers.py,
    ``_prelock_reverse_log``), so every write to the table, before or after the swap, has it in
    the tables its statement opens. Idempotent."""
    back = plan.way_back
    if options.no_revert or back is None or not back.possible or not _captures_before_swap(dialect):
        return
    if not sa.inspect(conn).has_table(back.log_table):
        for stmt in back.log_ddl:
            dialect.run(conn, stmt)


def remove_before_swap(engine: Engine, dialect: Dialect, plan: Plan, options: Options) -> None:
    """``abort`` of a forward plan: the reverse capture made before the swap goes, its triggers first
    (wherever they are: on the shadow, or, after a RENAME the run was killed behind, on the live
    table, writing the log), then its log. Idempotent."""
    from shadowswap.retry import run_with_lock_retries

    back = plan.way_back
    if back is None or not back.possible or not _captures_before_swap(dialect):
        return

    drops = [f"DROP TRIGGER IF EXISTS {dialect.q(name)}" for name in back.trigger_names]
    run_with_lock_retries(
        engine, dialect, "drop the reverse capture", drops, options.lock_timeout_ms, options.lock_retries
    )
    with engine.begin() as conn:
        dialect.run(conn, dialect.drop_table_sql(back.log_table))


def before_swap(engine: Engine, dialect: Dialect, plan: Plan, migration_id: int, options: Options) -> None:
    """Where the swap shares no transaction with what follows it (``_captures_before_swap``), the
    reverse capture goes on the shadow before the swap, and the RENAME carries it onto the table:
    the first write to the new table is logged. Writes the shadow gets until then (the forward
    replays, the dual-write triggers) are logged too, which a replay of current rows takes like
    any entry. Idempotent: a swap that failed and is retried finds it in place."""
    from shadowswap.retry import with_lock_retries

    back = plan.way_back
    if options.no_revert or back is None or not back.possible or not _captures_before_swap(dialect):
        return
    on_shadow = replace(reverse_plan(dialect, plan, migration_id), table=plan.shadow_table)
    on_shadow.trigger_ddl = dialect.trigger_ddl(on_shadow)

    def install() -> None:
        with engine.connect() as conn:
            for stmt in dialect.lock_timeout_sql(options.lock_timeout_ms):
                dialect.run(conn, stmt)
            with_shadow(conn, dialect, plan, options)  # a plan made before it was created there
            dialect.install_triggers(conn, on_shadow)
            conn.commit()

    with_lock_retries(dialect, "install the reverse capture", install, options.lock_retries)


def _set_aside_index_sql(dialect: Dialect, name: str) -> str:
    if dialect.name == "postgresql":
        return f"ALTER INDEX {dialect.q(name)} RENAME TO {dialect.q(dialect.fit_name(f'_{name}_rv'))}"
    # SQLite cannot rename an index (but by editing the schema): the reverted table is only kept
    # for inspection, so it loses the index
    return f"DROP INDEX {dialect.q(name)}"


def drop_capture(engine: Engine, dialect: Dialect, m: state.Migration, options: Options) -> None:
    """End the revert window of a swapped migration: the reverse triggers (first: they write the
    log), then the reverse log."""
    from shadowswap.retry import run_with_lock_retries

    if m.reverse_log is None:
        return
    plan = Plan.from_json(m.plan_json)
    reverse = reverse_plan(dialect, plan, m.id)

    run_with_lock_retries(
        engine,
        dialect,
        "drop the reverse triggers",
        reverse.drop_trigger_ddl,
        options.lock_timeout_ms,
        options.lock_retries,
    )
    with engine.begin() as conn:
        dialect.run(conn, dialect.drop_table_sql(m.reverse_log))
        state.update(conn, m.id, reverse_log=None)


# -- can it go back? ------------------------------------------------------------------------------


def backlog(engine: Engine, dialect: Dialect, m: state.Migration) -> int:
    """Entries in the reverse log: writes since the swap not yet applied to the old table."""
    if m.reverse_log is None:
        return 0
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {dialect.q(m.reverse_log)}")).scalar_one())


def blockers(engine: Engine, dialect: Dialect, reverse: Plan, limit: int = 5) -> list[str]:
    """Rows written since the swap that the reverse conversion refuses (read-only, like
    ``--check-casts``): each as "key (column: why)". Only logged keys can hold one: the others
    are the old table's own rows, which went forward from there."""
    checked = [c for c in reverse.columns if c.changed or (c.old_nullable and not c.new_nullable)]
    if not checked:
        return []
    q = dialect.q
    key = reverse.primary_key
    key_list = ", ".join(f"l.{q(k)}" for k in key)
    with engine.connect() as conn:
        logged = [
            list(r)
            for r in conn.execute(sa.text(f"SELECT DISTINCT {key_list} FROM {q(reverse.capture.logged_table)} AS l"))
        ]
    found: list[str] = []
    with engine.connect() as conn:
        try:
            for start in range(0, len(logged), BATCH):
                for column in checked:
                    _check(conn, dialect, reverse, column, logged[start : start + BATCH], found, limit)
                    if len(found) >= limit:
                        return found
        finally:
            conn.rollback()
            dialect.end_read_only(conn)
    return found


def _check(
    conn: Connection,
    dialect: Dialect,
    reverse: Plan,
    column: ColumnPlan,
    keys: list[list[Any]],
    found: list[str],
    limit: int,
) -> None:
    """Add to ``found`` the keys among ``keys`` whose ``column`` cannot go back; a conversion error
    is bisected down to its key, each try in its own rolled-back read-only transaction."""
    if not keys or len(found) >= limit:
        return
    q = dialect.q
    params: dict[str, Any] = {}
    matches = []
    for i, values in enumerate(keys):
        parts = []
        for j, (k, v) in enumerate(zip(reverse.primary_key, values, strict=True)):
            params[f"k{i}_{j}"] = v
            parts.append(f"src.{q(k)} = :k{i}_{j}")
        matches.append("(" + " AND ".join(parts) + ")")
    plain = column.source_column is not None and column.expression == dialect.cast_expression(
        column.source_column, column.new_type
    )
    fails, _ = dialect.cast_check_predicates(column, plain)
    key_select = ", ".join(f"src.{q(k)}" for k in reverse.primary_key)
    sql = (
        f"SELECT {key_select}, CASE WHEN {fails} THEN 1 ELSE 0 END, {column.expression} "
        f"FROM {q(reverse.table)} AS src WHERE {' OR '.join(matches)}"
    )
    n = len(reverse.primary_key)
    try:
        dialect.begin_read_only(conn)
        rows = list(conn.execute(sa.text(sql), params))
    except DBAPIError as exc:
        conn.rollback()
        if not dialect.is_data_error(exc):
            raise
        if len(keys) == 1:
            found.append(f"{_key(reverse, keys[0])} ({column.name}: {first_line(exc)})")
            return
        half = len(keys) // 2
        _check(conn, dialect, reverse, column, keys[:half], found, limit)
        _check(conn, dialect, reverse, column, keys[half:], found, limit)
        return
    conn.rollback()
    for row in rows:
        if row[n] and len(found) < limit:
            found.append(f"{_key(reverse, list(row[:n]))} ({column.name}: NULL into NOT NULL)")


def _key(plan: Plan, values: list[Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in zip(plan.primary_key, values, strict=True))


# -- which migration, and the run -------------------------------------------------------------------


_NO_CHANGE = (state.ABORTED, state.FAILED)


def revertible_migration(conn: Connection, table: str) -> state.Migration:
    """The migration of ``table`` whose swap ``revert`` would undo: the newest, swapped, with its
    reverse capture on; else a one-line reason there is none."""
    # aborted and failed migrations (a given-up revert among them) changed nothing: look past them
    latest = next(
        (m for m in state.all_migrations(conn, limit=1000) if m.table_name == table and m.phase not in _NO_CHANGE),
        None,
    )
    if latest is None:
        raise NotRevertible(f"no migration of {table!r} to revert", hint="`shadowswap status` lists them")
    if latest.phase == state.ALTERED:
        back = Plan.from_json(latest.plan_json).way_back
        if back is not None and back.inverse_sql:
            return latest
        raise NotRevertible(
            f"migration {latest.id} altered {table!r} in place: "
            + (back.reason if back is not None else "the way back is a new migration (plan the inverse change)")
        )
    if latest.phase != state.CUT_OVER:
        raise NotRevertible(
            f"the newest migration of {table!r} (id {latest.id}) is {latest.phase}, not swapped: nothing to revert",
            hint="`shadowswap abort` undoes an unfinished migration",
        )
    plan = Plan.from_json(latest.plan_json)
    if plan.reverts is not None:
        raise NotRevertible(
            f"migration {latest.id} already reverted {table!r}",
            hint="execute the plan again to go forward; `cleanup --drop-old` drops the reverted table",
        )
    if latest.reverse_log is None:
        back = plan.way_back
        why = (
            back.reason
            if back is not None and not back.possible
            else (
                "its swap kept no reverse capture (--no-revert, a plan made before revert existed, or the window "
                "was ended by `cleanup --drop-old`)"
            )
        )
        raise NotRevertible(f"migration {latest.id} of {table!r} cannot be reverted: {why}")
    return latest


def revert(
    engine: Engine,
    dialect: Dialect,
    table: str,
    options: Options | None = None,
    reporter: Reporter | None = None,
) -> Summary:
    """Swap ``table`` back to what it was before its newest migration, with every write since."""
    from shadowswap.executor import Executor

    options = options or Options()
    state.ensure(engine)
    with dialect.migration_lock(engine, table) as got:
        if not got:
            raise MigrationLocked(
                f"another shadowswap process is migrating {table!r}",
                hint="wait for it, or check `shadowswap status`",
            )
        with engine.connect() as conn:
            current = state.active(conn, table)
            if current is not None:
                reverse = Plan.from_json(current.plan_json)
                if reverse.reverts is None:
                    raise UsageError(
                        f"a migration of {table!r} is in progress (phase {current.phase})",
                        hint="finish it (`shadowswap execute`) or `shadowswap abort` it first",
                    )
                forward = state.get(conn, reverse.reverts)
            else:
                forward = revertible_migration(conn, table)
                reverse = None
        plan = Plan.from_json(forward.plan_json)
        if forward.phase == state.ALTERED:
            return _revert_in_place(engine, dialect, forward, plan, options)
        refuse_blocked(engine, dialect, forward, reverse_plan(dialect, plan, forward.id, forward.old_table))
        if reverse is None:
            forward = _old_table_after(engine, dialect, forward, options)
            if sa.inspect(engine).has_table(reverted_name(dialect, table)):
                raise UsageError(
                    f"table {reverted_name(dialect, table)!r} already exists (kept by an earlier revert)",
                    hint="`shadowswap cleanup --drop-old` removes it",
                )
            reverse = _ready(engine, dialect, plan, reverse_plan(dialect, plan, forward.id, forward.old_table))
            with engine.begin() as conn:
                migration_id = state.create(
                    conn,
                    table=table,
                    shadow=reverse.shadow_table,
                    old=reverse.old_table,
                    fingerprint=reverse.fingerprint,
                    plan_json=reverse.to_json(),
                    estimated_rows=reverse.estimated_rows,
                )
                # nothing to create or copy: the old table is full, the reverse capture is on
                state.update(conn, migration_id, phase=state.INDEXES_BUILT)
        # most of the backlog applied before the verification, which then covers those keys too
        changelog.catch_up(engine, dialect, reverse)
    try:
        return Executor(engine, dialect, reverse, options, reporter).run()
    except CopyFailed as exc:
        # a value the reverse conversion refuses was written after the check: the revert is
        # recorded failed, the capture stays on, nothing is lost; say which rows
        found = blockers(engine, dialect, reverse)
        if not found:
            raise
        raise NotRevertible(_why(table, found), hint=_HINT) from exc


def _old_table_after(engine: Engine, dialect: Dialect, forward: state.Migration, options: Options) -> state.Migration:
    """MySQL's swap queues its RENAME behind its LOCK TABLES, and the RENAME takes its metadata locks
    in name order: waiting first on a shadow whose name sorts before the table's, it would ask for
    the table only after the unlock, behind the writes that then reach the table it is retiring
    (dialects/mysql/swap.py). ``_products_old`` sorts before ``products``: renamed first to a name
    after it. Nothing writes the old table but the replays, which run under the migration lock."""
    from shadowswap.retry import run_with_lock_retries

    if dialect.name != "mysql" or forward.old_table.encode() > forward.table_name.encode():
        return forward
    name = dialect.fit_name(f"{forward.table_name}_ss_back")

    rename = f"RENAME TABLE {dialect.q(forward.old_table)} TO {dialect.q(name)}"
    run_with_lock_retries(
        engine, dialect, "rename the old table", [rename], options.lock_timeout_ms, options.lock_retries
    )
    with engine.begin() as conn:
        state.update(conn, forward.id, old_table=name)
        return state.get(conn, forward.id)


_HINT = "change or delete those rows (or plan with --reverse-using COL=EXPR), then `shadowswap revert` again"


def _why(table: str, found: list[str]) -> str:
    return f"{table!r} cannot be reverted without losing writes made since the swap: {'; '.join(found)}"


def refuse_blocked(engine: Engine, dialect: Dialect, forward: state.Migration, reverse: Plan) -> None:
    found = blockers(engine, dialect, reverse)
    if found:
        raise NotRevertible(_why(forward.table_name, found), hint=_HINT)


def is_reverse(plan: Plan) -> bool:
    """The plan a revert runs: its shadow is the old table, which nothing may drop."""
    return plan.reverts is not None
