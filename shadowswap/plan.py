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

PLAN_VERSION = 1


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
    schema: str | None = None
    version: int = PLAN_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shadow_primary_key(self) -> list[ColumnPlan]:
        by_source = {c.source_column: c for c in self.columns}
        return [by_source[k] for k in self.primary_key]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"the plan file is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
            raise UsageError(
                f"the plan file has version {data.get('version') if isinstance(data, dict) else '?'}, "
                f"this shadowswap reads version {PLAN_VERSION}",
                hint="run `shadowswap plan` again with this version",
            )
        data["columns"] = [ColumnPlan(**c) for c in data["columns"]]
        data["indexes"] = [IndexPlan(**i) for i in data["indexes"]]
        try:
            return cls(**data)
        except TypeError as exc:
            raise UsageError(f"the plan file is malformed ({exc})") from None

    def write(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Plan:
        if not path.exists():
            raise UsageError(f"no plan file at {path}", hint="run `shadowswap plan TABLE --alter ...` first")
        return cls.from_json(path.read_text(encoding="utf-8"))
