"""PostgreSQL-only behaviour: identity columns, foreign keys, dependent views, plan reuse."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from harness import Writer, WriterPool

from shadowswap import state
from shadowswap.changes import parse_add, parse_alter, parse_options
from shadowswap.copier import ChunkSizer, Copier
from shadowswap.db import connect
from shadowswap.errors import CopyFailed, ShadowswapError, UsageError
from shadowswap.executor import Executor, Options
from shadowswap.planner import build_plan


@pytest.mark.parametrize("kind", ["ALWAYS", "BY DEFAULT"])
def test_identity_column_keeps_generating(pg_url: str, kind: str) -> None:
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE events (id bigint GENERATED {kind} AS IDENTITY PRIMARY KEY, amount integer NOT NULL)"
        )
        conn.exec_driver_sql("INSERT INTO events (amount) SELECT g FROM generate_series(1, 20000) g")
    plan = build_plan(engine, dialect, "events", [parse_alter("amount:bigint")])

    def insert(engine: sa.Engine, w: Writer) -> str:
        with engine.begin() as conn:
            new_id = conn.exec_driver_sql("INSERT INTO events (amount) VALUES (-1) RETURNING id").scalar_one()
        w.model[new_id] = -1
        return "inserts"

    with WriterPool(engine, insert) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=1000, chunk_time=0.02)).run()
        time.sleep(0.2)
    assert writers.total.errors == []
    inserted = list(writers.model)
    with engine.begin() as conn:
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM events WHERE amount = -1 ORDER BY id")]
        assert ids == sorted(inserted)
        next_id = conn.exec_driver_sql("INSERT INTO events (amount) VALUES (0) RETURNING id").scalar_one()
        identity = conn.exec_driver_sql(
            "SELECT attidentity FROM pg_attribute WHERE attrelid = 'events'::regclass AND attname = 'id'"
        ).scalar_one()
    assert next_id == max(inserted) + 1
    assert identity == ("a" if kind == "ALWAYS" else "d")


def test_foreign_keys_are_carried_over(pg_url: str) -> None:
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE categories (id int PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO categories SELECT g FROM generate_series(1, 10) g")
        conn.exec_driver_sql(
            "CREATE TABLE items (id serial PRIMARY KEY, category_id int NOT NULL "
            "CONSTRAINT items_category_fk REFERENCES categories(id) ON DELETE CASCADE, price numeric(10,2))"
        )
        conn.exec_driver_sql(
            "INSERT INTO items (category_id, price) SELECT 1 + g %% 10, g FROM generate_series(1, 5000) g"
        )
    plan = build_plan(engine, dialect, "items", [parse_alter("price:varchar(20)")])
    Executor(engine, dialect, plan).run()
    fks = sa.inspect(engine).get_foreign_keys("items")
    assert [(fk["name"], fk["referred_table"], fk["options"].get("ondelete")) for fk in fks] == [
        ("items_category_fk", "categories", "CASCADE")
    ]
    with engine.begin() as conn:
        convalidated = conn.exec_driver_sql(
            "SELECT convalidated FROM pg_constraint "
            "WHERE conname = 'items_category_fk' AND conrelid = 'items'::regclass"
        ).scalar_one()
        assert convalidated is True
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            conn.exec_driver_sql("INSERT INTO items (category_id, price) VALUES (99, '1')")
        conn.exec_driver_sql("DELETE FROM categories WHERE id = 3")
        assert conn.exec_driver_sql("SELECT count(*) FROM items WHERE category_id = 3").scalar_one() == 0


def test_views_and_incoming_keys_over_changed_columns_are_refused(pg_url: str) -> None:
    """Views and other tables' keys are redefined on the new table at the swap, as they are; one
    over a column the change retypes cannot be (PostgreSQL's own ALTER refuses the view too)."""
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parents (id int PRIMARY KEY, v int)")
        conn.exec_driver_sql("CREATE VIEW parent_values AS SELECT v FROM parents")
        conn.exec_driver_sql("CREATE TABLE children (id int PRIMARY KEY, parent_id int REFERENCES parents(id))")
    with pytest.raises(UsageError, match="view 'parent_values' uses column 'v', which the change retypes"):
        build_plan(engine, dialect, "parents", [parse_alter("v:bigint")])
    with pytest.raises(UsageError, match="foreign key 'children_parent_id_fkey' of 'children' references column 'id'"):
        build_plan(engine, dialect, "parents", [parse_alter("id:bigint")])
    plan = build_plan(engine, dialect, "parents", [parse_add("note:text")], strategy_name="shadow")
    assert any(s.startswith("ALTER TABLE") and "NOT VALID" in s for s in plan.swap_sql)
    assert any("VALIDATE CONSTRAINT" in s for s in plan.post_swap_sql)


def test_executing_a_plan_twice_says_so(pg_url: str) -> None:
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id int PRIMARY KEY, v int)")
        conn.exec_driver_sql("INSERT INTO t SELECT g, g FROM generate_series(1, 100) g")
    plan = build_plan(engine, dialect, "t", [parse_alter("v:bigint")])
    Executor(engine, dialect, plan).run()
    with pytest.raises(UsageError, match="already executed"):
        Executor(engine, dialect, plan).run()


