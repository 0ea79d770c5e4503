"""``python -m benchmarks``: the command line of the benchmark."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from benchmarks.mysqld import DEFAULT_DATADIR, DEFAULT_PORT, PrivateMariaDB
from benchmarks.profiles import profile_for
from benchmarks.runner import APPROACH_KEYS, PT_OSC, Settings, run_all

SCALE_ROWS = [100_000, 1_000_000, 5_000_000]
DEFAULT_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/shadowswap_bench",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/shadowswap_bench",
}
DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}


def main(
    dialect: Annotated[str, typer.Option(help="postgresql or mysql (MariaDB/MySQL)")] = "postgresql",
    rows: Annotated[str, typer.Option(help="initial rows; a comma list runs each")] = "100000",
    scale: Annotated[bool, typer.Option("--scale", help="run 100k, 1M and 5M rows; shows time per row")] = False,
    rate: Annotated[float, typer.Option(help="writes per second offered by the writer process")] = 200.0,
    threads: Annotated[int, typer.Option(help="writer threads sharing that rate")] = 4,
    approaches: Annotated[
        str, typer.Option(help="comma list of raw-copy, alter, shadowswap, pt-osc (pt-osc: MySQL only)")
    ] = "raw-copy,alter,shadowswap,pt-osc",
    db: Annotated[
        str | None,
        typer.Option(help="URL of the benchmark database; it is dropped and recreated for every approach"),
    ] = None,
    mysql_binlog: Annotated[
        bool,
        typer.Option(
            "--mysql-binlog",
            help="start a private MariaDB with the binary log on (ROW) on 127.0.0.1:--mysql-port for this run, "
            "and stop it at the end",
        ),
    ] = False,
    mysql_port: Annotated[int, typer.Option(help="port of the private MariaDB")] = DEFAULT_PORT,
    mysql_datadir: Annotated[Path, typer.Option(help="data directory of the private MariaDB")] = DEFAULT_DATADIR,
    mysql_buffer_pool: Annotated[str, typer.Option(help="innodb_buffer_pool_size of the private MariaDB")] = "128M",
    lead_in: Annotated[float, typer.Option(help="seconds of writes before each approach starts")] = 2.0,
    tail: Annotated[float, typer.Option(help="seconds of writes after each approach ends")] = 2.0,
    out: Annotated[Path, typer.Option(help="results directory (a subdirectory per run)")] = Path("benchmarks/results"),
    shadowswap_cmd: Annotated[
        str, typer.Option(help="how to run shadowswap (another installation, for experiments)")
    ] = f"{shlex.quote(sys.executable)} -m shadowswap",
    execute_args: Annotated[str, typer.Option(help="extra arguments for `shadowswap execute`")] = "",
    keep: Annotated[bool, typer.Option("--keep", help="keep the benchmark database at the end")] = False,
) -> None:
    """Time shadowswap against the raw copy, the blocking ALTER and pt-online-schema-change, under writes."""
    dialect = "mysql" if dialect in ("mysql", "mariadb") else dialect
    if dialect not in DEFAULT_URLS:
        raise typer.BadParameter("--dialect must be postgresql or mysql")
    try:
        row_counts = SCALE_ROWS if scale else [int(x) for x in rows.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter("--rows takes integers, e.g. 100000 or 100000,1000000") from None
    keys = [k.strip() for k in approaches.split(",") if k.strip()]
    unknown = [k for k in keys if k not in APPROACH_KEYS]
    if unknown:
        raise typer.BadParameter(f"unknown approach {unknown[0]!r}; choose from {', '.join(APPROACH_KEYS)}")
    names = [APPROACH_KEYS[k] for k in keys]
    if dialect != "mysql":
        names = [n for n in names if n != PT_OSC]
    server = None
    if mysql_binlog:
        if dialect != "mysql":
            raise typer.BadParameter("--mysql-binlog is for --dialect mysql")
        server = PrivateMariaDB(mysql_datadir, mysql_port, mysql_buffer_pool)
        url = make_url(db or server.url)
        typer.echo(f"starting a private MariaDB (binary log on, ROW) on 127.0.0.1:{mysql_port}, {mysql_datadir}")
        server.start()
    else:
        url = make_url(db or DEFAULT_URLS[dialect])
    if url.drivername in DRIVERS:
        url = url.set(drivername=DRIVERS[url.drivername])
    settings = Settings(
        profile=profile_for(url),
        rows=row_counts,
        approaches=names,
        rate=rate,
        threads=threads,
        lead_in=lead_in,
        tail=tail,
        out=out,
        shadowswap_cmd=shlex.split(shadowswap_cmd),
        execute_args=shlex.split(execute_args),
        keep=keep,
        say=typer.echo,
    )
    try:
        _report, outdir = run_all(settings)
    finally:
        if server is not None:
            server.stop()
    typer.echo((outdir / "results.md").read_text())
    typer.echo(f"results: {outdir}/results.md, results.json, latency-*.png")


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(main)

if __name__ == "__main__":
    app()
