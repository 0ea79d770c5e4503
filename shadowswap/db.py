"""Engines from user URLs, with connection failures turned into one-line errors (never a password)."""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from shadowswap.dialects import Dialect, for_engine
from shadowswap.errors import ConnectionFailed, UsageError
from shadowswap.urls import mask_secrets, mask_url, secrets_of

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
    except ValueError as exc:  # make_url reads the port with int(): ``host:abc``
        raise UsageError(
            f"the database URL {mask_url(raw)} is not valid ({mask_secrets(str(exc))})",
            hint="the port must be a number, e.g. postgresql://user@host:5432/db",
        ) from None
    except ArgumentError:
        raise UsageError(
            "the database URL is not a valid SQLAlchemy URL",
            hint="e.g. postgresql://user@host/db, mysql://root@127.0.0.1/db, sqlite:///app.db",
        ) from None
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    return parsed


def safe_url(url: sa.URL) -> str:
    """The URL for people to read: every password masked, in the userinfo or the query (shadowswap.urls)."""
    return mask_url(url)


def _refuse_missing_sqlite_file(url: sa.URL) -> None:
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return
    if not os.path.isfile(database):
        raise UsageError(
            f"no SQLite database at {database}", hint="check the path in the URL (sqlite:///relative or sqlite:////abs)"
        )


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def connect(url: str | None, *, read_only: bool = False) -> tuple[Engine, Dialect]:
    """An engine that has answered once, and the dialect that speaks to it.

    ``read_only`` (plan, status, verify): a SQLite file that does not exist is an error rather than
    a new empty database, and the connection leaves the file's journal mode alone.
    """
    parsed = resolve_url(url)
    if read_only:
        _refuse_missing_sqlite_file(parsed)
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise UsageError(f"cannot use database URL {safe_url(parsed)}: {mask_secrets(str(exc))}") from None
    except (TypeError, ValueError) as exc:  # the dialect reads some query parameters itself (int(read_timeout))
        raise UsageError(
            f"cannot use database URL {safe_url(parsed)}: a query parameter is not valid "
            f"({mask_secrets(str(exc), secrets_of(parsed))})",
            hint="check the spelling and value of every ?name=value in the URL",
        ) from None
    dialect = for_engine(engine)
    dialect.read_only = read_only
    dialect.prepare_engine(engine)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except DBAPIError as exc:
        message = mask_secrets(first_line(exc), secrets_of(parsed))
        raise ConnectionFailed(
            f"cannot connect to {safe_url(parsed)}: {message}",
            hint="check the URL, that the server is running, and the credentials",
        ) from None
    except (TypeError, ValueError, AttributeError, LookupError) as exc:
        # the driver's own check of a URL query parameter, raised before it talks to the server:
        # PyMySQL's int(read_timeout), an unknown keyword, an unknown charset (AttributeError)
        engine.dispose()
        raise UsageError(
            f"cannot use database URL {safe_url(parsed)}: a query parameter is not valid for "
            f"{parsed.get_backend_name()} ({mask_secrets(str(exc), secrets_of(parsed))})",
            hint="check the spelling and value of every ?name=value in the URL",
        ) from None
    return engine, dialect
