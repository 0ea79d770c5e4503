"""What surrounds the table, carried to the new one inside the swap: the application's triggers,
grants, comments, row-level security and its policies, storage parameters and statistics targets,
replica identity, CLUSTER ON, publication membership; and the shapes a shadow copy cannot migrate
(partitioned tables, partitions, inheritance trees), refused at plan time.

Everything is read from the catalog *inside* the swap transaction, after ``LOCK TABLE ... ACCESS
EXCLUSIVE`` and the renames: a GRANT, COMMENT or policy added during an hours-long copy is carried
too, and nothing can change it between the read and the statements that copy it. Each statement is
a catalog update on the new table (no scan, no rewrite), so the swap's ACCESS EXCLUSIVE on both
tables is held a few milliseconds longer per object carried, never for a time growing with rows.

The statements are composed by the server's ``format()`` (``%I`` identifiers, ``%L`` literals) from
catalog values, so no name or comment read here is ever spliced into SQL unquoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowswap.dialects.postgresql.base import PostgresBase
from shadowswap.dialects.postgresql.indexes import mentions
from shadowswap.errors import UsageError

if TYPE_CHECKING:
    from shadowswap.plan import Plan

_CMD = (
    "CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'"
    " WHEN 'd' THEN 'DELETE' ELSE 'ALL' END"
)


# --------------------------------------------------------------------------- plan time


def refuse_unmigratable(d: PostgresBase, conn: Connection, table: str) -> None:
    """Partitioned tables, partitions and inheritance trees: refused, never flattened; and a table
    whose row-level security filters what this role reads.

    The shadow is a plain table: swapping it in for a partitioned table would leave the
    partitions attached to the old one (and ``cleanup --drop-old`` would drop them with their
    rows); a parent's copy would take its children's rows (``SELECT`` reads the whole tree)
    while the children went on inheriting from the old parent.
    """
    row = conn.execute(
        sa.text(
            "SELECT c.relkind, c.relispartition,"
            " (SELECT string_agg(p.relname, ', ' ORDER BY p.relname) FROM pg_inherits i"
            "  JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid),"
            " (SELECT string_agg(k.relname, ', ' ORDER BY k.relname) FROM pg_inherits i"
            "  JOIN pg_class k ON k.oid = i.inhrelid WHERE i.inhparent = c.oid),"
            # whether this role's reads of the table are filtered by its policies
            " c.relrowsecurity AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)"
            " AND (c.relforcerowsecurity OR NOT pg_has_role(current_user, c.relowner, 'USAGE'))"
            " FROM pg_class c WHERE c.oid = to_regclass(:t)"
        ),
        {"t": d.q(table)},
    ).first()
    if row is None:
        return
    kind, is_partition, parents, children, filtered = row
    if filtered:
        # The copy and the verification read the table as this role: under its policies they
        # would both see the same subset, and the new table would silently lose the other rows.
        raise UsageError(
            f"table {table!r} has row-level security that applies to this role (FORCE ROW LEVEL SECURITY): "
            "the copy would see only the rows its policies show; run shadowswap as a superuser or a role "
            "with BYPASSRLS"
        )
    blocking = "run a blocking ALTER TABLE in a maintenance window instead"
    if kind == "p":
        raise UsageError(
            f"table {table!r} is partitioned (partitions: {children or 'none'}); a shadow copy would "
            f"flatten it into a plain table: {blocking} (it recurses to the partitions)"
        )
    if is_partition:
        raise UsageError(
            f"table {table!r} is a partition of {parents}; swapping it would detach it: "
            f"ALTER the partitioned table {parents} with a blocking ALTER TABLE instead"
        )
    if children:
        raise UsageError(
            f"table {table!r} is inherited by {children}; the copy would take their rows and they would "
            f"keep inheriting from the old table: {blocking}"
        )
    if parents:
        raise UsageError(
            f"table {table!r} inherits from {parents}; the new table would leave the inheritance tree: {blocking}"
        )


def refuse_dependents_on_changed_columns(
    d: PostgresBase, conn: Connection, plan: Plan, original: Sequence[str]
) -> None:
    """A trigger (WHEN, UPDATE OF), policy or publication filter over a column the plan renames
    or drops: its stored definition names the old column, so it cannot be recreated as read.
    (A blocking DROP COLUMN refuses these too, and a RENAME rewrites them in place.)"""
    kept = {c.source_column for c in plan.columns if c.source_column is not None and c.source_column == c.name}
    changed = [c for c in original if c not in kept]
    if not changed:
        return
    rows = conn.execute(
        sa.text(
            "SELECT DISTINCT CASE d.classid"
            "  WHEN 'pg_trigger'::regclass THEN 'trigger ' || (SELECT tgname FROM pg_trigger WHERE oid = d.objid)"
            "  WHEN 'pg_policy'::regclass THEN 'policy ' || (SELECT polname FROM pg_policy WHERE oid = d.objid)"
            "  ELSE 'publication ' || (SELECT p.pubname FROM pg_publication_rel r"
            "   JOIN pg_publication p ON p.oid = r.prpubid WHERE r.oid = d.objid) END, a.attname"
            " FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
            " WHERE d.refobjid = to_regclass(:t) AND d.refobjsubid > 0 AND d.deptype = 'n'"
            " AND d.classid IN ('pg_trigger'::regclass, 'pg_policy'::regclass, 'pg_publication_rel'::regclass)"
            " AND a.attname = ANY(:cols) ORDER BY 1, 2"
        ),
        {"t": d.q(plan.table), "cols": changed},
    ).all()
    if rows:
        what = ", ".join(f"{obj} (column {col})" for obj, col in rows)
        raise UsageError(
            f"{what} on {plan.table!r} names a column the plan renames or drops; drop it before migrating "
            "and recreate it after, over the new column"
        )


def owner_sql(d: PostgresBase, conn: Connection, plan: Plan) -> list[str]:
    """The new table goes to the original's owner before any sequence is re-linked to it
    (``ALTER SEQUENCE ... OWNED BY`` requires the table and the sequence to share an owner)."""
    owner, me = conn.execute(
        sa.text("SELECT pg_get_userbyid(relowner), current_user FROM pg_class WHERE oid = to_regclass(:t)"),
        {"t": d.q(plan.table)},
    ).one()
    if owner == me:
        return []
    # the shadow is created by whoever runs execute; the owner is what the application relies on
    return [f"ALTER TABLE {d.q(plan.table)} OWNER TO {d.q(owner)}"]


def refuse_what_cannot_be_carried(d: PostgresBase, conn: Connection, table: str) -> None:
    """The swap recreates the owner, grants made through a grant option and publication
    membership as this role: found out at plan, not after the copy, when the swap's transaction
    would fail on it (rolled back whole, the original intact, but hours of copy spent)."""
    rows = conn.execute(
        sa.text(
            "SELECT 'role ' || r.rolname || ' (' || string_agg(DISTINCT why, ', ') || ')' FROM ("
            " SELECT c.relowner AS role, 'the owner' AS why FROM pg_class c WHERE c.oid = to_regclass(:t)"
            " UNION ALL SELECT a.grantor, 'a grantor' FROM pg_class c, aclexplode(c.relacl) a"
            "  WHERE c.oid = to_regclass(:t) AND a.grantor <> c.relowner"
            " UNION ALL SELECT a.grantor, 'a grantor' FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid,"
            "  aclexplode(t.attacl) a WHERE t.attrelid = to_regclass(:t) AND a.grantor <> c.relowner"
            " UNION ALL SELECT p.pubowner, 'owner of publication ' || p.pubname FROM pg_publication_rel pr"
            "  JOIN pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = to_regclass(:t)"
            ") x JOIN pg_roles r ON r.oid = x.role"
            " WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
            " AND NOT pg_has_role(current_user, x.role, 'MEMBER') GROUP BY r.rolname ORDER BY 1"
        ),
        {"t": d.q(table)},
    ).all()
    if rows:
        roles = "; ".join(r[0] for r in rows)
        raise UsageError(
            f"the swap must act as {roles} to carry {table!r} over as it is, and this role is not a member: "
            "run shadowswap as a superuser or a member of those roles"
        )


# --------------------------------------------------------------------------- swap time


def carry_over(d: PostgresBase, conn: Connection, plan: Plan) -> None:
    """Run inside the swap transaction, after the renames: ``plan.old_table`` is the original."""
    for stmt in carry_over_sql(d, conn, plan):
        d.run(conn, stmt)
    # read once the grants ran: the first GRANT writes out the owner's implicit rights
    for stmt in _revokes(d, conn, plan):
        d.run(conn, stmt)


def _revokes(d: PostgresBase, conn: Connection, plan: Plan) -> list[str]:
    """ACL items the new table has beyond the original's (an owner who revoked some of their
    own rights). Only when the original has an explicit ACL: against a NULL (default) ACL,
    revoking would take the owner's implicit rights away."""
    grantee = "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END"
    return [
        r[0]
        for r in conn.execute(
            sa.text(
                "SELECT format('REVOKE %s ON TABLE %s FROM %s', a.privilege_type, CAST(:new AS text),"
                f" {grantee}) FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = to_regclass(:new)"
                " AND EXISTS (SELECT FROM pg_class oc WHERE oc.oid = to_regclass(:old) AND oc.relacl IS NOT NULL)"
                " AND (a.grantee, a.privilege_type) NOT IN (SELECT o.grantee, o.privilege_type"
                "  FROM pg_class oc, aclexplode(oc.relacl) o WHERE oc.oid = to_regclass(:old))"
            ),
            {"new": d.q(plan.table), "old": d.q(plan.old_table)},
        )
    ]


