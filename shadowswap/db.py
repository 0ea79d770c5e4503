"""Engines from user URLs, with connection failures turned into one-line errors (never a password)."""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from shadowswap.dialects import Dialect, for_engine
from shadowswap.errors import ConnectionFailed, UsageError

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def resolve_url(url: str | None) -> sa.URL:
    raw = url or os.environ.get("DATABASE_URL")
    if not raw:
        raise UsageError("no database given", hint="pass --db URL or set DATABASE_URL (e.g. sqlite:///app.db)")
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise UsageError(
            "the database URL is not a valid SQLAlchemy URL",
            hint="e.g. postgresql://user@host/db, mysql://root@127.0.0.1/db, sqlite:///app.db",
        ) from None
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    return parsed


def safe_url(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def connect(url: str | None) -> tuple[Engine, Dialect]:
    """An engine that has answered once, and the dialect that speaks to it."""
    parsed = resolve_url(url)
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise UsageError(f"cannot use database URL {safe_url(parsed)}: {exc}") from None
    dialect = for_engine(engine)
    dialect.prepare_engine(engine)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except DBAPIError as exc:
        message = first_line(exc)
        if parsed.password:
            message = message.replace(str(parsed.password), "***")
        raise ConnectionFailed(
            f"cannot connect to {safe_url(parsed)}: {message}",
            hint="check the URL, that the server is running, and the credentials",
        ) from None
    return engine, dialect
