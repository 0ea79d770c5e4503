"""The ground every PostgreSQL room stands on: the engine's name, its identifier limit, and the few
helpers more than one room uses.

``PostgresDialect`` (in ``__init__.py``) is composed of one class per concern, each deriving from
``PostgresBase``; what one room calls on another is either part of ``Dialect`` or declared here, so
mypy checks every such call against one signature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shadowswap.dialects.base import Dialect

if TYPE_CHECKING:
    from shadowswap.plan import Plan


class PostgresBase(Dialect):
    name = "postgresql"
    max_identifier_bytes = 63
    sqlglot_dialect = "postgres"

    # The triggers' plpgsql function: triggers.py creates and drops it, swap.py drops it after the
    # swap (the triggers are gone by then, the function is not part of the table).
    def function_name(self, plan: Plan) -> str:
        # a revert's reverse capture lives on the same table as the forward one did: its own name,
        # so the forward swap's DROP FUNCTION (after its commit) leaves it alone
        kind = "rfn" if plan.reverts is not None else "fn"
        return self.fit_name(f"_{plan.table}_ss_{kind}")