def carry_over_sql(d: PostgresBase, conn: Connection, plan: Plan) -> list[str]:
    new, old = d.q(plan.table), d.q(plan.old_table)
    ids = {"new": new, "old": old}
    renamed = {c.source_column: c.name for c in plan.columns if c.source_column is not None}

    def select(sql: str) -> list[Any]:
        return list(conn.execute(sa.text(sql), ids))

    out: list[str] = []
    # comments: the table's, and each column's the shadow was not given one of its own
    out += [
        r[0]
        for r in select(
            "SELECT format('COMMENT ON TABLE %s IS %L', CAST(:new AS text), d)"
            " FROM obj_description(to_regclass(:old), 'pg_class') d WHERE d IS NOT NULL"
        )
    ]
    columns = select(
        "SELECT a.attname, col_description(a.attrelid, a.attnum), a.attstattarget,"
        " (SELECT string_agg(format('%s = %L', option_name, option_value), ', ')"
        "  FROM pg_options_to_table(a.attoptions) WHERE option_name IN ('n_distinct', 'n_distinct_inherited')),"
        " a.attacl IS NOT NULL, a.atttypid, a.attstorage, a.attcompression"
        " FROM pg_attribute a WHERE a.attrelid = to_regclass(:old) AND a.attnum > 0 AND NOT a.attisdropped"
    )
    now = {
        r[0]: r[1:]
        for r in select(
            "SELECT attname, col_description(attrelid, attnum) IS NOT NULL, atttypid, attstorage, attcompression"
            " FROM pg_attribute WHERE attrelid = to_regclass(:new) AND attnum > 0 AND NOT attisdropped"
        )
    }
    storage = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}
    compression = {"p": "pglz", "l": "lz4"}
    for name, comment, stattarget, options, _, type_oid, attstorage, attcompression in columns:
        if name not in renamed or renamed[name] not in now:
            continue
        has_comment, new_type, new_storage, new_compression = now[renamed[name]]
        col = f"{new}.{d.q(renamed[name])}"
        if type_oid == new_type:
            # as a blocking ALTER: SET STORAGE / COMPRESSION stay with the column while its type
            # does, and a type change resets them to the new type's defaults
            if attstorage != new_storage and attstorage in storage:
                out.append(f"ALTER TABLE {new} ALTER COLUMN {d.q(renamed[name])} SET STORAGE {storage[attstorage]}")
            if attcompression != new_compression and attcompression in compression:
                out.append(
                    f"ALTER TABLE {new} ALTER COLUMN {d.q(renamed[name])} SET COMPRESSION {compression[attcompression]}"
                )
        if comment is not None and not has_comment:
            out.append(
                conn.execute(
                    sa.text("SELECT format('COMMENT ON COLUMN %s IS %L', CAST(:c AS text), CAST(:d AS text))"),
                    {"c": col, "d": comment},
                ).scalar_one()
            )
        if stattarget is not None and int(stattarget) >= 0:
            out.append(f"ALTER TABLE {new} ALTER COLUMN {d.q(renamed[name])} SET STATISTICS {int(stattarget)}")
        if options:
            # the documented attribute options only, values quoted by format(); a server build may
            # keep private entries there that are not the user's to copy
            out.append(f"ALTER TABLE {new} ALTER COLUMN {d.q(renamed[name])} SET ({options})")
    # storage parameters, the table's and its TOAST table's
    out += [
        r[0]
        for r in select(
            "SELECT format('ALTER TABLE %s SET (%s)', CAST(:new AS text), string_agg(o, ', ')) FROM ("
            " SELECT format('%s = %L', option_name, option_value) AS o"
            "  FROM pg_class c, pg_options_to_table(c.reloptions) WHERE c.oid = to_regclass(:old)"
            " UNION ALL SELECT format('toast.%s = %L', option_name, option_value)"
            "  FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid, pg_options_to_table(t.reloptions)"
            "  WHERE c.oid = to_regclass(:old)) x HAVING count(*) > 0"
        )
    ]
    out += _grants(d, conn, plan, renamed, [r[0] for r in columns if r[4]])
    out += _row_security(d, conn, plan)
    out += _index_properties(d, conn, plan)
    out += _triggers_sql(d, conn, plan)
    out += _statistics(d, conn, plan)
    out += _publications(d, conn, plan, renamed)
    return out


