"""``shadowswap fleet``: one change across many databases, through the real command line.

Fleets of real databases (PostgreSQL databases, SQLite files, MariaDB databases), some under the
concurrent writers of harness.py, each compared row by row afterwards. The distributed mode runs
real Celery workers on the Redis broker, one of which is killed with SIGKILL mid-copy.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import MYSQL_ADMIN, PG_ADMIN, _server_check, _skip_or_fail
from harness import Writers, compare, create_products

from shadowswap import state
from shadowswap.errors import UsageError
from shadowswap.fleet.plans import Manifest
from shadowswap.fleet.status import read_states
from shadowswap.fleet.targets import parse_targets

ROWS = 2000
BROKER = os.environ.get("SHADOWSWAP_TEST_BROKER", "redis://127.0.0.1:6379/0")
PASSWORD = "s3cret-fleet-pw"


@dataclass
class Db:
    dialect: str
    url: str
    #: the line written to targets.txt (the PostgreSQL password by reference)
    spec: str
    initial: dict[int, dict[str, Any]]

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url)


class Fleet:
    """Creates databases (dropped at the end) and the targets file naming them."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.dbs: list[Db] = []
        self._drops: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        (tmp_path / "files").mkdir()

    def add_many(self, wanted: list[tuple[str, int, int]]) -> list[Db]:
        """(dialect, rows, seed) each, created a few at once, kept in the order given."""
        start = len(self.dbs)
        with ThreadPoolExecutor(max_workers=4) as pool:
            made = list(pool.map(lambda a: self._make(start + a[0], *a[1]), enumerate(wanted)))
        self.dbs.extend(made)
        return made

    def add(self, dialect: str, rows: int = ROWS, seed: int = 1) -> Db:
        (db,) = self.add_many([(dialect, rows, seed)])
        return db

    def _make(self, index: int, dialect: str, rows: int, seed: int) -> Db:
        if dialect == "sqlite":
            path = self.dir / "files" / f"tenant{index:03d}.db"
            url = spec = f"sqlite:///{path}"
        else:
            admin_url = PG_ADMIN if dialect == "postgresql" else MYSQL_ADMIN
            _server_check(dialect, admin_url)
            name = f"ss_fleet_{uuid.uuid4().hex[:10]}"
            admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
            admin.dispose()
            with self._lock:
                self._drops.append((dialect, name))
            base = sa.make_url(admin_url).set(database=name)
            url = base.render_as_string(hide_password=False)
            if dialect == "postgresql":  # trust authentication: the password is only there to be hidden
                spec = base.set(password="PLACEHOLDER").render_as_string(hide_password=False)
                spec = spec.replace("PLACEHOLDER", "${FLEET_TEST_PW}")
            else:
                spec = url
        engine = sa.create_engine(url)
        initial = create_products(engine, rows, seed)
        engine.dispose()
        return Db(dialect, url, spec, initial)

    def targets_file(self, lines: list[str] | None = None) -> Path:
        path = self.dir / "targets.txt"
        sqlite = [d for d in self.dbs if d.dialect == "sqlite"]
        body = ["# the fleet of this test", ""]
        body += lines if lines is not None else [d.spec for d in self.dbs if d.dialect != "sqlite"]
        if lines is None and sqlite:
            body.append("files/tenant*.db  ".strip())  # every SQLite tenant by one glob, relative to this file
        path.write_text("\n".join(body) + "\n", encoding="utf-8")
        return path

    def close(self) -> None:
        for dialect, name in self._drops:
            admin = sa.create_engine(PG_ADMIN if dialect == "postgresql" else MYSQL_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                if dialect == "postgresql":
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            admin.dispose()


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    monkeypatch.setenv("FLEET_TEST_PW", PASSWORD)  # this process reads the targets' state tables too
    try:
        yield f
    finally:
        f.close()


def env() -> dict[str, str]:
    return {**os.environ, "FLEET_TEST_PW": PASSWORD, "COLUMNS": "250", "SHADOWSWAP_FLEET_QUEUE": QUEUE}


QUEUE = f"shadowswap-fleet-test-{uuid.uuid4().hex[:8]}"


def cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowswap", "fleet", *args],
        cwd=cwd,
        env=env(),
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def background(*args: str, cwd: Path, log: Path) -> subprocess.Popen[str]:
    handle = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "shadowswap", *args],
        cwd=cwd,
        env=env(),
        text=True,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: SIGKILL reaches a worker's pool processes too
    )


