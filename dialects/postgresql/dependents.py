"""What other objects bind to the table by OID, and what the swap does about them.

PostgreSQL binds a view to its tables by OID, not by name, and a foreign key from another table
to the table likewise: after ``ALTER TABLE t RENAME TO _t_old`` both would keep following the old
table. A blocking ``ALTER TABLE`` keeps the OID, so both simply keep working; the swap must give
the same result, so inside its transaction it

- drops the dependent views (views over views included, the highest first) and creates them again
  from their ``pg_get_viewdef`` text, which now resolves the table's name to the new table, with
  their options, owner, grants (table- and column-level) and comments;
- drops each referencing foreign key and adds it again, under its own name with its actions,
  match type and deferrability, pointing at the new table, ``NOT VALID``: no scan under the lock.
  ``VALIDATE CONSTRAINT`` runs after the swap, in its own transaction; it takes SHARE UPDATE
  EXCLUSIVE on the referencing table and ROW SHARE on ours, so writers on either are not blocked.

What cannot be carried (materialized views, rules on other tables, views with INSTEAD OF triggers,
a view over a column the change drops, renames or retypes, a key from a partitioned table) is
refused at plan time with one line.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.postgresql.base import PostgresBase
from shadowswap.errors import UsageError

if TYPE_CHECKING:
    from shadowswap.plan import Plan

#: every relation whose rewrite rules depend on the table, directly or through other views, with
#: its depth (1: reads the table itself); one relation appears once, at its deepest level, so
#: creating in depth order creates every view after the views it reads
_DEPENDENTS = """
WITH RECURSIVE dep(oid, lvl) AS (
  SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
   WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
     AND d.refobjid = to_regclass(:t) AND r.ev_class <> d.refobjid
  UNION
  SELECT r.ev_class, dep.lvl + 1 FROM dep
    JOIN pg_depend d ON d.refobjid = dep.oid AND d.classid = 'pg_rewrite'::regclass
     AND d.refclassid = 'pg_class'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> dep.oid
)
SELECT c.oid, n.nspname, c.relname, c.relkind, max(dep.lvl) AS lvl
FROM dep JOIN pg_class c ON c.oid = dep.oid JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY c.oid, n.nspname, c.relname, c.relkind ORDER BY lvl, n.nspname, c.relname
"""

_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def literal(text: str) -> str:
    """A standard SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    return "'" + text.replace("'", "''") + "'"


