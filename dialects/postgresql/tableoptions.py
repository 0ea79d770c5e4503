"""Table options on the new table (storage parameters, tablespace, UNLOGGED), the table's space on
disk, and the index order ``--order-by`` copies the rows in.

The shadow is created with the original's storage parameters, persistence and tablespace
(``types.py``), and the swap sets the parameters again from the catalog as it stands then
(``surroundings.py``). A plan that changes one creates the shadow with the new value, and the swap
applies the change once more after that carry-over, which would otherwise put the old value back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.postgresql.base import PostgresBase

if TYPE_CHECKING:
    from shadowswap.changes import TableOption
    from shadowswap.plan import Plan

#: the storage parameters of a table (and ``toast.`` for its TOAST table), PostgreSQL 15's list
_PARAMETER = re.compile(
    r"^(fillfactor|toast_tuple_target|parallel_workers|user_catalog_table|autovacuum_\w+|"
    r"vacuum_index_cleanup|vacuum_truncate|log_autovacuum_min_duration|"
    r"toast\.(autovacuum_\w+|vacuum_index_cleanup|vacuum_truncate|log_autovacuum_min_duration))$"
)


class PostgresTableOptions(PostgresBase):
    def table_option_refusal(self, option: TableOption) -> str | None:
        if option.name in ("TABLESPACE", "LOGGED") or _PARAMETER.match(option.name):
            return None
        if option.name.isupper():
            return f"{option.name} is a MySQL table option; PostgreSQL has none by that name"
        return f"{option.name} is not a storage parameter of a PostgreSQL table"

    def table_option_invalid(self, conn: Connection, option: TableOption) -> str | None:
        value = option.value
        if option.name == "TABLESPACE":
            row = conn.execute(
                sa.text(
                    "SELECT has_tablespace_privilege(oid, 'CREATE') OR spcname IN ('pg_default', 'pg_global')"
                    " FROM pg_tablespace WHERE spcname = :n"
                ),
                {"n": value},
            ).first()
            if row is None:
                return f"tablespace {value!r} does not exist"
            return None if row[0] else f"this role may not create tables in tablespace {value!r}"
        if value is None or option.name == "LOGGED":
            return None
        name = option.name.removeprefix("toast.")
        limits = {"fillfactor": (10, 100), "toast_tuple_target": (128, 8160), "parallel_workers": (0, 1024)}
        if name in limits:
            low, high = limits[name]
            if not value.isdigit() or not low <= int(value) <= high:
                return f"{option.name} takes a whole number from {low} to {high}, not {value!r}"
        if name in ("autovacuum_enabled", "vacuum_truncate", "user_catalog_table") and value.lower() not in (
            "true",
            "false",
            "on",
            "off",
            "yes",
            "no",
            "1",
            "0",
        ):
            return f"{option.name} takes true or false, not {value!r}"
        return None

    def change_table_options(
        self, conn: Connection, table: str, options: dict[str, Any], changes: Sequence[TableOption]
    ) -> dict[str, Any]:
        out = dict(options)
        with_ = dict(out.get("postgresql_with") or {})
        for change in changes:
            if change.name == "TABLESPACE":
                out["postgresql_tablespace"] = change.value  # quoted by SQLAlchemy's compiler
            elif change.name == "LOGGED":
                prefixes = [p for p in out.get("prefixes", []) if p != "UNLOGGED"]
                out["prefixes"] = prefixes if change.value == "true" else [*prefixes, "UNLOGGED"]
            elif change.value is None:
                with_.pop(change.name, None)
            else:
                # the name matched _PARAMETER; the value goes in as a string literal
                with_[change.name] = "'" + change.value.replace("'", "''") + "'"
        if with_:
            out["postgresql_with"] = with_
        else:
            out.pop("postgresql_with", None)
        return out

    def table_option_in_place(self, name: str | None) -> str | None:
        if name is None or name in ("TABLESPACE", "LOGGED") or not _PARAMETER.match(name):
            return None  # SET TABLESPACE and SET [UN]LOGGED rewrite the table under ACCESS EXCLUSIVE
        # SET/RESET of a storage parameter takes SHARE UPDATE EXCLUSIVE (fillfactor, autovacuum_*,
        # toast_tuple_target, parallel_workers; reads and writes go on) or a brief ACCESS EXCLUSIVE for
        # a few others, under the lock timeout either way; the rows stay where they are
        return (
            "SET/RESET of a storage parameter changes the catalog only; existing pages keep their fill "
            "until rewritten (add --rebuild to repack them)"
        )

    def table_option_in_place_sql(self, table: str, changes: Sequence[TableOption]) -> list[str]:
        return self._parameter_sql(table, changes)

    def table_option_sql(self, conn: Connection, plan: Plan, changes: Sequence[TableOption]) -> list[str]:
        out: list[str] = []
        for change in changes:
            if change.name == "LOGGED" and (self.sa_dialect.server_version_info or (0,)) >= (15,):
                # PostgreSQL 15's SET [UN]LOGGED also sets the sequences the table owns (serial
                # columns); the shadow's own identity sequences are made with its persistence
                word = "LOGGED" if change.value == "true" else "UNLOGGED"
                out += [
                    f"ALTER SEQUENCE {seq} SET {word}"
                    for (seq,) in conn.execute(
                        sa.text(
                            "SELECT s.oid::regclass::text FROM pg_depend d JOIN pg_class s ON s.oid = d.objid"
                            " WHERE d.refobjid = to_regclass(:t) AND d.classid = 'pg_class'::regclass"
                            " AND s.relkind = 'S' AND d.deptype = 'a'"
                        ),
                        {"t": self.q(plan.table)},
                    )
                ]
        # the shadow was created with the tablespace and persistence, which the swap's carry-over
        # leaves alone; the storage parameters it sets back to the old ones, so again after it
        return out + self._parameter_sql(plan.table, changes)

    def _parameter_sql(self, table: str, changes: Sequence[TableOption]) -> list[str]:
        t = self.q(table)
        out = []
        for change in changes:
            if change.name in ("TABLESPACE", "LOGGED"):
                continue
            if change.value is None:
                out.append(f"ALTER TABLE {t} RESET ({change.name})")
            else:
                # the name matched _PARAMETER; the value goes in as a string literal
                out.append(f"ALTER TABLE {t} SET ({change.name} = '{change.value.replace(chr(39), chr(39) * 2)}')")
        return out

    def table_bytes(self, conn: Connection, table: str) -> int | None:
        # heap, TOAST, free space and visibility maps, and every index: what VACUUM FULL gives back
        size = conn.execute(sa.text("SELECT pg_total_relation_size(to_regclass(:t))"), {"t": self.q(table)}).scalar()
        return int(size) if size is not None else None

    def order_by_refusal(self) -> str | None:
        return None

    def order_by_keys(self, conn: Connection, table: str, index: str) -> list[str] | None:
        row = conn.execute(
            sa.text(
                "SELECT x.indexrelid, x.indnkeyatts, am.amname, x.indoption::int2[],"
                # each key's collation (the index's own, which may differ from its column's)
                " ARRAY(SELECT CASE WHEN c.oid IS NULL THEN '' ELSE quote_ident(n.nspname) || '.'"
                "  || quote_ident(c.collname) END FROM unnest(x.indcollation::oid[]) WITH ORDINALITY AS k(coll, i)"
                "  LEFT JOIN pg_collation c ON c.oid = k.coll LEFT JOIN pg_namespace n ON n.oid = c.collnamespace"
                "  ORDER BY k.i)"
                " FROM pg_index x"
                " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam"
                " WHERE x.indrelid = to_regclass(:t) AND i.relname = :i"
            ),
            {"t": self.q(table), "i": index},
        ).first()
        if row is None:
            return None
        oid, keys, method, options, collations = row
        if method != "btree":
            return []
        out = []
        for k in range(1, int(keys) + 1):
            expr = conn.execute(sa.text("SELECT pg_get_indexdef(:o, :k, true)"), {"o": oid, "k": k}).scalar_one()
            flags = int(options[k - 1]) if options else 0
            # indoption bits: 1 DESC, 2 NULLS FIRST (btree's defaults: ASC NULLS LAST, DESC NULLS FIRST)
            order = " DESC" if flags & 1 else ""
            order += " NULLS FIRST" if flags & 2 else " NULLS LAST"
            collation = collations[k - 1] if collations and k <= len(collations) else ""
            out.append(f"{expr}{' COLLATE ' + collation if collation else ''}{order}")
        return out