def plan(f: Fleet, *extra: str, alter: str = "price:varchar(20)") -> None:
    f.targets_file()
    planned = cli("plan", "products", "--alter", alter, "--targets", "targets.txt", "--out", "plans", *extra, cwd=f.dir)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"{len(f.dbs)} of {len(f.dbs)} target(s) planned" in planned.stdout


def last_run(f: Fleet) -> list[dict[str, Any]]:
    return list(json.loads((f.dir / "plans" / "last-run.json").read_text())["results"])


def migrations(db: Db) -> list[state.Migration]:
    engine = db.engine()
    try:
        with engine.connect() as conn:
            return state.all_migrations(conn)
    finally:
        engine.dispose()


def assert_exact(db: Db, model: dict[int, dict[str, Any]] | None = None) -> None:
    engine = db.engine()
    try:
        compare(engine, model if model is not None else db.initial).assert_exact()
        price = {c["name"]: c for c in sa.inspect(engine).get_columns("products")}["price"]
        assert isinstance(price["type"], sa.String), f"{db.dialect}: price is {price['type']}"
    finally:
        engine.dispose()


def rows_copied(output: str, f: Fleet) -> None:
    """The summary's rows copied: every row once (the writers add or remove a few)."""
    match = re.search(r"([\d,]+) rows copied", output)
    assert match is not None, output
    copied = int(match.group(1).replace(",", ""))
    seeded = sum(len(db.initial) for db in f.dbs)
    assert seeded * 0.95 <= copied <= seeded * 1.1, (copied, seeded)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


# -- targets file ------------------------------------------------------------------------------


