"""Foreign keys from the table and to it: moved to the new table inside the swap's lock.

InnoDB names a foreign key per database, so the shadow cannot hold ``fk_kind`` while the table
does; and ``RENAME TABLE`` takes the keys of other tables that reference the table along with it,
so after a plain swap they would point at the old table. pt-online-schema-change re-creates such
child keys after the swap (``--alter-foreign-keys-method rebuild_constraints``, a blocking
rebuild of each child) or drops the old table with checks off (``drop_swap``, a moment with no
table). Here both kinds move *before* the RENAME, under the change-log swap's ``LOCK TABLES``,
after the last replay, when the shadow holds exactly the table's rows:

- a key of the table: dropped from the table, added to the shadow under its own name;
- a key of another table referencing the table: dropped and added again referencing the shadow;
  the RENAME then carries it with the shadow to the table's name (its child table is in the
  ``LOCK TABLES`` list too, so the child's writes also wait those milliseconds).

Both run with ``foreign_key_checks = 0``: InnoDB then adds a key in place without reading a row
(``ALGORITHM=INPLACE``, metadata only, the backing index already exists on both sides), and no
check is needed because the rows are those the same key guarded a moment before. The swap's lock
is held two metadata-only ALTERs per key longer. No application write runs between a drop and
its add (both tables are locked WRITE), so to the application the keys never stop holding.

Refused at plan time instead: a key of the table that cascades (``ON DELETE CASCADE``, ``SET
NULL``…), since the changes InnoDB cascades into the table fire no triggers and the shadow would
miss them; a key over a column the plan renames or drops; any key on a plan that swaps without
the change log's lock (its primary key changes, or statement-based binary logging).
A run that dies between a drop and its add leaves that key missing until ``execute`` is run again
(the move is idempotent and the swap redoes it, the state table's ``moving_at_swap`` mark telling
it that the missing key is its own) or ``abort`` puts it back on the table (swap.py ``restore_moved``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.mysql.base import MySQLBase
from shadowswap.dialects.mysql.catalog import show_create
from shadowswap.errors import StalePlan, UsageError
from shadowswap.plan import KeyFromTable, KeyToTable

if TYPE_CHECKING:
    from shadowswap.plan import Plan

_IDENT = r"`(?:[^`]|``)*`"
_CONSTRAINT = re.compile(
    rf"^\s*CONSTRAINT ({_IDENT}) FOREIGN KEY (\([^)]*\)) REFERENCES ((?:{_IDENT}\.)?{_IDENT}) (\([^)]*\))(.*?),?$"
)
_CASCADES = re.compile(r"\bON (?:DELETE|UPDATE) (?:CASCADE|SET NULL|SET DEFAULT)\b", re.IGNORECASE)


def _unquote(ident: str) -> str:
    return ident[1:-1].replace("``", "`")


def _columns(group: str) -> list[str]:
    return [_unquote(c) for c in re.findall(_IDENT, group)]


def _constraints(ddl: str) -> list[dict[str, Any]]:
    out = []
    for line in ddl.splitlines():
        m = _CONSTRAINT.match(line)
        if m:
            name, cols, referred, ref_cols, rest = m.groups()
            parts = re.findall(_IDENT, referred)
            out.append(
                {
                    "name": _unquote(name),
                    "columns": _columns(cols),
                    "referred": _unquote(parts[-1]),
                    "referred_sql": referred,
                    "qualified": len(parts) > 1,
                    "referred_columns": _columns(ref_cols),
                    "cols_sql": cols,
                    "ref_cols_sql": ref_cols,
                    "rules": rest.strip(),
                }
            )
    return out


class MySQLForeignKeys(MySQLBase):
    """Foreign keys from and to the table: read at plan time, moved under the swap's lock."""

    def foreign_key_facts(
        self, conn: Connection, plan: Plan, reflection: Any
    ) -> tuple[list[KeyFromTable], list[KeyToTable]]:
        """The keys to move at the swap (``MovedAtSwap.keys_from``/``keys_to``), or a one-line refusal."""
        table = plan.table
        kept = {c.source_column: c.name for c in plan.columns if c.source_column is not None}
        fk_from: list[KeyFromTable] = []
        for fk in _constraints(show_create(conn, table, self.q)):
            if fk["referred"] == table and not fk["qualified"]:
                continue  # self-reference: the planner refuses it
            if _CASCADES.search(fk["rules"]):
                raise UsageError(
                    f"foreign key {fk['name']!r} of {table!r} cascades ({fk['rules']}): changes InnoDB cascades "
                    "into the table fire no triggers, so the shadow copy would miss them",
                    hint="make it ON DELETE/UPDATE RESTRICT for the migration, or drop it and add it back after",
                )
            moved = [c for c in fk["columns"] if kept.get(c) != c]
            if moved:
                raise UsageError(
                    f"foreign key {fk['name']!r} uses column {moved[0]!r}, which this plan renames or drops",
                    hint="drop the key before migrating and add it back after",
                )
            clause = f"ADD CONSTRAINT {self.q(fk['name'])} FOREIGN KEY {fk['cols_sql']} REFERENCES "
            referred = fk["referred_sql"]  # as the server wrote it: qualified when in another database
            fk_from.append(KeyFromTable(name=fk["name"], sql=f"{clause}{referred} {fk['ref_cols_sql']} {fk['rules']}"))
        fk_to: list[KeyToTable] = []
        for child in sorted(set(reflection.referenced_by)):
            for fk in _constraints(show_create(conn, child, self.q)):
                if fk["referred"] != table or fk["qualified"]:
                    continue
                moved = [c for c in fk["referred_columns"] if kept.get(c) != c]
                if moved:
                    raise UsageError(
                        f"foreign key {fk['name']!r} of {child!r} references column {moved[0]!r}, which this plan "
                        "renames or drops",
                        hint="drop the key before migrating and add it back after",
                    )
                fk_to.append(
                    KeyToTable(
                        table=child,
                        name=fk["name"],
                        head=f"ADD CONSTRAINT {self.q(fk['name'])} FOREIGN KEY {fk['cols_sql']} REFERENCES ",
                        tail=f" {fk['ref_cols_sql']} {fk['rules']}",
                    )
                )
        if (fk_from or fk_to) and not plan.capture.change_log:
            names = [f.name for f in fk_from] + [f"{f.table}.{f.name}" for f in fk_to]
            raise UsageError(
                f"table {table!r} has foreign keys from or to it ({', '.join(names)}) and this plan swaps without "
                "a change log (its primary key changes, or statement-based binlog), so no lock to move them under",
                hint="drop them before migrating and add them back after",
            )
        return fk_from, fk_to

    def swap_lock_tables(self, plan: Plan) -> list[str]:
        """Tables whose keys move at the swap: locked WRITE with it (ALTER under LOCK TABLES needs it)."""
        return sorted({f.table for f in plan.moved_at_swap.keys_to})

    def _check_unchanged(self, conn: Connection, plan: Plan, resumed: bool) -> None:
        """A key added or dropped since the plan would be left on the old table or brought back
        (``resumed``: a missing one is one a killed swap dropped, see ``move_foreign_keys``)."""
        rows = conn.execute(
            sa.text(
                "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME "
                "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() "
                "AND (TABLE_NAME IN (:t, :s) OR REFERENCED_TABLE_NAME IN (:t, :s))"
            ),
            {"t": plan.table, "s": plan.shadow_table},
        ).fetchall()
        now = {r[0] for r in rows if not (r[1] in (plan.table, plan.shadow_table) and r[2] == plan.table)}
        moved = plan.moved_at_swap
        planned = {f.name for f in moved.keys_from} | {f.name for f in moved.keys_to}
        if now != planned and not (resumed and now < planned):
            raise StalePlan(
                f"the foreign keys from or to {plan.table!r} changed since the plan "
                f"({', '.join(sorted(now)) or 'none'} now, {', '.join(sorted(planned)) or 'none'} planned)",
                hint="`shadowswap abort`, then plan again",
            )

    def _key_on(self, conn: Connection, name: str) -> str | None:
        return conn.execute(
            sa.text(
                "SELECT TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_NAME = :n"
            ),
            {"n": name},
        ).scalar()

    def _referred_by(self, conn: Connection, name: str) -> str | None:
        return conn.execute(
            sa.text(
                "SELECT REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_NAME = :n"
            ),
            {"n": name},
        ).scalar()

    def foreign_keys_on(self, conn: Connection, plan: Plan, table: str) -> bool:
        moved = plan.moved_at_swap
        return all(self._key_on(conn, f.name) == table for f in moved.keys_from) and all(
            self._referred_by(conn, f.name) == table for f in moved.keys_to
        )

    def move_foreign_keys(self, conn: Connection, plan: Plan, to: str, resumed: bool = False) -> None:
        """Under the swap's lock: each key of the table, and each key referencing it, onto ``to`` (the
        shadow; the table again when the swap gives up before its RENAME, or an abort puts them back).
        Idempotent: a resumed swap (``resumed``) redoes what a dead run left half done."""
        if to == plan.shadow_table:
            self._check_unchanged(conn, plan, resumed)
        fk_from, fk_to = plan.moved_at_swap.keys_from, plan.moved_at_swap.keys_to
        if not fk_from and not fk_to:
            return
        other = plan.table if to == plan.shadow_table else plan.shadow_table
        self.run(conn, "SET SESSION foreign_key_checks = 0")
        try:
            for fk in fk_from:
                on = self._key_on(conn, fk.name)
                if on == other:
                    self.run(conn, f"ALTER TABLE {self.q(other)} DROP FOREIGN KEY {self.q(fk.name)}")
                if on != to:
                    self.run(conn, f"ALTER TABLE {self.q(to)} {fk.sql}, ALGORITHM=INPLACE")
            for child in fk_to:
                referred = self._referred_by(conn, child.name)
                if referred == to:
                    continue
                if referred is not None:
                    self.run(conn, f"ALTER TABLE {self.q(child.table)} DROP FOREIGN KEY {self.q(child.name)}")
                sql = f"ALTER TABLE {self.q(child.table)} {child.head}{self.q(to)}{child.tail}, ALGORITHM=INPLACE"
                self.run(conn, sql)
        finally:
            self.run(conn, "SET SESSION foreign_key_checks = 1")