def _grants(d: PostgresBase, conn: Connection, plan: Plan, renamed: dict[str, str], with_acl: list[str]) -> list[str]:
    """The table's ACL item by item, then its columns' (``_revokes`` trims the surplus after)."""
    new, old = d.q(plan.table), d.q(plan.old_table)
    grantee = "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END"
    option = "CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END"
    rows = conn.execute(
        sa.text(
            "SELECT format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, CAST(:new AS text),"
            f" {grantee}, {option}),"
            " CASE WHEN a.grantor = c.relowner THEN NULL ELSE quote_ident(pg_get_userbyid(a.grantor)) END"
            # in the ACL's own order: the order the grants were made, so a grant option is
            # given before a grant made through it, and the new ACL lists its items alike
            " FROM pg_class c, aclexplode(c.relacl) WITH ORDINALITY a WHERE c.oid = to_regclass(:old)"
            " ORDER BY a.ordinality"
        ),
        {"new": new, "old": old},
    ).all()
    out: list[str] = []
    for grant, grantor in rows:
        out += _as_grantor(d, grant, grantor)
    for column in with_acl:
        if column not in renamed:
            continue
        for grant, grantor in conn.execute(
            sa.text(
                f"SELECT format('GRANT %s (%I) ON TABLE %s TO %s%s', a.privilege_type, CAST(:col AS text),"
                f" CAST(:new AS text), {grantee}, {option}),"
                " CASE WHEN a.grantor = c.relowner THEN NULL ELSE quote_ident(pg_get_userbyid(a.grantor)) END"
                " FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid, aclexplode(t.attacl) WITH ORDINALITY a"
                " WHERE t.attrelid = to_regclass(:old) AND t.attname = :name ORDER BY a.ordinality"
            ),
            {"new": new, "old": old, "col": renamed[column], "name": column},
        ):
            out += _as_grantor(d, grant, grantor)
    return out