def test_no_lock_request_queues_behind_a_vacuum_of_the_table(pg_url: str) -> None:
    # A VACUUM (auto or not) holds SHARE UPDATE EXCLUSIVE for its whole scan. CREATE TRIGGER queued
    # behind it would stop every writer for the lock timeout on every attempt, in vain: none is made.
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id int PRIMARY KEY, v int)")
        conn.exec_driver_sql("INSERT INTO t SELECT g, g FROM generate_series(1, 200) g")
    plan = build_plan(engine, dialect, "t", [parse_alter("v:bigint")])
    queued: list[tuple[Any, ...]] = []
    done = threading.Event()

    def watch() -> None:
        with engine.connect() as conn:
            while not done.is_set():
                waiting = conn.exec_driver_sql(
                    "SELECT pid, mode FROM pg_locks WHERE relation = 't'::regclass AND NOT granted"
                ).all()
                queued.extend(tuple(row) for row in waiting)
                conn.rollback()
                time.sleep(0.005)

    holder = engine.connect()
    holder.begin()
    holder.exec_driver_sql("LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE")  # what a VACUUM holds
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with pytest.raises(ShadowswapError, match=r"could not install triggers .* holds ShareUpdateExclusiveLock on t"):
            options = Options(lock_timeout_ms=200, lock_retries=3, stop_after=state.TRIGGERS_INSTALLED)
            Executor(engine, dialect, plan, options).run()
    finally:
        done.set()
        watcher.join()
        holder.rollback()
        holder.close()
    assert queued == []
    # once the VACUUM has gone the same plan resumes and finishes
    summary = Executor(engine, dialect, plan).run()
    assert summary.rows_copied == 200


def test_using_expression_with_percent_and_colons_under_a_writer(pg_url: str) -> None:
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL, ts timestamp NOT NULL)")
        conn.exec_driver_sql(
            "INSERT INTO t (v, ts) SELECT g, timestamp '2026-01-01' + g * interval '1 minute' "
            "FROM generate_series(1, 20000) g"
        )
    expression = "(v % 7)::text || ':' || to_char(ts, 'HH24:MI')"
    plan = build_plan(engine, dialect, "t", [parse_alter("v:varchar(30)")], {"v": expression})

    def update_and_insert(engine: sa.Engine, w: Writer) -> str:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE t SET v = v + 1 WHERE id = :id"), {"id": 1 + w.counter * 37 % 20000})
            conn.execute(sa.text("INSERT INTO t (v, ts) VALUES (:v, now())"), {"v": w.counter})
        return "writes"

    with WriterPool(engine, update_and_insert) as writers:
        Executor(engine, dialect, plan, Options(chunk_size=500, chunk_time=0.02, stop_after="verified")).run()
    Executor(engine, dialect, plan).run()  # resumes at the swap
    assert writers.total.errors == []
    with engine.connect() as conn:
        mismatched = conn.exec_driver_sql(
            "SELECT count(*) FROM t FULL JOIN _t_old o ON o.id = t.id "
            "WHERE t.v IS DISTINCT FROM (o.v %% 7)::text || ':' || to_char(o.ts, 'HH24:MI')"
        ).scalar_one()
        total = conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one()
    assert mismatched == 0
    assert total > 20000