class PostgresDependents(PostgresBase):
    repoints_referencing_keys = True

    def dependent_views(self, conn: Connection, plan: Plan) -> list[dict[str, Any]]:
        """The views to recreate at the swap, in creation order, each with what a recreation loses.

        Refuses (UsageError) what cannot be recreated as it was.
        """
        rows = list(conn.execute(sa.text(_DEPENDENTS), {"t": self.qualified(plan)}).mappings())
        if not rows:
            return []
        for r in rows:
            if r["relkind"] == "m":
                raise UsageError(
                    f"materialized view {r['relname']!r} depends on {plan.table!r}; it would keep reading the old "
                    "table after the swap",
                    hint=f"drop it before migrating and create it again after (DROP MATERIALIZED VIEW {r['relname']})",
                )
            if r["relkind"] != "v":
                raise UsageError(
                    f"a rule on {r['relname']!r} reads {plan.table!r}; it would keep reading the old table after "
                    "the swap",
                    hint="drop the rule before migrating and create it again after",
                )
        self._refuse_changed_columns(conn, plan)
        views = []
        for r in rows:
            oid = r["oid"]
            name = f"{self.q(r['nspname'])}.{self.q(r['relname'])}"
            meta = conn.execute(
                sa.text(
                    "SELECT pg_get_viewdef(c.oid), pg_get_userbyid(c.relowner), c.reloptions, c.relacl IS NOT NULL,"
                    " obj_description(c.oid, 'pg_class'),"
                    " (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)"
                    " FROM pg_class c WHERE c.oid = :o"
                ),
                {"o": oid},
            ).one()
            if meta[5]:
                raise UsageError(
                    f"view {r['relname']!r} over {plan.table!r} has triggers; shadowswap does not recreate them",
                    hint="drop the view's triggers before migrating and create them again after",
                )
            grants = [
                (g[0], g[1], g[2], g[3])
                for g in conn.execute(
                    sa.text(
                        "SELECT NULL, a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
                        " ELSE pg_get_userbyid(a.grantee) END, a.is_grantable"
                        " FROM pg_class c, aclexplode(c.relacl) WITH ORDINALITY a"
                        " WHERE c.oid = :o ORDER BY a.ordinality"
                    ),
                    {"o": oid},
                )
            ]
            grants += [
                (g[0], g[1], g[2], g[3])
                for g in conn.execute(
                    sa.text(
                        "SELECT at.attname, a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
                        " ELSE pg_get_userbyid(a.grantee) END, a.is_grantable"
                        " FROM pg_attribute at, aclexplode(at.attacl) WITH ORDINALITY a"
                        " WHERE at.attrelid = :o AND at.attnum > 0 ORDER BY at.attnum, a.ordinality"
                    ),
                    {"o": oid},
                )
            ]
            column_comments = [
                (c[0], c[1])
                for c in conn.execute(
                    sa.text(
                        "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute"
                        " WHERE attrelid = :o AND attnum > 0 AND col_description(attrelid, attnum) IS NOT NULL"
                        " ORDER BY attnum"
                    ),
                    {"o": oid},
                )
            ]
            views.append(
                {
                    "name": name,
                    "raw_name": f"{r['nspname']}.{r['relname']}",
                    "definition": str(meta[0]).strip(" ").rstrip(";"),
                    "owner": meta[1],
                    "options": list(meta[2] or []),
                    "has_acl": bool(meta[3]),
                    "grants": grants,
                    "comment": meta[4],
                    "column_comments": column_comments,
                }
            )
        return views

    def _refuse_changed_columns(self, conn: Connection, plan: Plan) -> None:
        """A view over a column the change drops, renames or retypes: PostgreSQL's own ALTER refuses it."""
        used = conn.execute(
            sa.text(
                "SELECT DISTINCT v.relname, a.attname FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid"
                " JOIN pg_class v ON v.oid = r.ev_class"
                " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
                " WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = to_regclass(:t) AND d.refobjsubid > 0"
                " ORDER BY 1, 2"
            ),
            {"t": self.qualified(plan)},
        )
        copied = {c.source_column for c in plan.columns}
        by_source = {c.source_column: c for c in [*plan.columns, *plan.default_columns] if c.source_column}
        for view, column in used:
            target = by_source.get(column)
            if target is None:
                what = "drops"
            elif target.name != column:
                what = "renames"
            elif target.new_type != target.old_type or (
                column in copied and target.expression != self.column_reference(column)
            ):
                what = "retypes"
            else:
                continue
            raise UsageError(
                f"view {view!r} uses column {column!r}, which the change {what}; the view cannot be recreated as it is",
                hint=f"drop the view (DROP VIEW {view}) before migrating and create it again after",
            )

    def dependents_guard_sql(self, plan: Plan, views: list[dict[str, Any]], keys: list[dict[str, Any]]) -> str:
        """A guard run first under the swap's lock: the views over the table and the foreign keys
        referencing it are the ones planned, as planned.

        One created or redefined since the plan would otherwise be left on the old table, or
        reverted, by the swap; the swap fails instead (its transaction rolls back) and says to plan
        again. Under the ACCESS EXCLUSIVE lock on the table no view over it or key to it can appear.
        """
        expected = hashlib.md5(
            "\n".join(f"{v['raw_name']} {v['definition']}" for v in views).encode(), usedforsecurity=False
        ).hexdigest()
        # one line in the printed plan; collapsed before the table's name goes in, which may hold spaces
        query = " ".join(_DEPENDENTS.split()).replace(":t", literal(self.qualified(plan)))
        actual_views = (
            "SELECT md5(coalesce(string_agg(d.nspname || '.' || d.relname || ' '"
            " || rtrim(btrim(pg_get_viewdef(d.oid)), ';'), E'\\n' ORDER BY d.lvl, d.nspname, d.relname), ''))"
            f" FROM ({query}) d"
        )
        actual_keys = (
            "SELECT coalesce(string_agg(n.nspname || '.' || c.relname || '.' || con.conname, ','"
            " ORDER BY n.nspname, c.relname, con.conname), '')"
            " FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            f" WHERE con.contype = 'f' AND con.confrelid = to_regclass({literal(self.qualified(plan))})"
            " AND con.conrelid <> con.confrelid AND con.conparentid = 0"
        )
        expected_keys = ",".join(k["raw"] for k in keys)
        message = (
            f"the views over {plan.table} or the foreign keys to it changed since the plan; "
            f"run shadowswap abort {plan.table}, then plan again"
        )
        body = (
            f"BEGIN IF ({actual_views}) <> {literal(expected)} OR ({actual_keys}) <> {literal(expected_keys)}"
            f" THEN RAISE EXCEPTION {literal(message)}; END IF; END"
        )
        if "$ss$" in body:
            raise UsageError(f"the name {plan.table!r} contains $ss$", hint="rename it first")
        return f"DO $ss${body}$ss$"

    def recreate_views_sql(self, views: list[dict[str, Any]]) -> list[str]:
        """Drop the highest views first, then create every view again over the (renamed) table.

        DROP VIEW takes ACCESS EXCLUSIVE on each view: queries on the views wait for the swap's
        transaction, as queries on the table do.
        """
        stmts = [f"DROP VIEW {v['name']}" for v in reversed(views)]
        for v in views:
            options = f" WITH ({', '.join(v['options'])})" if v["options"] else ""
            stmts.append(f"CREATE VIEW {v['name']}{options} AS {v['definition']}")
            stmts.append(f"ALTER VIEW {v['name']} OWNER TO {self.q(v['owner'])}")
            if v["has_acl"]:
                # An explicit ACL: start from none at all and grant each entry in the original's
                # order, the owner's own included, so the ACL reads the same as before.
                stmts.append(f"REVOKE ALL ON {v['name']} FROM PUBLIC, {self.q(v['owner'])}")
            for column, privilege, grantee, grantable in v["grants"]:
                role = "PUBLIC" if grantee == "PUBLIC" else self.q(grantee)
                cols = f" ({self.q(column)})" if column else ""
                option = " WITH GRANT OPTION" if grantable else ""
                stmts.append(f"GRANT {privilege}{cols} ON {v['name']} TO {role}{option}")
            if v["comment"] is not None:
                stmts.append(f"COMMENT ON VIEW {v['name']} IS {literal(v['comment'])}")
            for column, comment in v["column_comments"]:
                stmts.append(f"COMMENT ON COLUMN {v['name']}.{self.q(column)} IS {literal(comment)}")
        return stmts

    def referencing_keys(self, conn: Connection, plan: Plan) -> list[dict[str, Any]]:
        """The foreign keys of other tables that reference this one, to re-point at the swap."""
        rows = conn.execute(
            sa.text(
                "SELECT con.conname, n.nspname, c.relname, c.relkind, con.confupdtype, con.confdeltype,"
                " con.confmatchtype, con.condeferrable, con.condeferred, con.convalidated,"
                " (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i)"
                "   JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n),"
                " (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i)"
                "   JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n),"
                " con.confdelsetcols IS NOT NULL"
                " FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE con.contype = 'f' AND con.confrelid = to_regclass(:t) AND con.conrelid <> con.confrelid"
                " AND con.conparentid = 0 ORDER BY n.nspname, c.relname, con.conname"
            ),
            {"t": self.qualified(plan)},
        ).all()
        by_source = {c.source_column: c for c in [*plan.columns, *plan.default_columns] if c.source_column}
        keys = []
        for name, schema, child, relkind, upd, dele, match, deferrable, deferred, valid, cols, refcols, setcols in rows:
            if relkind == "p" or setcols:
                # a partitioned table takes no NOT VALID key; SET NULL (cols) has no catalog-neutral text
                raise UsageError(
                    f"foreign key {name!r} of {child!r} references {plan.table!r} and cannot be re-pointed online "
                    f"({'its table is partitioned' if relkind == 'p' else 'it sets only some columns'})",
                    hint=f"drop it first (ALTER TABLE {child} DROP CONSTRAINT {name}) and add it again after",
                )
            targets = []
            for col in refcols:
                target = by_source.get(col)
                if target is None or target.new_type != target.old_type:
                    what = "drops" if target is None else "retypes"
                    raise UsageError(
                        f"foreign key {name!r} of {child!r} references column {col!r}, which the change {what}",
                        hint=f"drop it first (ALTER TABLE {child} DROP CONSTRAINT {name}) and add it again after",
                    )
                targets.append(target.name)
            qualified_child = f"{self.q(schema)}.{self.q(child)}"
            clause = (
                f"FOREIGN KEY ({', '.join(self.q(c) for c in cols)}) REFERENCES {self.qualified(plan)} "
                f"({', '.join(self.q(c) for c in targets)})"
                + (" MATCH FULL" if match == "f" else "")
                + f" ON UPDATE {_ACTIONS[upd]} ON DELETE {_ACTIONS[dele]}"
                + (" DEFERRABLE" if deferrable else "")
                + (" INITIALLY DEFERRED" if deferred else "")
            )
            keys.append(
                {
                    "name": name,
                    "table": qualified_child,
                    "raw": f"{schema}.{child}.{name}",
                    "clause": clause,
                    "validated": bool(valid),
                }
            )
        return keys

    def repoint_keys_sql(self, keys: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        """In the swap: each key dropped and added again on the new table, NOT VALID (no scan under
        the lock); after it: VALIDATE, which blocks no writer. DROP CONSTRAINT takes ACCESS EXCLUSIVE
        on the referencing table, which the swap's LOCK TABLE takes first (see swap_sql)."""
        in_swap, after = [], []
        for k in keys:
            name = self.q(k["name"])
            in_swap.append(f"ALTER TABLE {k['table']} DROP CONSTRAINT {name}")
            in_swap.append(f"ALTER TABLE {k['table']} ADD CONSTRAINT {name} {k['clause']} NOT VALID")
            if k["validated"]:
                after.append(f"ALTER TABLE {k['table']} VALIDATE CONSTRAINT {name}")
        return in_swap, after

    def qualified(self, plan: Plan) -> str:
        return f"{self.q(plan.schema)}.{self.q(plan.table)}" if plan.schema else self.q(plan.table)
