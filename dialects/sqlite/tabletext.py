"""The stored CREATE TABLE as text: its column definitions and table constraints, each kept verbatim.

The shadow's CREATE TABLE is the original's stored statement with only the changed column
definitions rewritten, as SQLite's documented 12-step ALTER does (lang_altertable.html#otheralter):
whatever the user wrote — UNIQUE, CHECK, COLLATE, DEFAULT, GENERATED, REFERENCES with its actions,
AUTOINCREMENT, a declared type no library knows, WITHOUT ROWID, STRICT — comes through unread,
instead of surviving only as far as a reflection understands it.

The tokenizer knows SQLite's lexical rules (string literals, the four identifier quotings,
comments); the parser knows only where one column definition, and one constraint of it, ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: words that begin a column constraint (lang_createtable.html, column-constraint)
_CLAUSE_WORDS = {"CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT", "COLLATE", "REFERENCES"}
_CLAUSE_WORDS |= {"GENERATED", "AS"}
#: words that begin a table constraint
_TABLE_CONSTRAINT_WORDS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))
    | (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
    | (?P<word>[\w$\x80-\U0010ffff]+)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<other>.)
    """,
    re.X | re.S,
)


@dataclass
class Token:
    kind: str
    start: int
    end: int
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def tokens(sql: str, start: int = 0, end: int | None = None) -> list[Token]:
    """The tokens of ``sql[start:end]`` without blanks and comments; a parenthesised group is one token."""
    end = len(sql) if end is None else end
    out: list[Token] = []
    depth, group_start = 0, 0
    for m in _TOKEN.finditer(sql, start, end):
        kind = m.lastgroup or "other"
        if kind == "space":
            continue
        if kind == "open":
            if depth == 0:
                group_start = m.start()
            depth += 1
            continue
        if kind == "close":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' in {sql[:60]!r}")
            if depth == 0:
                out.append(Token("group", group_start, m.end(), sql[group_start : m.end()]))
            continue
        if depth == 0:
            out.append(Token(kind, m.start(), m.end(), m.group()))
    if depth:
        raise ValueError(f"unbalanced '(' in {sql[:60]!r}")
    return out


def unquote(token: str) -> str:
    if token[:1] in "\"`'":
        return token[1:-1].replace(token[0] * 2, token[0])
    if token[:1] == "[":
        return token[1:-1]
    return token


@dataclass
class Clause:
    """One column constraint, ``CONSTRAINT name`` included: ``kind`` is its keyword (NOT for NOT NULL)."""

    kind: str
    start: int
    end: int


@dataclass
class Column:
    name: str
    start: int
    end: int
    name_end: int
    #: the declared type's span; empty (start == end) when the column has none
    type_start: int
    type_end: int
    clauses: list[Clause] = field(default_factory=list)


@dataclass
class Item:
    """One entry of the column list: ``raw`` spans it between the commas, blanks included."""

    raw_start: int
    raw_end: int
    column: Column | None
    #: a table constraint's ``CONSTRAINT name``, if it has one
    constraint_name: str | None = None


@dataclass
class TableText:
    """A stored ``CREATE TABLE name (body) options`` cut into its parts (offsets into ``sql``)."""

    sql: str
    name_start: int
    name_end: int
    body_start: int
    body_end: int
    items: list[Item]

    @property
    def columns(self) -> list[Column]:
        return [i.column for i in self.items if i.column is not None]


def parse(sql: str) -> TableText:
    """Cut a stored CREATE TABLE statement into column definitions and table constraints."""
    head = tokens(sql)
    words = [t.upper for t in head]
    if words[:2] != ["CREATE", "TABLE"] or len(head) < 4:
        raise ValueError(f"not a CREATE TABLE statement: {sql[:60]!r}")
    i = 2
    if words[i : i + 3] == ["IF", "NOT", "EXISTS"]:
        i += 3
    name = head[i]
    if i + 2 < len(head) and head[i + 1].text == ".":  # schema.table
        name = head[i + 2]
    body = next((t for t in head if t.kind == "group" and t.start > name.end), None)
    if body is None:
        raise ValueError(f"CREATE TABLE without a column list: {sql[:60]!r}")
    parts: list[tuple[int, int]] = []
    item_start = body.start + 1
    for t in tokens(sql, body.start + 1, body.end - 1):
        if t.text == ",":
            parts.append((item_start, t.start))
            item_start = t.end
    parts.append((item_start, body.end - 1))
    items: list[Item] = []
    for start, end in parts:
        toks = tokens(sql, start, end)
        if not toks:
            raise ValueError(f"an empty item in the column list of {sql[:60]!r}")
        if toks[0].upper in _TABLE_CONSTRAINT_WORDS:
            named = unquote(toks[1].text) if toks[0].upper == "CONSTRAINT" and len(toks) > 1 else None
            items.append(Item(start, end, None, named))
        else:
            items.append(Item(start, end, _column(toks)))
    return TableText(sql, name.start, name.end, body.start + 1, body.end - 1, items)


@dataclass
class ColumnEdit:
    """What changes in one column's definition; None keeps that part as written."""

    type_sql: str | None = None
    not_null: bool | None = None
    #: the new ``DEFAULT …`` clause ('' for none) or None to keep the column's own
    default_clause: str | None = None


