"""Dialect objects for pure-rule tests: a SQLAlchemy dialect instance with a chosen server version,
never a connection, so the rules a planner asks about are tested without a server."""

from __future__ import annotations

from sqlalchemy.dialects import mysql, postgresql, sqlite

from shadowswap.dialects import Dialect


def postgres(version: tuple[int, ...] = (16, 0)) -> Dialect:
    from shadowswap.dialects.postgresql import PostgresDialect

    sa_dialect = postgresql.psycopg.dialect()
    sa_dialect.server_version_info = version
    return PostgresDialect(sa_dialect)


def mysql_family(version: tuple[int, ...], mariadb: bool) -> Dialect:
    from shadowswap.dialects.mysql import MySQLDialect

    sa_dialect = mysql.pymysql.dialect()
    sa_dialect.server_version_info = version
    # what SQLAlchemy sets from the server's version string on the first connection
    sa_dialect.is_mariadb = mariadb
    return MySQLDialect(sa_dialect)


def mariadb(version: tuple[int, ...] = (10, 11, 6)) -> Dialect:
    return mysql_family(version, mariadb=True)


def mysql8(version: tuple[int, ...] = (8, 0, 36)) -> Dialect:
    return mysql_family(version, mariadb=False)


def sqlite_() -> Dialect:
    from shadowswap.dialects.sqlite import SQLiteDialect

    return SQLiteDialect(sqlite.pysqlite.dialect())
