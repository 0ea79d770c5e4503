"""One validation step for options and plan files, run before the first change to the database.

A plan file is reviewable and therefore editable by hand; ``execute`` trusts nothing in it that
it has not checked here: every field's type (from the dataclasses' own annotations, so a field
added later is checked too), the version, the names the SQL is built around, and that the key
columns are columns of the table. Options are checked the same way: a value that could only
fail after the shadow table and the triggers exist (a NaN rate, a lock timeout no server
accepts, a flag file in a missing directory) is refused up front, with one line and exit 2
(invariant: a user mistake never changes the database).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

from shadowswap.errors import UsageError

#: PostgreSQL's lock_timeout and SQLite's busy_timeout are 32-bit milliseconds; MySQL's
#: lock_wait_timeout (seconds) accepts more, so this is the bound every engine accepts
MAX_LOCK_TIMEOUT_MS = 2_147_483_647
LOG_LEVELS = ("debug", "info", "warning", "error")
DIALECTS = ("postgresql", "mysql", "sqlite")
STRATEGIES = ("shadow", "instant")

_REPLAN = "run `shadowswap plan` again rather than editing the plan file"


# -- plan files ------------------------------------------------------------------------------


def check_plan_data(data: Any, version: int) -> None:
    """Refuse a decoded plan file whose fields are not what ``Plan`` holds; one line, nothing changed."""
    from shadowswap.plan import Plan

    if not isinstance(data, dict):
        raise UsageError("the plan file is not a JSON object", hint=_REPLAN)
    found = data.get("version")
    if type(found) is not int:
        shown = "missing" if found is None else f"{type(found).__name__} {found!r}"
        raise UsageError(
            f"the plan file's version is {shown}; this shadowswap reads plan files with \"version\": {version}",
            hint=_REPLAN,
        )
    if found != version:
        raise UsageError(
            f"the plan file has version {found}, this shadowswap reads version {version}",
            hint="run `shadowswap plan` again with this version",
        )
    _check_object(data, Plan, "plan")


def _check_object(data: Any, cls: type, where: str) -> None:
    if not isinstance(data, dict):
        raise UsageError(f"the plan file is malformed: {where} must be an object, not {_kind(data)}", hint=_REPLAN)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UsageError(f"the plan file is malformed: {where} has unknown field(s) {', '.join(unknown)}", hint=_REPLAN)
    for name, f in fields.items():
        if name not in data:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                raise UsageError(f"the plan file is malformed: {where}.{name} is missing", hint=_REPLAN)
            continue
        _check_value(data[name], hints[name], f"{where}.{name}")


def _check_value(value: Any, tp: Any, where: str) -> None:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return
        (tp,) = [o for o in options if o is not type(None)]
        origin = typing.get_origin(tp)
    if tp is Any:
        return
    if dataclasses.is_dataclass(tp):
        _check_object(value, tp, where)  # type: ignore[arg-type]
        return
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if not any(type(value) is type(a) and value == a for a in allowed):
            _wrong(where, "one of " + ", ".join(map(repr, allowed)), value)
        return
    # a tuple field (``tuple[X, ...]``, the frozen dataclasses' sequences) is a JSON list too
    if origin in (list, tuple):
        if not isinstance(value, list):
            _wrong(where, "a list", value)
        (item, *rest) = typing.get_args(tp)
        if origin is tuple and rest != [Ellipsis]:
            raise TypeError(f"{where}: only tuple[X, ...] fields can be checked, not {tp}")
        for i, element in enumerate(value):
            _check_value(element, item, f"{where}[{i}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            _wrong(where, "an object", value)
        return
    # bool is an int in Python, and JSON's true must not pass for a row count (nor 1 for a flag)
    if tp is int and (type(value) is not int):
        _wrong(where, "a whole number", value)
    if tp is bool and type(value) is not bool:
        _wrong(where, "true or false", value)
    if tp is str and not isinstance(value, str):
        _wrong(where, "a string", value)
    if tp is float and (type(value) not in (int, float) or not math.isfinite(value)):
        _wrong(where, "a number", value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object"
    )


def _wrong(where: str, expected: str, value: Any) -> typing.NoReturn:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise UsageError(
        f"the plan file is malformed: {where} must be {expected}, not {_kind(value)} ({shown})", hint=_REPLAN
    )


def check_plan(plan: Any) -> None:
    """What the types alone cannot say: the names the SQL is built around are there and agree."""
    for name in ("table", "shadow_table", "old_table"):
        if not getattr(plan, name).strip():
            raise UsageError(f"the plan file is malformed: {name} is empty", hint=_REPLAN)
    if len({plan.table, plan.shadow_table, plan.old_table}) != 3:
        raise UsageError("the plan file is malformed: table, shadow_table and old_table must differ", hint=_REPLAN)
    if plan.dialect not in DIALECTS:
        raise UsageError(
            f"the plan file is malformed: dialect {plan.dialect!r} is not one of {', '.join(DIALECTS)}", hint=_REPLAN
        )
    if plan.strategy not in STRATEGIES:
        raise UsageError(
            f"the plan file is malformed: strategy {plan.strategy!r} is not one of {', '.join(STRATEGIES)}",
            hint=_REPLAN,
        )
    if not plan.primary_key:
        raise UsageError("the plan file is malformed: primary_key is empty", hint=_REPLAN)
    for label, names in (("primary_key", plan.primary_key), ("source_columns", plan.source_columns)):
        if len(set(names)) != len(names) or not all(n for n in names):
            raise UsageError(f"the plan file is malformed: {label} has an empty or repeated name", hint=_REPLAN)
    sources = set(plan.source_columns)
    missing = [k for k in plan.primary_key if k not in sources]
    if missing:
        raise UsageError(
            f"the plan file is malformed: primary_key column(s) {', '.join(map(repr, missing))} "
            "are not among source_columns",
            hint=_REPLAN,
        )
    for c in [*plan.columns, *plan.default_columns]:
        if not c.name:
            raise UsageError("the plan file is malformed: a column has an empty name", hint=_REPLAN)
        if c.source_column is not None and c.source_column not in sources:
            raise UsageError(
                f"the plan file is malformed: column {c.name!r} is copied from {c.source_column!r}, "
                "which is not among source_columns",
                hint=_REPLAN,
            )
    copied = {c.source_column for c in plan.columns}
    lost = [k for k in plan.primary_key if k not in copied]
    if lost:
        raise UsageError(
            f"the plan file is malformed: primary_key column(s) {', '.join(map(repr, lost))} are not copied "
            "to the new table",
            hint=_REPLAN,
        )
    if plan.estimated_rows < 0:
        raise UsageError("the plan file is malformed: estimated_rows is negative", hint=_REPLAN)


def read_plan_text(path: Path) -> str:
    """The plan file's text, or one line saying why it cannot be read (a directory, not UTF-8, ...)."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a plan file", hint=f"e.g. shadowswap execute {path}/plan.json")
    if not path.exists():
        raise UsageError(f"no plan file at {path}", hint="run `shadowswap plan TABLE --alter ...` first")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"the plan file {path} is not UTF-8 text (byte {exc.start})", hint=_REPLAN) from None
    except OSError as exc:
        raise UsageError(f"cannot read the plan file {path}: {exc.strerror}") from None


# -- options ---------------------------------------------------------------------------------


def check_finite(option: str, value: float | None, *, positive: bool = True) -> None:
    """``nan`` and ``inf`` parse as floats and pass ``> 0``; neither is a rate, a lag or a duration."""
    if value is None:
        return
    if not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, not {value}")
    if positive and value <= 0:
        raise UsageError(f"{option} must be positive")


def check_lock_timeout(milliseconds: int) -> None:
    if not 1 <= milliseconds <= MAX_LOCK_TIMEOUT_MS:
        raise UsageError(
            f"--lock-timeout {milliseconds}: must be between 1 and {MAX_LOCK_TIMEOUT_MS} milliseconds",
            hint="a short timeout with retries keeps writers flowing (invariant 5); the default is 200",
        )


def check_writable_file(option: str, path: Path) -> None:
    """A file shadowswap will create or overwrite: its directory exists and it is not a directory."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: the directory {parent} does not exist")


def check_log_level(level: str) -> str:
    if level.lower() not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    return level.lower()
