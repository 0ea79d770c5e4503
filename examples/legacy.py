"""The seed's data migration as a ``--transform`` (README: "Python transformations").

``old_spec_field`` holds ``"key1:value1,key2:value2"``; the new table gets it as JSON in
``specifications``, plus a ``metadata`` object, and loses the old column::

    shadowswap plan products --add specifications:jsonb --add metadata:jsonb \\
        --drop old_spec_field --transform legacy:transform

``transform`` is called with the original row (a mapping, values as the driver returns them) for
every row the copy reads and again for every row written while the migration runs, so it must
depend on the row alone: no clock (a ``migrated_at`` stamp is a column default, ``now()``), no
randomness, no other rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def parse_legacy_specifications(spec_string: str | None) -> dict[str, str]:
    """``"key1:value1,key2:value2"`` → ``{"key1": "value1", "key2": "value2"}``; pairs without a colon are skipped."""
    specifications: dict[str, str] = {}
    for pair in (spec_string or "").split(","):
        if ":" in pair:
            key, value = pair.split(":", 1)
            specifications[key.strip()] = value.strip()
    return specifications


def data_quality(row: Mapping[str, Any]) -> int:
    score = 100
    if not row["name"] or len(row["name"]) < 3:
        score -= 20
    if not row["description"]:
        score -= 15
    if not row["old_spec_field"]:
        score -= 10
    return max(0, score)


def transform(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "specifications": parse_legacy_specifications(row["old_spec_field"]),
        "metadata": {
            "migration_source": "legacy_system",
            "original_format": "csv_specs",
            "data_quality_score": data_quality(row),
        },
    }
