"""The capture triggers: one plpgsql function behind AFTER INSERT/UPDATE/DELETE row triggers that
either write each change straight into the shadow (upsert/delete) or, with a change log, record
only the changed key for a later replay (changelog.py).

Creating, naming and dropping the triggers and their function lives here; what the log's entries
are turned into lives in changelog.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.postgresql.base import PostgresBase

if TYPE_CHECKING:
    from shadowswap.plan import Plan


class PostgresTriggers(PostgresBase):
    def existing_triggers(self, conn: Connection, table: str) -> list[str]:
        rows = conn.execute(
            sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal"),
            {"t": self.q(table)},
        )
        return [r[0] for r in rows]

    def trigger_ddl(self, plan: Plan) -> list[str]:
        pk_src = plan.primary_key
        key_changed = " OR ".join(f"OLD.{self.q(k)} IS DISTINCT FROM NEW.{self.q(k)}" for k in pk_src)
        if plan.capture.change_log:
            return self._triggers(plan, self._log_body(plan, key_changed))
        shadow = self.q(plan.shadow_table)
        delete_where = self.capture_delete_where(plan, "OLD")
        upsert = self.capture_upsert_sql(plan)
        body = f"""
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM {shadow} WHERE {delete_where};
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND ({key_changed}) THEN
    DELETE FROM {shadow} WHERE {delete_where};
  END IF;
  {upsert}
  RETURN NULL;
END
"""
        return self._triggers(plan, body)

    def _log_body(self, plan: Plan, key_changed: str) -> str:
        """The change-log triggers: one small insert of the key, whatever the change."""
        log_table = self.q(plan.capture.logged_table)
        columns = ", ".join(self.q(k) for k in plan.primary_key)

        def logged(record: str) -> str:
            values = ", ".join(f"{record}.{self.q(k)}" for k in plan.primary_key)
            return f"INSERT INTO {log_table} ({columns}) VALUES ({values});"

        return f"""
BEGIN
  IF TG_OP = 'DELETE' THEN
    {logged("OLD")}
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND ({key_changed}) THEN
    {logged("OLD")}
  END IF;
  {logged("NEW")}
  RETURN NULL;
END
"""

    def _triggers(self, plan: Plan, body: str) -> list[str]:
        if "$shadowswap$" in body:
            raise ValueError("copy expressions may not contain $shadowswap$")
        fn = self.q(self.function_name(plan))
        table = self.q(plan.table)
        names = dict(zip(("ins", "upd", "del"), plan.trigger_names, strict=True))
        # SECURITY DEFINER: the function runs as whoever runs the migration, who owns the shadow
        # and the change log. As the invoker, an application role that writes the table through
        # its grants would be refused ("permission denied for table _t_ss_log") on every write
        # for the whole migration. search_path is pinned to the migrator's, as the definer's
        # function must not resolve names through the writer's.
        return [
            f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER"
            f" SET search_path FROM CURRENT AS $shadowswap${body}$shadowswap$",
            f"CREATE TRIGGER {self.q(names['ins'])} AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()",
            f"CREATE TRIGGER {self.q(names['upd'])} AFTER UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()",
            f"CREATE TRIGGER {self.q(names['del'])} AFTER DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()",
        ]

    def drop_trigger_ddl(self, plan: Plan) -> list[str]:
        table = self.q(plan.table)
        stmts = [f"DROP TRIGGER IF EXISTS {self.q(n)} ON {table}" for n in plan.trigger_names]
        stmts.append(f"DROP FUNCTION IF EXISTS {self.q(self.function_name(plan))}()")
        return stmts