def _as_grantor(d: PostgresBase, grant: str, grantor: str | None) -> list[str]:
    # A grant made by someone other than the owner (through a grant option) is recorded under
    # its grantor only when that role issues it; PostgreSQL 15 accepts GRANTED BY only for the
    # current user, so the statement runs under SET LOCAL ROLE, reset right after.
    if grantor is None:
        return [grant]
    return [f"SET LOCAL ROLE {grantor}", grant, "RESET ROLE"]


def _row_security(d: PostgresBase, conn: Connection, plan: Plan) -> list[str]:
    new, old = d.q(plan.table), d.q(plan.old_table)
    out: list[str] = []
    enabled, forced = conn.execute(
        sa.text("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = to_regclass(:old)"),
        {"old": old},
    ).one()
    if enabled:
        out.append(f"ALTER TABLE {new} ENABLE ROW LEVEL SECURITY")
    if forced:
        out.append(f"ALTER TABLE {new} FORCE ROW LEVEL SECURITY")
    # policy names are per table: the old table keeps its own until it is dropped
    out += [
        r[0]
        for r in conn.execute(
            sa.text(
                "SELECT format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, CAST(:new AS text),"
                " CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END, " + _CMD + ","
                " (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ')"
                "  FROM unnest(p.polroles) r),"
                " coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', ''),"
                " coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', ''))"
                " FROM pg_policy p WHERE p.polrelid = to_regclass(:old) ORDER BY p.polname"
            ),
            {"new": new, "old": old},
        )
    ]
    return out


