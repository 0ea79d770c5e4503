"""One benchmark run: for each row count and approach, a fresh seeded table, the writer process
offering its fixed rate, the approach, then the writer's figures and the row-by-row check.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.profiles import ALTER_SPEC, COPY_TABLE, Profile
from benchmarks.seed import check_table
from benchmarks.stats import window_stats

RAW_COPY = "raw copy"
BLOCKING_ALTER = "blocking ALTER"
SHADOWSWAP = "shadowswap"
PT_OSC = "pt-online-schema-change"
APPROACH_KEYS = {"raw-copy": RAW_COPY, "alter": BLOCKING_ALTER, "shadowswap": SHADOWSWAP, "pt-osc": PT_OSC}


@dataclass
class Settings:
    profile: Profile
    rows: list[int]
    approaches: list[str]
    rate: float = 200.0
    threads: int = 4
    lead_in: float = 2.0
    tail: float = 2.0
    out: Path = Path("benchmarks/results")
    shadowswap_cmd: list[str] = field(default_factory=lambda: [sys.executable, "-m", "shadowswap"])
    execute_args: list[str] = field(default_factory=list)
    keep: bool = False
    seed: int = 1
    say: Callable[[str], None] = print


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak_rss_mb: float
    output: str
    launched: float = 0.0  # time.time() at launch, to line up with the tool's log timestamps
    cpu_s: float = 0.0  # the child's user + system CPU: a figure a busy machine inflates far less than wall time


def child_env() -> dict[str, str]:
    """The tools' environment. An installed tool's modules are byte-compiled (pip does it); a
    session that sets PYTHONDONTWRITEBYTECODE would make every shadowswap process compile its own
    modules from source again, about 0.05-0.09 s of CPU on this machine, and count it as start-up."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_measured(cmd: list[str], log: Path) -> Measured:
    """Run a tool as a child process; wait4 gives that child's own peak RSS (ru_maxrss, KiB)."""
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(cmd)}\n".encode())
        out.flush()
        started = time.monotonic()
        launched = time.time()
        # cwd: the log's directory, so `python -m shadowswap` runs the installation it names, not a
        # checkout that happens to be the current directory
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=log.parent, env=child_env()
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(proc.returncode, seconds, usage.ru_maxrss / 1024, text, launched, cpu)


class WriterProcess:
    """The application, in its own process so its scheduling never shares a GIL with the tool."""

    def __init__(self, settings: Settings, rows: int, workdir: Path) -> None:
        self.out = workdir / "writer.json"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.writer",
                "--url",
                settings.profile.url.render_as_string(hide_password=False),
                "--rows",
                str(rows),
                "--rate",
                str(settings.rate),
                "--threads",
                str(settings.threads),
                "--seed",
                str(settings.seed),
                "--out",
                str(self.out),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.proc.kill()
            raise SystemExit(f"the writer did not start: {line!r}")

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.close()
        if self.proc.wait(timeout=120) != 0:
            raise SystemExit(f"the writer failed (exit {self.proc.returncode})")
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


# -- the approaches ------------------------------------------------------------------------------
# Each runs against a freshly seeded ``products`` and returns its facts; the caller times the window.


def raw_copy(settings: Settings, engine: sa.Engine, workdir: Path) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for stmt in settings.profile.raw_copy_sql():
            began = time.perf_counter()
            conn.execute(sa.text(stmt))
            # each statement's seconds: the floor's copy and its index builds, set against shadowswap's phases
            steps.append({"sql": stmt, "s": round(time.perf_counter() - began, 3)})
    return {"final_table": COPY_TABLE, "lock_note": "no load", "steps": steps}


def blocking_alter(settings: Settings, engine: sa.Engine, workdir: Path) -> dict[str, Any]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(settings.profile.blocking_alter_sql())
    return {"final_table": "products", "lock_note": "held for the whole rewrite"}