def test_a_chunk_that_meets_a_triggers_row_is_rerun_with_on_conflict(pg_url: str) -> None:
    """The fast chunk statement (an anti-join, no ON CONFLICT) loses one race by design: a row
    updated between its snapshot and its share lock comes back in its new version, whose key the
    update's trigger has already written. The chunk must be rerun, not fail, and not overwrite."""
    engine, dialect, plan, migration_id = _items_with_shadow_and_triggers(pg_url, 1000)
    copier = Copier(engine, dialect, plan, migration_id, ChunkSizer(size=5000, maximum=5000))
    assert copier.fast_first is not None
    holder = engine.connect()
    holder.exec_driver_sql("UPDATE items SET v = -500 WHERE id = 500")  # its trigger writes id 500 to the shadow
    copied: list[int] = []
    thread = threading.Thread(target=lambda: copied.append(copier.run(None, [1000])))
    thread.start()
    deadline = time.monotonic() + 10
    with engine.connect() as conn:  # wait until the chunk is blocked on row 500's lock
        while (
            time.monotonic() < deadline
            and not conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO%%'"
                " AND datname = current_database()"  # another test's INSERT (an xdist worker) is not this chunk
            ).scalar_one()
        ):
            time.sleep(0.02)
    holder.commit()
    holder.close()
    thread.join(30)
    assert not thread.is_alive()
    assert copier.races == 1
    assert copied == [999]  # the trigger's row is kept, never overwritten by the copy
    with engine.connect() as conn:
        source = conn.exec_driver_sql("SELECT id, v, code FROM items ORDER BY id").all()
        shadow = conn.exec_driver_sql(f"SELECT id, v, code FROM {dialect.q(plan.shadow_table)} ORDER BY id").all()
    assert shadow == source and (500, -500, "c500") in shadow


def _items_with_shadow_and_triggers(url: str, rows: int) -> tuple[sa.Engine, Any, Any, int]:
    """A table, its shadow and the triggers, and a migration row: where the copy phase starts."""
    engine, dialect = connect(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, v integer NOT NULL, code text UNIQUE)")
        conn.exec_driver_sql(f"INSERT INTO items SELECT g, g, 'c' || g FROM generate_series(1, {rows}) g")
    # a key whose type changes keeps direct dual-write (no change log): the mode these chunks serve
    plan = build_plan(engine, dialect, "items", [parse_alter("v:bigint"), parse_alter("id:bigint")])
    assert not plan.capture.change_log
    state.ensure(engine)
    with engine.begin() as conn:
        for stmt in [*plan.shadow_ddl, *plan.trigger_ddl]:
            conn.exec_driver_sql(stmt)
        migration_id = state.create(
            conn, table="items", shadow=plan.shadow_table, old=plan.old_table, fingerprint=plan.fingerprint,
            plan_json="{}", estimated_rows=rows,
        )  # fmt: skip
    return engine, dialect, plan, migration_id