def _index_properties(d: PostgresBase, conn: Connection, plan: Plan) -> list[str]:
    """Replica identity, CLUSTER ON and index comments, matched from the old table's index
    (renamed aside to ``_<name>_old`` by the swap) to the new table's index of that name."""
    new, old = d.q(plan.table), d.q(plan.old_table)
    current = {
        d.old_index_name(plan.table, r[0]): r[0]
        for r in conn.execute(
            sa.text(
                "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                " WHERE x.indrelid = to_regclass(:new)"
            ),
            {"new": new},
        )
    }
    out: list[str] = []
    identity = conn.execute(
        sa.text("SELECT relreplident FROM pg_class WHERE oid = to_regclass(:old)"), {"old": old}
    ).scalar_one()
    if identity == "f":
        out.append(f"ALTER TABLE {new} REPLICA IDENTITY FULL")
    elif identity == "n":
        out.append(f"ALTER TABLE {new} REPLICA IDENTITY NOTHING")
    for name, replident, clustered, comment in conn.execute(
        sa.text(
            "SELECT i.relname, x.indisreplident, x.indisclustered, obj_description(i.oid, 'pg_class')"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = to_regclass(:old)"
        ),
        {"old": old},
    ):
        target = current.get(name)
        if target is None:
            continue
        if replident and identity == "i":
            out.append(f"ALTER TABLE {new} REPLICA IDENTITY USING INDEX {d.q(target)}")
        if clustered:
            out.append(f"ALTER TABLE {new} CLUSTER ON {d.q(target)}")
        if comment is not None:
            out.append(
                conn.execute(
                    sa.text("SELECT format('COMMENT ON INDEX %I IS %L', CAST(:i AS text), CAST(:d AS text))"),
                    {"i": target, "d": comment},
                ).scalar_one()
            )
    return out


def _triggers_sql(d: PostgresBase, conn: Connection, plan: Plan) -> list[str]:
    """The application's triggers, recreated on the new table with their enabled state.

    Created here, in the swap transaction, and not on the shadow before the copy: a trigger on
    the shadow would fire for every row the copy and the capture triggers move, which the
    original's trigger already fired for. From the commit on, each application write reaches
    only the new table and fires its trigger once; every earlier write fired the original's.
    """
    new, old = d.q(plan.table), d.q(plan.old_table)
    ours = f"_{plan.table}_ss_"
    out: list[str] = []
    for name, definition, enabled, heads in conn.execute(
        sa.text(
            "SELECT t.tgname, pg_get_triggerdef(t.oid), t.tgenabled,"
            " ARRAY[' ON ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ',"
            "       ' ON ' || quote_ident(c.relname) || ' ']"
            " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE t.tgrelid = to_regclass(:old) AND NOT t.tgisinternal ORDER BY t.tgname"
        ),
        {"old": old},
    ):
        if name.startswith(ours) or name in plan.trigger_names:
            continue
        head = next((h for h in heads if h in definition), None)
        if head is None:
            raise UsageError(f"cannot read back the definition of trigger {name!r} on {plan.table!r}")
        # the first " ON <old table> " ends the event list: the table is replaced there only
        out.append(definition.replace(head, f" ON {new} ", 1))
        state = {"D": "DISABLE TRIGGER", "R": "ENABLE REPLICA TRIGGER", "A": "ENABLE ALWAYS TRIGGER"}.get(enabled)
        if state:
            out.append(f"ALTER TABLE {new} {state} {d.q(name)}")
    return out


