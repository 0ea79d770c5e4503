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
from typing import Any

from shadowswap.errors import UsageError
from shadowswap.validation import check_plan, check_plan_data, read_plan_text

#: 2: per-change strategy and reasons, in-place SQL, server-default columns, cast check (README: plan --json)
PLAN_VERSION = 2


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
    extra: dict[str, Any] = field(default_factory=dict)

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
            plan = cls(**data)
        except (TypeError, KeyError) as exc:
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