def test_parallel_copy_checkpoint_never_passes_an_uncommitted_chunk(pg_url: str) -> None:
    """Four chunks at once, stopped after a few dozen: every key up to the recorded checkpoint is
    in the shadow (the checkpoint is a low watermark), and the resume from it ends exact."""
    engine, dialect, plan, migration_id = _items_with_shadow_and_triggers(pg_url, 50_000)
    handed_out = 0

    def stop_after_some() -> None:
        nonlocal handed_out
        handed_out += 1
        if handed_out > 40:
            raise KeyboardInterrupt

    sizer = ChunkSizer(size=500, minimum=500, maximum=500)
    copier = Copier(engine, dialect, plan, migration_id, sizer, before_chunk=stop_after_some, workers=4)
    with pytest.raises(KeyboardInterrupt):
        copier.run(None, [50_000])
    with engine.connect() as conn:
        checkpoint = state.get(conn, migration_id).checkpoint
        shadow_q = dialect.q(plan.shadow_table)
        assert checkpoint is not None and 0 < checkpoint[0] < 50_000
        gaps = conn.exec_driver_sql(
            f"SELECT count(*) FROM items s WHERE s.id <= {int(checkpoint[0])} "
            f"AND NOT EXISTS (SELECT 1 FROM {shadow_q} d WHERE d.id = s.id)"
        ).scalar_one()
        copied_before = state.get(conn, migration_id).rows_copied
    assert gaps == 0
    resumed = Copier(engine, dialect, plan, migration_id, ChunkSizer(size=2000), workers=4)
    inserted = resumed.run(list(checkpoint), [50_000])
    with engine.connect() as conn:
        source = conn.exec_driver_sql("SELECT id, v, code FROM items ORDER BY id").all()
        shadow = conn.exec_driver_sql(f"SELECT id, v, code FROM {shadow_q} ORDER BY id").all()
        assert state.get(conn, migration_id).rows_copied == 50_000 == copied_before + inserted
    assert shadow == source


def test_a_failing_index_build_stops_the_verification_beside_it(pg_url: str) -> None:
    """The verification runs while the indexes are built; when a build fails, it stops too. A unique
    key the data cannot satisfy is a data failure (issue 13): everything the migration created is
    removed and the original is untouched, with the duplicates named."""
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, v integer NOT NULL, code text)")
        conn.exec_driver_sql("INSERT INTO items SELECT g, g, 'c' || (g %% 50000) FROM generate_series(1, 60000) g")
    plan = build_plan(engine, dialect, "items", parse_options(alter=["v:bigint"], add_unique=["uq_items_code:(code)"]))
    started = threading.active_count()
    with pytest.raises(Exception, match=r"uq_items_code|could not create unique index"):
        Executor(engine, dialect, plan, Options(chunk_size=5000)).run()
    assert threading.active_count() == started  # the verification thread is gone
    with engine.connect() as conn:
        assert state.latest(conn, "items").phase == state.FAILED
        assert dialect.existing_triggers(conn, "items") == []
        assert plan.shadow_table not in sa.inspect(conn).get_table_names()
        assert conn.exec_driver_sql("SELECT count(*) FROM items").scalar_one() == 60_000
        columns = {c["name"]: c for c in sa.inspect(conn).get_columns("items")}
    assert isinstance(columns["v"]["type"], sa.Integer) and not isinstance(columns["v"]["type"], sa.BigInteger)


def test_change_log_a_value_written_mid_migration_that_does_not_convert(pg_url: str) -> None:
    """With a change log the application's write is never refused by the migration: the replay
    meets the value, the migration stops before the swap, and the original keeps every write."""
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, v text NOT NULL, code text UNIQUE)")
        conn.exec_driver_sql("INSERT INTO items SELECT g, g::text, 'c' || g FROM generate_series(1, 5000) g")
    plan = build_plan(engine, dialect, "items", [parse_alter("v:integer")])
    # the heap is filled bare: its primary key and unique constraint are built after the copy
    capture = plan.capture
    assert capture.change_log and capture.primary_key_after_copy is not None and len(capture.unique_after_copy) == 1
    Executor(engine, dialect, plan, Options(stop_after=state.COPIED)).run()
    with engine.begin() as conn:  # the application's write succeeds; only the log sees it
        conn.exec_driver_sql("UPDATE items SET v = 'not a number' WHERE id = 4000")
    with pytest.raises(CopyFailed, match="written during the migration"):
        Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        assert state.latest(conn, "items").phase == state.FAILED
        assert conn.exec_driver_sql("SELECT v FROM items WHERE id = 4000").scalar_one() == "not a number"
        assert conn.exec_driver_sql("SELECT count(*) FROM items").scalar_one() == 5000
        names = set(sa.inspect(conn).get_table_names())
    assert plan.shadow_table not in names and plan.capture.logged_table not in names