def test_targets_file_globs_env_and_masking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shards").mkdir()
    for name in ("b.db", "a.db"):
        (tmp_path / "shards" / name).touch()
    path = tmp_path / "targets.txt"
    path.write_text(
        "# tenants\n\nshards/*.db\npostgresql://app:${APP_PW}@db1:5432/t1\nmysql://root@db2/t2  \n", encoding="utf-8"
    )
    monkeypatch.setenv("APP_PW", "hunter2")
    targets = parse_targets(path)
    assert [t.display for t in targets] == [
        f"sqlite:///{tmp_path / 'shards' / 'a.db'}",
        f"sqlite:///{tmp_path / 'shards' / 'b.db'}",
        "postgresql+psycopg://app:***@db1:5432/t1",
        "mysql+pymysql://root@db2/t2",
    ]
    assert targets[2].spec == "postgresql://app:${APP_PW}@db1:5432/t1"  # kept by reference, expanded at use
    assert targets[2].url() == "postgresql://app:hunter2@db1:5432/t1"
    assert targets[0].host == targets[1].host != targets[2].host
    assert len({t.id for t in targets}) == 4
    monkeypatch.delenv("APP_PW")
    with pytest.raises(UsageError, match=r"refers to \$\{APP_PW\}, which is not set"):
        targets[2].url()
    path.write_text("postgresql://a@h/db\npostgresql://a@h/db\n", encoding="utf-8")
    with pytest.raises(UsageError, match="listed twice"):
        parse_targets(path)
    path.write_text("nothing/here.db\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"targets.txt:1: no SQLite file"):
        parse_targets(path)


# -- the embedded thread pool ----------------------------------------------------------------


def test_thread_pool_fleet_under_writers(fleet: Fleet) -> None:
    fleet.add_many(
        [("postgresql", ROWS, i + 1) for i in range(8)]
        + [("mysql", ROWS, i + 20) for i in range(3)]
        + [("sqlite", ROWS, i + 40) for i in range(9)]
    )
    busy = [fleet.dbs[0], fleet.dbs[8], fleet.dbs[11]]  # one of each engine under writers
    plan(fleet)
    with ExitStack() as stack:
        writers = [stack.enter_context(Writers(db.url, db.initial, threads=2, seed=7, pause=0.01)) for db in busy]
        time.sleep(0.3)
        executed = cli("execute", "plans", "--concurrency", "4", "--per-host", "2", cwd=fleet.dir)
        time.sleep(0.2)
    assert executed.returncode == 0, executed.stdout + executed.stderr
    assert "20 done, 0 failed of 20" in executed.stdout
    rows_copied(executed.stdout, fleet)
    assert "worst write stall" in executed.stdout
    for w in writers:
        assert w.total.errors == [] and w.total.ops > 0
    for db in fleet.dbs:
        assert_exact(db, writers[busy.index(db)].model if db in busy else None)
        assert [m.phase for m in migrations(db)] == [state.CUT_OVER]
    # the bounds held: at most 4 in flight, at most 2 on one server (or one directory of files)
    results = last_run(fleet)
    assert max_overlap([(r["started"], r["finished"]) for r in results]) <= 4
    for host in {r["host"] for r in results}:
        assert max_overlap([(r["started"], r["finished"]) for r in results if r["host"] == host]) <= 2
    assert max_overlap([(r["started"], r["finished"]) for r in results]) > 2  # several servers at once
    shown = cli("status", "plans", cwd=fleet.dir)
    assert shown.returncode == 0 and "20 cut_over" in shown.stdout
    everything = executed.stdout + executed.stderr + shown.stdout
    everything += "".join(p.read_text() for p in (fleet.dir / "plans").iterdir())
    assert PASSWORD not in everything and "postgresql+psycopg://postgres:***@" in shown.stdout
    again = cli("execute", "plans", cwd=fleet.dir)  # idempotent: nothing left to do
    assert again.returncode == 0 and "20 done" in again.stdout and "already" in again.stderr


# -- the gate ------------------------------------------------------------------------------


def test_gate_holds_every_swap_until_all_are_verified(fleet: Fleet) -> None:
    # the first is slower than the others: they wait for it
    fleet.add_many(
        [("postgresql", 12_000, 1), ("postgresql", ROWS, 2), ("mysql", ROWS, 3), ("mysql", ROWS, 4)]
        + [("sqlite", ROWS, seed) for seed in (5, 6)]
    )
    busy = fleet.dbs[2]
    plan(fleet)
    refused = cli("cutover", "plans", cwd=fleet.dir)
    assert refused.returncode == 2 and "not verified yet" in refused.stderr
    manifest = Manifest.read(fleet.dir / "plans")
    snapshots: list[list[str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            snapshots.append([s.phase for s in read_states(manifest)])
            time.sleep(0.1)

    with Writers(busy.url, busy.initial, threads=2, seed=3, pause=0.01) as writers:
        # three at once for six targets: the held ones must not keep their slots
        run = background(
            "fleet",
            "execute",
            "plans",
            "--gate",
            "--hold",
            "--concurrency",
            "3",
            "--max-rows-per-second",
            "5000",
            cwd=fleet.dir,
            log=fleet.dir / "execute.log",
        )
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                states = read_states(manifest)
                if all(s.phase == state.VERIFIED and s.postponed for s in states):
                    break
                assert run.poll() is None, (fleet.dir / "execute.log").read_text()
                time.sleep(0.2)
            else:
                pytest.fail(f"not all verified: {[(s.entry.display, s.phase) for s in read_states(manifest)]}")
            time.sleep(1.5)  # held: nothing swaps on its own
            assert all(s.phase == state.VERIFIED for s in read_states(manifest))
            released = cli("cutover", "plans", cwd=fleet.dir)
            assert released.returncode == 0, released.stderr
            assert run.wait(timeout=120) == 0, (fleet.dir / "execute.log").read_text()
        finally:
            stop.set()
            watcher.join()
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    log = (fleet.dir / "execute.log").read_text()
    assert "6 done, 0 failed of 6" in log
    rows_copied(log, fleet)  # stage two resumes the same migrations: nothing counted twice
    # no snapshot ever saw a swapped target beside one not yet verified
    for phases in snapshots:
        if state.CUT_OVER in phases:
            assert all(p in (state.VERIFIED, state.CUT_OVER) for p in phases), phases
    assert any(state.TRIGGERS_INSTALLED in p and state.VERIFIED in p for p in snapshots)  # some waited on others
    results = last_run(fleet)
    verified = [r["phase_times"]["verified"] for r in results]
    swapped = [r["phase_times"]["cut_over"] for r in results]
    assert max(verified) < min(swapped)
    for db in fleet.dbs:
        assert_exact(db, writers.model if db is busy else None)


# -- a failing target, a canary, a closed gate --------------------------------------------------


def test_a_failing_target_stops_only_what_it_should(fleet: Fleet) -> None:
    bad, *_ = fleet.add_many(
        [("postgresql", ROWS, 1), ("postgresql", ROWS, 2), ("mysql", ROWS, 3), ("sqlite", ROWS, 4), ("sqlite", ROWS, 5)]
    )
    engine = bad.engine()
    with engine.begin() as conn:  # a value smallint cannot take
        conn.execute(sa.text("UPDATE products SET stock_quantity = 40000 WHERE id = 1234"))
    engine.dispose()
    bad.initial[1234]["stock_quantity"] = 40000
    plan(fleet, alter="stock_quantity:smallint")
    others = fleet.dbs[1:]

    # a canary: the bad target is first in the file, so nothing else starts
    canary = cli("execute", "plans", "--canary", "1", "--allow-destructive", cwd=fleet.dir)
    assert canary.returncode == 1
    assert "canary failed" in canary.stdout and "4 not started" in canary.stdout
    for db in others:
        assert not sa.inspect(db.engine()).has_table(state.STATE_TABLE)

    # the gate: the others copy and verify, then hold; none swaps
    gated = cli("execute", "plans", "--gate", "--allow-destructive", cwd=fleet.dir)
    assert gated.returncode == 1
    assert "gate closed" in gated.stdout and "4 held" in gated.stdout
    for db in others:
        (m,) = migrations(db)
        assert m.phase == state.VERIFIED and m.cutover_postponed

    # the operator's commands, fleet-wide: the gate cannot be opened by hand past a failed target
    # without --force; pause and resume reach every held migration; abort undoes them
    refused = cli("cutover", "plans", cwd=fleet.dir)
    assert refused.returncode == 2 and "1 of 5 target(s) are not verified yet" in refused.stderr
    paused = cli("pause", "plans", cwd=fleet.dir)
    assert paused.returncode == 0 and paused.stdout.count("(verified)") == 4, paused.stdout
    shown = cli("status", "plans", "--json", cwd=fleet.dir)
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["paused"] for r in rows] == [False, True, True, True, True]
    assert rows[0]["phase"] == state.FAILED and "smallint out of range" in rows[0]["error"]
    assert cli("resume", "plans", cwd=fleet.dir).returncode == 0
    aborted = cli("abort", "plans", cwd=fleet.dir)
    assert aborted.returncode == 0 and aborted.stdout.count("aborted migration") == 4, aborted.stdout
    for db in others:
        assert [m.phase for m in migrations(db)] == [state.ABORTED]
        assert set(sa.inspect(db.engine()).get_table_names()) == {"products", state.STATE_TABLE}

    # without the gate: the others finish, the bad one fails again
    plain = cli("execute", "plans", "--allow-destructive", cwd=fleet.dir)
    assert plain.returncode == 1
    assert "4 done, 1 failed of 5" in plain.stdout
    assert "smallint out of range" in plain.stdout
    shown = cli("status", "plans", cwd=fleet.dir)
    assert shown.returncode == 0
    assert "4 cut_over" in shown.stdout and "1 failed" in shown.stdout and "smallint out of range" in shown.stdout
    for db in others:
        assert [m.phase for m in migrations(db)] == [state.CUT_OVER, state.ABORTED]  # newest first
        engine = db.engine()
        compare(engine, db.initial).assert_exact()
        engine.dispose()
    engine = bad.engine()
    compare(engine, bad.initial).assert_exact()  # the original, untouched and whole
    assert set(sa.inspect(engine).get_table_names()) == {"products", state.STATE_TABLE}
    engine.dispose()


# -- Celery ------------------------------------------------------------------------------------


def _active_targets(worker: str) -> list[str]:
    from shadowswap.fleet.tasks import app, configure

    configure(BROKER, queue=QUEUE)
    replies = app.control.inspect(destination=[worker], timeout=1.0).active() or {}
    return [task["args"][0]["target"]["id"] for task in replies.get(worker, [])]


def _redis_check() -> None:
    import redis

    try:
        redis.Redis.from_url(BROKER, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _skip_or_fail("redis", str(exc))


def test_celery_workers_survive_a_worker_killed_mid_copy(fleet: Fleet) -> None:
    _redis_check()
    fleet.add_many(
        [("postgresql", ROWS, i + 1) for i in range(3)]
        + [("mysql", ROWS, i + 10) for i in range(2)]
        + [("sqlite", ROWS, i + 20) for i in range(3)]
    )
    busy = fleet.dbs[0]
    plan(fleet)
    manifest = Manifest.read(fleet.dir / "plans")
    names = [f"victim-{uuid.uuid4().hex[:6]}@test", f"survivor-{uuid.uuid4().hex[:6]}@test"]
    # a short visibility timeout: Redis redelivers a dead worker's unacknowledged task after it
    worker_args = ["--broker", BROKER, "--concurrency", "2", "--visibility-timeout", "5", "--queue", QUEUE]
    workers = [
        background("fleet", "worker", *worker_args, "--name", name, cwd=fleet.dir, log=fleet.dir / f"w{i}.log")
        for i, name in enumerate(names)
    ]
    run: subprocess.Popen[str] | None = None
    try:
        with Writers(busy.url, busy.initial, threads=2, seed=5, pause=0.01) as writers:
            run = background(
                "fleet",
                "execute",
                "plans",
                "--broker",
                BROKER,
                "--queue",
                QUEUE,
                "--visibility-timeout",
                "5",
                "--concurrency",
                "4",
                "--max-rows-per-second",
                "600",
                "--chunk-size",
                "100",
                cwd=fleet.dir,
                log=fleet.dir / "execute.log",
            )
            victim: str | None = None
            deadline = time.monotonic() + 60
            while victim is None and time.monotonic() < deadline:
                assert run.poll() is None, (fleet.dir / "execute.log").read_text()
                states = {s.entry.id: s for s in read_states(manifest)}
                for target in _active_targets(names[0]):
                    s = states.get(target)
                    if s is not None and s.phase == state.TRIGGERS_INSTALLED and 0 < s.rows_copied < ROWS - 300:
                        victim = target
                        break
                time.sleep(0.1)
            assert victim is not None, "no target of the first worker was seen mid-copy"
            os.killpg(workers[0].pid, signal.SIGKILL)
            killed_at = time.time()
            assert run.wait(timeout=150) == 0, (fleet.dir / "execute.log").read_text()
        log = (fleet.dir / "execute.log").read_text()
        assert "8 done, 0 failed of 8" in log
        results = {r["target"]: r for r in last_run(fleet)}
        assert results[victim]["finished"] > killed_at
        for entry, db in zip(manifest.entries, _in_manifest_order(fleet, manifest), strict=True):
            assert_exact(db, writers.model if db is busy else None)
            # one migration each: the killed one was resumed from its checkpoint, not started again
            assert [m.phase for m in migrations(db)] == [state.CUT_OVER], entry.display
    finally:
        for p in [*workers, *([run] if run else [])]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


def _in_manifest_order(f: Fleet, manifest: Manifest) -> list[Db]:
    """The test's databases in the manifest's order (servers in file order, then the SQLite glob)."""
    by_name = {Path(sa.make_url(db.url).database or "").name: db for db in f.dbs}
    out = []
    for entry in manifest.entries:
        match = by_name.get(Path(sa.make_url(entry.display).database or "").name)
        assert match is not None, entry.display
        out.append(match)
    return out


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["execute", "nowhere"], "no fleet plan in nowhere", 2),
        (["execute", "nowhere", "--hold"], "--hold only means something with --gate", 2),
        (["execute", "nowhere", "--concurrency", "0"], "--concurrency must be at least 1", 2),
        (["plan", "products", "--alter", "price:varchar(20)", "--targets", "missing.txt"], "no targets file", 2),
        (["plan", "products", "--alter", "price:varchar(20)", "--targets", "unset.txt"], "FLEET_UNSET_PW", 1),
        (["status", "nowhere"], "no fleet plan", 2),
        (["worker"], "no broker given", 2),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str, code: int) -> None:
    (tmp_path / "unset.txt").write_text("postgresql://u:${FLEET_UNSET_PW}@127.0.0.1:1/db\n", encoding="utf-8")
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
