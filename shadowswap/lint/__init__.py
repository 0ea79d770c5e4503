"""``shadowswap lint``: which operations of Alembic migrations block the application's writes, for how
long, and their online form. Migrations are run as ``alembic upgrade --sql`` runs them (record.py);
the rules are data (rules.py), judged in linter.py; ``--fix`` rewrites flagged calls into
``op.online_alter_table`` (fix.py); command.py is the command line.

The names below load on first use: the command line imports the command at start, alembic only when
lint runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RULES", "Finding", "FixRequest", "LintResult", "Rule", "lint", "mappable", "offline_engine"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(name)
    from shadowswap.lint import linter

    return getattr(linter, name)
