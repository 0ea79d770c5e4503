"""Alembic integration: ``import shadowswap.alembic`` in a migration registers ``op.online_alter_table``.

::

    from alembic import op
    import shadowswap.alembic  # noqa: F401

    def upgrade():
        with op.online_alter_table("products") as batch_op:  # the interface of op.batch_alter_table
            batch_op.alter_column("price", type_=sa.String(20))

The block records the calls; at its end shadowswap plans the change against the live table (the
cheapest safe strategy) and runs it online on the migration's database with its own connections,
before alembic moves its version table. ``alembic upgrade --sql`` prints the plan instead.

This package is named like the library it integrates with; every import in it is absolute, so
``import alembic`` here is the real alembic.
"""

from __future__ import annotations

from typing import Any

from alembic.operations import MigrateOperation, Operations
from sqlalchemy.exc import DBAPIError

from shadowswap.alembic.batch import OnlineBatchOperations, Recorded
from shadowswap.alembic.runner import OnlineMigrationFailed, command_error, render_offline, run_online
from shadowswap.alembic.settings import Settings, resolve
from shadowswap.errors import ShadowswapError, UsageError

__all__ = ["OnlineAlterTableOp", "OnlineBatchOperations", "OnlineMigrationFailed", "Settings"]


class _OnlineBlock:
    """What ``op.online_alter_table(...)`` returns: a context manager yielding the batch recorder."""

    def __init__(self, operations: Operations, table_name: str, schema: str | None, options: dict[str, Any]) -> None:
        self.operations = operations
        self.table_name = table_name
        self.schema = schema
        self.options = options
        self.batch: OnlineBatchOperations | None = None

    def __enter__(self) -> OnlineBatchOperations:
        context = self.operations.get_context()
        self.batch = OnlineBatchOperations(self.table_name, context.dialect)
        return self.batch

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None or self.batch is None:
            return  # the migration's own error: nothing was started
        self.operations.invoke(
            OnlineAlterTableOp(self.table_name, self.batch.recorded, schema=self.schema, options=self.options)
        )


@Operations.register_operation("online_alter_table")
class OnlineAlterTableOp(MigrateOperation):
    """Change one table online with shadowswap; the batch calls recorded in ``recorded``."""

    def __init__(
        self, table_name: str, recorded: Recorded, schema: str | None = None, options: dict[str, Any] | None = None
    ) -> None:
        self.table_name = table_name
        self.recorded = recorded
        self.schema = schema
        self.options = dict(options or {})

    @classmethod
    def online_alter_table(cls, operations: Operations, table_name: str, schema: Any = None, **options: Any) -> Any:
        """Change ``table_name`` online: the batch interface of ``op.batch_alter_table``, run by shadowswap.

        Keyword options (each overridable by ``[shadowswap]`` in alembic.ini and ``SHADOWSWAP_<NAME>``):
        strategy, check_casts, chunk_size, chunk_time, min_chunk, max_chunk, copy_workers,
        max_rows_per_second, max_lag, replicas, max_load, pause_file, postpone_cutover,
        postpone_cutover_file, hooks, hook_timeout, backup, lock_timeout (ms), cutover_retries, verify,
        allow_destructive, drop_kept_old, keep_old, log_format, log_level, progress, db (offline mode's plan).
        """
        return _OnlineBlock(operations, table_name, schema, options)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("online_alter_table", self.table_name, [c.describe() for c in self.recorded.changes.changes])


def _settings(operations: Operations, options: dict[str, Any]) -> Settings:
    config = operations.get_context().config
    ini: dict[str, str] = {}
    if config is not None and config.file_config.has_section("shadowswap"):
        ini = dict(config.file_config.items("shadowswap", raw=True))
        ini = {k: v for k, v in ini.items() if k not in config.file_config.defaults()}
    return resolve(options, ini)


@Operations.implementation_for(OnlineAlterTableOp)
def _online_alter_table(operations: Operations, operation: OnlineAlterTableOp) -> None:
    table = operation.table_name
    context = operations.get_context()
    try:
        if operation.schema is not None:
            raise UsageError(
                f"op.online_alter_table({table!r}, schema={operation.schema!r}): schemas are not supported",
                hint="connect to that schema (search_path / database) instead",
            )
        if operation.recorded.refused:
            call, why = operation.recorded.refused[0]
            raise UsageError(
                f"op.online_alter_table({table!r}): cannot run {call} online: {why}; nothing was changed",
                hint="use a separate op.* call (outside the block) for it, or batch_alter_table",
            )
        if not operation.recorded.changes.changes:
            raise UsageError(
                f"op.online_alter_table({table!r}) changes nothing", hint="add batch_op calls to the block"
            )
        settings = _settings(operations, operation.options)
        if context.as_sql:
            render_offline(context, table, operation.recorded, settings)
        else:
            run_online(context, table, operation.recorded, settings)
    except (ShadowswapError, DBAPIError, KeyboardInterrupt) as exc:
        raise command_error(exc, table) from None
