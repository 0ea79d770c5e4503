"""One module an engine behind one interface; ``for_engine`` picks it from the SQLAlchemy dialect."""

from __future__ import annotations

import sqlalchemy as sa

from shadowswap.dialects.base import Dialect
from shadowswap.errors import UsageError


def for_engine(engine: sa.engine.Engine) -> Dialect:
    name = engine.dialect.name
    if name == "postgresql":
        from shadowswap.dialects.postgresql import PostgresDialect

        return PostgresDialect(engine.dialect)
    if name in ("mysql", "mariadb"):
        from shadowswap.dialects.mysql import MySQLDialect

        return MySQLDialect(engine.dialect)
    if name == "sqlite":
        from shadowswap.dialects.sqlite import SQLiteDialect

        return SQLiteDialect(engine.dialect)
    raise UsageError(f"shadowswap does not support the {name} database")


__all__ = ["Dialect", "for_engine"]