def _cut(text: str, start: int, end: int) -> tuple[int, int]:
    """A clause's span widened to the blanks before it, so that removing it leaves no gap."""
    while start > 0 and text[start - 1].isspace():
        start -= 1
    return start, end


def rewrite_column(sql: str, column: Column, edit: ColumnEdit) -> str:
    """The column's definition as written, with only what ``edit`` changes replaced."""
    cuts: list[tuple[int, int, str]] = []
    if edit.type_sql is not None:
        if column.type_start == column.type_end:
            cuts.append((column.name_end, column.name_end, " " + edit.type_sql))
        else:
            cuts.append((column.type_start, column.type_end, edit.type_sql))
    appended = ""
    if edit.not_null is not None:
        for clause in column.clauses:
            if clause.kind in ("NOT", "NULL"):
                cuts.append((*_cut(sql, clause.start, clause.end), ""))
        appended += " NOT NULL" if edit.not_null else ""
    if edit.default_clause is not None:
        for clause in column.clauses:
            if clause.kind == "DEFAULT":
                cuts.append((*_cut(sql, clause.start, clause.end), ""))
        appended += f" {edit.default_clause}" if edit.default_clause else ""
    out = sql[column.start : column.end]
    for start, end, text in sorted(cuts, reverse=True):
        out = out[: start - column.start] + text + out[end - column.start :]
    return out + appended


def rewrite_table(
    parsed: TableText,
    new_name: str,
    edits: dict[str, ColumnEdit],
    drops: set[str],
    dropped_constraints: set[str],
    additions: list[str],
) -> str:
    """The stored CREATE TABLE for ``new_name``: columns dropped, edited and added, the rest verbatim.

    Column names compare case-insensitively, as SQLite compares them."""
    sql = parsed.sql
    edits = {k.lower(): v for k, v in edits.items()}
    drops = {d.lower() for d in drops}
    dropped_constraints = {d.lower() for d in dropped_constraints}
    kept: list[str] = []
    last_column = -1
    for item in parsed.items:
        raw = sql[item.raw_start : item.raw_end]
        if item.column is None:
            if (item.constraint_name or "").lower() in dropped_constraints:
                continue
            kept.append(raw)
            continue
        column = item.column
        if column.name.lower() in drops:
            continue
        edit = edits.get(column.name.lower())
        if edit is not None:
            raw = (
                sql[item.raw_start : column.start] + rewrite_column(sql, column, edit) + sql[column.end : item.raw_end]
            )
        kept.append(raw)
        last_column = len(kept) - 1
    # SQLite wants the columns before the table constraints: added ones go after the last column
    kept[last_column + 1 : last_column + 1] = [f" {a}" for a in additions]
    return (
        sql[: parsed.name_start]
        + new_name
        + sql[parsed.name_end : parsed.body_start]
        + ",".join(kept)
        + sql[parsed.body_end :]
    )


def _column(toks: list[Token]) -> Column:
    name = toks[0]
    i = 1
    # the type name: words, then at most one parenthesised size, until a constraint begins
    while i < len(toks) and toks[i].kind in ("word", "quoted") and toks[i].upper not in _CLAUSE_WORDS:
        i += 1
    if i > 1 and i < len(toks) and toks[i].kind == "group":
        i += 1
    type_start = toks[1].start if i > 1 else name.end
    type_end = toks[i - 1].end if i > 1 else name.end
    column = Column(unquote(name.text), toks[0].start, toks[-1].end, name.end, type_start, type_end)
    starts: list[int] = []
    j = i
    while j < len(toks):
        word = toks[j].upper
        prev = toks[j - 1].upper if j > i else ""
        nxt = toks[j + 1].upper if j + 1 < len(toks) else ""
        begins = word in _CLAUSE_WORDS and not (
            (word == "NULL" and prev in ("NOT", "SET", "DEFAULT"))  # NOT NULL, ON DELETE SET NULL, DEFAULT NULL
            or (word == "NOT" and nxt == "DEFERRABLE")
            or (word == "AS" and prev == "ALWAYS")  # GENERATED ALWAYS AS
            or (word == "DEFAULT" and prev == "SET")  # ON DELETE SET DEFAULT
        )
        if begins:
            starts.append(j)
            if word == "CONSTRAINT":
                j += 3  # the name, then the constraint's own keyword, belong to this clause
                continue
            if word == "DEFAULT":
                # the value: one token, a signed number being two
                j += 3 if j + 1 < len(toks) and toks[j + 1].text in ("+", "-") else 2
                continue
        j += 1
    if i < len(toks) and (not starts or starts[0] != i):
        raise ValueError(f"cannot read the definition of column {column.name!r}")
    for n, s in enumerate(starts):
        last = (starts[n + 1] if n + 1 < len(starts) else len(toks)) - 1
        kind = toks[s].upper
        if kind == "CONSTRAINT" and s + 2 < len(toks):
            kind = toks[s + 2].upper
        column.clauses.append(Clause(kind, toks[s].start, toks[last].end))
    return column
