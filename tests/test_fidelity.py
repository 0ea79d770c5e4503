"""Fidelity (issue 14): after shadowswap the table is the one the engine's blocking ALTER gives.

Each case of tests/differential.py runs on each of its engines: one fresh database migrated by the
blocking ALTER, another by shadowswap's command line, then catalogs, probe answers and rows compared.
The pairs that differ today are listed in ``differential.KNOWN_GAPS`` with their difference.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from differential import Case, collected, migrate_both


@pytest.mark.parametrize(("case", "engine"), [pytest.param(c, e, id=f"{c.name}-{e}") for c, e in collected()])
def test_shadowswap_gives_the_blocking_alters_table(case: Case, engine: str, tmp_path: Path) -> None:
    diffs = migrate_both(case, engine, tmp_path)
    assert not diffs, f"{case.name} on {engine} (blocking ALTER vs shadowswap):\n" + "\n".join(diffs)
