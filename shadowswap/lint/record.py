"""Runs a migration file's ``upgrade()`` the way ``alembic upgrade --sql`` does, and records each operation.

The file is executed, not read: the operations and the SQL recorded are those alembic would emit for
the engine, whatever the source looks like (helpers, loops, ``op.execute`` strings). Nothing touches a
database: the migration context is alembic's offline one, writing SQL to a buffer.
"""

from __future__ import annotations

import inspect
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.operations import MigrateOperation, Operations
from alembic.operations import ops as alembic_ops
from alembic.runtime.migration import MigrationContext
from alembic.util.pyfiles import load_module_py

from shadowswap.errors import UsageError

#: batch_alter_table's own arguments: how to rebuild, not what to change
BATCH_ONLY = (
    "recreate",
    "partial_reordering",
    "copy_from",
    "table_args",
    "table_kwargs",
    "reflect_args",
    "reflect_kwargs",
    "naming_convention",
)

#: where a batch operation's table goes in the plain op.* call of the same name
_TABLE_POSITION = {
    "alter_column": 0,
    "add_column": 0,
    "drop_column": 0,
    "create_table_comment": 0,
    "drop_table_comment": 0,
    "create_index": 1,
    "create_unique_constraint": 1,
    "create_check_constraint": 1,
    "create_primary_key": 1,
    "create_foreign_key": 1,
    "drop_constraint": 1,
    "create_exclude_constraint": 1,
}


class _Statements:
    """An alembic ``output_buffer``: one entry per statement."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass

    def take(self) -> list[str]:
        statements = [s.strip() for s in self.text.split(";\n") if s.strip() and not s.strip().startswith("--")]
        self.text = ""
        return [s[:-1] if s.endswith(";") else s for s in statements]


@dataclass
class LintOp:
    """One operation a migration emits, with the SQL alembic renders for it."""

    path: Path
    revision: str | None
    function: str
    position: int
    line: int | None
    name: str
    table: str | None
    operation: MigrateOperation | None
    sql: list[str] = field(default_factory=list)
    #: the table of the enclosing batch_alter_table block
    batch: str | None = None
    #: arguments as the migration gave them (batch form: without the table), for --fix
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: operations of the same function that ran before this one
    before: list[LintOp] = field(default_factory=list)
    error: str | None = None

    @property
    def online(self) -> bool:
        return self.name == "online_alter_table"

    def call(self) -> str:
        if self.error is not None:
            return "(the migration raised an error here)"
        if self.online and self.operation is not None:
            changes = "; ".join(c.describe() for c in self.operation.recorded.changes.changes)  # type: ignore[attr-defined]
            return f"op.online_alter_table({self.table!r}): {changes}"
        if self.name == "batch_rebuild":
            return f"batch_alter_table({self.batch!r}) → batch_op.{self.args[0]}(...)"
        parts = [_short(a) for a in self.args] + [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        if self.batch:
            return f"batch_alter_table({self.batch!r}) → batch_op.{self.name}({', '.join(parts)})"
        return f"op.{self.name}({', '.join(parts)})"


def _short(value: Any) -> str:
    if isinstance(value, sa.Column):
        return f"Column({value.name!r}, {value.type!r})"
    if isinstance(value, sa.types.TypeEngine):
        return repr(value)
    text = repr(value)
    return text if len(text) <= 50 else text[:47] + "..."


def _table_of(operation: Any) -> str | None:
    for attr in ("table_name", "source_table"):
        value = getattr(operation, attr, None)
        if isinstance(value, str):
            return value
    return None


def _caller_line(path: Path) -> int | None:
    """The line of the migration file that made the current call."""
    target = str(path.resolve())
    for frame in inspect.stack(context=0):
        if str(Path(frame.filename).resolve()) == target:
            return frame.lineno
    return None


class _Recorder:
    def __init__(self, path: Path, revision: str | None, function: str, ops: Operations, buffer: _Statements) -> None:
        self.path = path
        self.revision = revision
        self.function = function
        self.ops = ops
        self.buffer = buffer
        self.recorded: list[LintOp] = []
        self.batch: str | None = None
        self.call: tuple[str, tuple[Any, ...], dict[str, Any]] | None = None
        self.invoke_plain = ops.invoke

    def invoke(self, operation: MigrateOperation) -> Any:
        from shadowswap.alembic import OnlineAlterTableOp

        name = _op_name(operation)
        args, kwargs = (self.call[1], self.call[2]) if self.call and self.call[0] == name else ((), {})
        self.call = None
        record = LintOp(
            path=self.path,
            revision=self.revision,
            function=self.function,
            position=len(self.recorded),
            line=_caller_line(self.path),
            name=name,
            table=_table_of(operation),
            operation=operation,
            batch=self.batch,
            args=args,
            kwargs=kwargs,
            before=list(self.recorded),
        )
        self.recorded.append(record)
        if isinstance(operation, OnlineAlterTableOp):
            return None  # the online block: what it does is shadowswap's, planned at run time
        self.buffer.take()
        try:
            result = self.invoke_plain(operation)
        except BaseException:
            self.recorded.remove(record)  # reported as the migration's error instead
            raise
        finally:
            record.sql = self.buffer.take()
        return result

    def wrap(self, name: str) -> Any:
        plain = getattr(self.ops, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.call = (name, args, kwargs)
            return plain(*args, **kwargs)

        return recorded

    @contextmanager
    def batch_alter_table(self, table_name: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Each batch operation as the plain operation on that table, recorded as inside the batch."""
        outer = self.batch
        self.batch = table_name
        try:
            yield _BatchRecorder(self, table_name)
        finally:
            self.batch = outer


