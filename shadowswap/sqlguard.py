"""User SQL fragments proven to be ONE expression before they reach any statement.

``--using``, defaults and ``--ddl`` clauses are spliced into generated SQL (the copy's SELECT, the shadow's
DDL, the plan-time checks). A fragment the database reads differently from us (PostgreSQL's ``E'\\''``
escapes, MySQL's backslashes, dollar quoting, comments) could close our statement and open its own, so a
fragment is parsed with sqlglot *in the engine's dialect*, refused unless it is exactly one scalar
expression, and what reaches SQL is rendered back from that tree: the quoting in the plan is sqlglot's,
never the user's. The rendering must parse back to the same tree, so a rendering quirk cannot reopen the
hole. Plan-time validation also runs these fragments only in read-only transactions, one statement per
call (``Dialect.begin_read_only`` / ``Dialect.run_one``): a parse we got wrong still cannot change data.
"""

from __future__ import annotations

import logging
from typing import Any

from shadowswap.errors import UsageError

# Statement-like nodes: none may appear anywhere inside a copy expression or a default.
_STATEMENT_NODES = (
    "DML", "DDL", "Command", "Transaction", "Commit", "Rollback", "Set", "Pragma", "Into", "Lock", "Use",
    "Drop", "Alter", "Create", "Grant", "Revoke", "Analyze", "Describe", "Show", "Kill", "LoadData",
    "Execute", "Semicolon", "TruncateTable", "Cache", "Uncache", "Refresh", "Attach", "Detach", "Install",
    "Comment", "Declare", "Copy",
)  # fmt: skip


# Syntax sqlglot reads in every dialect and quietly translates where the engine has none: rendering it
# from the tree would make valid what the engine itself refuses ('abc'::int on SQLite would become
# CAST('abc' AS INTEGER), which is 0 there), so an engine without it refuses it here.
_FOREIGN_TOKENS = {"sqlite": ("DCOLON", "ILIKE"), "mysql": ("DCOLON", "ILIKE")}
_TOKEN_TEXT = {"DCOLON": "::", "ILIKE": "ILIKE"}


def _foreign_syntax(text: str, read: str | None) -> str | None:
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    names = _FOREIGN_TOKENS.get(read or "", ())
    if not names:
        return None
    for token in Dialect.get_or_raise(read).tokenize(text):
        for name in names:
            if token.token_type == getattr(TokenType, name):
                return f"{_TOKEN_TEXT[name]} is not {read} syntax"
    return None


def _statement_types() -> tuple[type[Any], ...]:
    from sqlglot import exp

    return tuple(t for t in (getattr(exp, name, None) for name in _STATEMENT_NODES) if isinstance(t, type))


def _parse(text: str, read: str | None) -> list[Any]:
    import sqlglot

    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # sqlglot warns on stderr where it gives up; we refuse ourselves
    try:
        return [s for s in sqlglot.parse(text, read=read) if s is not None]
    finally:
        quiet.setLevel(level)


def why_not_one_expression(text: str, read: str | None) -> tuple[str | None, Any]:
    """(None, the tree) when ``text`` is one scalar expression in dialect ``read``; else (why not, None)."""
    import sqlglot
    from sqlglot import exp

    if not text.strip():
        return "it is empty", None
    if "\x00" in text:
        return "it contains a NUL character", None
    try:
        statements = _parse(text, read)
    except sqlglot.errors.SqlglotError as exc:
        return f"it does not parse as {read or 'standard'} SQL ({str(exc).splitlines()[0]})", None
    foreign = _foreign_syntax(text, read)
    if foreign is not None:
        return f"it uses syntax of another engine ({foreign})", None
    if len(statements) != 1:
        return f"it is {len(statements)} statements, not one expression", None
    node = statements[0]
    if isinstance(node, exp.Query) or not isinstance(node, exp.Expression):
        return "it is a statement, not an expression", None
    forbidden = _statement_types()
    for sub in node.walk():
        if isinstance(sub, forbidden):
            return f"it contains a {type(sub).__name__.upper()} statement", None
        if sub.comments:
            return "it contains a comment", None
    return None, node


def one_expression(text: str, read: str | None, what: str) -> str:
    """``text`` as exactly one expression, rendered from its parse tree in dialect ``read``."""
    why, node = why_not_one_expression(text, read)
    if why is None:
        rendered = str(node.sql(dialect=read))
        again, back = why_not_one_expression(rendered, read)
        if again is not None or back != node:
            why = "it does not read back the same once rendered"
        else:
            return rendered
    raise UsageError(
        f"invalid {what} {text!r}: {why}",
        hint="give one SQL expression of this database (no ';', comments or statements)",
    )