def shadowswap_plan(settings: Settings, engine: sa.Engine, workdir: Path) -> dict[str, Any]:
    """Before the window: the plan is the reviewed step a user takes before the migration."""
    url = settings.profile.url.render_as_string(hide_password=False)
    planned = run_measured(
        [
            *shadowswap_base(settings),
            "plan",
            "products",
            "--alter",
            ALTER_SPEC,
            "--db",
            url,
            "--out",
            str(workdir / "shadowswap.plan.json"),
        ],
        workdir / "shadowswap.log",
    )
    if planned.returncode != 0:
        return {"failed": f"plan exited {planned.returncode}: {last_line(planned.output)}"}
    return {"plan_s": round(planned.seconds, 3), "plan_peak_rss_mb": round(planned.peak_rss_mb, 1)}


def shadowswap_base(settings: Settings) -> list[str]:
    return [*settings.shadowswap_cmd, "--log-format", "json"]


def shadowswap(settings: Settings, engine: sa.Engine, workdir: Path) -> dict[str, Any]:
    url = settings.profile.url.render_as_string(hide_password=False)
    plan_file = workdir / "shadowswap.plan.json"
    executed = run_measured(
        [*shadowswap_base(settings), "execute", str(plan_file), "--db", url, *settings.execute_args],
        workdir / "shadowswap.log",
    )
    facts: dict[str, Any] = {
        "final_table": "products",
        "peak_rss_mb": round(executed.peak_rss_mb, 1),
        "cpu_s": round(executed.cpu_s, 2),
        "phases_s": phase_seconds(executed.output, executed.launched, executed.seconds),
    }
    if executed.returncode != 0:
        facts["failed"] = f"execute exited {executed.returncode}: {last_line(executed.output)}"
        return facts
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT cutover_lock_ms, rows_copied FROM shadowswap_migrations ORDER BY id DESC LIMIT 1")
        ).one()
    facts["swap_lock_ms"] = round(float(row[0]), 1) if row[0] is not None else None
    facts["rows_copied"] = int(row[1])
    return facts


def pt_osc(settings: Settings, engine: sa.Engine, workdir: Path) -> dict[str, Any]:
    binary = shutil.which("pt-online-schema-change")
    if binary is None:
        return {"failed": "not installed (apt-get install percona-toolkit)"}
    url = settings.profile.url
    dsn = f"h={url.host or '127.0.0.1'},P={url.port or 3306},u={url.username or 'root'},D={url.database},t=products"
    if url.password:
        dsn += f",p={url.password}"
    # Its defaults, except --no-version-check: that default phones a Percona server on the internet.
    cmd = [binary, "--alter", "MODIFY price varchar(20) NOT NULL", "--execute", "--no-version-check", dsn]
    ran = run_measured(cmd, workdir / "pt-osc.log")
    facts: dict[str, Any] = {
        "final_table": "products",
        "peak_rss_mb": round(ran.peak_rss_mb, 1),
        "cpu_s": round(ran.cpu_s, 2),
    }
    if ran.returncode != 0:
        facts["failed"] = f"exited {ran.returncode}: {last_line(ran.output)}"
    return facts


Step = Callable[[Settings, sa.Engine, Path], dict[str, Any]]
APPROACHES: dict[str, tuple[Step | None, Step, bool]] = {
    # name: (prepare before the window, run inside it, under write load)
    RAW_COPY: (None, raw_copy, False),
    BLOCKING_ALTER: (None, blocking_alter, True),
    SHADOWSWAP: (shadowswap_plan, shadowswap, True),
    PT_OSC: (None, pt_osc, True),
}


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def phase_seconds(output: str, launched: float, seconds: float) -> dict[str, float]:
    """Seconds per phase, from the timestamps of shadowswap's JSON log lines; ``start`` is from the
    process launch to the migration's claim (interpreter, imports, connecting, the stale-plan check),
    ``exit`` from the last phase to the process's end."""
    start = dt.datetime.fromtimestamp(launched, dt.UTC)
    marks: list[tuple[str, dt.datetime]] = [("launch", start)]
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "migration claimed":
            marks.append(("start", dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))))
        elif event.get("event") == "phase" and event["phase"] != marks[-1][0]:
            # in JSON mode each phase is logged twice (the log line and the reporter's): the first counts
            marks.append((event["phase"], dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))))
    marks.append(("exit", start + dt.timedelta(seconds=seconds)))
    return {b[0]: round((b[1] - a[1]).total_seconds(), 3) for a, b in itertools.pairwise(marks)}


# -- the run -------------------------------------------------------------------------------------


