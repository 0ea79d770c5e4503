"""Column types on MySQL/MariaDB: parsing a type as written, casts, the cast check, shadow columns.

MySQL converts a value when it stores it (and under strict sql_mode refuses rather than
truncates), so the copy expression adds a CAST only where it cannot lose anything, and the cast
check spells out "the new column refuses this value" for the types whose limits are known. The
trigger's value of a column (``_trigger_value``, invariant 1: the copy's expression) and the
AUTO_INCREMENT shadow column live here; the helpers parsing a type's spelling are shared with
``instant.py`` and ``checksum.py``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from shadowswap.dialects.mysql.base import MySQLBase
from shadowswap.dialects.mysql.catalog import install_reflection

if TYPE_CHECKING:
    from shadowswap.plan import ColumnPlan, Plan


_INTEGER_TYPES = {
    "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "int1", "int2", "int3", "int4", "int8",
    "middleint", "bool", "boolean", "serial",
}  # fmt: skip
_TEXT_TYPES = {
    "char", "varchar", "character", "nchar", "nvarchar", "national", "tinytext", "text", "mediumtext", "longtext",
    "long",
}  # fmt: skip
_BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_TYPE_RE = re.compile(r"^\s*([a-z_][a-z0-9_]*(?:\s+[a-z_][a-z0-9_]*)*?)\s*(\([^)]*\))?\s*([a-z0-9_ ]*)$")


class _IntegerSpec(sa.types.Integer):
    """An integer type exactly as the user wrote it, so SQLAlchemy still emits AUTO_INCREMENT for it."""

    def __init__(self, spec: str) -> None:
        self.spec = spec


@compiles(_IntegerSpec)
def _compile_integer_spec(type_: _IntegerSpec, compiler: Any, **kw: Any) -> str:
    return type_.spec


class MySQLTypes(MySQLBase):
    """Type validation, casts and the cast check, a column's value in a trigger, AUTO_INCREMENT shadow columns."""

    def __init__(self, sa_dialect: sa.engine.Dialect) -> None:
        super().__init__(sa_dialect)
        # types SQLAlchemy has no class for, and column-level CHECKs, survive reflection (catalog.py)
        install_reflection(sa_dialect)

    def validate_type_sql(self, type_sql: str) -> str:
        # MySQL's CAST knows a handful of types, so ask the server to parse a column definition:
        # PREPARE checks the type (names, lengths, precisions, character sets) without creating
        # anything; the statement handle is replaced by the next check and ends with the session.
        literal = type_sql.replace("\\", "\\\\").replace("'", "''")
        return f"PREPARE _shadowswap_type_check FROM 'CREATE TEMPORARY TABLE _shadowswap_type_check (c {literal})'"

    def validate_default_sql(self, default: str, type_sql: str) -> str:
        # The same server-side parse as for a type: the default must be one expression a column of
        # that type accepts as its DEFAULT (a value of the wrong type is caught creating the shadow).
        column = f"c {type_sql} DEFAULT {default}".replace("\\", "\\\\").replace("'", "''")
        return f"PREPARE _shadowswap_type_check FROM 'CREATE TEMPORARY TABLE _shadowswap_type_check ({column})'"

    def cast_expression(self, column: str, type_sql: str) -> str:
        return self.cast_sql(self.column_reference(column), type_sql)

    def cast_sql(self, expression: str, type_sql: str) -> str:
        """The copy expression into ``type_sql``: MySQL converts a value when it stores it, and under
        strict sql_mode that conversion fails rather than truncates (invariant 8); a blocking ALTER
        converts the same way. A CAST is added only where it cannot lose anything (text, bytes):
        ``CAST(x AS CHAR(5))`` would truncate silently, the store into varchar(5) raises, and
        ``CAST(-1 AS UNSIGNED)`` wraps around where storing -1 into an unsigned column raises."""
        target = _lossless_cast(type_sql)
        # otherwise the bare value in parentheses: still a conversion, to the eye and to the cast check
        return f"CAST({expression} AS {target})" if target else f"({expression})"

    def cast_check_predicates(self, column: ColumnPlan, plain_cast: bool) -> tuple[str, str | None]:
        """MySQL's conversions warn instead of failing outside a write, so "the new column refuses
        the value" is spelled out for the types whose limits are known: NULL into NOT NULL, text or
        bytes longer than the column, a number out of range, text that is not a number."""
        stored = self.cast_sql(column.expression, column.new_type)
        fails = ["1 = 0"] if column.new_nullable else [f"({column.expression}) IS NULL"]
        source_is_text = _family(column.old_type or "") in ("text", "binary") if plain_cast else True
        fails += _refusals(stored, column.new_type, source_is_text)
        changes = None
        if plain_cast and column.source_column is not None and column.old_type:
            back = _as_stored(_as_stored(stored, column.new_type), column.old_type)
            src = self.column_reference(column.source_column)
            changes = f"NOT (BINARY CAST({back} AS CHAR) <=> BINARY CAST({src} AS CHAR))"
        return " OR ".join(f"({f})" for f in fails), changes

    def convert_charset(
        self, conn: Any, table: str, charset: str, collation: str | None
    ) -> tuple[list[Any], dict[str, str]]:
        """``CONVERT TO CHARACTER SET cs [COLLATE c]`` as the engine makes it: every column with a
        character set (CHAR, VARCHAR, the TEXTs, ENUM, SET; MariaDB's JSON too) gets ``cs`` and ``c``
        (the character set's default collation when none is given), a TEXT type grows to the next one
        where its characters no longer fit in bytes (latin1 TEXT → utf8mb4 MEDIUMTEXT: the engine
        keeps as many characters as before, never fewer), VARCHAR and CHAR keep their length in
        characters, and the table's default character set and collation become ``cs`` and ``c``."""
        from shadowswap.changes import AlterColumn
        from shadowswap.errors import UsageError

        found = conn.execute(
            sa.text(
                "SELECT MAXLEN, DEFAULT_COLLATE_NAME FROM information_schema.CHARACTER_SETS"
                " WHERE CHARACTER_SET_NAME = :cs"
            ),
            {"cs": charset},
        ).fetchone()
        if found is None:
            raise UsageError(f"CONVERT TO CHARACTER SET {charset}: the server has no character set {charset!r}")
        new_max, default_collation = int(found[0]), str(found[1])
        if collation is None:
            collation = default_collation
        elif not conn.execute(
            sa.text(
                "SELECT 1 FROM information_schema.COLLATIONS WHERE COLLATION_NAME = :c AND CHARACTER_SET_NAME = :cs"
            ),
            {"c": collation, "cs": charset},
        ).fetchone():
            raise UsageError(f"CONVERT TO CHARACTER SET {charset} COLLATE {collation}: not a collation of {charset}")
        rows = conn.execute(
            sa.text(
                "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, cs.MAXLEN, c.GENERATION_EXPRESSION,"
                " c.EXTRA FROM information_schema.COLUMNS c JOIN information_schema.CHARACTER_SETS cs"
                " ON cs.CHARACTER_SET_NAME = c.CHARACTER_SET_NAME"
                " WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = :t ORDER BY c.ORDINAL_POSITION"
            ),
            {"t": table},
        ).fetchall()
        changes = []
        for name, data_type, column_type, old_max, generation, extra in rows:
            type_sql = str(column_type)
            kind = str(data_type).lower()
            if kind in _TEXT_SIZES:
                type_sql = _grown_text(kind, int(old_max), new_max)
            type_sql += f" CHARACTER SET {charset} COLLATE {collation}"
            generated: dict[str, Any] = {}
            if generation:
                # restated with its own expression: the engine recomputes it in the new character set
                generated = {"generated": str(generation), "stored": "STORED" in str(extra).upper()}
            changes.append(AlterColumn(column=str(name), type_sql=type_sql, **generated))
        return changes, {"mysql_default charset": charset, "mysql_collate": collation}

    def _trigger_value(self, plan: Plan, column: ColumnPlan, record: str) -> str:
        """``column``'s copy expression over a trigger's NEW/OLD row (invariant 1: the same expression).

        A one-row derived table per row is expensive here (MariaDB materializes it, on disk when a
        TEXT column is in it), so our own casts and plain columns read the record directly and a
        user's ``--using`` expression gets a derived table holding only the columns it mentions.
        """
        source = column.source_column
        if source is not None and column.expression == self.column_reference(source):
            return f"{record}.{self.q(source)}"
        if source is not None and column.expression == self.cast_expression(source, column.new_type):
            return self.cast_sql(f"{record}.{self.q(source)}", column.new_type)
        mentioned = [c for c in plan.source_columns if self._mentions(column.expression, c)]
        if not mentioned:  # a constant (an added column's value, say)
            return f"({column.expression})"
        cols = ", ".join(f"{record}.{self.q(c)} AS {self.q(c)}" for c in mentioned)
        return f"(SELECT {column.expression} FROM (SELECT {cols}) AS src)"

    def _mentions(self, expression: str, column: str) -> bool:
        text = expression.lower()
        if self.q(column).lower() in text:
            return True
        return re.search(rf"(?<![\w$]){re.escape(column.lower())}(?![\w$])", text) is not None

    def shadow_column(
        self, reflected: dict[str, Any], type_: sa.types.TypeEngine[Any], nullable: bool, default: str | None
    ) -> sa.Column[Any]:
        column = self._shadow_column(reflected, type_, nullable, default)
        check = reflected.get("mysql_column_check")
        if check and (type_ is reflected.get("type") or reflected.get("mysql_keep_column_check")):
            # A column's own CHECK (MariaDB's JSON is LONGTEXT … CHECK (json_valid(col))) stays with
            # it, as in a blocking ALTER; a new type drops it there too (MODIFY replaces the column),
            # but CONVERT TO CHARACTER SET keeps it.
            column._init_items(sa.CheckConstraint(sa.text(check)))
        return column

    def _shadow_column(
        self, reflected: dict[str, Any], type_: sa.types.TypeEngine[Any], nullable: bool, default: str | None
    ) -> sa.Column[Any]:
        if reflected.get("autoincrement") is not True:
            return super().shadow_column(reflected, type_, nullable, default)
        # The shadow keeps AUTO_INCREMENT (and the counter, see shadow_table_options), so ids go on
        # after the swap; the copy never bulk-inserts into it (the package docstring, in __init__.py).
        spec = getattr(type_, "spec", None)
        if spec is not None:
            # an integer type: the check mysql-auto-increment-type (checks.py) refused any other
            type_ = _IntegerSpec(spec)
        return sa.Column(
            reflected["name"],
            type_,
            nullable=nullable,
            autoincrement=True,
            comment=reflected.get("comment"),
        )


