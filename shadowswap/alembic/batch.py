"""The ``batch_op`` of ``op.online_alter_table``: alembic's batch interface, recorded as shadowswap changes.

Each call is mapped exactly onto one of shadowswap's change objects (shadowswap/changes.py) or
recorded as refused; nothing runs until the block exits, so a migration that asks for something
shadowswap cannot do online changes nothing (one line naming the call, at block exit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from shadowswap.changes import (
    AddColumn,
    AddIndex,
    AlterColumn,
    Change,
    ChangeSet,
    DropColumn,
    DropIndex,
    RenameColumn,
    check_default,
    check_expression,
    check_type,
)
from shadowswap.errors import UsageError

#: alembic's "argument not given" for server_default and comment (None means "remove it")
_UNSET: Any = False

#: keyword arguments alembic's batch calls accept that only restate the column as it is now
_INFORMATIONAL = ("existing_type", "existing_server_default", "existing_nullable", "existing_comment", "schema")


def describe_call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``batch_op.alter_column('price', comment='x')``: the call as the migration wrote it, briefly."""
    parts = [_short_repr(a) for a in args] + [f"{k}={_short_repr(v)}" for k, v in kwargs.items()]
    return f"batch_op.{name}({', '.join(parts)})"


def _short_repr(value: Any) -> str:
    if isinstance(value, sa.Column):
        return f"sa.Column({value.name!r}, ...)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Recorded:
    """What a block asked for: the changes, and the calls that cannot be mapped (refused at exit)."""

    changes: ChangeSet = field(default_factory=ChangeSet)
    calls: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


