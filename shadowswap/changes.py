"""The alter language: command-line changes and ``--ddl`` statements, parsed into one set of change objects.

Parsing happens before any connection so a typo costs nothing. Types and expressions are only checked
for shape here (nothing that could end a statement or hide the rest of it); whether a type or column
exists is asked of the database itself by the planner.

Names are taken literally (``unit price`` is a column with a space) and may be double-quoted when
they contain the separator (``"a:b":int``); every name reaches SQL through the dialect's quoting.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from shadowswap.errors import UsageError

# A type is words (dotted for a schema), optional parameters (numbers, or quoted labels as in
# MySQL's enum('a','b')), more words, an optional [] (arrays): every built-in type, and nothing
# that could end a statement or open an unbalanced quote.
_WORD = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?"
_PARAM = r"(\d+|'(?:[^'\\]|'')*')"
_TYPE_RE = re.compile(
    rf"""^{_WORD}(\s+{_WORD})*
        \s*(\(\s*{_PARAM}\s*(,\s*{_PARAM}\s*)*\))?
        (\s+{_WORD}(\s*\(\s*\d+\s*\))?)*
        (\s*\[\])?$""",
    re.VERBOSE,
)
_DEFAULT_RE = re.compile(r"(^|\s+)default\s+", re.IGNORECASE)
_DROP_DEFAULT_RE = re.compile(r"(^|\s+)drop\s+default\s*$", re.IGNORECASE)
_NULLABILITY_RE = re.compile(r"(^|\s+)(not\s+null|null)\s*$", re.IGNORECASE)


#: where a column goes in the new table: ("first", None) or ("after", COLUMN) (MySQL's FIRST / AFTER)
Position = tuple[str, str | None]


def _describe_extras(comment: str | None, generated: str | None, stored: bool | None, position: Position | None) -> str:
    text = ""
    if generated:
        text += f" as ({generated}) {'stored' if stored else 'virtual'}"
    if comment is not None:
        text += f" comment {comment!r}"
    if position is not None:
        text += " first" if position[0] == "first" else f" after {position[1]}"
    return text


@dataclass(frozen=True)
class AlterColumn:
    """Change a column's type, nullability or default; ``type_sql`` None keeps the type.

    ``comment``, ``generated`` and ``position`` None keep what the column has; ``comment`` ""
    removes it, ``generated`` "" makes a generated column a plain one (MySQL's MODIFY restating it).
    """

    column: str
    type_sql: str | None = None
    nullable: bool | None = None
    default: str | None = None
    drop_default: bool = False
    comment: str | None = None
    generated: str | None = None
    stored: bool | None = None
    position: Position | None = None
    #: MySQL's MODIFY/CHANGE restate AUTO_INCREMENT: True kept (or added), False dropped; None as it is
    auto_increment: bool | None = None
    kind = "alter"

    def describe(self) -> str:
        text = f"alter {self.column}"
        if self.type_sql is not None:
            text += f" type {self.type_sql}"
        if self.nullable is not None:
            text += " null" if self.nullable else " not null"
        if self.default is not None:
            text += f" default {self.default}"
        if self.drop_default:
            text += " drop default"
        if self.auto_increment is not None:
            text += " auto_increment" if self.auto_increment else " no auto_increment"
        return text + _describe_extras(self.comment, self.generated, self.stored, self.position)


@dataclass(frozen=True)
class AddColumn:
    column: str
    type_sql: str
    nullable: bool = True
    default: str | None = None
    comment: str | None = None
    #: a generated column's expression (never written by the copy: the engine computes it)
    generated: str | None = None
    stored: bool | None = None
    position: Position | None = None
    kind = "add"

    def describe(self) -> str:
        text = f"add {self.column} {self.type_sql}"
        if not self.nullable:
            text += " not null"
        if self.default is not None:
            text += f" default {self.default}"
        return text + _describe_extras(self.comment, self.generated, self.stored, self.position)


@dataclass(frozen=True)
class DropColumn:
    column: str
    kind = "drop"

    def describe(self) -> str:
        return f"drop {self.column}"


@dataclass(frozen=True)
class RenameColumn:
    old: str
    new: str
    kind = "rename"

    def describe(self) -> str:
        return f"rename {self.old} to {self.new}"


@dataclass(frozen=True)
class AddIndex:
    name: str
    columns: tuple[str, ...]
    unique: bool = False

    @property
    def kind(self) -> str:
        return "add_unique" if self.unique else "add_index"

    def describe(self) -> str:
        return f"add {'unique' if self.unique else 'index'} {self.name} ({', '.join(self.columns)})"


@dataclass(frozen=True)
class DropIndex:
    """Drop an index, or a unique constraint (which is an index by another name)."""

    name: str
    kind = "drop_index"

    def describe(self) -> str:
        return f"drop index {self.name}"


@dataclass(frozen=True)
class ConvertCharset:
    """MySQL's ``CONVERT TO CHARACTER SET cs [COLLATE c]``: every text column and the table's default.

    Which columns it converts, and what their types become, is the table's business: the planner
    expands it into one ``AlterColumn`` per text column (``dialects/mysql/types.py``)."""

    charset: str
    collation: str | None = None
    kind = "convert_charset"

    def describe(self) -> str:
        return f"convert to character set {self.charset}" + (f" collate {self.collation}" if self.collation else "")


Change = AlterColumn | AddColumn | DropColumn | RenameColumn | AddIndex | DropIndex | ConvertCharset


@dataclass
class ChangeSet:
    """Everything one plan changes; ``usings`` maps a target column to its copy expression."""

    changes: list[Change] = field(default_factory=list)
    usings: dict[str, str] = field(default_factory=dict)
    table: str | None = None

    def extend(self, other: ChangeSet) -> None:
        self.changes.extend(other.changes)
        for column, expr in other.usings.items():
            if column in self.usings:
                raise UsageError(f"two copy expressions for column {column!r}")
            self.usings[column] = expr


# -- shapes -----------------------------------------------------------------------------------


def check_type(type_sql: str) -> str:
    cleaned = " ".join(type_sql.split())
    if not cleaned or not _TYPE_RE.match(cleaned):
        raise UsageError(
            f"invalid type {type_sql!r}",
            hint="give a type such as varchar(20), numeric(10,2), bigint or text",
        )
    return cleaned


def _outside_quotes(expr: str) -> str:
    """The expression with its string literals and quoted identifiers blanked out."""
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`", "''", expr)


def check_expression(expr: str, what: str) -> str:
    """One SQL expression: refuse anything that could end the statement or comment out the rest of it."""
    import sqlglot

    text = expr.strip()
    bare = _outside_quotes(text)
    if not text or ";" in bare or "--" in bare or "/*" in bare or "#" in bare or "$" in bare:
        raise UsageError(
            f"invalid {what} {expr!r}",
            hint="give one SQL expression (no ';', comments or dollar quoting)",
        )
    if bare.count("'") % 2 or bare.count('"') % 2 or bare.count("(") != bare.count(")"):
        raise UsageError(f"invalid {what} {expr!r}", hint="unbalanced quotes or parentheses")
    try:
        parsed = sqlglot.parse(text)
    except sqlglot.errors.SqlglotError:
        # sqlglot does not know every engine's syntax; the database validates it during planning
        return text
    if len(parsed) != 1 or parsed[0] is None or isinstance(parsed[0], sqlglot.exp.Query | sqlglot.exp.DDL):
        raise UsageError(f"invalid {what} {expr!r}", hint="give a single value or expression")
    return text


def check_default(expr: str) -> str:
    return check_expression(expr, "default expression")


def _unquote_name(text: str, option: str, spec: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if re.search(r'(?<!")"(?!")', inner.replace('""', "")):
            raise UsageError(f"{option} {spec!r}: unbalanced quotes in name {text}")
        text = inner.replace('""', '"')
    if not text:
        raise UsageError(f"{option} {spec!r} names no column", hint=f"see `shadowswap plan --help` for {option}")
    if "\x00" in text:
        raise UsageError(f"{option} {spec!r}: a name cannot contain a NUL character")
    return text


def split_name(spec: str, sep: str, option: str, form: str) -> tuple[str, str]:
    """``NAME<sep>REST``, where NAME may be double-quoted to contain ``sep``."""
    stripped = spec.strip()
    if stripped.startswith('"'):
        match = re.match(r'^("(?:[^"]|"")*")\s*' + re.escape(sep) + r"(.*)$", stripped, re.DOTALL)
        if not match:
            raise UsageError(f"{option} {spec!r} is not of the form {form}")
        return _unquote_name(match.group(1), option, spec), match.group(2).strip()
    if sep not in stripped:
        raise UsageError(f"{option} {spec!r} is not of the form {form}")
    name, rest = stripped.split(sep, 1)
    return _unquote_name(name, option, spec), rest.strip()


def split_column_spec(spec: str, option: str) -> tuple[str, str]:
    return split_name(spec, ":", option, "COLUMN:TYPE")


def parse_column_definition(rest: str, type_required: bool = True) -> tuple[str | None, bool | None, str | None, bool]:
    """``TYPE [null|not null] [default EXPR | drop default]`` (modifiers in either order)."""
    default = None
    drop_default = False
    nullable: bool | None = None
    rest = rest.strip()
    match = _DEFAULT_RE.search(rest)
    if match:
        rest, default = rest[: match.start()], rest[match.end() :]
        tail = _NULLABILITY_RE.search(default)
        if tail:
            nullable = tail.group(2).lower() == "null"
            default = default[: tail.start()]
        default = check_default(default)
    else:
        drop = _DROP_DEFAULT_RE.search(rest)
        if drop:
            drop_default = True
            rest = rest[: drop.start()]
    tail = _NULLABILITY_RE.search(rest)
    if tail:
        nullable = tail.group(2).lower() == "null"
        rest = rest[: tail.start()]
        if drop_default is False:
            drop = _DROP_DEFAULT_RE.search(rest)
            if drop:
                drop_default = True
                rest = rest[: drop.start()]
    rest = rest.strip()
    if not rest:
        if type_required:
            raise UsageError("no type given", hint="e.g. varchar(20)")
        return None, nullable, default, drop_default
    return check_type(rest), nullable, default, drop_default


# -- command-line options ---------------------------------------------------------------------


_POSITION_RE = re.compile(r'(^|\s+)(first|after\s+("(?:[^"]|"")+"|[^\s"]+))\s*$', re.IGNORECASE)


def split_position(rest: str, option: str, spec: str) -> tuple[str, Position | None]:
    """A trailing ``first`` or ``after COLUMN`` (MySQL's column position), and the text before it."""
    match = _POSITION_RE.search(rest)
    if not match or _outside_quotes(rest[: match.start()]).count("'") % 2:
        return rest, None  # none, or the words are inside a quoted default ('x after y')
    if match.group(3) is None:
        return rest[: match.start()], ("first", None)
    return rest[: match.start()], ("after", _unquote_name(match.group(3), option, spec))


def parse_alter(spec: str) -> AlterColumn:
    column, rest = split_column_spec(spec, "--alter")
    rest, position = split_position(rest, "--alter", spec)
    try:
        type_sql, nullable, default, drop_default = parse_column_definition(rest, type_required=False)
    except UsageError as exc:
        raise UsageError(f"--alter {spec!r}: {exc}", hint=exc.hint) from None
    if type_sql is None and nullable is None and default is None and not drop_default and position is None:
        raise UsageError(
            f"--alter {spec!r} changes nothing",
            hint="give a type, null / not null, default EXPR, drop default, first or after COLUMN, "
            'e.g. --alter "price:varchar(20)"',
        )
    return AlterColumn(
        column=column,
        type_sql=type_sql,
        nullable=nullable,
        default=default,
        drop_default=drop_default,
        position=position,
    )


def parse_add(spec: str) -> AddColumn:
    column, rest = split_column_spec(spec, "--add")
    rest, position = split_position(rest, "--add", spec)
    try:
        type_sql, nullable, default, drop_default = parse_column_definition(rest, type_required=True)
    except UsageError as exc:
        raise UsageError(f"--add {spec!r}: {exc}", hint=exc.hint or "e.g. --add \"note:text default ''\"") from None
    if drop_default:
        raise UsageError(f"--add {spec!r}: a new column has no default to drop")
    assert type_sql is not None
    return AddColumn(
        column=column, type_sql=type_sql, nullable=nullable is not False, default=default, position=position
    )


def parse_drop(spec: str) -> DropColumn:
    return DropColumn(_unquote_name(spec, "--drop", spec))


def parse_rename(spec: str) -> RenameColumn:
    old, new = split_name(spec, ":", "--rename", "OLD:NEW")
    new = _unquote_name(new, "--rename", spec)
    if old == new:
        raise UsageError(f"--rename {spec!r} renames a column to its own name")
    return RenameColumn(old, new)


def _split_list(text: str, option: str, spec: str) -> tuple[str, ...]:
    items, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    names = tuple(_unquote_name(item, option, spec) for item in items)
    if len(set(names)) != len(names):
        raise UsageError(f"{option} {spec!r} names a column twice")
    return names


def parse_index(spec: str, unique: bool = False) -> AddIndex:
    option = "--add-unique" if unique else "--add-index"
    name, rest = split_name(spec, ":", option, "NAME:(col1, col2)")
    rest = rest.strip()
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1]
    if not rest.strip():
        raise UsageError(f"{option} {spec!r} names no column", hint=f'e.g. {option} "ix_products_sku:(sku)"')
    return AddIndex(name=name, columns=_split_list(rest, option, spec), unique=unique)


def parse_drop_index(spec: str) -> DropIndex:
    return DropIndex(_unquote_name(spec, "--drop-index", spec))


def parse_using(spec: str) -> tuple[str, str]:
    try:
        column, expr = split_name(spec, "=", "--using", "COLUMN=EXPRESSION")
    except UsageError:
        raise UsageError(
            f"--using {spec!r} is not of the form COLUMN=EXPRESSION",
            hint="e.g. --using price=\"to_char(price, 'FM999990.00')\"",
        ) from None
    if not expr:
        raise UsageError(f"--using {spec!r} needs both a column and an expression")
    return column, check_expression(expr, f"--using expression for {column}")


def parse_options(
    alter: list[str] | None = None,
    add: list[str] | None = None,
    drop: list[str] | None = None,
    rename: list[str] | None = None,
    add_index: list[str] | None = None,
    add_unique: list[str] | None = None,
    drop_index: list[str] | None = None,
    using: list[str] | None = None,
) -> ChangeSet:
    changes: list[Change] = []
    changes += [parse_alter(s) for s in alter or []]
    changes += [parse_add(s) for s in add or []]
    changes += [parse_drop(s) for s in drop or []]
    changes += [parse_rename(s) for s in rename or []]
    changes += [parse_drop_index(s) for s in drop_index or []]
    changes += [parse_index(s) for s in add_index or []]
    changes += [parse_index(s, unique=True) for s in add_unique or []]
    usings: dict[str, str] = {}
    for spec in using or []:
        column, expr = parse_using(spec)
        if column in usings:
            raise UsageError(f"two --using expressions for column {column!r}")
        usings[column] = expr
    return ChangeSet(changes=changes, usings=usings)


# -- --ddl --------------------------------------------------------------------------------------


#: Why a primary key swap is refused (design.md invariant 2: rows are tracked by the key).
PRIMARY_KEY_SWAP = (
    "DROP / ADD PRIMARY KEY: changing the primary key is not done online: the keyset copy, the change "
    "log and its replays find rows by the current key, which the new table would not be keyed by; "
    "run this ALTER blocking, in a maintenance window"
)

#: MySQL statements sqlglot reads as an opaque command, by the clause they start with
_MYSQL_COMMAND = re.compile(
    r"^\s*ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)\s+(.*?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def sqlglot_table(name: str) -> Any:
    """A table name as written in a statement sqlglot read as a command, as sqlglot's Table."""
    from sqlglot import exp

    quoted = name.startswith("`")
    return exp.Table(this=exp.Identifier(this=name[1:-1].replace("``", "`") if quoted else name, quoted=quoted))


_CLAUSES = {
    "exists": "IF [NOT] EXISTS",
    "position": "FIRST / AFTER",
    "options": "ALGORITHM / LOCK (shadowswap chooses how to run; see --strategy)",
}


class _DDL:
    """Turns parsed ALTER TABLE / CREATE INDEX / DROP INDEX statements into change objects.

    Each action is mapped exactly or refused: a statement we cannot express must not be half-applied.
    """

    def __init__(self, read: str | None) -> None:
        self.read = read
        #: the dialect the statements were read in, and are written back in (types, expressions)
        self.dialect = read
        self.out = ChangeSet()
        self.alters: dict[str, dict[str, Any]] = {}
        self.order: list[Change | str] = []

    def sql(self, node: Any) -> str:
        return str(node.sql(dialect=self.dialect))

    def refuse(self, node: Any, why: str = "") -> UsageError:
        text = self.sql(node) if node is not None else ""
        return UsageError(
            f"--ddl: cannot express {text!r}" + (f" ({why})" if why else ""),
            hint="shadowswap understands ADD/DROP/RENAME/ALTER COLUMN, ADD/DROP INDEX, ADD UNIQUE, "
            "CREATE [UNIQUE] INDEX and DROP INDEX; use the --alter/--add/... options for the rest",
        )

    def name(self, node: Any) -> str:
        from sqlglot import exp

        if isinstance(node, exp.Column | exp.Table):
            if node.args.get("table") or node.args.get("db") or node.args.get("catalog"):
                raise self.refuse(node, "qualified names are not supported")
            node = node.this
        if isinstance(node, exp.Identifier):
            return str(node.this)
        raise self.refuse(node, "expected a name")

    def set_table(self, table: Any) -> None:
        from sqlglot import exp

        if not isinstance(table, exp.Table):
            raise self.refuse(table, "expected a table name")
        if table.args.get("db") or table.args.get("catalog"):
            raise self.refuse(table, "schema-qualified tables are not supported; connect to that schema")
        name = self.name(table)
        if self.out.table is not None and self.out.table != name:
            raise UsageError(f"--ddl changes two tables ({self.out.table!r} and {name!r}); give one table per plan")
        self.out.table = name

    def type_sql(self, node: Any) -> str:
        return check_type(self.sql(node))

    def parse(self, text: str) -> ChangeSet:
        import sqlglot
        from sqlglot import exp
        from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

        quiet = logging.getLogger("sqlglot")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # sqlglot warns on stderr where it gives up; we say so ourselves
        try:
            statements = sqlglot.parse(text, read=self.read)
            for fallback in (None, "postgres"):
                if not any(isinstance(s, exp.Command) for s in statements):
                    break
                if fallback == self.read:
                    continue
                # The engine has no syntax for it (SQLite has no ALTER COLUMN): read it as standard
                # SQL, then as PostgreSQL's (closest to the standard's ALTER TABLE), which name the same
                # change; what still does not parse is refused below.
                try:
                    other = sqlglot.parse(text, read=fallback)
                except sqlglot.errors.SqlglotError:
                    continue
                if not any(isinstance(s, exp.Command) for s in other):
                    statements, self.dialect = other, fallback
                    break
        except sqlglot.errors.SqlglotError as exc:
            raise UsageError(f"--ddl does not parse: {str(exc).splitlines()[0]}") from None
        finally:
            quiet.setLevel(level)
        if not any(s is not None for s in statements):
            raise UsageError("--ddl is empty")
        for parsed in statements:
            if parsed is None:
                continue
            # Unquoted names fold the way the engine folds them (lower case on PostgreSQL).
            statement = normalize_identifiers(parsed, dialect=self.dialect)
            if isinstance(statement, exp.Alter) and str(statement.args.get("kind", "")).upper() == "TABLE":
                self.strict(statement, "this", "kind", "actions", "only")
                self.set_table(statement.this)
                for action in statement.args.get("actions") or []:
                    self.action(action)
            elif isinstance(statement, exp.Create) and str(statement.args.get("kind", "")).upper() == "INDEX":
                self.create_index(statement)
            elif isinstance(statement, exp.Drop) and str(statement.args.get("kind", "")).upper() == "INDEX":
                self.strict(statement, "tables", "kind", "concurrently")
                for table in statement.args.get("tables") or []:
                    self.order.append(DropIndex(self.name(table)))
            elif isinstance(statement, exp.Command):
                self.command(statement)
            else:
                raise self.refuse(statement, "only ALTER TABLE, CREATE INDEX and DROP INDEX")
        # an ALTER COLUMN's clauses (TYPE, SET NOT NULL, ...) become one change, where the first one stood
        self.out.changes = [
            AlterColumn(column=item, **self.alters[item]) if isinstance(item, str) else item for item in self.order
        ]
        if not self.out.changes:
            raise UsageError("--ddl changes nothing")
        return self.out

    def command(self, statement: Any) -> None:
        """A statement sqlglot could not read: name the clause it stumbled on, never "only ALTER TABLE"."""
        text = f"{statement.this} {statement.expression or ''}".strip() if statement.this else self.sql(statement)
        match = _MYSQL_COMMAND.match(text)
        if not match:
            raise self.refuse(statement, "only ALTER TABLE, CREATE INDEX and DROP INDEX")
        rest = match.group(2)
        if self.read == "mysql" and re.match(r"(?i)CONVERT\s+TO\s+(CHARACTER\s+SET|CHARSET)\b", rest):
            convert = re.fullmatch(
                r"(?i)CONVERT\s+TO\s+(?:CHARACTER\s+SET|CHARSET)\s*=?\s*'?([A-Za-z0-9_]+)'?"
                r"(?:\s+COLLATE\s*=?\s*'?([A-Za-z0-9_]+)'?)?",
                rest,
            )
            if convert is None:
                raise UsageError(
                    f"--ddl: cannot express {rest!r}: CONVERT TO CHARACTER SET name [COLLATE name] is read alone, "
                    "without other clauses in the same ALTER TABLE",
                    hint="give the other changes in a second plan, or as --alter/--add options",
                )
            if convert.group(1).lower() in ("default", "binary"):
                raise UsageError(
                    f"--ddl: CONVERT TO CHARACTER SET {convert.group(1)} is not supported: name the character set",
                )
            self.set_table(sqlglot_table(match.group(1)))
            self.order.append(ConvertCharset(convert.group(1).lower(), (convert.group(2) or "").lower() or None))
            return
        if re.search(r"(?i)\bPERSISTENT\b", rest):
            raise UsageError(
                "--ddl: PERSISTENT (MariaDB's word for STORED) is not read; write AS (expr) STORED",
            )
        clause = " ".join(rest.split()[:3])
        raise UsageError(
            f"--ddl: the ALTER TABLE clause {clause!r} is not understood (sqlglot cannot parse it)",
            hint="shadowswap understands ADD/DROP/RENAME/MODIFY/CHANGE/ALTER COLUMN, ADD/DROP INDEX, ADD UNIQUE; "
            "use the --alter/--add/... options for the rest",
        )

    def strict(self, node: Any, *allowed: str) -> None:
        """Refuse a clause we do not map (IF EXISTS, ALGORITHM=, AFTER col, CASCADE, ...) rather than drop it."""
        for key, value in node.args.items():
            if key not in allowed and value not in (None, False, [], ""):
                raise self.refuse(node, f"{_CLAUSES.get(key, key.replace('_', ' ').upper())} is not supported")

    def alter_args(self, column: str) -> dict[str, Any]:
        if column not in self.alters:
            self.alters[column] = {}
            self.order.append(column)
        return self.alters[column]

    def set_once(self, column: str, key: str, value: Any, node: Any) -> None:
        args = self.alter_args(column)
        if key in args and args[key] != value:
            raise self.refuse(node, f"{column} changed twice")
        args[key] = value

    def action(self, action: Any) -> None:
        from sqlglot import exp

        if isinstance(action, exp.AlterColumn):
            self.strict(action, "this", "dtype", "using", "default", "drop", "allow_null")
            self.alter_column(action)
        elif isinstance(action, exp.ColumnDef):
            self.order.append(self.add_column(action))
        elif isinstance(action, exp.Drop):
            kind = str(action.args.get("kind", "")).upper()
            self.strict(action, "tables", "kind")
            for target in action.args.get("tables") or []:
                if kind == "COLUMN":
                    self.order.append(DropColumn(self.name(target)))
                elif kind in ("INDEX", "KEY", "CONSTRAINT"):
                    self.order.append(DropIndex(self.name(target)))
                else:
                    raise self.refuse(action)
        elif isinstance(action, exp.RenameColumn):
            self.strict(action, "this", "to")
            self.order.append(RenameColumn(self.name(action.this), self.name(action.args["to"])))
        elif isinstance(action, exp.ModifyColumn):
            self.strict(action, "this", "rename_from")
            self.modify_column(action)
        elif isinstance(action, exp.AddConstraint):
            for constraint in action.expressions:
                self.order.append(self.add_constraint(constraint))
        elif isinstance(action, exp.DropPrimaryKey):
            raise self.refuse(action, PRIMARY_KEY_SWAP)
        else:
            raise self.refuse(action)

    def alter_column(self, action: Any) -> None:
        column = self.name(action.this)
        args = action.args
        if args.get("collate") or args.get("comment") or args.get("visible") is not None:
            raise self.refuse(action)
        if args.get("dtype") is not None:
            self.set_once(column, "type_sql", self.type_sql(args["dtype"]), action)
            if args.get("using"):
                if column in self.out.usings:
                    raise self.refuse(action, f"two USING expressions for {column}")
                self.out.usings[column] = check_expression(self.sql(args["using"]), f"USING expression for {column}")
        elif "allow_null" in args and args["allow_null"] is not None:
            self.set_once(column, "nullable", bool(args["allow_null"]), action)
        elif args.get("default") is not None:
            self.set_once(column, "default", check_default(self.sql(args["default"])), action)
        elif args.get("drop"):
            self.set_once(column, "drop_default", True, action)
        else:
            raise self.refuse(action)

    def column_definition(self, node: Any, restating: bool = False) -> dict[str, Any]:
        """A column definition's parts: name, type (with MySQL's CHARACTER SET / COLLATE, which are
        part of the type there), NULL / NOT NULL, DEFAULT, COMMENT, AS (expr) [STORED|VIRTUAL] and
        FIRST / AFTER; any other attribute is refused by name."""
        from sqlglot import exp

        self.strict(node, "this", "kind", "constraints", "position")
        column = self.name(node.this)
        if node.args.get("kind") is None:
            raise self.refuse(node, "no type")
        out: dict[str, Any] = {"column": column, "nullable": None, "default": None, "comment": None}
        charset = collate = None
        for constraint in node.args.get("constraints") or []:
            kind = constraint.args.get("kind")
            if isinstance(kind, exp.NotNullColumnConstraint):
                out["nullable"] = bool(kind.args.get("allow_null"))
            elif isinstance(kind, exp.DefaultColumnConstraint):
                value = kind.this
                if isinstance(value, exp.Collate) and self.dialect == "mysql":
                    # `DEFAULT NULL COLLATE 'utf8_bin'`: MySQL's DEFAULT takes a literal, so COLLATE is
                    # the column's own attribute (sqlglot reads it into the default expression)
                    collate = self.charset_name(value.expression, node)
                    value = value.this
                out["default"] = check_default(self.sql(value))
            elif isinstance(kind, exp.CharacterSetColumnConstraint):
                charset = self.charset_name(kind.this, node)
            elif isinstance(kind, exp.CollateColumnConstraint):
                collate = self.charset_name(kind.this, node)
            elif self.dialect != "mysql" and isinstance(
                kind,
                exp.CommentColumnConstraint
                | exp.ComputedColumnConstraint
                | exp.CharacterSetColumnConstraint
                | exp.CollateColumnConstraint,
            ):
                # MySQL's column clauses; on the other engines they are another helper's (issue 15)
                raise self.refuse(
                    node, f"column attribute {self.sql(constraint).split('(')[0].strip()} is not supported"
                )
            elif isinstance(kind, exp.AutoIncrementColumnConstraint) and restating:
                out["auto_increment"] = True
            elif isinstance(kind, exp.CommentColumnConstraint):
                if not (isinstance(kind.this, exp.Literal) and kind.this.is_string):
                    raise self.refuse(node, "COMMENT takes a quoted string")
                out["comment"] = str(kind.this.this)
            elif isinstance(kind, exp.ComputedColumnConstraint):
                expression = kind.this.this if isinstance(kind.this, exp.Paren) else kind.this
                out["generated"] = check_expression(self.sql(expression), f"generated expression of {column}")
                out["stored"] = bool(kind.args.get("persisted"))
            elif (
                self.dialect == "mysql"
                and isinstance(kind, exp.GeneratedAsIdentityColumnConstraint)
                and kind.args.get("expression") is not None
            ):
                # MySQL's `GENERATED ALWAYS AS (expr)` without STORED: a VIRTUAL column
                out["generated"] = check_expression(
                    self.sql(kind.args["expression"]), f"generated expression of {column}"
                )
                out["stored"] = False
            else:
                clause = self.sql(constraint).split("(")[0].strip() or type(kind).__name__
                raise self.refuse(
                    node,
                    f"column attribute {clause} is not supported: shadowswap maps NULL, NOT NULL, DEFAULT, "
                    "CHARACTER SET, COLLATE, COMMENT and AS (expr) [STORED|VIRTUAL]; add keys with ADD INDEX / "
                    "ADD UNIQUE",
                )
        type_sql = self.sql(node.args["kind"])
        # MySQL: the character set and collation are part of the column's type
        if charset:
            type_sql += f" CHARACTER SET {charset}"
        if collate:
            type_sql += f" COLLATE {collate}"
        out["type_sql"] = check_type(type_sql)
        if out.get("generated") is not None and out["default"] is not None:
            raise self.refuse(node, "a generated column has no DEFAULT")
        position = node.args.get("position")
        if position is not None and self.dialect != "mysql":
            raise self.refuse(node, "FIRST / AFTER is MySQL's; the other engines add a column at the end")
        if position is not None:
            where = str(position.args.get("position") or "").upper()
            if where == "FIRST":
                out["position"] = ("first", None)
            elif where == "AFTER" and position.this is not None:
                out["position"] = ("after", self.name(position.this))
            else:
                raise self.refuse(node, f"column position {self.sql(position)!r}")
        return out

    def charset_name(self, node: Any, context: Any) -> str:
        """A character set or collation name (bare or quoted), checked to be one word."""
        from sqlglot import exp

        if isinstance(node, exp.Column | exp.Identifier | exp.Var | exp.Literal):
            text = str(node.name if isinstance(node, exp.Column) else node.this)
            if re.fullmatch(r"[A-Za-z0-9_]+", text):
                return text
        raise self.refuse(context, f"invalid character set or collation {self.sql(node)!r}")

    def add_column(self, node: Any) -> AddColumn:
        d = self.column_definition(node)
        return AddColumn(
            column=d["column"],
            type_sql=d["type_sql"],
            nullable=d["nullable"] is not False,
            default=d["default"],
            comment=d["comment"] or None,
            generated=d.get("generated"),
            stored=d.get("stored"),
            position=d.get("position"),
        )

    def modify_column(self, action: Any) -> None:
        # MySQL's MODIFY/CHANGE restate the whole column: what is not restated is reset (NULL, no
        # default, no comment, not generated, the table's character set).
        d = self.column_definition(action.this, restating=True)
        column = d["column"]
        old = action.args.get("rename_from")
        if old is not None:
            old_name = self.name(old)
            if old_name != column:
                self.order.append(RenameColumn(old_name, column))
                column = old_name
        self.set_once(column, "type_sql", d["type_sql"], action)
        self.set_once(column, "nullable", d["nullable"] is not False, action)
        if d["default"] is not None:
            self.set_once(column, "default", d["default"], action)
        else:
            self.set_once(column, "drop_default", True, action)
        self.set_once(column, "comment", d["comment"] or "", action)
        self.set_once(column, "generated", d.get("generated") or "", action)
        if d.get("generated"):
            self.set_once(column, "stored", d["stored"], action)
        if d.get("position") is not None:
            self.set_once(column, "position", d["position"], action)
        # not restated, AUTO_INCREMENT is dropped from the column, as the engine drops it
        self.set_once(column, "auto_increment", bool(d.get("auto_increment")), action)

    def index_columns(self, node: Any, columns: list[Any]) -> tuple[str, ...]:
        from sqlglot import exp

        names = []
        for item in columns:
            if isinstance(item, exp.Ordered):
                if item.args.get("desc"):
                    raise self.refuse(node, "descending index columns")
                item = item.this
            if not isinstance(item, exp.Column | exp.Identifier):
                raise self.refuse(node, "only plain columns in an index")
            names.append(self.name(item))
        if not names:
            raise self.refuse(node, "no columns")
        return tuple(names)

    def add_constraint(self, node: Any) -> AddIndex:
        from sqlglot import exp

        if isinstance(node, exp.PrimaryKey) or (
            isinstance(node, exp.Constraint) and any(isinstance(e, exp.PrimaryKey) for e in node.expressions)
        ):
            raise self.refuse(node, PRIMARY_KEY_SWAP)
        if isinstance(node, exp.IndexColumnConstraint) and node.this is not None:
            if node.args.get("kind") or node.args.get("index_type") or node.args.get("options"):
                raise self.refuse(node)
            return AddIndex(self.name(node.this), self.index_columns(node, node.expressions))
        name = None
        if isinstance(node, exp.Constraint) and len(node.expressions) == 1:
            name = self.name(node.this)
            node = node.expressions[0]
        if isinstance(node, exp.UniqueColumnConstraint):
            schema = node.this
            if not isinstance(schema, exp.Schema):
                raise self.refuse(node, "a unique constraint needs its columns")
            if schema.this is not None:
                name = self.name(schema.this)
            if name is None:
                raise self.refuse(node, "give the unique constraint a name")
            if node.args.get("nulls") or (node.args.get("include") and node.args["include"].args.get("include")):
                raise self.refuse(node)
            return AddIndex(name, self.index_columns(node, schema.expressions), unique=True)
        raise self.refuse(node)

    def create_index(self, statement: Any) -> None:
        self.strict(statement, "this", "kind", "unique", "concurrently")
        index = statement.this
        self.strict(index, "this", "table", "params")
        params = index.args.get("params")
        self.set_table(index.args.get("table"))
        if index.this is None:
            raise self.refuse(statement, "give the index a name")
        if params is None:
            raise self.refuse(statement, "only plain column indexes")
        self.strict(params, "columns")
        columns = self.index_columns(statement, params.args.get("columns") or [])
        self.order.append(AddIndex(self.name(index.this), columns, unique=bool(statement.args.get("unique"))))


def parse_ddl(text: str, read: str | None) -> ChangeSet:
    """``ALTER TABLE t ...; CREATE INDEX ...`` in the engine's dialect (sqlglot ``read``) into changes."""
    return _DDL(read).parse(text)
