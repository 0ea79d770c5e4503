"""Transform functions the --transform tests plan with (imported by name: tests/ is on sys.path)."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

#: the key whose row ``failing`` refuses (set by the test before it plans)
FAIL_KEY = -1


def summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """The products table's rows → a JSON summary and an integer, from the row alone."""
    description = row["description"] or ""
    return {
        "summary": {"name": row["name"], "words": description.split()[:3], "active": bool(row["is_active"])},
        "price_cents": int(decimal.Decimal(str(row["price"])) * 100),
    }


def failing(row: Mapping[str, Any]) -> dict[str, Any]:
    if row["id"] == FAIL_KEY or str(row["name"]).startswith("boom"):
        raise ValueError(f"cannot summarise {row['name']!r}")  # the line the error must name
    return summary(row)


def typed(row: Mapping[str, Any]) -> dict[str, Any]:
    """One value of each kind the drivers adapt, None on even keys."""
    if row["id"] % 2 == 0:
        return {"doc": None, "amount": None, "stamp": None, "raw": None, "label": None}
    return {
        "doc": {"id": row["id"], "tags": ["a", "ü"], "nested": {"ok": True, "n": None}},
        "amount": decimal.Decimal(row["id"]) / 8,
        "stamp": dt.datetime(2024, 1, 1, 12, 30) + dt.timedelta(seconds=row["id"]),
        "raw": bytes([row["id"] % 256, 0, 255]),
        "label": f"#{row['id']}",
    }
