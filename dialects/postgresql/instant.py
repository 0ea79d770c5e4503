"""In-place changes: which ALTERs PostgreSQL applies in the catalog without rewriting the table,
and the guard that cancels one that turns out to rewrite after all.

The planner asks ``instant_reason`` for every change; a reason returned with True lets the change
skip the shadow table entirely, so a wrong True here costs an ACCESS EXCLUSIVE rewrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shadowswap.dialects.postgresql.base import PostgresBase

if TYPE_CHECKING:
    from shadowswap.strategy import ChangeFacts


class PostgresInstant(PostgresBase):
    def _in_place_type_change(self, old: str | None, new: str) -> str | None:
        """Why PostgreSQL can change ``old`` to ``new`` without a rewrite (binary-coercible), or None."""
        from shadowswap.strategy import parse_type, type_params

        before, after = parse_type(old, "postgres"), parse_type(new, "postgres")
        if before is None or after is None:
            return None
        if before == after:
            return f"{new} is the type the column already has"
        b, a = before.this.name, after.this.name
        b_len = type_params(before)[0] if b == "VARCHAR" and type_params(before) else None
        a_len = type_params(after)[0] if a == "VARCHAR" and type_params(after) else None
        if b == "VARCHAR" and a == "VARCHAR" and b_len is not None and a_len is not None and a_len >= b_len:
            return f"widening varchar({b_len}) to varchar({a_len}) changes only the length limit"
        if b in ("VARCHAR", "TEXT") and (a == "TEXT" or (a == "VARCHAR" and a_len is None)):
            if b == "TEXT" or b_len is None:
                return f"{old} and {new} are the same type on disk"
            return f"{old} to {new} removes the length limit only"
        return None

    def instant_reason(self, change: ChangeFacts) -> tuple[bool, str]:
        kind = change.kind
        if kind == "drop":
            return True, "DROP COLUMN only marks the column dropped in the catalog"
        if kind == "rename":
            return True, "RENAME COLUMN changes the catalog only"
        if kind == "drop_index":
            return True, "dropping an index removes it without touching the rows"
        if kind in ("add_index", "add_unique"):
            return False, "new indexes are built CONCURRENTLY on the shadow after the copy"
        if kind == "using":
            return False, "recomputing values rewrites every row"
        if change.has_using:
            return False, "a USING expression rewrites every row"
        if kind == "add":
            if change.generated is not None:
                return False, "a stored generated column is computed and written for every row"
            if change.identity is not None:
                return False, "an identity column's values are written to every row"
            if change.default is None:
                return True, "a column without a default is added in the catalog only"
            version = self.sa_dialect.server_version_info or (0,)
            if change.default_is_constant and version >= (11,):
                return True, "a constant default is stored once in the catalog, not written to each row"
            return False, "a non-constant default is computed and written for every row"
        if kind == "alter":
            reasons = []
            if change.new_type is not None:
                why = self._in_place_type_change(change.old_type, change.new_type)
                if why is None:
                    return False, f"changing {change.old_type} to {change.new_type} rewrites the table"
                reasons.append(why)
            if change.new_nullable is False and change.old_nullable:
                return False, "SET NOT NULL scans the whole table under an exclusive lock"
            if change.new_nullable is True and change.old_nullable is False:
                reasons.append("DROP NOT NULL changes the catalog only")
            if change.default_changed:
                reasons.append("a default applies to future inserts only")
            if change.settings:
                # SET STORAGE / COMPRESSION apply to values written from then on, as a blocking ALTER's do
                reasons.append("column settings and identity change the catalog only")
            return True, "; ".join(reasons) or "nothing to rewrite"
        return super().instant_reason(change)

    def instant_guard_sql(self, lock_timeout_ms: int) -> list[str]:
        # A change judged metadata-only that turns out to rewrite would hold ACCESS EXCLUSIVE for
        # the whole rewrite: cancel it instead (the transaction rolls back, nothing changes).
        return [f"SET LOCAL statement_timeout = '{int(lock_timeout_ms) + 5000}ms'"]

    def instant_plan_notes(self) -> list[str]:
        return [
            "the ALTERs run in one transaction under --lock-timeout, retried with backoff; "
            "a statement that runs longer than expected is cancelled and rolled back"
        ]
