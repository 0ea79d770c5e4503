"""Types on the way into the shadow: the casts the copy and the triggers write with, the checks that
find a value the cast would refuse before the copy does, and how a shadow column is declared.

PostgreSQL's explicit casts are not its assignment casts (varchar(n) truncates on one, raises on the
other); the differences that matter for invariant 8 are handled here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.postgresql.base import PostgresBase

if TYPE_CHECKING:
    from shadowswap.plan import ColumnPlan


def _bounded_varchar(type_sql: str) -> int | None:
    """n for ``varchar(n)`` / ``character varying(n)``, else None."""
    from shadowswap.strategy import parse_type, type_params

    parsed = parse_type(type_sql, "postgres")
    if parsed is None or parsed.this.name != "VARCHAR":
        return None
    params = type_params(parsed)
    return params[0] if params else None


class PostgresTypes(PostgresBase):
    def cast_sql(self, expression: str, type_sql: str) -> str:
        # An explicit CAST to varchar(n) truncates silently; casting to unbounded varchar leaves the
        # length check to the INSERT's assignment cast, which raises instead (invariant 8).
        if _bounded_varchar(type_sql) is not None:
            return f"CAST({expression} AS varchar)"
        return super().cast_sql(expression, type_sql)

    def cast_check_predicates(self, column: ColumnPlan, plain_cast: bool) -> tuple[str, str | None]:
        fails, changes = super().cast_check_predicates(column, plain_cast)
        limit = _bounded_varchar(column.new_type)
        if limit is not None:
            fails = f"({fails}) OR char_length({self.cast_sql(column.expression, column.new_type)}) > {limit}"
        return fails, changes

    def shadow_column(
        self, reflected: dict[str, Any], type_: sa.types.TypeEngine[Any], nullable: bool, default: str | None
    ) -> sa.Column[Any]:
        # An identity column is created plain: the copy and the triggers write the original ids, and
        # the identity (continuing the old sequence) is attached at the swap.
        if reflected.get("identity"):
            default = None
        return super().shadow_column(reflected, type_, nullable, default)

    def shadow_table_options(self, conn: Connection, table: str) -> dict[str, Any]:
        """UNLOGGED, the storage parameters and the tablespace, on the shadow from its CREATE TABLE.

        From the start rather than at the swap: the copy then fills pages to the original's
        fillfactor (room for HOT updates) and an unlogged original's copy writes no WAL, as a
        rewriting blocking ALTER would. (The swap sets the parameters again from the catalog as it
        stands then, surroundings.py, so one changed during the copy is carried too.)
        """
        row = conn.execute(
            sa.text(
                "SELECT c.relpersistence, c.reloptions, t.reloptions,"
                # the table's own tablespace (0: the database's default, where CREATE TABLE puts it
                # unless default_tablespace says otherwise, which the shadow then must not follow)
                " CASE WHEN c.reltablespace = 0 THEN (SELECT s.spcname FROM pg_database d JOIN pg_tablespace s"
                "  ON s.oid = d.dattablespace WHERE d.datname = current_database()"
                "  AND current_setting('default_tablespace') <> '')"
                "  ELSE (SELECT spcname FROM pg_tablespace WHERE oid = c.reltablespace) END"
                " FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.oid = to_regclass(:t)"
            ),
            {"t": self.q(table)},
        ).first()
        if row is None:
            return {}
        options: dict[str, Any] = {}
        if row[0] == "u":
            options["prefixes"] = ["UNLOGGED"]
        with_: dict[str, str] = {}
        for prefix, reloptions in (("", row[1]), ("toast.", row[2])):
            for item in reloptions or []:
                name, _, value = item.partition("=")
                # names are the server's own option names; values go in as string literals
                with_[f"{prefix}{name}"] = "'" + value.replace("'", "''") + "'"
        if with_:
            options["postgresql_with"] = with_
        if row[3] is not None:
            options["postgresql_tablespace"] = row[3]
        return options