class _BatchRecorder:
    def __init__(self, recorder: _Recorder, table: str) -> None:
        self.recorder = recorder
        self.table = table

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            plain_args: list[Any] = list(args)
            plain_kwargs = dict(kwargs)
            if name == "drop_index":
                plain_kwargs.setdefault("table_name", self.table)
            elif name in _TABLE_POSITION:
                plain_args.insert(_TABLE_POSITION[name], self.table)
            self.recorder.call = (name, args, kwargs)
            try:
                # the class's method, not the recording wrapper: the call is kept in its batch form
                return getattr(Operations, name)(self.recorder.ops, *plain_args, **plain_kwargs)
            except NotImplementedError:
                # SQLite has no ALTER for it: batch mode makes it by rebuilding the table
                self.recorder.recorded.append(
                    LintOp(
                        path=self.recorder.path,
                        revision=self.recorder.revision,
                        function=self.recorder.function,
                        position=len(self.recorder.recorded),
                        line=_caller_line(self.recorder.path),
                        name="batch_rebuild",
                        table=self.table,
                        operation=None,
                        batch=self.table,
                        args=(name, *args),
                        kwargs=kwargs,
                        before=list(self.recorder.recorded),
                    )
                )
                return None

        return call


def _op_name(operation: MigrateOperation) -> str:
    names = {
        alembic_ops.AlterColumnOp: "alter_column",
        alembic_ops.AddColumnOp: "add_column",
        alembic_ops.DropColumnOp: "drop_column",
        alembic_ops.CreateIndexOp: "create_index",
        alembic_ops.DropIndexOp: "drop_index",
        alembic_ops.CreateUniqueConstraintOp: "create_unique_constraint",
        alembic_ops.CreateForeignKeyOp: "create_foreign_key",
        alembic_ops.CreateCheckConstraintOp: "create_check_constraint",
        alembic_ops.CreatePrimaryKeyOp: "create_primary_key",
        alembic_ops.DropConstraintOp: "drop_constraint",
        alembic_ops.CreateTableOp: "create_table",
        alembic_ops.DropTableOp: "drop_table",
        alembic_ops.RenameTableOp: "rename_table",
        alembic_ops.ExecuteSQLOp: "execute",
        alembic_ops.BulkInsertOp: "bulk_insert",
    }
    for cls, name in names.items():
        if isinstance(operation, cls):
            return name
    from shadowswap.alembic import OnlineAlterTableOp

    if isinstance(operation, OnlineAlterTableOp):
        return "online_alter_table"
    return type(operation).__name__


