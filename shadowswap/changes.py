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


#: PostgreSQL's column storage modes (ALTER COLUMN ... SET STORAGE)
STORAGE_MODES = ("plain", "external", "extended", "main")
#: what ``AlterColumn.identity`` may say (PostgreSQL identity columns)
IDENTITY_ACTIONS = ("add always", "add by default", "set always", "set by default", "drop", "drop if exists")

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

    PostgreSQL's column settings (``statistics``, ``storage``, ``compression``) and identity
    (``identity``: one of IDENTITY_ACTIONS) change the catalog only. MySQL's ``comment``,
    ``generated`` and ``position`` None keep what the column has; ``comment`` "" removes it,
    ``generated`` "" makes a generated column a plain one (MySQL's MODIFY restating it).
    """

    column: str
    type_sql: str | None = None
    nullable: bool | None = None
    default: str | None = None
    drop_default: bool = False
    statistics: int | None = None
    storage: str | None = None
    compression: str | None = None
    identity: str | None = None
    #: PostgreSQL's DROP EXPRESSION: a stored generated column becomes a plain one, keeping its values
    drop_expression: bool = False
    comment: str | None = None
    generated: str | None = None
    stored: bool | None = None
    position: Position | None = None
    #: MySQL's MODIFY/CHANGE restate AUTO_INCREMENT: True kept (or added), False dropped; None as it is
    auto_increment: bool | None = None
    kind = "alter"

    @property
    def settings(self) -> bool:
        """Whether it changes a PostgreSQL column setting (statistics, storage, compression)."""
        return self.statistics is not None or self.storage is not None or self.compression is not None

    @property
    def catalog_only(self) -> bool:
        """Whether it makes a PostgreSQL catalog-only column change (settings, identity, DROP EXPRESSION)."""
        return self.settings or self.identity is not None or self.drop_expression

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
        if self.statistics is not None:
            text += f" set statistics {self.statistics}"
        if self.storage is not None:
            text += f" set storage {self.storage}"
        if self.compression is not None:
            text += f" set compression {self.compression}"
        if self.identity is not None:
            text += f" {_identity_words(self.identity)}"
        if self.drop_expression:
            text += " drop expression"
        if self.auto_increment is not None:
            text += " auto_increment" if self.auto_increment else " no auto_increment"
        return text + _describe_extras(self.comment, self.generated, self.stored, self.position)


def _identity_words(action: str) -> str:
    verb, _, kind = action.partition(" ")
    if verb == "drop":
        return "drop identity" + (" if exists" if kind else "")
    return f"{verb} generated {kind}" + (" as identity" if verb == "add" else "")


@dataclass(frozen=True)
class AddColumn:
    """A new column; ``generated`` is its expression when it is a generated column (``stored``: STORED,
    else VIRTUAL), ``identity`` "always" / "by default" for a PostgreSQL identity column."""

    column: str
    type_sql: str
    nullable: bool = True
    default: str | None = None
    comment: str | None = None
    #: a generated column's expression (never written by the copy: the engine computes it)
    generated: str | None = None
    stored: bool | None = None
    #: PostgreSQL identity: "always" or "by default"
    identity: str | None = None
    position: Position | None = None
    kind = "add"

    def describe(self) -> str:
        text = f"add {self.column} {self.type_sql}"
        if not self.nullable:
            text += " not null"
        if self.default is not None:
            text += f" default {self.default}"
        if self.identity is not None:
            text += f" generated {self.identity} as identity"
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
class Rebuild:
    """Copy the table as it is, no column changed: the online form of ``OPTIMIZE TABLE`` /
    ``ALTER TABLE t ENGINE=InnoDB`` / ``VACUUM FULL`` / pg_repack (space back, pages refilled)."""

    kind = "rebuild"

    def describe(self) -> str:
        return "rebuild"


@dataclass(frozen=True)
class TableOption:
    """Set (``value``) or reset (``value`` None) one table-level option on the new table.

    ``name`` is canonical per engine: MySQL's in upper case as ``SHOW CREATE TABLE`` spells it
    (``ENGINE``, ``ROW_FORMAT``, ``KEY_BLOCK_SIZE``, ``AUTO_INCREMENT``, ``COMMENT``,
    ``DEFAULT CHARSET``, ``COLLATE``); PostgreSQL's storage parameters in lower case
    (``fillfactor``, ``autovacuum_enabled``, ``toast.…``) and ``TABLESPACE``, ``LOGGED``
    (value ``true``/``false``). Which names an engine accepts is checked when planning
    (check ``table-option-unsupported``); values are kept as text and reach SQL only as a literal
    or after a shape check (``shape_table_option``)."""

    name: str
    value: str | None
    kind = "table_option"

    def describe(self) -> str:
        if self.value is None:
            return f"reset {self.name}"
        return f"set {self.name} = {self.value}"


#: MySQL table options shadowswap carries and changes, as ``SHOW CREATE TABLE`` names them
MYSQL_TABLE_OPTIONS = (
    "ENGINE",
    "ROW_FORMAT",
    "KEY_BLOCK_SIZE",
    "AUTO_INCREMENT",
    "COMMENT",
    "DEFAULT CHARSET",
    "COLLATE",
)
_OPTION_WORD = re.compile(r"^[A-Za-z0-9_]+$")
_OPTION_NUMBER = re.compile(r"^[0-9]+$")
_PG_PARAMETER = re.compile(r"^(toast\.)?[a-z_][a-z0-9_]*$")
_PG_VALUE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def shape_table_option(name: str, value: str | None, where: str) -> TableOption:
    """One table option, its name made canonical and its value checked for shape (a word, a number,
    or COMMENT's free text, which only ever reaches SQL as a quoted literal)."""
    upper = " ".join(name.upper().replace("=", " ").split())
    upper = {
        "CHARSET": "DEFAULT CHARSET",
        "CHARACTER SET": "DEFAULT CHARSET",
        "DEFAULT CHARACTER SET": "DEFAULT CHARSET",
        "DEFAULT COLLATE": "COLLATE",
    }.get(upper, upper)
    if upper in MYSQL_TABLE_OPTIONS:
        if value is None:
            raise UsageError(f"{where}: {upper} needs a value")
        if upper == "COMMENT":
            if "\x00" in value:
                raise UsageError(f"{where}: a comment cannot contain a NUL character")
        elif upper in ("KEY_BLOCK_SIZE", "AUTO_INCREMENT"):
            if not _OPTION_NUMBER.match(value):
                raise UsageError(f"{where}: {upper} takes a whole number, not {value!r}")
        elif not _OPTION_WORD.match(value):
            raise UsageError(f"{where}: {upper} takes a name, not {value!r}")
        return TableOption(upper, value)
    if upper == "TABLESPACE":
        if not value:
            raise UsageError(f"{where}: TABLESPACE needs a tablespace name")
        if "\x00" in value:
            raise UsageError(f"{where}: a name cannot contain a NUL character")
        return TableOption(upper, value)
    if upper == "LOGGED":
        if value is None or value.lower() not in ("true", "false"):
            raise UsageError(f"{where}: LOGGED takes true or false")
        return TableOption(upper, value.lower())
    lower = name.strip().lower()
    if not _PG_PARAMETER.match(lower):
        raise UsageError(f"{where}: {name!r} is not a table option name")
    if value is not None and not _PG_VALUE.match(value):
        raise UsageError(f"{where}: the value of {lower} must be a number or a word, not {value!r}")
    return TableOption(lower, value)


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


Change = (
    AlterColumn | AddColumn | DropColumn | RenameColumn | AddIndex | DropIndex | Rebuild | TableOption | ConvertCharset
)


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


_NAME_WORD = r"[A-Za-z_][A-Za-z0-9_]*"
#: PostgreSQL column settings and identity in the mini-language, each ``[set] WORD VALUE`` (before any default)
_SETTING_RES = {
    "statistics": re.compile(r"(?:^|\s)(?:set\s+)?statistics\s+(-?\d+)(?=\s|$)", re.IGNORECASE),
    "storage": re.compile(r"(?:^|\s)(?:set\s+)?storage\s+(plain|external|extended|main)(?=\s|$)", re.IGNORECASE),
    "compression": re.compile(rf"(?:^|\s)(?:set\s+)?compression\s+({_NAME_WORD})(?=\s|$)", re.IGNORECASE),
    "identity": re.compile(
        r"(?:^|\s)(?:(add|set)\s+)?generated\s+(always|by\s+default)(\s+as\s+identity)?(?=\s|$)"
        r"|(?:^|\s)drop\s+identity(\s+if\s+exists)?(?=\s|$)",
        re.IGNORECASE,
    ),
    "drop_expression": re.compile(r"(?:^|\s)drop\s+expression(?:\s+if\s+exists)?(?=\s|$)", re.IGNORECASE),
}
_SETTING_WORDS = re.compile(
    r"^(set|add|drop)\b|\b(statistics|storage|compression|identity|generated|expression)\b", re.I
)
_GENERATED_RE = re.compile(r"(?:^|\s)(?:generated\s+always\s+)?as\s*\(", re.IGNORECASE)


def _balanced(text: str, start: int) -> int:
    """The index just past the parenthesis closing the one at ``start`` (quotes respected), or -1."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def take_generated(rest: str, option: str, spec: str) -> tuple[str, str | None, bool]:
    """``[GENERATED ALWAYS] AS (EXPR) [STORED|VIRTUAL]`` out of a column definition: (rest, EXPR, stored)."""
    match = _GENERATED_RE.search(rest)
    if not match:
        return rest, None, True
    end = _balanced(rest, match.end() - 1)
    if end < 0:
        raise UsageError(f"{option} {spec!r}: unbalanced parentheses in the generated expression")
    expr = check_expression(rest[match.end() : end - 1], "generated expression")
    tail = re.match(r"\s*(stored|virtual)(?=\s|$)", rest[end:], re.IGNORECASE)
    stored = True
    if tail:
        stored = tail.group(1).lower() == "stored"
        end += tail.end()
    return f"{rest[: match.start()]} {rest[end:]}".strip(), expr, stored


def take_settings(rest: str) -> tuple[str, dict[str, Any]]:
    """PostgreSQL's column settings and identity clauses out of the part before any ``default``."""
    found: dict[str, Any] = {}
    # identity first: its "by default" is not a default
    identity = _SETTING_RES["identity"].search(rest)
    if identity:
        rest = f"{rest[: identity.start()]} {rest[identity.end() :]}"
    match = _DEFAULT_RE.search(rest)
    head, tail = (rest[: match.start()], rest[match.start() :]) if match else (rest, "")
    for key, pattern in _SETTING_RES.items():
        hit = identity if key == "identity" else pattern.search(head)
        if not hit:
            continue
        if key == "statistics":
            found[key] = int(hit.group(1))
        elif key in ("storage", "compression"):
            found[key] = hit.group(1).lower()
        elif key == "drop_expression":
            found[key] = True
        elif hit.group(2) is not None:
            found[key] = f"{(hit.group(1) or 'add').lower()} {' '.join(hit.group(2).lower().split())}"
        else:
            found[key] = "drop if exists" if hit.group(4) else "drop"
        if key != "identity":
            head = f"{head[: hit.start()]} {head[hit.end() :]}"
    return f"{head.strip()} {tail.strip()}".strip(), found


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
        rest, settings = take_settings(rest)
        type_sql, nullable, default, drop_default = parse_column_definition(rest, type_required=False)
    except UsageError as exc:
        raise UsageError(f"--alter {spec!r}: {exc}", hint=exc.hint) from None
    if type_sql is not None and _SETTING_WORDS.search(type_sql):
        raise UsageError(
            f"--alter {spec!r}: {type_sql!r} is not a column setting shadowswap knows",
            hint="PostgreSQL's: [set] statistics N, [set] storage plain|external|extended|main, [set] compression "
            "METHOD, generated always|by default as identity, set generated always|by default, drop identity",
        )
    if (
        type_sql is None
        and nullable is None
        and default is None
        and not drop_default
        and not settings
        and position is None
    ):
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
        **settings,
    )


def parse_add(spec: str) -> AddColumn:
    column, rest = split_column_spec(spec, "--add")
    rest, position = split_position(rest, "--add", spec)
    try:
        rest, generated, stored = take_generated(rest, "--add", spec)
        rest, settings = take_settings(rest)
        identity = settings.pop("identity", None)
        if settings or (identity is not None and not identity.startswith("add")):
            raise UsageError(
                f"{', '.join(settings) or 'set/drop identity'} is a change to an existing column",
                hint="add the column, then --alter it in another plan",
            )
        type_sql, nullable, default, drop_default = parse_column_definition(rest, type_required=True)
    except UsageError as exc:
        raise UsageError(f"--add {spec!r}: {exc}", hint=exc.hint or "e.g. --add \"note:text default ''\"") from None
    if drop_default:
        raise UsageError(f"--add {spec!r}: a new column has no default to drop")
    if (generated is not None or identity is not None) and default is not None:
        raise UsageError(f"--add {spec!r}: a generated or identity column has no default")
    assert type_sql is not None
    return AddColumn(
        column=column,
        type_sql=type_sql,
        nullable=nullable is not False if identity is None else False,
        default=default,
        generated=generated,
        stored=stored if generated is not None else None,
        identity=identity.split(" ", 1)[1] if identity is not None else None,
        position=position,
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


def parse_table_option(spec: str) -> TableOption | Rebuild:
    """``--table-option NAME=VALUE`` sets a table option, ``--table-option NAME`` resets it
    (PostgreSQL's RESET; MySQL options always take a value). ``ENGINE=InnoDB`` is the rebuild, as
    in ``--ddl``."""
    name, sep, value = spec.partition("=")
    if not name.strip():
        raise UsageError(f"--table-option {spec!r} names no option", hint="e.g. --table-option ROW_FORMAT=COMPRESSED")
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    option = shape_table_option(name, text if sep else None, f"--table-option {spec!r}")
    if option.name == "ENGINE" and str(option.value).lower() == "innodb":
        return Rebuild()
    return option


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
    *,
    rebuild: bool = False,
    table_option: list[str] | None = None,
) -> ChangeSet:
    changes: list[Change] = []
    changes += [Rebuild()] if rebuild else []
    changes += [parse_table_option(s) for s in table_option or []]
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


#: ``TABLE t RESET (a, toast.b)``: what sqlglot leaves of a PostgreSQL RESET as a Command
_RESET = re.compile(r"^\s*TABLE\s+(\S+)\s+RESET\s*\(([A-Za-z0-9_.,\s]+)\)\s*$", re.IGNORECASE)


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
            "CREATE [UNIQUE] INDEX, DROP INDEX and table options (MySQL ENGINE, ROW_FORMAT, ...; PostgreSQL "
            "SET/RESET (...), SET TABLESPACE); use the --alter/--add/... options for the rest",
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
        if self.dialect == "sqlite":
            # SQLite keeps a declared type as written (bigint stays bigint); sqlglot's SQLite writer
            # maps each integer type to INTEGER, the standard writer writes INTEGER as INT: INTEGER
            # where the user wrote int or integer, the standard spelling of any other type
            standard = str(node.sql())
            return check_type("INTEGER" if standard == "INT" else standard)
        return check_type(self.sql(node))

    def parse(self, text: str) -> ChangeSet:
        import sqlglot
        from sqlglot import exp

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
            quiet.setLevel(level)
            raise UsageError(f"--ddl does not parse: {str(exc).splitlines()[0]}") from None
        try:
            return self.statements(statements)
        finally:
            quiet.setLevel(level)

    def statements(self, statements: list[Any]) -> ChangeSet:
        from sqlglot import exp
        from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

        if not any(s is not None for s in statements):
            raise UsageError("--ddl is empty")
        for parsed in statements:
            if parsed is None:
                continue
            # Unquoted names fold the way the engine folds them (lower case on PostgreSQL).
            statement = normalize_identifiers(parsed, dialect=self.dialect)
            if isinstance(statement, exp.Command) and _RESET.match(str(statement.args.get("expression") or "")):
                self.reset_options(statement)
            elif isinstance(statement, exp.Command) and _is_alter_table(statement) and self.read != "mysql":
                # PostgreSQL's column clauses sqlglot does not read; MySQL's unread ones are command()'s
                self.alter_command(statement)
            elif isinstance(statement, exp.Alter) and str(statement.args.get("kind", "")).upper() == "TABLE":
                self.strict(statement, "this", "kind", "actions", "only", "options")
                self.set_table(statement.this)
                for action in statement.args.get("actions") or []:
                    self.action(action)
                for option in statement.args.get("options") or []:
                    self.table_option(option)
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
        elif isinstance(action, exp.ForceProperty):
            # MySQL's FORCE: rebuild the table as it is (the same as ENGINE=<its engine>)
            self.order.append(Rebuild())
        elif isinstance(action, exp.AlterSet):
            self.alter_set(action)
        elif isinstance(action, exp.AddConstraint):
            for constraint in action.expressions:
                self.order.append(self.add_constraint(constraint))
        elif isinstance(action, exp.DropPrimaryKey):
            raise self.refuse(action, PRIMARY_KEY_SWAP)
        else:
            raise self.refuse(action)

    def option(self, node: Any, name: str, value: str | None) -> None:
        try:
            self.order.append(shape_table_option(name, value, "--ddl"))
        except UsageError as exc:
            raise self.refuse(node, str(exc).removeprefix("--ddl: ")) from None

    def table_option(self, node: Any) -> None:
        """One MySQL table option of ``ALTER TABLE t ENGINE=…, ROW_FORMAT=…, …``."""
        from sqlglot import exp

        value = node.this.name if node.this is not None else None
        if isinstance(node, exp.EngineProperty):
            if str(value).lower() == "innodb":
                # Every table shadowswap migrates on MySQL is InnoDB (check mysql-not-innodb), so this
                # is the plain rebuild, as the server itself reads it.
                self.order.append(Rebuild())
            else:
                self.option(node, "ENGINE", value)
        elif isinstance(node, exp.RowFormatProperty):
            self.option(node, "ROW_FORMAT", value)
        elif isinstance(node, exp.AutoIncrementProperty):
            self.option(node, "AUTO_INCREMENT", value)
        elif isinstance(node, exp.SchemaCommentProperty):
            self.option(node, "COMMENT", value)
        elif isinstance(node, exp.CharacterSetProperty):
            # ALTER TABLE t [DEFAULT] CHARACTER SET x changes the table's default only; the columns
            # keep theirs (converting them is CONVERT TO CHARACTER SET, a column change)
            self.option(node, "DEFAULT CHARSET", value)
        elif isinstance(node, exp.CollateProperty):
            self.option(node, "COLLATE", value)
        elif isinstance(node, exp.Property) and str(node.name).upper() == "KEY_BLOCK_SIZE":
            self.option(node, "KEY_BLOCK_SIZE", node.args["value"].name)
        elif isinstance(node, exp.AlgorithmProperty | exp.LockProperty):
            raise self.refuse(node, f"{_CLAUSES['options']} is not supported")
        else:
            raise self.refuse(node, "this table option is not supported")

    def alter_set(self, action: Any) -> None:
        """PostgreSQL's ``SET (param = value, …)``, ``SET TABLESPACE``, ``SET [UN]LOGGED``."""
        from sqlglot import exp

        self.strict(action, "expressions", "tablespace", "option")
        option = action.args.get("option")
        if option is not None:
            word = str(option.name).upper()
            if word not in ("LOGGED", "UNLOGGED"):
                raise self.refuse(action, f"SET {word} is not supported")
            self.option(action, "LOGGED", "true" if word == "LOGGED" else "false")
        if action.args.get("tablespace") is not None:
            self.option(action, "TABLESPACE", self.name(action.args["tablespace"]))
        for item in action.expressions:
            if not isinstance(item, exp.EQ) or not isinstance(item.this, exp.Column):
                raise self.refuse(action, "expected parameter = value")
            param = item.this
            name = param.name if not param.table else f"{param.table}.{param.name}"
            value = item.expression
            text = value.name if isinstance(value, exp.Literal | exp.Column | exp.Identifier) else self.sql(value)
            self.option(action, name, text.lower() if isinstance(value, exp.Boolean) else text)

    def reset_options(self, statement: Any) -> None:
        """``ALTER TABLE t RESET (param, …)``, which sqlglot leaves unparsed."""
        match = _RESET.match(str(statement.args.get("expression") or ""))
        assert match is not None
        import sqlglot
        from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

        table = sqlglot.parse_one(match.group(1), read=self.dialect, into=sqlglot.exp.Table)
        self.set_table(normalize_identifiers(table, dialect=self.dialect))
        for name in match.group(2).split(","):
            self.option(statement, name.strip().lower(), None)

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
        FIRST / AFTER; PostgreSQL's GENERATED ... AS IDENTITY; any other attribute is refused by name."""
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
                persisted = kind.args.get("persisted")
                # MySQL's and SQLite's are VIRTUAL unless said; PostgreSQL's are STORED (its only kind)
                out["stored"] = bool(persisted) if persisted is not None else self.dialect not in ("sqlite", "mysql")
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
            elif isinstance(kind, exp.GeneratedAsIdentityColumnConstraint) and kind.this is not None:
                options = [k for k, v in kind.args.items() if k not in ("this", "on_null") and v not in (None, False)]
                if options or kind.args.get("on_null"):
                    raise self.refuse(node, _IDENTITY_OPTIONS)
                out["identity"] = "always" if kind.this else "by default"
            else:
                clause = self.sql(constraint).split("(")[0].strip() or type(kind).__name__
                raise self.refuse(
                    node,
                    f"column attribute {clause} is not supported: shadowswap maps NULL, NOT NULL, DEFAULT, "
                    "CHARACTER SET, COLLATE, COMMENT, AS (expr) [STORED|VIRTUAL] and identity; "
                    "add keys with ADD INDEX / ADD UNIQUE",
                )
        type_sql = self.type_sql(node.args["kind"])
        # MySQL: the character set and collation are part of the column's type
        if charset:
            type_sql += f" CHARACTER SET {charset}"
        if collate:
            type_sql += f" COLLATE {collate}"
        out["type_sql"] = check_type(type_sql) if charset or collate else type_sql
        if (out.get("generated") is not None or out.get("identity")) and out["default"] is not None:
            raise self.refuse(node, "a generated or identity column has no DEFAULT")
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
            nullable=d["nullable"] is not False and not d.get("identity"),  # an identity column is NOT NULL
            default=d["default"],
            comment=d["comment"] or None,
            generated=d.get("generated"),
            stored=d.get("stored"),
            identity=d.get("identity"),
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
        if isinstance(node, exp.PrimaryKey | exp.PrimaryKeyColumnConstraint):
            raise self.refuse(node, _PRIMARY_KEY_SWAP)
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

    # -- ALTER TABLE clauses sqlglot reads as an opaque Command (PostgreSQL's column settings, identity)

    def alter_command(self, statement: Any) -> None:
        """``ALTER TABLE t <action>, ...`` that sqlglot gave up on: each action is matched here against
        the PostgreSQL column clauses shadowswap maps, or parsed again on its own by sqlglot, or refused
        by name. Names fold as the engine folds them (unquoted: lower case on PostgreSQL)."""
        import sqlglot
        from sqlglot import exp
        from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

        text = str(statement.expression or "")
        tokens = list(sqlglot.tokenize(text, read=self.dialect))
        # TABLE [IF EXISTS] [ONLY] name
        words = [t.text.upper() for t in tokens[:4]]
        if words[:1] != ["TABLE"]:
            raise self.refuse(statement)
        if words[1:3] == ["IF", "EXISTS"]:
            raise self.refuse(statement, _CLAUSES["exists"] + " is not supported")
        skip = 2 if words[1:2] == ["ONLY"] else 1
        if len(tokens) <= skip:
            raise self.refuse(statement, "expected a table name")
        if len(tokens) > skip + 1 and tokens[skip + 1].text == ".":
            raise self.refuse(statement, "schema-qualified tables are not supported; connect to that schema")
        # a quoted identifier's token spans its quotes
        table_sql = text[tokens[skip].start : tokens[skip].end + 1]
        table = sqlglot.parse_one(f"SELECT 1 FROM {table_sql}", read=self.dialect)
        self.set_table(normalize_identifiers(table, dialect=self.dialect).find(exp.Table))
        depth, start, actions = 0, tokens[skip].end + 1, []
        for token in tokens:
            if token.start < start:
                continue
            if token.token_type == sqlglot.TokenType.L_PAREN:
                depth += 1
            elif token.token_type == sqlglot.TokenType.R_PAREN:
                depth -= 1
            elif token.token_type == sqlglot.TokenType.COMMA and depth == 0:
                actions.append(text[start : token.start])
                start = token.end + 1
        actions.append(text[start:])
        for action in (a.strip() for a in actions):
            if not action:
                raise self.refuse(statement, "an empty clause")
            if self.column_clause(action):
                continue
            try:
                parsed = sqlglot.parse_one(f"ALTER TABLE {table_sql} {action}", read=self.dialect)
            except sqlglot.errors.SqlglotError:
                parsed = None
            if not isinstance(parsed, exp.Alter):
                raise UsageError(
                    f"--ddl: cannot express {action!r} ({_why_not(action)})",
                    hint="see the README's alter-language section for what each engine accepts",
                )
            self.strict(parsed, "this", "kind", "actions", "only")
            for node in normalize_identifiers(parsed, dialect=self.dialect).args.get("actions") or []:
                self.action(node)

    def fold(self, name: str) -> str:
        if len(name) >= 2 and name[0] == name[-1] == '"':
            return name[1:-1].replace('""', '"')
        return name.lower() if self.dialect in ("postgres", None) else name

    def column_clause(self, action: str) -> bool:
        """``ALTER [COLUMN] c SET STATISTICS | SET STORAGE | SET COMPRESSION | ADD GENERATED ... AS IDENTITY |
        SET GENERATED | DROP IDENTITY``: one AlterColumn setting each; False when it is none of them."""
        match = _COLUMN_CLAUSE_RE.match(action)
        if not match:
            return False
        column, clause = self.fold(match.group(1)), " ".join(match.group(2).split())
        words = clause.lower().split()
        key: str
        value: Any
        if words[:2] == ["set", "statistics"] and len(words) == 3 and re.fullmatch(r"-?\d+", words[2]):
            key, value = "statistics", int(words[2])
        elif words[:2] == ["set", "storage"] and len(words) == 3 and words[2] in STORAGE_MODES:
            key, value = "storage", words[2]
        elif words[:2] == ["set", "compression"] and len(words) == 3 and re.fullmatch(_NAME_WORD, words[2]):
            key, value = "compression", words[2]
        elif words[:2] == ["add", "generated"] and words[-2:] == ["as", "identity"] and len(words) in (5, 6):
            key, value = "identity", f"add {' '.join(words[2:-2])}"
        elif words[:2] == ["set", "generated"] and len(words) in (3, 4):
            key, value = "identity", f"set {' '.join(words[2:])}"
        elif words in (["drop", "identity"], ["drop", "identity", "if", "exists"]):
            key, value = "identity", "drop" if len(words) == 2 else "drop if exists"
        elif words in (["drop", "expression"], ["drop", "expression", "if", "exists"]):
            key, value = "drop_expression", True
        else:
            return False
        if key == "identity" and value not in IDENTITY_ACTIONS:
            return False
        self.set_once(column, key, value, None)
        return True


_NAME_TEXT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_COLUMN_CLAUSE_RE = re.compile(rf"^alter\s+(?:column\s+)?({_NAME_TEXT})\s+(.*)$", re.IGNORECASE | re.DOTALL)

_IDENTITY_OPTIONS = (
    "identity sequence options (START WITH, INCREMENT BY, ...) are not supported; add the identity, then ALTER SEQUENCE"
)
_PRIMARY_KEY_SWAP = PRIMARY_KEY_SWAP


def _is_alter_table(statement: Any) -> bool:
    return str(statement.this).upper() == "ALTER" and str(statement.expression or "").lstrip().upper().startswith(
        "TABLE"
    )


def _why_not(action: str) -> str:
    """Why a clause is refused, for the clauses users write that shadowswap does not map."""
    words = " ".join(action.split()).upper()
    if re.search(r"\bSET\s+EXPRESSION\b", words):
        return (
            "ALTER COLUMN ... SET EXPRESSION is PostgreSQL 17's; write DROP COLUMN c, ADD COLUMN c ... GENERATED "
            "ALWAYS AS (...) STORED, which shadowswap runs online (the column then comes last, as that ALTER puts it)"
        )
    if re.search(r"\bPRIMARY\s+KEY\b", words):
        return _PRIMARY_KEY_SWAP
    if re.search(r"\bADD\s+GENERATED\b.*\bIDENTITY\s*\(", words):
        return _IDENTITY_OPTIONS
    if re.search(r"^CONVERT\s+TO\b", words):
        return "CONVERT TO CHARACTER SET is MySQL's; this engine's column types carry their encoding from the database"
    if re.search(r"^(SET\s+WITHOUT\s+)?CLUSTER\b", words):
        # CLUSTER ON only marks the index a later blocking CLUSTER reads; the online equivalent of
        # that CLUSTER is the ordered rebuild
        return (
            "it only marks the index a blocking CLUSTER uses; "
            "--rebuild --order-by INDEX rewrites the table in that order online"
        )
    return "shadowswap does not map this clause"


def parse_ddl(text: str, read: str | None) -> ChangeSet:
    """``ALTER TABLE t ...; CREATE INDEX ...`` in the engine's dialect (sqlglot ``read``) into changes."""
    return _DDL(read).parse(text)