def _statistics(d: PostgresBase, conn: Connection, plan: Plan) -> list[str]:
    """Extended statistics (``CREATE STATISTICS``), recreated on the new table under their names.

    Their names are schema-wide, as index names: the old table's object is renamed aside first.
    One over a dropped column goes, as a blocking DROP COLUMN drops it; one naming a renamed
    column is not recreated (its stored definition names the old column): ANALYZE-level data,
    nothing a query's result depends on.
    """
    new, old = d.q(plan.table), d.q(plan.old_table)
    changed = [
        c
        for c in conn.execute(
            sa.text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:old) AND attnum > 0"
                " AND NOT attisdropped"
            ),
            {"old": old},
        ).scalars()
        if c not in {k.source_column for k in plan.columns if k.source_column == k.name}
    ]
    out: list[str] = []
    for schema, name, definition, target, tails in conn.execute(
        sa.text(
            "SELECT n.nspname, s.stxname, pg_get_statisticsobjdef(s.oid), s.stxstattarget,"
            # the table is printed schema-qualified only when not visible on the search_path
            " ARRAY[' FROM ' || quote_ident(tn.nspname) || '.' || quote_ident(c.relname),"
            "       ' FROM ' || quote_ident(c.relname)]"
            " FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace"
            " JOIN pg_class c ON c.oid = s.stxrelid JOIN pg_namespace tn ON tn.oid = c.relnamespace"
            " WHERE s.stxrelid = to_regclass(:old) ORDER BY s.stxname"
        ),
        {"old": old},
    ):
        tail = next((t for t in tails if definition.endswith(t)), None)
        if tail is None or mentions(definition[: -len(tail)], changed):
            continue
        qualified = f"{d.q(schema)}.{d.q(name)}"
        out.append(f"ALTER STATISTICS {qualified} RENAME TO {d.q(d.fit_name(f'_{name}_old'))}")
        out.append(f"{definition[: -len(tail)]} FROM {new}")
        if target is not None and int(target) >= 0:
            out.append(f"ALTER STATISTICS {qualified} SET STATISTICS {int(target)}")
    return out


def _publications(d: PostgresBase, conn: Connection, plan: Plan, renamed: dict[str, str]) -> list[str]:
    """Explicit publication membership moves to the new table (FOR ALL TABLES and FOR TABLES IN
    SCHEMA publications follow on their own). Both statements are in the swap transaction, so
    logical decoding sees the old table published up to the commit and the new one after it."""
    new, old = d.q(plan.table), d.q(plan.old_table)
    out: list[str] = []
    for pub, attnames, rowfilter in conn.execute(
        sa.text(
            "SELECT p.pubname,"
            " CASE WHEN r.prattrs IS NULL THEN NULL ELSE (SELECT array_agg(a.attname ORDER BY a.attnum)"
            "  FROM pg_attribute a WHERE a.attrelid = r.prrelid AND a.attnum = ANY(r.prattrs)) END,"
            " pg_get_expr(r.prqual, r.prrelid)"
            " FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid"
            " WHERE r.prrelid = to_regclass(:old) ORDER BY 1"
        ),
        {"old": old},
    ):
        columns = f" ({', '.join(d.q(renamed.get(a, a)) for a in attnames)})" if attnames else ""
        where = f" WHERE ({rowfilter})" if rowfilter else ""
        out.append(f"ALTER PUBLICATION {d.q(pub)} DROP TABLE {old}")
        out.append(f"ALTER PUBLICATION {d.q(pub)} ADD TABLE {new}{columns}{where}")
    return out
