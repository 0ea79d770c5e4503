"""What the benchmark says to each server: database set-up, the seed, the raw copy, the blocking ALTER.

The harness (not shadowswap) has to speak each engine's SQL here; shadowswap itself only ever runs
through its CLI.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from benchmarks.seed import COLOURS, PRICE_MODULUS, PRICE_MULTIPLIER, products_table

NEW_TYPE = "varchar(20)"
ALTER_SPEC = f"price:{NEW_TYPE}"
COPY_TABLE = "products_copy"


class Profile:
    name = ""
    admin_database: str | None = None

    def __init__(self, url: URL) -> None:
        self.url = url
        self.database = url.database or "shadowswap_bench"

    # -- database --------------------------------------------------------------------------

    def admin_engine(self) -> Engine:
        # URL.set() ignores None, so ``_replace``: MySQL's admin connection names no database
        return sa.create_engine(self.url._replace(database=self.admin_database), isolation_level="AUTOCOMMIT")

    def engine(self, **kwargs: object) -> Engine:
        return sa.create_engine(self.url, **kwargs)

    def recreate_database(self) -> None:
        admin = self.admin_engine()
        with admin.connect() as conn:
            self.drop_database_sql(conn)
            conn.exec_driver_sql(self.create_database_sql())
        admin.dispose()

    def drop_database(self) -> None:
        admin = self.admin_engine()
        with admin.connect() as conn:
            self.drop_database_sql(conn)
        admin.dispose()

    def drop_database_sql(self, conn: Connection) -> None:
        raise NotImplementedError

    def create_database_sql(self) -> str:
        return f"CREATE DATABASE {self.q(self.database)}"

    def q(self, name: str) -> str:
        return self.url.get_dialect()().identifier_preparer.quote(name)

    def server_version(self, conn: Connection) -> str:
        return str(conn.exec_driver_sql("SELECT version()").scalar())

    def server_counters(self, conn: Connection) -> dict[str, int]:
        """Server-wide counters read before and after each approach: what else the server did meanwhile."""
        return {}

    # -- seed ------------------------------------------------------------------------------

    def seed(self, engine: Engine, rows: int) -> None:
        """Table with its primary key and unique sku, rows generated server-side, then the indexes."""
        metadata = sa.MetaData()
        table = products_table(metadata)
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateTable(table))
            conn.execute(sa.text(self.seed_sql(int(rows))))  # text(): '%' is the modulo here
            for index in table.indexes:
                conn.execute(sa.schema.CreateIndex(index))
        self.after_seed(engine)

    def seed_sql(self, rows: int) -> str:
        raise NotImplementedError

    def after_seed(self, engine: Engine) -> None:
        """Statistics, and nothing left for the measured run to tidy up after the seed."""

    # -- the approaches --------------------------------------------------------------------

    def raw_copy_sql(self) -> list[str]:
        raise NotImplementedError

    def blocking_alter_sql(self) -> str:
        raise NotImplementedError


class PostgresProfile(Profile):
    name = "postgresql"
    admin_database = "postgres"

    def drop_database_sql(self, conn: Connection) -> None:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.q(self.database)} WITH (FORCE)")

    def seed_sql(self, rows: int) -> str:
        colours = ", ".join(f"'{c}'" for c in COLOURS)
        return (
            "INSERT INTO products (id, name, description, sku, price, stock_quantity, is_active) "
            f"SELECT g, 'product ' || g || ' ' || (ARRAY[{colours}])[g % 4 + 1], "
            "CASE WHEN g % 7 = 0 THEN NULL ELSE 'description of ' || g END, "
            "'SKU-' || lpad(g::text, 8, '0'), "
            f"((g::bigint * {PRICE_MULTIPLIER}) % {PRICE_MODULUS} + 100) / 100.0, g % 1000, g % 5 <> 0 "
            f"FROM generate_series(1, {rows}) AS g"
        )

    def after_seed(self, engine: Engine) -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("SELECT setval('products_id_seq', GREATEST((SELECT max(id) FROM products), 1))")
            # Set hint bits and the visibility map now, and flush the seed's dirty pages, so no
            # approach pays for the seed inside its measured window.
            conn.exec_driver_sql("VACUUM (FREEZE, ANALYZE) products")
            conn.exec_driver_sql("CHECKPOINT")

    def server_counters(self, conn: Connection) -> dict[str, int]:
        # Checkpoints requested by anyone on the server (other databases' CREATE/DROP DATABASE too)
        # explain stalls that no lock of ours caused.
        row = conn.exec_driver_sql(
            "SELECT checkpoints_timed, checkpoints_req, buffers_checkpoint, buffers_backend FROM pg_stat_bgwriter"
        ).one()
        wal = conn.exec_driver_sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").scalar()
        return {**dict(row._mapping), "wal_bytes": int(wal or 0)}

    def raw_copy_sql(self) -> list[str]:
        # The floor: a bare heap filled by one INSERT … SELECT, then every index built once, sorted.
        return [
            f"CREATE TABLE {COPY_TABLE} (LIKE products INCLUDING DEFAULTS)",
            f"ALTER TABLE {COPY_TABLE} ALTER COLUMN price TYPE {NEW_TYPE}",
            f"INSERT INTO {COPY_TABLE} (id, name, description, sku, price, stock_quantity, is_active, "
            "created_at, updated_at) SELECT id, name, description, sku, CAST(price AS varchar(20)), "
            "stock_quantity, is_active, created_at, updated_at FROM products",
            f"ALTER TABLE {COPY_TABLE} ADD PRIMARY KEY (id)",
            f"ALTER TABLE {COPY_TABLE} ADD UNIQUE (sku)",
            f"CREATE INDEX ix_{COPY_TABLE}_name ON {COPY_TABLE} (name)",
            f"CREATE INDEX ix_{COPY_TABLE}_active_created ON {COPY_TABLE} (is_active, created_at)",
        ]

    def blocking_alter_sql(self) -> str:
        return f"ALTER TABLE products ALTER COLUMN price TYPE {NEW_TYPE}"


class MySQLProfile(Profile):
    name = "mysql"
    admin_database = None

    def drop_database_sql(self, conn: Connection) -> None:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.q(self.database)}")

    def create_database_sql(self) -> str:
        return f"CREATE DATABASE {self.q(self.database)} CHARACTER SET utf8mb4"

    def seed_sql(self, rows: int) -> str:
        colours = ", ".join(f"'{c}'" for c in COLOURS)
        # MariaDB's SEQUENCE engine: seq_1_to_N is a virtual table of the integers 1..N.
        return (
            "INSERT INTO products (id, name, description, sku, price, stock_quantity, is_active) "
            f"SELECT seq, CONCAT('product ', seq, ' ', ELT(seq % 4 + 1, {colours})), "
            "IF(seq % 7 = 0, NULL, CONCAT('description of ', seq)), CONCAT('SKU-', LPAD(seq, 8, '0')), "
            f"((seq * {PRICE_MULTIPLIER}) % {PRICE_MODULUS} + 100) / 100, seq % 1000, seq % 5 <> 0 "
            f"FROM seq_1_to_{rows}"
        )

    def after_seed(self, engine: Engine) -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE TABLE products").fetchall()

    def raw_copy_sql(self) -> list[str]:
        # InnoDB clusters rows by the primary key, so the floor keeps the key from the start
        # (adding it later would rebuild the table) and adds the secondary indexes in one ALTER.
        return [
            f"CREATE TABLE {COPY_TABLE} LIKE products",
            f"ALTER TABLE {COPY_TABLE} MODIFY price {NEW_TYPE} NOT NULL, DROP INDEX sku, "
            f"DROP INDEX ix_products_name, DROP INDEX ix_products_active_created",
            f"INSERT INTO {COPY_TABLE} (id, name, description, sku, price, stock_quantity, is_active, "
            "created_at, updated_at) SELECT id, name, description, sku, CAST(price AS CHAR(20)), "
            "stock_quantity, is_active, created_at, updated_at FROM products ORDER BY id",
            f"ALTER TABLE {COPY_TABLE} ADD UNIQUE (sku), ADD INDEX ix_{COPY_TABLE}_name (name), "
            f"ADD INDEX ix_{COPY_TABLE}_active_created (is_active, created_at)",
        ]

    def blocking_alter_sql(self) -> str:
        return f"ALTER TABLE products MODIFY price {NEW_TYPE} NOT NULL"

    def server_counters(self, conn: Connection) -> dict[str, int]:
        names = ("Innodb_row_lock_waits", "Innodb_row_lock_time", "Innodb_deadlocks", "Binlog_bytes_written")
        rows = conn.exec_driver_sql("SHOW GLOBAL STATUS").fetchall()
        return {str(r[0]): int(r[1]) for r in rows if r[0] in names}

    def server_version(self, conn: Connection) -> str:
        version = conn.exec_driver_sql("SELECT version()").scalar()
        binlog = conn.exec_driver_sql("SELECT @@log_bin, @@binlog_format").first()
        assert binlog is not None
        return f"{version} (binlog {'on, ' + str(binlog[1]) if int(binlog[0]) else 'off'})"


def profile_for(url: URL) -> Profile:
    if url.get_backend_name() == "postgresql":
        return PostgresProfile(url)
    if url.get_backend_name() in ("mysql", "mariadb"):
        return MySQLProfile(url)
    raise SystemExit(f"benchmarks run on postgresql or mysql/mariadb, not {url.get_backend_name()}")
