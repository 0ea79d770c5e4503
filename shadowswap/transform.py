"""``--transform MODULE:FUNCTION``: new columns computed in Python from the original row, exactly.

The change log (changelog.py) is what makes this possible: its triggers only record which keys
changed, so nothing inside the database ever has to run Python. The copy reads a chunk of the
original, calls the function for each row and writes the chunk in one round trip (PostgreSQL
``COPY``, MySQL multi-row ``INSERT``); each replay does the same for the keys the log holds, and
the swap for its last entries under its lock. So the shadow is ``f(original)`` at every key with
no log entry, as with the SQL copy (invariants 1 and 2), as long as ``f`` is a function of the row
alone: deterministic, no clock, no randomness, no reads of other rows (a ``now()`` belongs in a
column default). The columns the function does not return come from the copy expressions as
usual; on PostgreSQL those travel as their text rendering, which the column's input function reads
back exactly, so no value passes through a Python type it could be changed by.

A failure inside the function (or a value its column cannot hold) is a data failure: the
migration stops at that row before anything is swapped and everything it created is removed
(executor.py), with one line naming the key, the exception and the user's own file and line.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shadowswap.errors import CopyFailed, StalePlan, UsageError
from shadowswap.plan import ColumnPlan, Plan, TransformCheck, TransformPlan

if TYPE_CHECKING:
    from shadowswap.dialects import Dialect

_PACKAGE_DIR = str(Path(__file__).resolve().parent)

#: rows a replay reads and writes at a time (memory stays flat however many keys the log holds)
REPLAY_BATCH = 5000


class TransformFailed(CopyFailed):
    """The user's function raised (or returned something the new table cannot hold) for a row."""


# -- loading ----------------------------------------------------------------------------------


def parse_spec(spec: str) -> tuple[str, str]:
    module, sep, function = spec.partition(":")
    if not sep or not module.strip() or not function.strip() or not function.strip().isidentifier():
        raise UsageError(
            f"--transform {spec!r} is not MODULE:FUNCTION",
            hint="e.g. --transform legacy:transform (legacy.py in the current directory or on PYTHONPATH)",
        )
    return module.strip(), function.strip()


