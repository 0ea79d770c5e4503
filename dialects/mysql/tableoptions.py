"""Table options on the new table (``ENGINE``, ``ROW_FORMAT``, ``KEY_BLOCK_SIZE``, ``AUTO_INCREMENT``,
``COMMENT``, ``DEFAULT CHARSET``, ``COLLATE``), and the table's space on disk.

The shadow already gets the original's options from its ``CREATE TABLE`` (``preflight.py``); a plan
that changes one writes it there instead, so the copy fills pages of the new row format, as the
engine's own rebuilding ALTER would. A changed table default (``DEFAULT CHARSET``/``COLLATE``) would
also change every text column that follows the default, which the blocking ALTER does not do (it
only converts columns under ``CONVERT TO``): those columns get their current character set and
collation written out on the shadow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.mysql.base import MySQLBase

if TYPE_CHECKING:
    from shadowswap.changes import TableOption

#: the option's ``sa.Table`` keyword (SQLAlchemy's MySQL dialect renders each after the columns)
_KEYWORDS = {
    "ENGINE": "mysql_engine",
    "ROW_FORMAT": "mysql_row_format",
    "KEY_BLOCK_SIZE": "mysql_key_block_size",
    "AUTO_INCREMENT": "mysql_auto_increment",
    "COMMENT": "mysql_comment",
    "DEFAULT CHARSET": "mysql_default charset",
    "COLLATE": "mysql_collate",
}
_DEFAULT_CHARSET_KEYS = ("mysql_default charset", "mysql_default_charset", "mysql_charset")


class MySQLTableOptions(MySQLBase):
    def table_option_refusal(self, option: TableOption) -> str | None:
        if option.name not in _KEYWORDS:
            return f"{option.name} is not a MySQL table option shadowswap can set"
        if option.name == "ENGINE" and option.value is not None and option.value.lower() != "innodb":
            return (
                f"ENGINE={option.value}: the copy, the change log and the swap need InnoDB's transactions "
                "and row locks on the new table too"
            )
        return None

    def table_option_invalid(self, conn: Connection, option: TableOption) -> str | None:
        value = str(option.value)
        if option.name == "ROW_FORMAT" and value.upper() not in (
            "DEFAULT",
            "DYNAMIC",
            "FIXED",
            "COMPRESSED",
            "REDUNDANT",
            "COMPACT",
            "PAGE",
        ):
            return f"ROW_FORMAT={value} is not a row format"
        if option.name == "KEY_BLOCK_SIZE" and value not in ("0", "1", "2", "4", "8", "16"):
            return f"KEY_BLOCK_SIZE={value}: InnoDB takes 0, 1, 2, 4, 8 or 16"
        if option.name == "DEFAULT CHARSET":
            found = conn.execute(
                sa.text("SELECT 1 FROM information_schema.CHARACTER_SETS WHERE CHARACTER_SET_NAME = :v"), {"v": value}
            ).first()
            return None if found else f"character set {value!r} is unknown to this server"
        if option.name == "COLLATE":
            found = conn.execute(
                sa.text("SELECT 1 FROM information_schema.COLLATIONS WHERE COLLATION_NAME = :v"), {"v": value}
            ).first()
            return None if found else f"collation {value!r} is unknown to this server"
        return None

    def table_option_in_place(self, name: str | None) -> str | None:
        # MariaDB changes a table's comment and its AUTO_INCREMENT counter with ALGORITHM=INSTANT
        # (checked by the server: the one in-place ALTER carries the clause, instant.py)
        if name in ("COMMENT", "AUTO_INCREMENT") and self.is_mariadb:
            return f"{name} changes the data dictionary only (ALGORITHM=INSTANT)"
        return None

    def table_option_in_place_sql(self, table: str, changes: Sequence[TableOption]) -> list[str]:
        quoted = self.preparer.quote(table)
        out = []
        for change in changes:
            value = str(change.value)
            if change.name == "COMMENT":
                # rendered as the shadow's CREATE TABLE renders it (the session's escaping rules)
                literal = sa.literal(value, sa.String()).compile(
                    dialect=self.sa_dialect, compile_kwargs={"literal_binds": True}
                )
                out.append(f"ALTER TABLE {quoted} COMMENT={self.unescape_percents(str(literal))}")
            else:
                out.append(f"ALTER TABLE {quoted} {change.name}={int(value)}")
        return out

    def change_table_options(
        self, conn: Connection, table: str, options: dict[str, Any], changes: Sequence[TableOption]
    ) -> dict[str, Any]:
        out = dict(options)
        names = {c.name for c in changes}
        if "DEFAULT CHARSET" in names or "COLLATE" in names:
            # one decides the other: a new character set takes its default collation unless one is
            # given, a new collation names its character set (as ALTER TABLE reads them)
            for key in (*_DEFAULT_CHARSET_KEYS, "mysql_collate"):
                out.pop(key, None)
        for change in changes:
            assert change.value is not None  # every MySQL option takes a value (changes.shape_table_option)
            out[_KEYWORDS[change.name]] = change.value
        return out

    def keep_column_defaults(
        self, conn: Connection, table: str, shadow: sa.Table, changes: Sequence[TableOption]
    ) -> None:
        if not any(c.name in ("DEFAULT CHARSET", "COLLATE") for c in changes):
            return
        current = {
            str(name): (str(charset), str(collation))
            for name, charset, collation in conn.execute(
                sa.text(
                    "SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS"
                    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND CHARACTER_SET_NAME IS NOT NULL"
                ),
                {"t": table},
            )
        }
        for column in shadow.columns:
            kept = current.get(str(column.key))
            type_ = column.type
            if kept is None or not hasattr(type_, "charset") or not hasattr(type_, "collation"):
                continue  # not text, or a type given by the plan (it takes the new default, as in ALTER)
            type_.charset, type_.collation = kept

    def table_bytes(self, conn: Connection, table: str) -> int | None:
        # The tablespace file's allocated size is what the disk holds now; information_schema.TABLES'
        # DATA_LENGTH + INDEX_LENGTH come from the persistent statistics, refreshed only after 10 %
        # of the rows changed (stale right after a copy), so they are the fallback only.
        row = conn.execute(
            sa.text(
                "SELECT ALLOCATED_SIZE FROM information_schema.INNODB_SYS_TABLESPACES WHERE NAME = "
                "CONCAT(DATABASE(), '/', :t)"
            ),
            {"t": table},
        ).first()
        if row is not None and row[0]:
            return int(row[0])
        row = conn.execute(
            sa.text(
                "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                " AND TABLE_NAME = :t"
            ),
            {"t": table},
        ).first()
        return int(row[0]) if row is not None and row[0] is not None else None