#: the TEXT types by their size in bytes, smallest first
_TEXT_SIZES = {"tinytext": 255, "text": 65_535, "mediumtext": 16_777_215, "longtext": 4_294_967_295}


def _grown_text(kind: str, old_max: int, new_max: int) -> str:
    """The TEXT type holding as many characters of ``new_max`` bytes as ``kind`` held of ``old_max``."""
    needed = _TEXT_SIZES[kind] // old_max * new_max
    return next((name for name, size in _TEXT_SIZES.items() if size >= needed), "longtext")


def _split_type(type_sql: str) -> tuple[str, str, str]:
    match = _TYPE_RE.match(type_sql.lower())
    if not match:
        return "", "", ""
    return match.group(1), match.group(2) or "", match.group(3).strip()


def _charset(rest: str) -> str:
    match = re.search(r"(?:character\s+set|charset)\s+([a-z0-9_]+)", rest)
    return f" CHARACTER SET {match.group(1)}" if match else ""


def _lossless_cast(type_sql: str) -> str | None:
    name, _args, rest = _split_type(type_sql)
    first = name.split()[0] if name else ""
    if first in _TEXT_TYPES:
        return "CHAR" + _charset(f"{name} {rest}")
    if first in _BINARY_TYPES:
        return "BINARY"
    return None


