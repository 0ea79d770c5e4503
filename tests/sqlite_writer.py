"""The application in another process: harness writers on the same SQLite file until STOP appears.

Usage: python sqlite_writer.py URL OUT STOP SEED. Writes OUT.started once the writers run, and
at the end OUT as JSON: what they committed (the model), their errors and their commit times.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from harness import COLUMNS, Writers


def main() -> None:
    url, out, stop, seed = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, {', '.join(COLUMNS)} FROM products"))
        initial = {r[0]: dict(zip(COLUMNS, r[1:], strict=True)) for r in rows}
    engine.dispose()
    with Writers(url, initial, threads=2, seed=seed) as writers:
        Path(f"{out}.started").touch()
        while not stop.exists():
            time.sleep(0.01)
    total = writers.total
    result = {
        "model": [[key, row] for key, row in writers.model.items()],
        "errors": total.errors,
        "commits": sorted(total.commits),
        "counts": {
            "inserts": total.inserts,
            "updates": total.updates,
            "rekeys": total.rekeys,
            "deletes": total.deletes,
        },
    }
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
