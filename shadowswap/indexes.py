"""The shadow's indexes and constraints, built after the copy, and the verification that runs
beside the copy or the builds (on the second core) so the verified phase only collects its result.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shadowswap import changelog
from shadowswap.copier import Copier
from shadowswap.db import first_line
from shadowswap.dialects import Dialect
from shadowswap.errors import CopyFailed
from shadowswap.plan import ConstraintAfterCopy, IndexPlan, Plan
from shadowswap.throttle import Throttler
from shadowswap.verify import VerifyResult, verify

log = structlog.get_logger("shadowswap")


# -- the verification beside the copy and the builds ----------------------------------------


class _VerifyAbandoned(Exception):
    """Raised inside a background verification whose phase failed before it was needed."""


def _copied(copier: Copier, stopped: Callable[[], bool], hi: list[Any]) -> None:
    """Return once the copy has committed every key up to ``hi`` (asked of the database, in its
    collation's order: ``Copier.covers``); the question is asked again only when the copy moved."""
    asked: list[Any] | None = None
    while not copier.finished:
        through = copier.copied_through
        if through is not None and through != asked:
            asked = through
            if copier.covers(hi):
                return
        if stopped():
            raise _VerifyAbandoned
        time.sleep(0.02)


class _BackgroundVerify:
    """The verification, started while the copy or the index builds run."""

    def __init__(self, run: Callable[[Callable[[], bool]], VerifyResult]) -> None:
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadowswap-verify-early")
        self._future = self._pool.submit(run, self._stop.is_set)

    def result(self) -> VerifyResult:
        try:
            return self._future.result()
        finally:
            self._pool.shutdown(wait=True)

    def abandon(self) -> None:
        """Stop at the next chunk and wait for it: nothing may read the shadow after a failure."""
        self._stop.set()
        self._pool.shutdown(wait=True)


class Verification:
    """The checksum comparison of the original and the shadow, throttled like the copy; started
    early (beside the copy, or beside the builds) where the dialect allows, collected by ``result``."""

    def __init__(self, engine: Engine, dialect: Dialect, plan: Plan, throttler: Throttler) -> None:
        self.engine = engine
        self.dialect = dialect
        self.plan = plan
        self.throttler = throttler
        self._early: _BackgroundVerify | None = None

    @property
    def started(self) -> bool:
        return self._early is not None

    def start_beside_copy(self, copier: Copier) -> None:
        """With a change log and the shadow's key in place, a copied range already holds for every
        key that has no log entry (changelog.py): its checksums can be compared while the copy goes
        on, on the second core, a chunk behind it."""
        self._early = _BackgroundVerify(
            lambda stopped: self._run(stopped, ready=functools.partial(_copied, copier, stopped))
        )

    def start_beside_builds(self) -> None:
        """The builds and the checksums are separate CPU work over tables whose rows no longer change
        but through the triggers or the replays. (Not before the shadow's key exists: each chunk's
        read of the shadow would be a full scan.)"""
        self._early = _BackgroundVerify(self._run)

    def abandon(self) -> None:
        if self._early is not None:
            self._early.abandon()
            self._early = None

    def result(self) -> VerifyResult:
        """The early verification's result, or a verification run now."""
        early, self._early = self._early, None
        return early.result() if early is not None else self._run(lambda: False)

    def _run(self, stopped: Callable[[], bool], ready: Callable[[list[Any]], object] | None = None) -> VerifyResult:
        throttler = self.throttler

        def before_chunk() -> None:
            throttler.wait(given_up=stopped)
            if stopped():
                raise _VerifyAbandoned

        # beside the copy, one chunk at a time: the copy has the other core
        workers = 1 if ready is not None else 2
        return verify(self.engine, self.dialect, self.plan, before_chunk=before_chunk, ready=ready, workers=workers)


# -- the builds -----------------------------------------------------------------------------


class IndexBuilder:
    def __init__(
        self,
        engine: Engine,
        dialect: Dialect,
        plan: Plan,
        add_foreign_key: Callable[[str], None],
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.plan = plan
        self.schedule = dialect.schedule(plan.capture)
        #: runs one ADD FOREIGN KEY under the lock timeout and its retries (invariant 5)
        self.add_foreign_key = add_foreign_key

    @property
    def builds_here(self) -> bool:
        """Whether the shadow's planned indexes are built after the copy (some dialects build them before)."""
        return not self.schedule.indexes_before_copy and bool(self.plan.indexes)

    def run(self, start_verify: Callable[[], None] | None = None) -> None:
        """Build everything the shadow still lacks; ``start_verify`` is called once its key exists,
        before the (other) builds, when there are builds to run beside."""
        if changelog.in_use(self.plan):
            primary = self.plan.capture.primary_key_after_copy
            if primary is not None:
                self._build_unique_index(primary)
                self._attach_constraints([primary])
            changelog.catch_up(self.engine, self.dialect, self.plan)  # needs the key's index
        build_here = self.builds_here
        if build_here and start_verify is not None:
            start_verify()
        self._build_shadow_indexes(build_here)
        for stmt in self.plan.foreign_key_ddl:
            self.add_foreign_key(stmt)
        analyze = self.dialect.analyze_sql(self.plan.shadow_table)
        if analyze:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                self.dialect.run(conn, analyze)
        if changelog.in_use(self.plan):
            changelog.catch_up(self.engine, self.dialect, self.plan)

    def _build_shadow_indexes(self, build_here: bool) -> None:
        """The shadow's indexes, and with a change log its unique constraints' indexes too.

        With a change log nothing else writes the shadow and the builds are plain ones. They run one
        at a time: each already uses the server's parallel workers where it has them (PostgreSQL),
        and builds ending together flush their index files together, under the application's
        commits (dialects/postgresql/indexes.py). The unique constraints are built right after a
        full replay (changelog.py says why then) and attached once all builds are done.
        """
        uniques = list(self.plan.capture.unique_after_copy) if changelog.in_use(self.plan) else []
        together = None
        if changelog.in_use(self.plan) and build_here:
            statements = [u.sql[0] for u in uniques] + [ix.create_sql for ix in self.plan.indexes]
            together = self.dialect.indexes_together_sql(self.plan, statements)
        if together is not None:
            names = [u.name for u in uniques] + [ix.shadow_name for ix in self.plan.indexes]
            self._build_together(names, together)
        else:
            for unique in uniques:
                self._build_unique_index(unique)
            for index in self.plan.indexes if build_here else []:
                self._build_index(index)
        self._attach_constraints(uniques)

    def _attach_constraints(self, constraints: list[ConstraintAfterCopy]) -> None:
        for constraint in constraints:
            with self.engine.begin() as conn:
                inspector = sa.inspect(conn)
                attached = {u["name"] for u in inspector.get_unique_constraints(self.plan.shadow_table)}
                attached.add(inspector.get_pk_constraint(self.plan.shadow_table).get("name"))
                if constraint.name not in attached and len(constraint.sql) > 1:
                    self.dialect.run(conn, constraint.sql[1])

    def _build_together(self, names: list[str], clauses: list[str]) -> None:
        """All of the shadow's indexes in one statement (one scan of the table)."""

        def build() -> None:
            log.info("building indexes", indexes=names)
            try:
                self.dialect.build_indexes_together(self.engine, self.plan, names, clauses)
            except DBAPIError as exc:
                self._raise_collision(exc, "a unique index")

        self._retry_after_replay(build, "indexes")

    def _build_index(self, index: IndexPlan) -> None:
        log.info("building index", index=index.final_name)
        self.dialect.build_index(self.engine, self.plan, index)

    def _build_unique_index(self, unique: ConstraintAfterCopy) -> None:
        self._retry_after_replay(functools.partial(self._build_unique_index_once, unique), unique.name)

    def _retry_after_replay(self, build: Callable[[], None], what: str) -> None:
        """Where a replay cannot read the log and the original at one instant, the shadow can hold a
        row that is stale until a later entry is applied, and a unique build can meet it as a
        duplicate: the build is retried after another replay; a real collision stays."""
        retries = self.schedule.unique_build_retries
        for attempt in range(retries + 1):
            try:
                build()
                return
            except CopyFailed:
                if attempt == retries:
                    raise
                log.info("a unique index met a duplicate; replaying the log first", building=what)
                changelog.catch_up(self.engine, self.dialect, self.plan)

    def _raise_collision(self, exc: DBAPIError, what: str) -> None:
        """A data error of a unique build is a collision the copy expressions made: CopyFailed."""
        if self.dialect.is_data_error(exc):
            raise CopyFailed(
                f"the new definition makes rows collide in {what}: {first_line(exc)}",
                hint="the copy expressions map different values to the same one; change them and plan again",
            ) from exc
        raise exc

    def _build_unique_index_once(self, unique: ConstraintAfterCopy) -> None:
        with self.engine.begin() as conn:
            if self.dialect.name_taken(conn, self.plan.shadow_table, unique.name):
                return  # built by a run that stopped later (each build is one transaction)
            log.info("building unique constraint", constraint=unique.name)
            try:
                self.dialect.run(conn, unique.sql[0])
            except DBAPIError as exc:
                self._raise_collision(exc, f"unique constraint {unique.name!r}")
