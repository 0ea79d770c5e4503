"""The in-place strategy: which column changes InnoDB makes without copying the table, and the one ALTER.

``instant_reason`` answers per change (from the server's version: MariaDB and MySQL differ),
``instant_statements`` folds alembic's statements into one ``ALTER TABLE … , ALGORITHM=…`` so
that a refusal leaves the table unchanged, and ``instant_refusal`` turns that refusal into a
one-line error. The VARCHAR widening rule (length-byte classes, index key limit) is here too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from shadowswap.dialects.mysql.base import (
    ER_ALTER_OPERATION_NOT_SUPPORTED,
    ER_ALTER_OPERATION_NOT_SUPPORTED_REASON,
    MySQLBase,
    _errno,
)
from shadowswap.dialects.mysql.types import _split_type
from shadowswap.errors import UsageError

if TYPE_CHECKING:
    from shadowswap.strategy import ChangeFacts


class MySQLInstant(MySQLBase):
    """What runs in place (ALGORITHM=INSTANT, NOCOPY or INPLACE with LOCK=NONE) and its single ALTER TABLE."""

    # Every in-place plan is ONE ``ALTER TABLE`` carrying an explicit algorithm clause: MySQL DDL is
    # not transactional, so two ALTERs could leave half a plan behind (and a lock-timeout retry
    # would rerun the half that was done). ``ALGORITHM=INSTANT`` when every change is
    # instant-capable; otherwise MariaDB's ``ALGORITHM=NOCOPY, LOCK=NONE`` (stricter than INPLACE:
    # it refuses a rebuild too, and still lets INSTANT operations happen instantly) or MySQL's
    # ``ALGORITHM=INPLACE, LOCK=NONE``. A server that would need more refuses the statement (1845,
    # 1846) and the table is unchanged; that refusal becomes a one-line error (instant_refusal).

    def _in_place_algorithm(self, operation: str) -> str | None:
        """How this server makes ``operation`` without copying the table: ``instant``, ``inplace``
        (no rebuild, writes go on), or None (only a copy: the shadow then)."""
        version = tuple(self.sa_dialect.server_version_info or (0,))
        if self.is_mariadb:
            if version < (10, 3):
                return None
            return {
                "add": "instant",  # 10.3: appended; 10.4: anywhere
                "drop": "instant" if version >= (10, 4) else None,
                "rename": "instant" if version >= (10, 5) else None,  # RENAME COLUMN: no restated definition
                "default": "instant",
                "widen": "instant" if version >= (10, 4) else None,
                "drop_index": "inplace",
                # a table COMMENT or AUTO_INCREMENT counter (tableoptions.py): metadata only
                "table_option": "instant",
            }.get(operation)
        if version < (8, 0):
            return None
        return {
            "add": "instant" if version >= (8, 0, 12) else None,  # appended; anywhere from 8.0.29
            "drop": "instant" if version >= (8, 0, 29) else None,
            "rename": "instant" if version >= (8, 0, 28) else "inplace",
            "default": "instant" if version >= (8, 0, 12) else "inplace",
            "widen": "inplace",  # metadata only, but not INSTANT on MySQL 8
            "drop_index": "inplace",
        }.get(operation)

    def _server(self) -> str:
        version = ".".join(str(v) for v in (self.sa_dialect.server_version_info or ())[:3])
        return f"{'MariaDB' if self.is_mariadb else 'MySQL'} {version}".strip()

    def _in_place(self, operation: str, why: str) -> tuple[bool, str]:
        algorithm = self._in_place_algorithm(operation)
        if algorithm is None:
            return False, f"{self._server()} cannot do this without copying the table"
        clause = "ALGORITHM=INSTANT" if algorithm == "instant" else "LOCK=NONE, no rebuild"
        return True, f"{why} ({clause})"

    def instant_reason(self, change: ChangeFacts) -> tuple[bool, str]:
        kind = change.kind
        if kind in ("add_index", "add_unique"):
            return False, "building an index reads the whole table; the shadow gets it online after the copy"
        if kind == "using" or change.has_using:
            return False, "recomputing values rewrites every row"
        if kind == "drop":
            return self._in_place("drop", "DROP COLUMN changes the data dictionary only")
        if kind == "rename":
            return self._in_place("rename", "RENAME COLUMN changes the data dictionary only")
        if kind == "drop_index":
            return self._in_place("drop_index", "dropping an index leaves the rows alone")
        if kind == "add":
            if not change.default_is_constant:
                return False, "a non-constant default is computed for every row"
            if change.new_nullable is False and change.default is None:
                return False, "a NOT NULL column without a default: the copy fills it explicitly"
            if not _plain_type(change.new_type or ""):
                return False, f"type {change.new_type!r} is more than a plain column type"
            return self._in_place("add", "the column is added in the data dictionary, existing rows untouched")
        if kind == "alter":
            reasons = []
            operations = []
            if change.new_nullable is not None and change.new_nullable != change.old_nullable:
                if change.new_nullable:
                    return False, "dropping NOT NULL rebuilds an InnoDB table"
                return False, "SET NOT NULL rebuilds the table and checks every row"
            if change.new_type is not None:
                widened, why = _widening(change.old_type or "", change.new_type)
                if not widened:
                    return False, why
                reasons.append(why)
                operations.append("widen")
            if change.default_changed:
                if not change.default_is_constant:
                    return False, "a non-constant default is not set in place here"
                reasons.append("a default applies to future inserts only")
                operations.append("default")
            for operation in operations:
                if self._in_place_algorithm(operation) is None:
                    return False, f"{self._server()} cannot do this without copying the table"
            instant = all(self._in_place_algorithm(o) == "instant" for o in operations)
            clause = "ALGORITHM=INSTANT" if instant else "LOCK=NONE, no rebuild"
            return True, f"{'; '.join(reasons) or 'nothing to rewrite'} ({clause})"
        return super().instant_reason(change)

    def instant_plan_notes(self) -> list[str]:
        return [
            "one ALTER TABLE with an explicit ALGORITHM clause: the server refuses a change it could only make "
            "by rebuilding the table, and nothing changes",
            "its metadata lock is waited for at most --lock-timeout (whole seconds), retried with backoff",
        ]

    def instant_statements(self, table: str, statements: list[str]) -> list[str]:
        """alembic's statements folded into one ``ALTER TABLE … , ALGORITHM=…`` (why: atop this class)."""
        quoted = self.unescape_percents(self.preparer.quote(table))
        clauses: list[tuple[str, str, str]] = []  # (operation, column it touches, clause)
        renames: dict[str, tuple[str, str]] = {}  # old name → (old as written, new as written)
        for stmt in statements:
            drop_index = re.fullmatch(rf"DROP INDEX ({_IDENT}) ON {re.escape(quoted)}", stmt)
            if drop_index:
                clauses.append(("drop_index", "", f"DROP INDEX {drop_index.group(1)}"))
                continue
            prefix = f"ALTER TABLE {quoted} "
            option = re.fullmatch(rf"{re.escape(prefix)}((?:COMMENT|AUTO_INCREMENT)=.*)", stmt, re.DOTALL)
            if option:
                clauses.append(("table_option", "", option.group(1)))
                continue
            body = stmt[len(prefix) :]
            head = re.match(rf"(ADD COLUMN|DROP COLUMN|DROP INDEX|ALTER COLUMN|MODIFY|CHANGE) ({_IDENT}) ?", body)
            if not stmt.startswith(prefix) or head is None:
                raise _not_in_place(f"unexpected in-place statement {stmt!r}")
            verb, written, rest = head.group(1), head.group(2), body[head.end() :]
            if verb == "CHANGE":  # alembic's rename restates the column; RENAME COLUMN need not
                new = re.match(rf"({_IDENT}) ", rest)
                if new is None:
                    raise _not_in_place(f"unexpected in-place statement {stmt!r}")
                renames[_unquote(written)] = (written, new.group(1))
                continue
            operation = {
                "ADD COLUMN": "add",
                "DROP COLUMN": "drop",
                "DROP INDEX": "drop_index",
                "ALTER COLUMN": "default",
                "MODIFY": "widen",
            }[verb]
            clauses.append((operation, _unquote(written) if operation != "add" else "", body))
        for old, (old_written, new_written) in renames.items():
            touching = [i for i, (_, column, _) in enumerate(clauses) if column == old]
            if not touching:
                clauses.append(("rename", old, f"RENAME COLUMN {old_written} TO {new_written}"))
                continue
            operation, _, body = clauses[touching[0]]
            if len(touching) > 1 or operation != "widen":
                raise _not_in_place(
                    f"column {old!r} is renamed and its default changed in one plan, which one in-place ALTER "
                    "TABLE cannot do here (rename it in a plan of its own)"
                )
            # one clause per column: MODIFY old <definition> becomes CHANGE old new <definition>
            definition = body[len(f"MODIFY {old_written} ") :]
            clauses[touching[0]] = (operation, old, f"CHANGE {old_written} {new_written} {definition}")
        algorithms = {self._in_place_algorithm(operation) for operation, _, _ in clauses}
        if not clauses:
            return []
        if None in algorithms:
            raise _not_in_place(f"{self._server()} cannot make every change of this plan without a copy")
        if algorithms == {"instant"}:
            algorithm = "ALGORITHM=INSTANT"
        elif self.is_mariadb:
            algorithm = "ALGORITHM=NOCOPY, LOCK=NONE"
        else:
            algorithm = "ALGORITHM=INPLACE, LOCK=NONE"
        return [f"ALTER TABLE {quoted} {', '.join(body for _, _, body in clauses)}, {algorithm}"]

    def instant_refusal(self, exc: BaseException) -> str | None:
        if _errno(exc) not in (ER_ALTER_OPERATION_NOT_SUPPORTED, ER_ALTER_OPERATION_NOT_SUPPORTED_REASON):
            return None
        args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", exc), "args", ()))
        return str(args[1]).splitlines()[0] if len(args) > 1 else "the algorithm clause cannot be honoured"


