"""Pure helpers over SQL text: no engine, no connection, no import from the rest of shadowswap.

A leaf module, so that the planner and the dialects can both use it without a dialect reaching
up into the planner that calls it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def mentions(sql: str, names: Sequence[str]) -> set[str]:
    """Which of ``names`` an SQL fragment (index expression, check) refers to; errs towards yes."""
    if not sql or not names:
        return set()
    found = set()
    for name in names:
        plain = re.escape(name)
        if re.search(rf'(?<![\w"`]){plain}(?![\w"`])|"{plain}"|`{plain}`', sql, re.IGNORECASE):
            found.add(name)
    return found