class OnlineBatchOperations:
    """Stands where alembic's ``BatchOperations`` stands in a ``with`` block, with its method names."""

    def __init__(self, table: str, dialect: sa.engine.Dialect) -> None:
        self.table = table
        self.dialect = dialect
        self.recorded = Recorded()
        self.recorded.changes.table = table

    # -- helpers ---------------------------------------------------------------------------------

    def _refuse(self, call: str, why: str) -> None:
        self.recorded.refused.append((call, why))

    def _add(self, call: str, *changes: Change) -> None:
        self.recorded.calls.append(call)
        self.recorded.changes.changes.extend(changes)

    def _type_sql(self, type_: Any) -> str:
        instance = sa.types.to_instance(type_)
        return check_type(instance.compile(dialect=self.dialect))

    def _default_sql(self, value: Any) -> str:
        """A server default as SQL: a Python string is a string literal (as in alembic), text() is SQL."""
        if isinstance(value, sa.schema.DefaultClause):
            value = value.arg
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        if isinstance(value, sa.sql.ClauseElement):
            return check_default(str(value.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True})))
        raise UsageError(f"server default {value!r} is neither a string nor a SQL expression")

    def _unknown_kwargs(self, call: str, kwargs: dict[str, Any], allowed: tuple[str, ...] = ()) -> bool:
        extra = [k for k in kwargs if k not in allowed and k not in _INFORMATIONAL]
        if extra:
            self._refuse(call, f"shadowswap does not map {', '.join(repr(k) for k in extra)}")
            return True
        return False

    # -- the batch interface -----------------------------------------------------------------

    def alter_column(self, column_name: str, *args: Any, **kw: Any) -> None:
        call = describe_call("alter_column", (column_name, *args), kw)
        if args:
            self._refuse(call, "give alter_column's options as keyword arguments")
            return
        if self._unknown_kwargs(
            call, kw, ("nullable", "server_default", "new_column_name", "type_", "postgresql_using", "comment")
        ):
            return
        if kw.get("comment", _UNSET) is not _UNSET:
            self._refuse(call, "column comments are not copied by shadowswap")
            return
        try:
            type_sql = self._type_sql(kw["type_"]) if kw.get("type_") is not None else None
            server_default = kw.get("server_default", _UNSET)
            default = drop_default = None
            if server_default is None:
                drop_default = True
            elif server_default is not _UNSET:
                default = self._default_sql(server_default)
            nullable = kw.get("nullable")
            changes: list[Change] = []
            if type_sql is not None or nullable is not None or default is not None or drop_default:
                changes.append(
                    AlterColumn(
                        column=column_name,
                        type_sql=type_sql,
                        nullable=nullable,
                        default=default,
                        drop_default=bool(drop_default),
                    )
                )
            new_name = kw.get("new_column_name")
            if new_name is not None and new_name != column_name:
                changes.append(RenameColumn(column_name, new_name))
            using = kw.get("postgresql_using")
            if using is not None:
                if type_sql is None:
                    self._refuse(call, "postgresql_using needs type_")
                    return
                self.recorded.changes.usings[column_name] = check_expression(
                    str(using), f"postgresql_using for {column_name}"
                )
        except UsageError as exc:
            self._refuse(call, str(exc))
            return
        if not changes:
            self._refuse(call, "it changes nothing")
            return
        self._add(call, *changes)

    def add_column(self, column: sa.Column[Any], *args: Any, **kw: Any) -> None:
        call = describe_call("add_column", (column, *args), kw)
        if args or self._unknown_kwargs(call, kw):
            if args:
                self._refuse(call, "give add_column's options as keyword arguments")
            return
        if not isinstance(column, sa.Column):
            self._refuse(call, "give a sa.Column")
            return
        unsupported = [
            what
            for what, present in (
                ("primary_key", column.primary_key),
                ("unique", bool(column.unique)),
                ("index", bool(column.index)),
                ("foreign keys", bool(column.foreign_keys)),
                ("constraints", bool(column.constraints)),
                ("a Python-side default", column.default is not None),
                ("a comment", column.comment is not None),
                ("a computed or identity value", column.computed is not None or column.identity is not None),
            )
            if present
        ]
        if unsupported:
            self._refuse(
                call,
                f"a column with {', '.join(unsupported)} (add the column, then create_index / "
                "create_unique_constraint in the block)",
            )
            return
        try:
            type_sql = self._type_sql(column.type)
            default = self._default_sql(column.server_default) if column.server_default is not None else None
        except UsageError as exc:
            self._refuse(call, str(exc))
            return
        self._add(
            call, AddColumn(column=column.name, type_sql=type_sql, nullable=bool(column.nullable), default=default)
        )

    def drop_column(self, column_name: str, **kw: Any) -> None:
        call = describe_call("drop_column", (column_name,), kw)
        if not self._unknown_kwargs(call, kw):
            self._add(call, DropColumn(column_name))

    def create_index(self, index_name: str, columns: Any, **kw: Any) -> None:
        call = describe_call("create_index", (index_name, columns), kw)
        # CONCURRENTLY is what shadowswap does anyway: the index is built on the shadow (invariant 6)
        if self._unknown_kwargs(call, kw, ("unique", "postgresql_concurrently", "if_not_exists")):
            return
        if kw.get("if_not_exists"):
            self._refuse(call, "if_not_exists is not supported")
            return
        names = [columns] if isinstance(columns, str) else list(columns)
        if not names or not all(isinstance(c, str) for c in names):
            self._refuse(call, "only plain column names in an index")
            return
        self._add(call, AddIndex(index_name, tuple(names), unique=bool(kw.get("unique"))))

    def drop_index(self, index_name: str, **kw: Any) -> None:
        call = describe_call("drop_index", (index_name,), kw)
        if self._unknown_kwargs(call, kw, ("postgresql_concurrently",)):
            return
        self._add(call, DropIndex(index_name))

    def create_unique_constraint(self, constraint_name: str | None, columns: Any, **kw: Any) -> None:
        call = describe_call("create_unique_constraint", (constraint_name, columns), kw)
        if self._unknown_kwargs(call, kw):
            return
        if not constraint_name:
            self._refuse(call, "give the unique constraint a name")
            return
        names = [columns] if isinstance(columns, str) else list(columns)
        if not names or not all(isinstance(c, str) for c in names):
            self._refuse(call, "only plain column names in a unique constraint")
            return
        self._add(call, AddIndex(constraint_name, tuple(names), unique=True))

    def drop_constraint(self, constraint_name: str, type_: str | None = None, **kw: Any) -> None:
        call = describe_call("drop_constraint", (constraint_name,), {**({"type_": type_} if type_ else {}), **kw})
        if self._unknown_kwargs(call, kw):
            return
        if type_ not in (None, "unique"):
            self._refuse(call, f"shadowswap drops unique constraints and indexes, not {type_} constraints")
            return
        self._add(call, DropIndex(constraint_name))

    def __getattr__(self, name: str) -> Any:
        """Any other batch operation (create_foreign_key, create_check_constraint, ...): refused at exit."""
        if name.startswith("_"):
            raise AttributeError(name)

        def refused(*args: Any, **kw: Any) -> None:
            self._refuse(describe_call(name, args, kw), "shadowswap has no online form of it")

        return refused