def test_change_log_replay_keeps_unique_values_moving_between_rows(pg_url: str) -> None:
    """Unique values swapped between rows after their chunks were copied: the shadow's unique
    constraint is built only after a full replay, so it never sees a stale row beside a fresh one."""
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, v integer NOT NULL, code text UNIQUE)")
        conn.exec_driver_sql("INSERT INTO items SELECT g, g, 'c' || g FROM generate_series(1, 20000) g")
    plan = build_plan(engine, dialect, "items", [parse_alter("v:bigint")])
    Executor(engine, dialect, plan, Options(stop_after=state.COPIED)).run()
    with engine.begin() as conn:  # c1 moves to row 20000 and c20000 to row 1, through a spare value
        conn.exec_driver_sql("UPDATE items SET code = 'spare' WHERE id = 1")
        conn.exec_driver_sql("UPDATE items SET code = 'c1' WHERE id = 20000")
        conn.exec_driver_sql("UPDATE items SET code = 'c20000' WHERE id = 1")
        conn.exec_driver_sql("DELETE FROM items WHERE id = 5")
        conn.exec_driver_sql("UPDATE items SET id = 30000 WHERE id = 6")
    Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, v, code FROM items ORDER BY id").all()
        old = conn.exec_driver_sql(f"SELECT id, v, code FROM {dialect.q(plan.old_table)} ORDER BY id").all()
        uniques = {u["name"] for u in sa.inspect(conn).get_unique_constraints("items")}
    assert rows == old and (1, 1, "c20000") in rows and (20000, 20000, "c1") in rows
    assert (30000, 6, "c6") in rows and all(r[0] not in (5, 6) for r in rows)
    assert uniques == {"items_code_key"}


def test_each_dialect_method_lives_in_one_room() -> None:
    # dialects/postgresql/ composes PostgresDialect from one class per concern; the composition is
    # order-free only while no two rooms define the same name (a second definition would silently
    # shadow the first, depending on the order of the bases).
    from shadowswap.dialects.postgresql import PostgresBase, PostgresDialect

    rooms = [c for c in PostgresDialect.__mro__ if issubclass(c, PostgresBase) and c is not PostgresDialect]
    assert len(rooms) == 14
    owners: dict[str, list[str]] = {}
    for room in rooms:
        for name in vars(room):
            if not name.startswith("__") and name != "_abc_impl":  # ABCMeta's own bookkeeping, per class
                owners.setdefault(name, []).append(room.__name__)
    assert {name: where for name, where in owners.items() if len(where) > 1} == {}
    assert owners["migration_lock"] == ["PostgresSession"]
    assert owners["swap_sql"] == ["PostgresSwap"]