_IDENT = r"`(?:[^`]|``)+`|[^\s`,]+"
# bytes per character of each character set (MySQL/MariaDB ``maxlen``); ``utf8`` is utf8mb3 on both
_MAX_BYTES_PER_CHAR = {
    "ascii": 1, "binary": 1, "latin1": 1, "latin2": 1, "latin5": 1, "latin7": 1, "cp1250": 1, "cp1251": 1,
    "cp1256": 1, "cp1257": 1, "cp850": 1, "cp852": 1, "cp866": 1, "dec8": 1, "hp8": 1, "koi8r": 1, "koi8u": 1,
    "swe7": 1, "hebrew": 1, "greek": 1, "tis620": 1, "armscii8": 1, "keybcs2": 1, "macce": 1, "macroman": 1,
    "geostd8": 1, "big5": 2, "sjis": 2, "cp932": 2, "euckr": 2, "gb2312": 2, "gbk": 2, "ucs2": 2, "ujis": 3,
    "eucjpms": 3, "utf8": 3, "utf8mb3": 3, "utf8mb4": 4, "utf16": 4, "utf16le": 4, "utf32": 4, "gb18030": 4,
}  # fmt: skip
# the longest index key InnoDB's DYNAMIC rows take: a column at most this long can carry a full index, and
# widening one past it would turn that index into a prefix index (a rebuild the server refuses here)
_INDEX_KEY_BYTES = 3072


