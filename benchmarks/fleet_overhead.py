"""The fleet's cost per target that does not depend on the rows: ``python -m benchmarks.fleet_overhead``.

A fleet of tiny SQLite databases (a few rows each), so what is measured is everything but the
copy: connecting, reading and writing the state table, the shadow, the triggers, the index
builds, the verification's setup, the swap, and the fleet's own dispatch (a thread, or a Celery
task through the broker and back). Planning is timed too. docs/fleet.md turns the figures into a
scale estimate.

    python -m benchmarks.fleet_overhead --targets 200 --concurrency 1,4,8
    python -m benchmarks.fleet_overhead --targets 200 --concurrency 4 --broker redis://127.0.0.1:6379/0 --workers 2
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from shadowswap.changes import parse_options
from shadowswap.fleet.plans import plan_fleet
from shadowswap.fleet.runner import DONE, Backend, Settings, ThreadBackend, run_fleet
from shadowswap.fleet.targets import parse_targets
from shadowswap.sample import products_table, seed_rows


def make_fleet(directory: Path, targets: int, rows: int) -> Path:
    files = directory / "tenants"
    files.mkdir(parents=True, exist_ok=True)
    for old in files.glob("*"):
        old.unlink()
    data = seed_rows(rows, 1)
    for i in range(targets):
        engine = sa.create_engine(f"sqlite:///{files / f'tenant{i:04d}.db'}")
        metadata = sa.MetaData()
        table = products_table(metadata)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), data)
        engine.dispose()
    path = directory / "targets.txt"
    path.write_text("tenants/*.db\n", encoding="utf-8")
    return path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run(
    directory: Path, targets: int, rows: int, concurrency: int, broker: str | None, workers: int, say: Any
) -> dict[str, Any]:
    targets_file = make_fleet(directory, targets, rows)
    fleet = parse_targets(targets_file)
    plans = directory / "plans"
    t0, c0 = time.perf_counter(), _cpu()
    manifest = plan_fleet(fleet, "products", parse_options(alter=["price:varchar(20)"]), plans, concurrency=concurrency)
    plan_seconds, plan_cpu = time.perf_counter() - t0, _cpu() - c0
    assert len(manifest.planned) == targets, [e.error for e in manifest.entries if e.error][:3]
    started: list[subprocess.Popen[bytes]] = []
    backend: Backend
    if broker:
        from shadowswap.fleet.tasks import CeleryBackend

        queue = f"shadowswap-fleet-bench-{uuid.uuid4().hex[:8]}"
        for i in range(workers):
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", "shadowswap", "fleet", "worker", "--broker", broker, "--queue", queue,
                     "--concurrency", str(max(1, concurrency // workers)), "--name", f"bench{i}-{queue}@%h"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                )
            )  # fmt: skip
        backend = CeleryBackend(broker, queue=queue)
        time.sleep(3.0)  # the workers connect (not part of the figure)
    else:
        backend = ThreadBackend()
    try:
        t0, c0 = time.perf_counter(), _cpu()
        outcome = run_fleet(plans, manifest, Settings(), backend, concurrency=concurrency)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    finally:
        for p in started:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
    done = outcome.count(DONE)
    per_target = [r.seconds for r in outcome.results]
    figures: dict[str, Any] = {
        "mode": f"celery ({workers} workers)" if broker else "threads",
        "targets": targets,
        "rows_each": rows,
        "concurrency": concurrency,
        "done": done,
        "plan_s_per_target": plan_seconds / targets,
        "plan_cpu_s_per_target": plan_cpu / targets,
        "wall_s": wall,
        "wall_s_per_target": wall / targets,
        "target_s_median": statistics.median(per_target),
        "target_s_p90": sorted(per_target)[int(len(per_target) * 0.9) - 1],
        # the coordinator's own CPU (threads mode: the migrations' Python too, they run in it)
        "coordinator_cpu_s_per_target": cpu / targets,
        # what the fleet adds on top of the targets' own runs, spread over the slots
        "dispatch_overhead_s_per_target": max(0.0, wall - sum(per_target) / concurrency) / targets * concurrency,
    }
    ms = {k: v * 1000 for k, v in figures.items() if isinstance(v, float)}
    say(
        f"{figures['mode']:<20} c={concurrency:<3} {done}/{targets} done  wall {wall:6.1f}s  "
        f"{ms['wall_s_per_target']:6.0f} ms/target  target median {ms['target_s_median']:5.0f} ms  "
        f"plan {ms['plan_s_per_target']:4.0f} ms/target  "
        f"coordinator CPU {ms['coordinator_cpu_s_per_target']:4.0f} ms/target"
    )
    return figures


def main(
    targets: Annotated[int, typer.Option(help="Databases in the fleet.")] = 200,
    rows: Annotated[int, typer.Option(help="Rows in each (tiny: the point is the fixed cost).")] = 10,
    concurrency: Annotated[str, typer.Option(help="Comma list of --concurrency values to run.")] = "1,4,8",
    broker: Annotated[str | None, typer.Option(help="Also run on Celery with this broker.")] = None,
    workers: Annotated[int, typer.Option(help="Celery workers (concurrency split between them).")] = 2,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path("benchmarks/results"),
) -> None:
    from shadowswap import logs

    logs.configure("console", "warning")
    levels = [int(c) for c in concurrency.split(",") if c.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="shadowswap-fleet-bench-") as tmp:
        for c in levels:
            results.append(one_run(Path(tmp), targets, rows, c, None, workers, typer.echo))
        if broker:
            for c in levels:
                results.append(one_run(Path(tmp), targets, rows, c, broker, workers, typer.echo))
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out / f"{stamp}-fleet-overhead.json"
    path.write_text(json.dumps({"load_average": os.getloadavg(), "runs": results}, indent=2) + "\n")
    typer.echo(f"written to {path}")


if __name__ == "__main__":
    typer.run(main)