def test_a_view_created_after_the_plan_stops_the_swap(pg_url: str) -> None:
    """The swap redefines the views planned; one created since would stay on the old table, so the
    swap's guard rolls it back and says to plan again, leaving the original as it was."""
    engine, dialect = connect(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parents (id int PRIMARY KEY, v int)")
        conn.exec_driver_sql("INSERT INTO parents SELECT g, g FROM generate_series(1, 500) g")
        conn.exec_driver_sql("CREATE VIEW planned AS SELECT id FROM parents")
    plan = build_plan(engine, dialect, "parents", [parse_alter("v:bigint")])
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE VIEW late AS SELECT v FROM parents")
    with pytest.raises(Exception, match="changed since the plan; run shadowswap abort parents, then plan again"):
        Executor(engine, dialect, plan).run()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM late").scalar_one() == 500
        read_by_late = conn.exec_driver_sql(
            "SELECT DISTINCT d.refobjid::regclass::text FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid"
            " WHERE w.ev_class = 'late'::regclass AND d.refobjid <> w.ev_class"
            " AND d.refclassid = 'pg_class'::regclass"
        ).scalar_one()
    assert read_by_late == "parents" and "_parents_old" not in sa.inspect(engine).get_table_names()


def test_postgresql_forced_row_security_over_the_migrating_role_is_refused(pg_url: str) -> None:
    """An owner without BYPASSRLS under FORCE ROW LEVEL SECURITY reads only what its policies show:
    the copy and the verification would agree on a subset and the swap would drop the other rows.
    Refused at plan; without FORCE the owner reads every row, and the same plan is written."""
    admin, _ = connect(pg_url)
    role = "ss_fid_owner"
    with admin.begin() as conn:
        conn.exec_driver_sql(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN"
            f" CREATE ROLE {role} LOGIN; END IF; END$$"
        )
        conn.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, qty integer NOT NULL)")
        conn.exec_driver_sql("INSERT INTO items SELECT i, i FROM generate_series(1, 100) i")
        conn.exec_driver_sql(f"ALTER TABLE items OWNER TO {role}")
        conn.exec_driver_sql("ALTER TABLE items ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql("ALTER TABLE items FORCE ROW LEVEL SECURITY")
        conn.exec_driver_sql("CREATE POLICY p_small ON items USING (qty < 5)")
    as_owner = sa.make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    engine, dialect = connect(as_owner)
    try:
        with pytest.raises(UsageError, match="row-level security that applies to this role"):
            build_plan(engine, dialect, "items", [parse_alter("qty:bigint")])
        with admin.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE items NO FORCE ROW LEVEL SECURITY")
        assert build_plan(engine, dialect, "items", [parse_alter("qty:bigint")]).table == "items"
    finally:
        engine.dispose()
        admin.dispose()


def test_postgresql_what_the_swap_cannot_act_as_is_refused_at_plan(pg_url: str) -> None:
    """The swap moves publication membership as this role: a publication owned by a role it is not a
    member of would fail the swap's transaction after the whole copy. Refused at plan instead,
    naming the role and why; once the publication is the migrating role's own, the plan is written."""
    admin, _ = connect(pg_url)
    role = "ss_fid_owner"
    with admin.begin() as conn:
        conn.exec_driver_sql(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN"
            f" CREATE ROLE {role} LOGIN; END IF; END$$"
        )
        conn.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, qty integer NOT NULL)")
        conn.exec_driver_sql(f"ALTER TABLE items OWNER TO {role}")
        conn.exec_driver_sql("CREATE PUBLICATION pub_fid_items FOR TABLE items")
    as_owner = sa.make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    engine, dialect = connect(as_owner)
    try:
        with pytest.raises(UsageError, match=r"act as role postgres \(owner of publication pub_fid_items\)"):
            build_plan(engine, dialect, "items", [parse_alter("qty:bigint")])
        with admin.begin() as conn:
            conn.exec_driver_sql(f"ALTER PUBLICATION pub_fid_items OWNER TO {role}")
        assert build_plan(engine, dialect, "items", [parse_alter("qty:bigint")]).table == "items"
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP PUBLICATION IF EXISTS pub_fid_items")
        admin.dispose()


def test_our_sessions_ask_the_kernel_to_write_back_as_they_go_and_keep_asking_after_a_rollback(
    pg_url: str,
) -> None:
    """backend_flush_after on every connection of ours (dialects/postgresql/session.py), committed
    when the connection is made, so the rollback of a check-in does not undo it."""
    engine, _dialect = connect(pg_url)
    read = "SELECT pg_backend_pid(), current_setting('backend_flush_after')"
    with engine.connect() as conn:
        pid, value = conn.exec_driver_sql(read).one()
        conn.rollback()
    assert value == "256kB"
    with engine.connect() as conn:  # the same pooled connection after its check-in's rollback
        assert tuple(conn.exec_driver_sql(read).one()) == (pid, "256kB")
    engine.dispose()