def load(module: str, function: str) -> tuple[Callable[[Mapping[str, Any]], Any], str, str]:
    """The function, its module's file and that file's sha256. The current directory is searched
    first, as ``python -c 'import legacy'`` would."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # the user's module: any error in it is theirs to see, on one line
        raise UsageError(
            f"--transform: cannot import {module!r}: {type(exc).__name__}: {exc}{_where(exc)}",
            hint="the module must be importable from the current directory or PYTHONPATH",
        ) from None
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise UsageError(f"--transform: module {module!r} has no function {function!r}")
    source_file = getattr(mod, "__file__", None)
    if not source_file or not os.path.isfile(source_file):
        raise UsageError(f"--transform: module {module!r} has no source file to fingerprint")
    return fn, str(Path(source_file).resolve()), source_hash(source_file)


def source_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_unchanged(spec: TransformPlan) -> None:
    """``execute`` runs the function it was planned with, or nothing (stale plan, exit 4)."""
    try:
        _, source_file, digest = load(spec.module, spec.function)
    except UsageError as exc:
        raise StalePlan(
            f"the plan is stale: its transform {spec.spec} cannot be loaded now ({exc})",
            hint="run `shadowswap plan` again",
        ) from None
    if digest != spec.source_sha256:
        raise StalePlan(
            f"the plan is stale: the transform {spec.spec} ({source_file}) changed since it was planned",
            hint="run `shadowswap plan` again (rows copied with the old function would not match the new one)",
        )


def _where(exc: BaseException, prefer: str | None = None) -> str:
    """`` (file:line)`` of the user's own frame: the deepest frame in ``prefer`` (their module), else
    the deepest outside shadowswap and the standard library."""
    frames = traceback.extract_tb(exc.__traceback__)
    if prefer is not None:
        mine = [f for f in frames if os.path.realpath(f.filename) == prefer]
        if mine:
            return f" ({os.path.basename(mine[-1].filename)}:{mine[-1].lineno})"
    stdlib = os.path.dirname(os.__file__)
    outside = [
        f
        for f in frames
        if not os.path.realpath(f.filename).startswith(_PACKAGE_DIR) and not f.filename.startswith(stdlib)
    ]
    if outside:
        return f" ({os.path.basename(outside[-1].filename)}:{outside[-1].lineno})"
    return ""


# -- planning ---------------------------------------------------------------------------------


def plan_transform(
    conn: Connection,
    dialect: Dialect,
    spec: str,
    table: str,
    source_columns: Sequence[str],
    pk: Sequence[str],
    columns: list[ColumnPlan],
    defaulted: list[ColumnPlan],
) -> tuple[TransformPlan, list[ColumnPlan], list[ColumnPlan]]:
    """The plan's transform, and the copy's columns with those it fills among them.

    Which columns it fills is what it returns for the table's first row (the added columns
    without a default when the table is empty); every row must return the same keys."""
    module, function = parse_spec(spec)
    fn, source_file, digest = load(module, function)
    names = [c.name for c in columns] + [c.name for c in defaulted]
    sample = conn.execute(
        sa.text(
            f"SELECT {', '.join(dialect.q(c) for c in source_columns)} FROM {dialect.q(table)} "
            f"ORDER BY {dialect.order_by(pk)} LIMIT 1"
        )
    ).first()
    if sample is not None:
        row = dict(zip(source_columns, sample, strict=True))
        try:
            out = fn(row)
        except Exception as exc:
            key = ", ".join(f"{k}={row[k]!r}" for k in pk)
            raise UsageError(
                f"--transform {spec} fails on the first row ({key}): {type(exc).__name__}: {exc}"
                f"{_where(exc, source_file)}",
                hint="fix the function; `plan --check-transform` runs it over every row",
            ) from None
        if not isinstance(out, Mapping) or not out:
            raise UsageError(
                f"--transform {spec} returned {type(out).__name__} for the first row, not a dict of columns"
            )
        fills = list(out)
    else:
        fills = [c.name for c in defaulted if c.expression == "NULL"]
    unknown = [c for c in fills if c not in names]
    if unknown:
        raise UsageError(
            f"--transform {spec} returns {', '.join(map(repr, unknown))}, not a column of the new table",
            hint=f"the new table's columns: {', '.join(names)}",
        )
    by_name = {c.name: c for c in columns}
    keys = [by_name[k].name for k in by_name if by_name[k].source_column in pk]
    if any(c in keys for c in fills):
        raise UsageError(
            f"--transform {spec} returns a primary-key column ({', '.join(c for c in fills if c in keys)})",
            hint="the change log tracks rows by their key, so the key is copied as it is",
        )
    if not fills:
        raise UsageError(
            f"--transform {spec}: no column to fill", hint="the plan adds none and the function returns none"
        )
    # a filled column the copy would have left to its default is written by the copy now
    moved = [c for c in defaulted if c.name in fills]
    for c in moved:
        if c.expression.startswith("GENERATED"):
            raise UsageError(f"--transform {spec} returns {c.name!r}, a generated column the engine computes")
    copied = [*columns, *(ColumnPlan(**{**c.__dict__, "expression": "NULL"}) for c in moved)]
    kept = [c for c in defaulted if c.name not in fills]
    return TransformPlan(module, function, source_file, digest, fills), copied, kept


# -- the rows ---------------------------------------------------------------------------------


def _is_json(type_sql: str) -> bool:
    return type_sql.split("(")[0].strip().lower() in ("json", "jsonb")


@dataclass
class Transformer:
    """The loaded function and how its rows are read and written for one plan."""

    dialect: Dialect
    plan: Plan
    fn: Callable[[Mapping[str, Any]], Any]
    source_file: str
    passthrough: list[ColumnPlan] = field(init=False)
    filled: list[ColumnPlan] = field(init=False)

    def __post_init__(self) -> None:
        spec = self.spec
        fills = set(spec.columns)
        self.passthrough = [c for c in self.plan.columns if c.name not in fills]
        by_name = {c.name: c for c in self.plan.columns}
        self.filled = [by_name[n] for n in spec.columns]
        self._json = [_is_json(c.new_type) for c in self.filled]
        # the engine's own adaptation of a returned value (SQLite: by the column's affinity)
        self._adapters = [
            (i, adapt) for i, c in enumerate(self.filled) if (adapt := self.dialect.transform_adapter(c)) is not None
        ]
        self._width = len(self.plan.source_columns)
        key_index = {c: i for i, c in enumerate(self.plan.source_columns)}
        self._key_at = [key_index[k] for k in self.plan.primary_key]
        # each passthrough column: its own expression, selected after the source columns, or the
        # source column itself (read once, for the function and for the write)
        self._expressions = [self.dialect.transform_passthrough(c) for c in self.passthrough]
        at, extra = [], self._width
        for c, expression in zip(self.passthrough, self._expressions, strict=True):
            if expression is None:
                assert c.source_column is not None
                at.append(key_index[c.source_column])
            else:
                at.append(extra)
                extra += 1
        self._passthrough_at = at

    @classmethod
    def for_plan(cls, dialect: Dialect, plan: Plan) -> Transformer:
        assert plan.transform is not None
        fn, source_file, _ = load(plan.transform.module, plan.transform.function)
        return cls(dialect, plan, fn, source_file)

    @property
    def spec(self) -> TransformPlan:
        assert self.plan.transform is not None
        return self.plan.transform

    @property
    def insert_columns(self) -> list[ColumnPlan]:
        return [*self.passthrough, *self.filled]

    def select_sql(self, where: str, order: bool = True) -> str:
        """Each original row with the copy expressions of the columns the function leaves alone."""
        d = self.dialect
        cols = [f"src.{d.q(c)}" for c in self.plan.source_columns]
        cols += [e for e in self._expressions if e is not None]
        sql = f"SELECT {', '.join(cols)} FROM {d.q(self.plan.table)} AS src WHERE {where}"
        return sql + (f" ORDER BY {d.order_by(self.plan.primary_key, 'src.')}" if order else "")

    def describe_key(self, raw: Sequence[Any]) -> str:
        pk = self.plan.primary_key
        if len(pk) == 1:
            return f"{pk[0]}={raw[self._key_at[0]]!r}"
        return f"({', '.join(pk)})=({', '.join(repr(raw[i]) for i in self._key_at)})"

    def fail(self, raw: Sequence[Any], exc: BaseException, what: str = "") -> TransformFailed:
        return TransformFailed(
            f"the transform {self.spec.spec} failed on the row {self.describe_key(raw)}: "
            f"{what}{type(exc).__name__}: {exc}{_where(exc, self.source_file)}; "
            "nothing was swapped, and everything the migration created was removed",
            hint="fix the function (or the row); `shadowswap plan --check-transform` runs it over every row",
        )

    def compute(self, raw: Sequence[Any]) -> list[Any]:
        """The function's values for one original row, in ``filled`` order, adapted for the driver."""
        row = dict(zip(self.plan.source_columns, raw[: self._width], strict=False))
        try:
            out = self.fn(row)
        except Exception as exc:
            raise self.fail(raw, exc) from None
        if not isinstance(out, Mapping) or len(out) != len(self.filled):
            got = sorted(out) if isinstance(out, Mapping) else type(out).__name__
            raise self.fail(raw, ValueError(f"returned {got}, the plan fills {self.spec.columns}"))
        values = []
        for c, is_json in zip(self.filled, self._json, strict=True):
            try:
                value = out[c.name]
            except KeyError:
                raise self.fail(
                    raw, ValueError(f"returned no {c.name!r}; the plan fills {self.spec.columns}")
                ) from None
            if is_json and value is not None and not isinstance(value, str):
                try:
                    value = json.dumps(value)
                except (TypeError, ValueError) as exc:
                    raise self.fail(raw, exc, f"{c.name!r} as JSON: ") from None
            values.append(value)
        for i, adapt in self._adapters:
            try:
                values[i] = adapt(values[i])
            except (TypeError, ValueError) as exc:
                raise self.fail(raw, exc, f"{self.filled[i].name!r}: ") from None
        for c, is_json, value in zip(self.filled, self._json, values, strict=True):
            if not is_json and isinstance(value, (dict, list, set)) and not self.dialect.takes_sequences:
                raise self.fail(
                    raw, TypeError(f"{c.name!r} is {c.new_type}, not JSON: it cannot hold a {type(value).__name__}")
                )
        return values

    def rows(self, raw_rows: Iterable[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
        """``compute`` for a chunk, with its per-row overhead hoisted out of the loop (the copy's
        speed is this loop's: issue 17's target is 50,000 rows/s). Any row that does not take the
        plain path (an exception, other keys, a value needing a check) goes through ``compute``,
        which raises with the row's key."""
        fn, names, at = self.fn, self.plan.source_columns, self._passthrough_at
        fills = [c.name for c in self.filled]
        json_at = [i for i, j in enumerate(self._json) if j]
        other_at = [] if self.dialect.takes_sequences else [i for i, j in enumerate(self._json) if not j]
        adapters = self._adapters
        dumps = json.dumps
        for raw in raw_rows:
            try:
                out = fn(dict(zip(names, raw, strict=False)))
                values = [out[name] for name in fills]
                if len(out) != len(fills):
                    raise KeyError
                for i in json_at:
                    value = values[i]
                    if value is not None and type(value) is not str:
                        values[i] = dumps(value)
                for i, adapt in adapters:
                    values[i] = adapt(values[i])
                for i in other_at:
                    if isinstance(values[i], (dict, list, set)):
                        raise TypeError
            except Exception:
                values = self.compute(raw)  # raises TransformFailed naming the row
            yield (*[raw[i] for i in at], *values)

    # -- copy, replay ---------------------------------------------------------------------

    def write_where(self, conn: Connection, where: str, params: Mapping[str, Any], stream: bool = False) -> int:
        """Read the original's rows matching ``where``, transform them, write them to the shadow."""
        sql = self.dialect.statement(self.select_sql(where))
        if not stream:
            raw_rows = conn.execute(sql, dict(params)).all()
            return self._write(conn, raw_rows)
        total = 0
        result = conn.execute(sql, dict(params), execution_options={"yield_per": REPLAY_BATCH})
        # the size given here too: partitions() of a text() result ignores yield_per (SQLAlchemy 2.1)
        # and would hand over the whole stream as one list
        for batch in result.partitions(REPLAY_BATCH):
            total += self._write(conn, batch)
        return total

    def _write(self, conn: Connection, raw_rows: Sequence[Sequence[Any]]) -> int:
        if not raw_rows:
            return 0
        rows = list(self.rows(raw_rows))
        dbapi_error = self.dialect.sa_dialect.loaded_dbapi.Error
        try:
            self.dialect.write_rows(conn, self.plan.shadow_table, [c.name for c in self.insert_columns], rows)
        except (TypeError, ValueError) as exc:  # the driver could not adapt a value the function returned
            raise TransformFailed(
                f"the transform {self.spec.spec} returned a value the driver cannot store: {type(exc).__name__}: {exc}",
                hint="return values of the new columns' types (dict/list for JSON, Decimal, datetime, bytes, None)",
            ) from None
        except dbapi_error as exc:
            # write_rows talks to the driver itself: its error comes back as SQLAlchemy's, which the
            # copy and the replays read (a duplicate retried after a replay, a busy lock, a data error)
            statement = f"INSERT INTO {self.dialect.q(self.plan.shadow_table)} …"
            raise DBAPIError.instance(statement, None, exc, dbapi_error) from exc
        return len(rows)

    def _write_by_key(self, conn: Connection, where: str) -> int:
        """``write_where`` REPLAY_BATCH rows at a time, walking the key, for a driver that cannot
        stream (PyMySQL's unbuffered cursor holds the connection the writes need): a retry with the
        whole log, or the swap's last replay, keeps memory flat in the log's size. Exact as one read
        (changelog.py): each key is read once, after its entries were taken, in the caller's
        transaction; a write between two reads has an entry of its own, left for the next replay."""
        d, pk = self.dialect, self.plan.primary_key
        total = 0
        lo: list[Any] | None = None
        while True:
            after = f" AND {d.key_after(pk, 'lo', 'src.')}" if lo is not None else ""
            sql = self.select_sql(f"({where}){after}") + f" LIMIT {int(REPLAY_BATCH)}"
            raw_rows = conn.execute(d.statement(sql), {f"lo{i}": v for i, v in enumerate(lo or [])}).all()
            total += self._write(conn, raw_rows)
            if len(raw_rows) < REPLAY_BATCH:
                return total
            lo = [raw_rows[-1][i] for i in self._key_at]

    def copy_range(self, conn: Connection, has_lo: bool, params: Mapping[str, Any]) -> int:
        where = self.dialect.range_predicate(self.plan.primary_key, has_lo, "src.")
        return self.write_where(conn, where, params)

    def replay(self, conn: Connection, delete_sql: str, forget_sql: str, logged: str) -> int:
        """One replay in the caller's transaction (a snapshot, or under the swap's lock): the shadow's
        rows of the logged keys deleted, ``f`` of those keys' current rows written, the entries
        forgotten (changelog.py says why that order and why it is exact). Returns entries forgotten."""
        conn.execute(self.dialect.statement(delete_sql))
        if self.dialect.transform_streams:
            self.write_where(conn, logged, {}, stream=True)
        else:
            self._write_by_key(conn, logged)
        result = conn.execute(self.dialect.statement(forget_sql))
        return max(result.rowcount, 0)


# -- the check: plan --check-transform --------------------------------------------------------


def check_rows(engine: Engine, dialect: Dialect, plan: Plan, chunk: int = 5000, keep: int = 10) -> TransformCheck:
    """The function over every current row, read-only, chunk by chunk; failures named by key."""
    transformer = Transformer.for_plan(dialect, plan)
    found = TransformCheck(rows_scanned=0)
    pk = plan.primary_key
    lo: list[Any] | None = None
    with engine.connect() as conn:
        while True:
            where = dialect.key_after(pk, "lo", "src.") if lo is not None else "1 = 1"
            sql = transformer.select_sql(where) + f" LIMIT {int(chunk)}"
            params = {f"lo{i}": v for i, v in enumerate(lo or [])}
            raw_rows = conn.execute(dialect.statement(sql), params).all()
            conn.rollback()
            for raw in raw_rows:
                try:
                    transformer.compute(raw)
                except TransformFailed as exc:
                    found.rows_failing += 1
                    if len(found.failures) < keep:
                        found.failures.append(str(exc).split("; nothing was swapped")[0])
            found.rows_scanned += len(raw_rows)
            if len(raw_rows) < chunk:
                return found
            lo = [raw_rows[-1][i] for i in transformer._key_at]


# -- verification -----------------------------------------------------------------------------


def checksum_view(plan: Plan) -> Plan:
    """The plan as the server-side checksum sees it: the columns the function fills left out
    (the server cannot compute Python); ``compare_range`` checks those."""
    import dataclasses

    assert plan.transform is not None
    fills = set(plan.transform.columns)
    return dataclasses.replace(plan, columns=[c for c in plan.columns if c.name not in fills], transform=None)


def same(expected: Any, stored: Any, is_json: bool) -> bool:
    """Whether a stored value is the one written for ``expected`` (the adapted function value)."""
    if expected is None or stored is None:
        return expected is None and stored is None
    if is_json:

        def load(v: Any) -> Any:
            return json.loads(v) if isinstance(v, (str, bytes, bytearray)) else v

        try:
            return bool(load(expected) == load(stored))
        except ValueError:  # text that is not JSON, which SQLite's JSON columns take as it is
            return bool(expected == stored)
    if isinstance(stored, (bytes, bytearray, memoryview)):
        return isinstance(expected, (bytes, bytearray, memoryview)) and bytes(stored) == bytes(expected)
    if isinstance(stored, decimal.Decimal) and isinstance(expected, (int, float, str, decimal.Decimal)):
        try:
            return decimal.Decimal(str(expected)) == stored
        except decimal.InvalidOperation:
            return False
    if isinstance(stored, dt.datetime) and isinstance(expected, dt.datetime):
        if (stored.tzinfo is None) != (expected.tzinfo is None):
            # a naive value stored in a zoned column is read in the session's zone
            expected = expected.replace(tzinfo=stored.tzinfo)
        return bool(expected == stored)
    if expected == stored:
        return True
    if isinstance(stored, (int, float)) and isinstance(expected, str) and not isinstance(stored, bool):
        # SQLite: a Decimal is written as its text, which a NUMERIC column stores as a number
        try:
            return decimal.Decimal(expected) == decimal.Decimal(repr(stored))
        except decimal.InvalidOperation:
            return False
    return str(expected) == str(stored)


def compare_range(
    engine: Engine, dialect: Dialect, plan: Plan, lo: list[Any] | None, hi: list[Any], transformer: Transformer
) -> list[tuple[Any, ...]]:
    """Keys in (lo, hi] whose filled columns differ from the function applied to the original,
    both read at one instant; keys with a change waiting in the log are the replays' (changelog.py)."""
    d = dialect
    has_lo = lo is not None
    params = {**{f"lo{i}": v for i, v in enumerate(lo or [])}, **{f"hi{i}": v for i, v in enumerate(hi)}}
    src_where = d.range_predicate(plan.primary_key, has_lo, "src.") + d.unlogged_predicate(plan, True)
    shadow_pk = [c.name for c in plan.shadow_primary_key]
    filled = transformer.filled
    shadow_sql = (
        f"SELECT {', '.join(f'src.{d.q(k)}' for k in shadow_pk)}, {', '.join(f'src.{d.q(c.name)}' for c in filled)} "
        f"FROM {d.q(plan.shadow_table)} AS src "
        f"WHERE {d.range_predicate(shadow_pk, has_lo, 'src.')}{d.unlogged_predicate(plan, False)}"
    )
    width = len(shadow_pk)
    with engine.connect() as conn:
        d.begin_snapshot(conn)
        source = conn.execute(d.statement(transformer.select_sql(src_where, order=False)), params).all()
        shadow = {tuple(r[:width]): tuple(r[width:]) for r in conn.execute(d.statement(shadow_sql), params)}
        conn.rollback()
    differing = []
    for raw in source:
        key = tuple(raw[i] for i in transformer._key_at)
        stored = shadow.get(key)
        if stored is None:
            continue  # a missing row is the checksum's to find (it counts rows)
        expected = transformer.compute(raw)
        if not all(same(e, s, j) for e, s, j in zip(expected, stored, transformer._json, strict=True)):
            differing.append(key)
    return differing
