"""The plan: a reviewable value object, printed and serialized without touching the database.

Like ``terraform plan -out``, the file written by ``shadowswap plan`` is what ``execute`` runs.
Everything execution needs that depends on the live schema is decided here and fingerprinted,
so ``execute`` can refuse a plan whose table has changed since.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shadowswap.errors import UsageError
from shadowswap.validation import check_plan, check_plan_data, read_plan_text

#: 2: per-change strategy and reasons, in-place SQL, server-default columns, cast check (README: plan --json)
#: 3: the capture mode a typed ``capture`` object, what the swap moves a typed ``moved_at_swap``
#: object (both were untyped ``extra`` keys)
#: 4: ``transform``, the Python function that fills columns in the copy and the replays (transform.py);
#: ``way_back`` (how ``revert`` undoes the swap, shadowswap/revert.py) and ``reverts``; all default,
#: so a version-3 file still loads
PLAN_VERSION = 4
#: plan files this shadowswap still reads: each later version only added fields with defaults
READABLE_VERSIONS = (3, 4)

#: how writes made during the copy reach the shadow (shadowswap/changelog.py, invariant 1)
CaptureMode = Literal["change_log", "dual_write"]
CHANGE_LOG: CaptureMode = "change_log"
DUAL_WRITE: CaptureMode = "dual_write"


@dataclass
class ColumnPlan:
    """One column of the new table and the expression that fills it from a source row ``src``."""

    name: str
    old_type: str | None
    new_type: str
    old_nullable: bool | None
    new_nullable: bool
    expression: str
    changed: bool = False
    source_column: str | None = None


@dataclass
class IndexPlan:
    """A secondary index built on the shadow after the copy, renamed to ``final_name`` at the swap."""

    shadow_name: str
    final_name: str
    old_name: str
    create_sql: str
    unique: bool = False
    #: added by this plan: the original table has no index of that name to move aside at the swap
    new: bool = False
    #: the new table's columns it covers (empty where an expression is among them)
    columns: list[str] = field(default_factory=list)


@dataclass
class ChangePlan:
    """One requested change: the cheapest safe way to make it, why, and whether it destroys anything."""

    kind: str
    description: str
    strategy: str
    reason: str
    destructive: str | None = None
    #: the column (as named in the original table; the new name for an added one) or index it is about
    column: str | None = None


@dataclass
class ColumnCheck:
    """What ``--check-casts`` found for one column: rows whose value fails or changes in the new type."""

    column: str
    expression: str
    rows_failing: int = 0
    rows_changed: int = 0
    sample_keys: list[list[Any]] = field(default_factory=list)
    #: False when the scan stopped bisecting failing chunks early: the counts are then lower bounds
    exact: bool = True


@dataclass
class DuplicateCheck:
    """What ``--check-casts`` found for one unique key the plan adds or converts: values the live
    rows hold more than once (uniqueness.py)."""

    index: str
    columns: list[str]
    #: distinct values held by more than one row
    values: int
    #: the rows holding them
    rows: int
    #: a few of them: the key's values, then how many rows hold them
    sample_values: list[list[Any]] = field(default_factory=list)


@dataclass
class CastCheck:
    rows_scanned: int
    columns: list[ColumnCheck]
    duplicates: list[DuplicateCheck] = field(default_factory=list)

    @property
    def rows_failing(self) -> int:
        return sum(c.rows_failing for c in self.columns) + sum(d.rows for d in self.duplicates)

    @property
    def rows_changed(self) -> int:
        return sum(c.rows_changed for c in self.columns)


@dataclass
class TransformCheck:
    """What ``plan --check-transform`` found: the function run over every current row, read-only."""

    rows_scanned: int
    rows_failing: int = 0
    #: one line each: the key, the exception, the user's file:line (the first few)
    failures: list[str] = field(default_factory=list)


@dataclass
class TransformPlan:
    """``--transform MODULE:FUNCTION``: a Python function of the original row that fills ``columns``
    of the new table in the copy, every replay and the swap's last replay (shadowswap/transform.py).

    ``source_sha256`` is the hash of the module's file when planned: ``execute`` refuses the plan
    as stale once it differs (the rows copied so far came from that source)."""

    module: str
    function: str
    source_file: str
    source_sha256: str
    #: the new table's columns the function returns (and only those), in insert order
    columns: list[str]
    check: TransformCheck | None = None

    @property
    def spec(self) -> str:
        return f"{self.module}:{self.function}"


@dataclass(frozen=True)
class ConstraintAfterCopy:
    """A unique constraint (or the primary key) the shadow gets only after the copy and a replay.

    ``sql[0]`` builds its index; ``sql[1]``, where the engine has one, attaches the index as the
    constraint (``Dialect.unique_constraint_sql``)."""

    name: str
    sql: tuple[str, ...]


@dataclass(frozen=True)
class CopyRoute:
    """How chunks reach the shadow, with the facts that chose it.

    Only MySQL/MariaDB has more than one route: under ``innodb_autoinc_lock_mode=1`` an
    ``INSERT … SELECT`` into a table with an AUTO_INCREMENT column holds its table-level AUTO-INC
    lock for the whole statement, which the dual-write triggers would queue behind, so chunks go
    through a helper table and its trigger instead. Other engines keep the default."""

    via: Literal["direct", "helper"] = "direct"
    helper_table: str | None = None
    #: the AUTO_INCREMENT column, and the server's ``innodb_autoinc_lock_mode`` when planned
    autoinc_column: str | None = None
    autoinc_lock_mode: int | None = None

    @property
    def helper(self) -> str:
        """The helper table; only asked where the route goes through it."""
        if self.helper_table is None:
            raise ValueError("this copy route has no helper table")
        return self.helper_table


@dataclass(frozen=True)
class Capture:
    """How the writes made while the copy runs reach the shadow, decided once, by the planner.

    ``change_log``: the triggers only log changed keys in ``log_table`` and replays apply them
    (shadowswap/changelog.py); the shadow's unique constraints, and on some engines its primary
    key, are built after the copy. ``dual_write``: the triggers write the shadow themselves."""

    mode: CaptureMode = DUAL_WRITE
    log_table: str | None = None
    route: CopyRoute = field(default_factory=CopyRoute)
    primary_key_after_copy: ConstraintAfterCopy | None = None
    unique_after_copy: tuple[ConstraintAfterCopy, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in (CHANGE_LOG, DUAL_WRITE):
            raise ValueError(f"unknown capture mode {self.mode!r}")
        if (self.mode == CHANGE_LOG) != (self.log_table is not None):
            raise ValueError(f"capture mode {self.mode!r} with log table {self.log_table!r}")

    @property
    def change_log(self) -> bool:
        return self.mode == CHANGE_LOG

    @property
    def logged_table(self) -> str:
        """The change log's table; only asked where the mode is ``change_log``."""
        if self.log_table is None:
            raise ValueError("this migration has no change log")
        return self.log_table

    def without_log(self) -> Capture:
        """This capture once the log is gone (it goes with the swap): nothing left to consult."""
        return dataclasses.replace(self, mode=DUAL_WRITE, log_table=None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capture:
        primary = data.get("primary_key_after_copy")
        return cls(
            mode=data["mode"],
            log_table=data.get("log_table"),
            route=CopyRoute(**data.get("route", {})),
            primary_key_after_copy=_constraint(primary) if primary is not None else None,
            unique_after_copy=tuple(_constraint(u) for u in data.get("unique_after_copy", [])),
        )


def _constraint(data: dict[str, Any]) -> ConstraintAfterCopy:
    return ConstraintAfterCopy(name=data["name"], sql=tuple(data["sql"]))


@dataclass(frozen=True)
class CarriedTrigger:
    """One of the application's triggers on the table, recreated on the new table at the swap.

    ``head`` is its stored CREATE TRIGGER up to the table's name and ``tail`` the rest, so the same
    text names another table; it runs under ``sql_mode``, the mode it was created with."""

    name: str
    sql_mode: str
    head: str
    tail: str


@dataclass(frozen=True)
class KeyFromTable:
    """A foreign key of the table, added to the new table at the swap: ``sql`` is its ADD clause."""

    name: str
    sql: str


@dataclass(frozen=True)
class KeyToTable:
    """A foreign key of another table (``table``) referencing the table, re-pointed at the new table at
    the swap: ``head`` and ``tail`` are its ADD clause around the referenced table's name."""

    table: str
    name: str
    head: str
    tail: str


@dataclass(frozen=True)
class MovedAtSwap:
    """What the swap moves from the table onto the new one under its lock, read by the planner.

    Only MySQL/MariaDB moves anything (dialects/mysql/app_triggers.py, foreign_keys.py): its
    RENAME TABLE leaves the application's triggers on the old table and takes other tables' keys
    along with it. The swap compares these with the live catalog and stops on a difference."""

    triggers: tuple[CarriedTrigger, ...] = ()
    keys_from: tuple[KeyFromTable, ...] = ()
    keys_to: tuple[KeyToTable, ...] = ()

    @property
    def moves_keys(self) -> bool:
        return bool(self.keys_from or self.keys_to)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MovedAtSwap:
        return cls(
            triggers=tuple(CarriedTrigger(**t) for t in data.get("triggers", [])),
            keys_from=tuple(KeyFromTable(**k) for k in data.get("keys_from", [])),
            keys_to=tuple(KeyToTable(**k) for k in data.get("keys_to", [])),
        )


@dataclass
class WayBack:
    """How ``shadowswap revert`` goes back to the original table after the swap (shadowswap/revert.py).

    From the swap on, capture triggers on the new table log changed keys in ``log_table`` (as the
    forward triggers log into the change log); ``revert`` replays them into the kept old table
    through ``columns`` (the old table's columns computed from a new-table row ``src``), verifies,
    and swaps back. ``possible`` False says why in ``reason`` (the way back is then a new migration).
    """

    possible: bool
    reason: str = ""
    log_table: str = ""
    #: the reverse capture's triggers on the new table (``Dialect.trigger_name(table, "r…")``)
    trigger_names: list[str] = field(default_factory=list)
    #: the old table's columns, each from the new table's row ``src`` (the reverse conversion)
    columns: list[ColumnPlan] = field(default_factory=list)
    #: CREATE TABLE (and index) of the reverse log, run inside the swap's transaction
    log_ddl: list[str] = field(default_factory=list)
    #: the migrated table's name once reverted, kept until ``cleanup``
    reverted_table: str = ""
    #: one line per column the way back treats specially (shown by ``plan``)
    notes: list[str] = field(default_factory=list)
    #: an in-place plan's inverse in-place ALTERs (``revert`` runs them as ``execute`` ran the plan's)
    inverse_sql: list[str] = field(default_factory=list)


@dataclass
class Plan:
    dialect: str
    table: str
    shadow_table: str
    old_table: str
    primary_key: list[str]
    source_columns: list[str]
    columns: list[ColumnPlan]
    fingerprint: str
    estimated_rows: int
    shadow_ddl: list[str]
    indexes: list[IndexPlan]
    trigger_names: list[str]
    trigger_ddl: list[str]
    drop_trigger_ddl: list[str]
    swap_sql: list[str]
    post_swap_sql: list[str]
    changes: list[str]
    #: foreign keys added to the shadow after the copy (PostgreSQL: NOT VALID, then VALIDATE)
    foreign_key_ddl: list[str] = field(default_factory=list)
    strategy: str = "shadow"
    verdict: str = "safe"
    notes: list[str] = field(default_factory=list)
    #: why ``strategy`` was chosen for the plan as a whole
    strategy_reason: str = ""
    change_plans: list[ChangePlan] = field(default_factory=list)
    #: the in-place ALTERs run under a lock timeout when ``strategy`` is ``instant``
    instant_sql: list[str] = field(default_factory=list)
    #: added columns the copy leaves to their server default (not in the insert list, not checksummed)
    default_columns: list[ColumnPlan] = field(default_factory=list)
    cast_check: CastCheck | None = None
    schema: str | None = None
    version: int = PLAN_VERSION
    capture: Capture = field(default_factory=Capture)
    moved_at_swap: MovedAtSwap = field(default_factory=MovedAtSwap)
    #: table options the swap sets on the new table after carrying the old one's (PostgreSQL: a
    #: changed storage parameter would otherwise be set back by the carry-over, surroundings.py)
    table_option_sql: list[str] = field(default_factory=list)
    #: ``--order-by``: the index whose key order the copy writes the rows in, and its key expressions
    order_by_index: str | None = None
    order_by: list[str] = field(default_factory=list)
    #: ``--transform``: columns filled by a Python function of the row (None: the copy expressions only)
    transform: TransformPlan | None = None
    #: the plan's own column settings (PostgreSQL SET STATISTICS / STORAGE / COMPRESSION), run on the
    #: new table inside the swap after the surroundings are carried over, so they win over the old values
    column_settings_sql: list[str] = field(default_factory=list)
    #: how ``revert`` undoes this plan's swap (None: planned before revert existed, or in place)
    way_back: WayBack | None = None
    #: set on the plan ``revert`` runs: the id of the migration whose swap it undoes
    reverts: int | None = None

    @property
    def shadow_primary_key(self) -> list[ColumnPlan]:
        by_source = {c.source_column: c for c in self.columns}
        return [by_source[k] for k in self.primary_key]

    @property
    def destructive(self) -> list[str]:
        return [c.destructive for c in self.change_plans if c.destructive]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False, default=str)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"the plan file is not valid JSON ({exc})") from None
        # every field checked before any is used: a hand-edited plan must fail here, not half-way
        # through a migration whose stored copy would then fail every resume the same way
        if isinstance(data, dict) and data.get("version") in READABLE_VERSIONS:
            data["version"] = PLAN_VERSION  # later versions only added fields with defaults
        check_plan_data(data, PLAN_VERSION)
        try:
            data["columns"] = [ColumnPlan(**c) for c in data["columns"]]
            data["indexes"] = [IndexPlan(**i) for i in data["indexes"]]
            data["default_columns"] = [ColumnPlan(**c) for c in data.get("default_columns", [])]
            data["change_plans"] = [ChangePlan(**c) for c in data.get("change_plans", [])]
            check = data.get("cast_check")
            if check is not None:
                check["columns"] = [ColumnCheck(**c) for c in check["columns"]]
                check["duplicates"] = [DuplicateCheck(**d) for d in check.get("duplicates", [])]
                data["cast_check"] = CastCheck(**check)
            data["capture"] = Capture.from_dict(data["capture"])
            data["moved_at_swap"] = MovedAtSwap.from_dict(data.get("moved_at_swap", {}))
            transform = data.get("transform")
            if transform is not None:
                found = transform.get("check")
                transform["check"] = TransformCheck(**found) if found is not None else None
                data["transform"] = TransformPlan(**transform)
            back = data.get("way_back")
            if back is not None:
                back["columns"] = [ColumnPlan(**c) for c in back.get("columns", [])]
                data["way_back"] = WayBack(**back)
            plan = cls(**data)
        except (TypeError, KeyError, ValueError) as exc:
            raise UsageError(f"the plan file is malformed ({exc})") from None
        check_plan(plan)
        return plan

    def write(self, path: Path) -> None:
        try:
            path.write_text(self.to_json() + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the plan to {path}: {exc.strerror}") from None

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls.from_json(read_plan_text(path))
