"""One schema change across a fleet of databases (issue 19).

Each target is an ordinary shadowswap migration: its own plan, its own state table in its own
database, the same executor. What this package adds is the fan-out and the fleet-wide view:

- ``targets``  — the targets file: URLs (``${ENV}`` expanded at use) and globs of SQLite files
- ``plans``    — one plan per target plus a manifest (``fleet.json``) in the plans directory
- ``runner``   — one target's run (shared by the thread pool and the Celery task), and the
                 dispatch loop: concurrency, per-host bound, canary, gate
- ``tasks``    — the Celery app and its one task, for the distributed mode
- ``status``   — reads every target's state table (no broker needed); fleet-wide operator flags
- ``cli``      — the ``shadowswap fleet`` typer sub-app
"""