def run_one(settings: Settings, rows: int, name: str, workdir: Path) -> dict[str, Any]:
    profile = settings.profile
    prepare, run, under_load = APPROACHES[name]
    profile.recreate_database()
    engine = profile.engine()
    seeded = time.monotonic()
    profile.seed(engine, rows)
    result: dict[str, Any] = {"approach": name, "rows": rows, "seed_s": round(time.monotonic() - seeded, 2)}
    if prepare is not None:
        result.update(prepare(settings, engine, workdir))
        if "failed" in result:
            return result
    result["load_before"] = loadavg()
    with engine.connect() as conn:
        counters = profile.server_counters(conn)
    writer = WriterProcess(settings, rows, workdir) if under_load else None
    try:
        time.sleep(settings.lead_in if writer else 0)
        start = time.monotonic()
        facts = run(settings, engine, workdir)
        end = time.monotonic()
        time.sleep(settings.tail if writer else 0)
    finally:
        data = writer.stop() if writer else None
    result["load_after"] = loadavg()
    with engine.connect() as conn:
        after = profile.server_counters(conn)
    # from before the lead-in to after the tail
    result["server_counters"] = {k: after[k] - v for k, v in counters.items() if k in after}
    result["wall_s"] = round(end - start, 3)
    result.update(facts)
    touched: dict[int, Any] = {}
    if data is not None:
        result["writer"] = window_stats(data["ops"], start, end, settings.rate)
        result["writer"]["errors_total"] = len(data["errors"])
        result["writer"]["error_examples"] = sorted(set(data["errors"]))[:5]
        # [intended start relative to the window, latency from it in ms (None: never issued), kind]
        result["latency"] = [
            [round(op[2] - start, 4), None if op[4] is None else round((op[4] - op[2]) * 1000, 2), op[1]]
            for op in data["ops"]
        ]
        result["window"] = [0.0, round(end - start, 3)]
        touched = {int(k): v for k, v in data["touched"].items()}
    if "failed" not in result:
        check = check_table(engine, result["final_table"], rows, touched)
        result["check"] = {
            "rows": check.rows,
            "lost": check.lost,
            "ghost": check.ghost,
            "wrong": check.wrong,
            "examples": check.examples,
        }
    engine.dispose()
    return result


def run_all(settings: Settings) -> tuple[dict[str, Any], Path]:
    from benchmarks.report import write_outputs

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = settings.out / f"{stamp}-{settings.profile.name}"
    outdir.mkdir(parents=True, exist_ok=True)
    admin = settings.profile.admin_engine()
    with admin.connect() as conn:
        server = settings.profile.server_version(conn)
    admin.dispose()
    report: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "benchmarks", *sys.argv[1:]]),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "dialect": settings.profile.name,
        "server": server,
        "machine": machine(),
        "rate": settings.rate,
        "threads": settings.threads,
        "results": [],
    }
    try:
        for rows in settings.rows:
            for name in settings.approaches:
                settings.say(f"[{rows:,} rows] {name} …")
                with tempfile.TemporaryDirectory(prefix="ssbench-") as tmp:
                    result = run_one(settings, rows, name, Path(tmp))
                    logs = {p.name: p.read_text(errors="replace")[-4000:] for p in Path(tmp).glob("*.log")}
                if logs:
                    result["logs_tail"] = logs
                report["results"].append(result)
                settings.say("    " + summary_line(result))
                write_outputs(report, outdir, final=False)
    finally:
        if not settings.keep:
            settings.profile.drop_database()
    report["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    write_outputs(report, outdir)
    return report, outdir


def summary_line(r: dict[str, Any]) -> str:
    if "failed" in r:
        return f"failed: {r['failed']}"
    parts = [f"{r['wall_s']:.2f}s"]
    if "writer" in r:
        w = r["writer"]
        parts.append(
            f"writes {w['completed_per_s']}/s of {w['offered_per_s']:g} ({w['completed_pct']}%), "
            f"corrected p99 {w['corrected_p99_ms']} ms, stall {w['longest_stall_ms']} ms, errors {w['errors']}"
        )
    c = r.get("check", {})
    parts.append(f"lost/ghost/wrong {c.get('lost')}/{c.get('ghost')}/{c.get('wrong')}")
    return "; ".join(parts)