def _as_stored(expression: str, type_sql: str) -> str:
    """``expression`` as a column of ``type_sql`` would give it back, for the checksum only."""
    name, args, rest = _split_type(type_sql)
    words = name.split()
    first = words[0] if words else ""
    if first in _INTEGER_TYPES and first != "serial":
        return f"CAST({expression} AS {'UNSIGNED' if 'unsigned' in rest.split() else 'SIGNED'})"
    if first in ("decimal", "numeric", "dec", "fixed"):
        return f"CAST({expression} AS DECIMAL{args.replace(' ', '')})"
    if first in ("double", "real") and not args:
        return f"CAST({expression} AS DOUBLE)"
    if first == "float" and not args:
        return f"CAST({expression} AS FLOAT)"
    if first == "date":
        return f"CAST({expression} AS DATE)"
    if first in ("datetime", "timestamp"):
        return f"CAST({expression} AS DATETIME{args})"
    if first == "time":
        return f"CAST({expression} AS TIME{args})"
    if first in ("char", "character", "nchar", "national") and "varying" not in words and "varchar" not in words:
        return f"RTRIM({expression})"  # CHAR(n) comes back without its trailing spaces
    return expression


def _family(type_sql: str) -> str:
    name, _args, _rest = _split_type(type_sql)
    first = name.split()[0] if name else ""
    if first in _INTEGER_TYPES:
        return "integer"
    if first in ("decimal", "numeric", "dec", "fixed"):
        return "decimal"
    if first in _TEXT_TYPES:
        return "text"
    if first in _BINARY_TYPES:
        return "binary"
    if first in ("date", "datetime", "timestamp", "time"):
        return "temporal"
    return "other"


