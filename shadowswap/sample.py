"""The seed's ``products`` table, its rows, and the row-by-row comparison with what writers committed.

Shared by the test harness and ``shadowswap demo``, so the demo's verdict is computed exactly as
the conformance suite computes its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

COLUMNS = ("name", "description", "sku", "price", "stock_quantity", "is_active")


def products_table(metadata: sa.MetaData, name: str = "products") -> sa.Table:
    """The seed's table, created through SQLAlchemy so every engine gets its native key generation."""
    table = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("sku", sa.String(100), nullable=False, unique=True),
        sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.Column("stock_quantity", sa.Integer, nullable=False, server_default="0"),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime, server_default=sa.func.current_timestamp()),
        sa.Column("updated_at", sa.DateTime, server_default=sa.func.current_timestamp()),
    )
    sa.Index(f"ix_{name}_name", table.c.name)
    sa.Index(f"ix_{name}_active_created", table.c.is_active, table.c.created_at)
    return table


def price_for(rng: random.Random) -> str:
    # the last digit is never 0: '12.30' would come back as '12.3' from SQLite's numeric affinity
    cents = rng.randrange(100, 9_999_999)
    if cents % 10 == 0:
        cents += 1
    return str(Decimal(cents) / 100)


def seed_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        rows.append(
            {
                "id": i,
                "name": f"product {i} {rng.choice(['red', 'blue', 'grün', '東京'])}",
                "description": None if i % 7 == 0 else f"description of {i}",
                "sku": f"SKU-{i:08d}",
                "price": price_for(rng),
                "stock_quantity": rng.randrange(0, 1000),
                "is_active": i % 5 != 0,
            }
        )
    return rows


@dataclass
class Comparison:
    lost: list[int]
    ghost: list[int]
    wrong: list[tuple[int, dict[str, Any], dict[str, Any]]]

    def assert_exact(self) -> None:
        assert (len(self.lost), len(self.ghost), len(self.wrong)) == (0, 0, 0), (
            f"lost={len(self.lost)} {self.lost[:5]} ghost={len(self.ghost)} {self.ghost[:5]} "
            f"wrong={len(self.wrong)} {self.wrong[:3]}"
        )


def normalise(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):  # SQLite's NUMERIC columns hand back floats; price_for keeps them exact
        return repr(value)
    return value


def compare(
    engine: sa.Engine, model: dict[int, dict[str, Any]], table: str = "products", expect: dict[str, Any] | None = None
) -> Comparison:
    """Row-by-row: the table against the model, each value through ``expect[col]`` if given."""
    expect = expect or {}
    q = engine.dialect.identifier_preparer.quote
    cols = ", ".join(q(c) for c in ("id", *COLUMNS))
    with engine.connect() as conn:
        rows = {
            r[0]: dict(zip(COLUMNS, r[1:], strict=True))
            for r in conn.execute(sa.text(f"SELECT {cols} FROM {q(table)}"))
        }
    lost = sorted(set(model) - set(rows))
    ghost = sorted(set(rows) - set(model))
    wrong = []
    for key in set(model) & set(rows):
        want = {c: normalise(expect[c](model[key][c]) if c in expect else model[key][c]) for c in COLUMNS}
        got = {c: normalise(rows[key][c]) for c in COLUMNS}
        if want != got:
            wrong.append((key, want, got))
    return Comparison(lost, ghost, wrong)