@dataclass
class MigrationFile:
    path: Path
    revision: str | None
    operations: list[LintOp]
    source: str
    down_revision: tuple[str, ...] = ()


def record_file(path: Path, sa_dialect: sa.engine.Dialect, function: str = "upgrade") -> MigrationFile:
    """Run ``function`` of the migration at ``path`` offline for ``sa_dialect``; every operation, in order."""
    import shadowswap.alembic  # noqa: F401  (online_alter_table: a migration may use it without importing it first)

    source = path.read_text(encoding="utf-8")
    # alembic.ini's default `prepend_sys_path = .`: migrations may import the project's own modules
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        module = load_module_py(f"_shadowswap_lint_{uuid.uuid4().hex}", path)
    except Exception as exc:  # the migration's own error, reported as such
        raise UsageError(f"{path}: cannot be imported: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())
    revision = getattr(module, "revision", None)
    fn = getattr(module, function, None)
    if not callable(fn):
        raise UsageError(f"{path}: not an alembic migration (no {function}() function)")
    buffer = _Statements()
    context = MigrationContext.configure(
        dialect=sa_dialect, opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True}
    )
    ops = Operations(context)
    recorder = _Recorder(path, revision, function, ops, buffer)
    # instance attributes in front of the class's methods: alembic's `op` proxy calls them on this object
    ops.invoke = recorder.invoke  # type: ignore[method-assign]
    for name in [*_TABLE_POSITION, "drop_index", "create_table", "drop_table", "rename_table", "execute"]:
        setattr(ops, name, recorder.wrap(name))
    ops.batch_alter_table = recorder.batch_alter_table  # type: ignore[method-assign]
    ops._install_proxy()
    try:
        fn()
    except Exception as exc:
        line = _traceback_line(exc, path)
        recorder.recorded.append(
            LintOp(
                path=path,
                revision=revision,
                function=function,
                position=len(recorder.recorded),
                line=line,
                name="(error)",
                table=None,
                operation=None,
                error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                before=list(recorder.recorded),
            )
        )
    finally:
        ops._remove_proxy()
        sys.modules.pop(module.__name__, None)
    down = getattr(module, "down_revision", None)
    downs = tuple(down) if isinstance(down, list | tuple) else ((down,) if isinstance(down, str) else ())
    return MigrationFile(path=path, revision=revision, operations=recorder.recorded, source=source, down_revision=downs)


def _traceback_line(exc: BaseException, path: Path) -> int | None:
    target = str(path.resolve())
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if str(Path(tb.tb_frame.f_code.co_filename).resolve()) == target:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def migration_files(target: Path) -> list[Path]:
    """One file; a versions directory; or a project directory with alembic.ini (its version locations)."""
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise UsageError(f"{target} is neither a migration file nor a directory")
    if (target / "alembic.ini").is_file():
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config(str(target / "alembic.ini"))
        here = os.getcwd()
        os.chdir(target)  # script_location may be relative to the ini's directory
        try:
            script = ScriptDirectory.from_config(config)
            configured = script.version_locations or []  # None when unset in alembic 1.13
            locations = [Path(p).resolve() for p in configured] or [Path(script.versions).resolve()]
        except Exception as exc:  # alembic's own message for a broken ini
            raise UsageError(f"{target / 'alembic.ini'}: {exc}") from None
        finally:
            os.chdir(here)
        return [p for location in locations for p in migration_files(location)]
    files = sorted(p for p in target.glob("*.py") if p.name != "__init__.py")
    if not files:
        raise UsageError(f"no migration files in {target}", hint="give alembic's versions directory, or one file")
    return files