_INT_RANGES = {
    "tinyint": 8, "int1": 8, "bool": 8, "boolean": 8, "smallint": 16, "int2": 16, "mediumint": 24, "int3": 24,
    "middleint": 24, "int": 32, "integer": 32, "int4": 32, "bigint": 64, "int8": 64,
}  # fmt: skip
_TEXT_BYTES = {"tinytext": 255, "text": 65_535, "mediumtext": 16_777_215, "tinyblob": 255, "blob": 65_535}
_NUMBER_TEXT = r"'^[[:space:]]*[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?[[:space:]]*$'"
_INTEGER_TEXT = r"'^[[:space:]]*[-+]?[0-9]+[[:space:]]*$'"


def _refusals(value: str, type_sql: str, source_is_text: bool) -> list[str]:
    """Conditions under which storing ``value`` into a ``type_sql`` column raises in strict mode."""
    name, args, rest = _split_type(type_sql)
    first = name.split()[0] if name else ""
    sizes = [int(n) for n in re.findall(r"\d+", args)]
    family = _family(type_sql)
    out = []
    if family == "text" and sizes and first not in _TEXT_BYTES:
        out.append(f"CHAR_LENGTH({value}) > {sizes[0]}")
    elif family == "text" and first in _TEXT_BYTES:
        out.append(f"LENGTH(CONVERT({value} USING utf8mb4)) > {_TEXT_BYTES[first]}")
    elif family == "binary" and sizes:
        out.append(f"LENGTH({value}) > {sizes[0]}")
    elif family == "integer" and first in _INT_RANGES:
        bits = _INT_RANGES[first]
        low, high = (0, 2**bits - 1) if "unsigned" in rest.split() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        if source_is_text:
            out.append(f"CAST({value} AS CHAR) NOT REGEXP {_INTEGER_TEXT}")
        out.append(f"ROUND(CAST({value} AS DECIMAL(65, 10))) NOT BETWEEN {low} AND {high}")
    elif family == "decimal":
        precision = sizes[0] if sizes else 10
        scale = sizes[1] if len(sizes) > 1 else 0
        if source_is_text:
            out.append(f"CAST({value} AS CHAR) NOT REGEXP {_NUMBER_TEXT}")
        out.append(f"ABS(ROUND(CAST({value} AS DECIMAL(65, 30)), {scale})) >= 1e{precision - scale}")
    elif family == "temporal" and source_is_text:
        target = {"date": "DATE", "time": "TIME"}.get(first, "DATETIME")
        out.append(f"{value} IS NOT NULL AND CAST({value} AS {target}) IS NULL")
    return out
