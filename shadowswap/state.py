"""The state table: one row per migration, so status, resume and cleanup work from any host.

A checkpoint is data (the last copied key), written in the same transaction as the chunk it
describes (invariant 4), so resuming is reading a row, not reconstructing memory.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

# The phases (their names and their order) live in phases.py; re-exported for ``state.CUT_OVER`` readers.
from shadowswap.phases import (
    ABORTED,
    ALTERED,
    CLEANED_UP,
    COPIED,
    CUT_OVER,
    FAILED,
    FINISHED,
    INDEXES_BUILT,
    PLANNED,
    REVERTED,
    SHADOW_CREATED,
    TRIGGERS_INSTALLED,
    VERIFIED,
    reached,
)

# what callers read as ``state.X``: the table's own names and the phases' (re-exported, defined once in phases.py)
__all__ = [
    "ABORTED",
    "ALTERED",
    "CLEANED_UP",
    "COPIED",
    "CUT_OVER",
    "FAILED",
    "FINISHED",
    "INDEXES_BUILT",
    "PLANNED",
    "REVERTED",
    "SHADOW_CREATED",
    "STATE_TABLE",
    "TRIGGERS_INSTALLED",
    "VERIFIED",
    "Migration",
    "active",
    "all_migrations",
    "create",
    "encode_key",
    "ensure",
    "flags",
    "get",
    "kept_old",
    "latest",
    "migrations",
    "moving_at_swap",
    "now",
    "record_chunk",
    "unfinished",
    "update",
]

STATE_TABLE = "shadowswap_migrations"

_metadata = sa.MetaData()
migrations = sa.Table(
    STATE_TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("shadow_table", sa.String(255), nullable=False),
    sa.Column("old_table", sa.String(255), nullable=False),
    sa.Column("phase", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("plan_json", sa.Text, nullable=False),
    sa.Column("checkpoint", sa.Text),
    sa.Column("max_key", sa.Text),
    sa.Column("rows_copied", sa.BigInteger, nullable=False, default=0),
    sa.Column("estimated_rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("cutover_lock_ms", sa.Float),
    sa.Column("error", sa.Text),
    # Added after the first release: nullable or defaulted, so ``ensure`` can add them to an older table.
    sa.Column("cutover_postponed", sa.Boolean, nullable=False, server_default=sa.false(), default=False),
    sa.Column("waiting", sa.Text),
    sa.Column("backup_path", sa.Text),
    # Set before a swap that moves the application's triggers or foreign keys one committing DDL at a
    # time (MySQL/MariaDB): a planned one found missing afterwards was dropped by that swap, not by
    # the user, and a resume or an abort puts it back from the plan.
    sa.Column("moving_at_swap", sa.Boolean, nullable=False, server_default=sa.false(), default=False),
    # the reverse capture's log table while the swap can be reverted (shadowswap/revert.py), else NULL
    sa.Column("reverse_log", sa.Text),
    sa.Column("revertible_since", sa.DateTime),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


@dataclass
class Migration:
    id: int
    table_name: str
    shadow_table: str
    old_table: str
    phase: str
    fingerprint: str
    plan_json: str
    checkpoint: list[Any] | None
    max_key: list[Any] | None
    rows_copied: int
    estimated_rows: int
    paused: bool
    cutover_lock_ms: float | None
    error: str | None
    started_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    cutover_postponed: bool = False
    waiting: str | None = None
    backup_path: str | None = None
    moving_at_swap: bool = False
    reverse_log: str | None = None
    revertible_since: dt.datetime | None = None

    def reached(self, phase: str) -> bool:
        return reached(self.phase, phase)

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> Migration:
        data = dict(row._mapping)
        for key in ("checkpoint", "max_key"):
            data[key] = json.loads(data[key]) if data[key] else None
        for key in ("paused", "cutover_postponed", "moving_at_swap"):
            data[key] = bool(data[key])
        return cls(**data)


def ensure(engine: Engine) -> None:
    """Create the state table, or add the columns a newer shadowswap needs to an existing one."""
    _metadata.create_all(engine, checkfirst=True)
    present = {c["name"] for c in sa.inspect(engine).get_columns(STATE_TABLE)}
    missing = [c for c in migrations.columns if c.name not in present]
    if not missing:
        return
    preparer = engine.dialect.identifier_preparer
    with engine.begin() as conn:
        for column in missing:
            ddl = sa.schema.CreateColumn(column).compile(dialect=engine.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {preparer.quote(STATE_TABLE)} ADD COLUMN {ddl}")


def exists(engine: Engine) -> bool:
    """Whether the state table is there; read-only commands look before they read, never create it."""
    return sa.inspect(engine).has_table(STATE_TABLE)


def applied_in_place(conn: Connection, table: str, fingerprint: str, instant_sql: list[str]) -> Migration | None:
    """The in-place migration that already ran these ALTERs from this starting table, if any: its
    re-run finds the table changed, and "already done" is then the true word, not "stale"."""
    import json as _json

    rows = conn.execute(
        sa.select(migrations)
        .where(migrations.c.table_name == table, migrations.c.phase == ALTERED, migrations.c.fingerprint == fingerprint)
        .order_by(migrations.c.id.desc())
    )
    for row in rows:
        m = Migration.from_row(row)
        try:
            if _json.loads(m.plan_json).get("instant_sql") == instant_sql:
                return m
        except (ValueError, AttributeError):
            continue  # an unreadable stored plan is simply not this one
    return None


def encode_key(values: list[Any] | tuple[Any, ...] | None) -> str | None:
    """A key as JSON. Binary values become ``{"hex": ...}``: ``str(b"...")`` would be a Python
    literal that nothing reads back (a bytea/BINARY/BLOB key crashed the copy on resume);
    :func:`shadowswap.copier.coerce_key` turns them back into bytes."""
    return None if values is None else json.dumps([_key_json(v) for v in values], default=str)


def _key_json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"hex": bytes(value).hex()}
    return value


def active(conn: Connection, table: str) -> Migration | None:
    """The migration of ``table`` that has not finished (cut over, aborted or cleaned up)."""
    row = conn.execute(
        sa.select(migrations)
        .where(migrations.c.table_name == table, migrations.c.phase.not_in([*FINISHED]))
        .order_by(migrations.c.id.desc())
    ).first()
    return Migration.from_row(row) if row else None


def latest(conn: Connection, table: str) -> Migration | None:
    row = conn.execute(
        sa.select(migrations).where(migrations.c.table_name == table).order_by(migrations.c.id.desc())
    ).first()
    return Migration.from_row(row) if row else None


def unfinished(conn: Connection) -> list[Migration]:
    rows = conn.execute(sa.select(migrations).where(migrations.c.phase.not_in([*FINISHED])).order_by(migrations.c.id))
    return [Migration.from_row(r) for r in rows]


def kept_old(conn: Connection, table: str | None = None) -> list[Migration]:
    query = sa.select(migrations).where(migrations.c.phase == CUT_OVER)
    if table:
        query = query.where(migrations.c.table_name == table)
    return [Migration.from_row(r) for r in conn.execute(query.order_by(migrations.c.id))]


def all_migrations(conn: Connection, limit: int = 50) -> list[Migration]:
    rows = conn.execute(sa.select(migrations).order_by(migrations.c.id.desc()).limit(limit))
    return [Migration.from_row(r) for r in rows]


def create(
    conn: Connection, *, table: str, shadow: str, old: str, fingerprint: str, plan_json: str, estimated_rows: int
) -> int:
    stamp = now()
    result = conn.execute(
        migrations.insert().values(
            table_name=table,
            shadow_table=shadow,
            old_table=old,
            phase=PLANNED,
            fingerprint=fingerprint,
            plan_json=plan_json,
            rows_copied=0,
            estimated_rows=estimated_rows,
            paused=False,
            started_at=stamp,
            updated_at=stamp,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def update(conn: Connection, migration_id: int, **values: Any) -> None:
    values["updated_at"] = now()
    if values.get("phase") in FINISHED:
        values["finished_at"] = now()
    conn.execute(migrations.update().where(migrations.c.id == migration_id).values(**values))


def record_chunk(conn: Connection, migration_id: int, checkpoint: list[Any] | None, rows: int) -> None:
    """A chunk's rows (in the chunk's own transaction) and, unless None, the checkpoint. A parallel
    copy writes the two apart: rows with each chunk, the checkpoint as its low watermark."""
    values: dict[str, Any] = {"updated_at": now()}
    if checkpoint is not None:
        values["checkpoint"] = encode_key(checkpoint)
    if rows:
        values["rows_copied"] = migrations.c.rows_copied + rows
    conn.execute(migrations.update().where(migrations.c.id == migration_id).values(**values))


def flags(conn: Connection, migration_id: int) -> tuple[bool, bool]:
    """(paused, cutover_postponed): one cheap read, made between chunks and while waiting."""
    row = conn.execute(
        sa.select(migrations.c.paused, migrations.c.cutover_postponed).where(migrations.c.id == migration_id)
    ).one()
    return bool(row[0]), bool(row[1])


def moving_at_swap(conn: Connection, table: str, moving: bool | None = None) -> bool:
    """Whether the unfinished migration of ``table`` began moving things at its swap; ``moving``
    sets it (in the caller's transaction) and returns the value it had."""
    m = active(conn, table)
    if m is None:
        return False
    if moving is not None and moving != m.moving_at_swap:
        update(conn, m.id, moving_at_swap=moving)
    return m.moving_at_swap


def get(conn: Connection, migration_id: int) -> Migration:
    row = conn.execute(sa.select(migrations).where(migrations.c.id == migration_id)).one()
    return Migration.from_row(row)