def _unquote(identifier: str) -> str:
    if identifier.startswith("`") and identifier.endswith("`"):
        return identifier[1:-1].replace("``", "`")
    return identifier


def _not_in_place(message: str) -> UsageError:
    return UsageError(message, hint="plan with `--strategy shadow` to make these changes with the online copy")


def _plain_type(type_sql: str) -> bool:
    """A column type and nothing else (no AUTO_INCREMENT, key, generated expression, SERIAL)."""
    name, _args, rest = _split_type(type_sql)
    if not name or name.split()[0] == "serial":
        return False
    rest = re.sub(r"(?:character\s+set|charset|collate)\s+[a-z0-9_]+", "", rest)
    return not (set(rest.split()) - {"unsigned", "signed", "zerofill", "binary"})


def _string_spec(type_sql: str) -> tuple[str, int, str | None, str | None] | None:
    """``varchar(n) [CHARACTER SET cs] [COLLATE co]`` → (name, n, cs, co); None for anything else."""
    name, args, rest = _split_type(type_sql)
    if name not in ("varchar", "varbinary") or not re.fullmatch(r"\(\s*\d+\s*\)", args):
        return None
    charset = re.search(r"(?:character\s+set|charset)\s+([a-z0-9_]+)", rest)
    collation = re.search(r"collate\s+([a-z0-9_]+)", rest)
    leftover = re.sub(r"(?:character\s+set|charset|collate)\s+[a-z0-9_]+", "", rest).strip()
    if leftover:
        return None
    return (
        name,
        int(args.strip("() ")),
        charset.group(1) if charset else None,
        collation.group(1) if collation else None,
    )


def _widening(old_type: str, new_type: str) -> tuple[bool, str]:
    """Whether ``old_type`` → ``new_type`` changes only the data dictionary, and why.

    InnoDB extends a VARCHAR/VARBINARY in place while its maximum length in bytes stays in the same
    length-byte class (≤ 255 bytes: one length byte; more: two), in the same character set and
    collation. A column in the table's default character set is reflected without one, so its bytes
    per character are not known here: then it must hold for every character set (1 to 4 bytes)."""
    old, new = _string_spec(old_type), _string_spec(new_type)
    what = f"{old_type} → {new_type}"
    if old is None or new is None or old[0] != new[0]:
        return False, f"changing {what} rewrites the table"
    name, old_len, charset, collation = old
    _, new_len, new_charset, new_collation = new
    if (charset, collation) != (new_charset, new_collation):
        return False, f"{what} changes the character set or collation, which rewrites the column"
    if new_len < old_len:
        return False, f"{what} narrows the column: every row must be checked and rewritten"
    if new_len == old_len:
        return True, "the type does not change"
    if name == "varbinary":
        low = high = 1
    elif charset is None:
        low, high = 1, 4
    elif charset in _MAX_BYTES_PER_CHAR:
        low = high = _MAX_BYTES_PER_CHAR[charset]
    else:
        return False, f"character set {charset} is not known here"
    if not (new_len * high <= 255 or old_len * low > 255):
        if charset is None and name != "varbinary":
            return False, (
                f"{what} may cross 255 bytes (one length byte to two), which rewrites every row: the column "
                "has the table's default character set (1 to 4 bytes a character)"
            )
        return False, f"{what} crosses 255 bytes (one length byte to two), which rewrites every row"
    if not (new_len * high <= _INDEX_KEY_BYTES or old_len * low > _INDEX_KEY_BYTES):
        return False, f"{what} may outgrow an index on the column ({_INDEX_KEY_BYTES} bytes), which rebuilds it"
    return True, f"{what} keeps the same length bytes: only the data dictionary changes"
