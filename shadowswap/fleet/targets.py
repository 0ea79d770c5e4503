"""The targets file: one SQLAlchemy URL a line, or a glob of SQLite files; ``#`` comments.

A line is kept as written (its *spec*) and expanded only when a connection is made, so a
``${DB_PASSWORD}`` reference never lands in the plans directory or in a broker message: the
process that connects (the coordinator, a Celery worker on another machine) reads its own
environment. What is shown is always the URL with its password masked (``db.safe_url``).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from shadowswap.db import resolve_url, safe_url
from shadowswap.errors import UsageError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Target:
    #: short stable name: plan file names, Celery task ids, the ``target`` column
    id: str
    #: the line as written (after glob expansion); ``${ENV}`` references still unexpanded
    spec: str
    #: the URL with the password masked, for every message a human reads
    display: str
    #: the server (host:port), or the directory of SQLite files: what ``--per-host`` bounds
    host: str

    def url(self) -> str:
        """The connectable URL, environment references expanded here and now."""
        return expand_env(self.spec)


def expand_env(spec: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = os.environ.get(name)
        if value is None:
            raise UsageError(
                f"target {_ENV.sub('***', spec)!r} refers to ${{{name}}}, which is not set",
                hint=f"export {name} in the environment of the process that connects (and of every worker)",
            )
        return value

    return _ENV.sub(one, spec)


def _lenient(spec: str) -> sa.URL:
    """The URL with the references that are set expanded (the others by their name), for showing
    and grouping: its password is only ever rendered masked."""
    text = _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(1)), spec)
    try:
        return resolve_url(text)
    except (ValueError, ArgumentError):
        raise UsageError("not a SQLAlchemy URL", hint="e.g. postgresql://user:${PGPASSWORD}@host/db") from None


def _display(spec: str) -> str:
    return safe_url(_lenient(spec))


def _host(spec: str) -> str:
    url = _lenient(spec)
    if url.get_backend_name() == "sqlite":
        return "sqlite:" + str(Path(url.database or ":memory:").parent)
    return f"{url.get_backend_name()}://{url.host or 'localhost'}:{url.port or ''}"


def _slug(display: str, index: int) -> str:
    url = make_url(display)
    if url.get_backend_name() == "sqlite":
        name = Path(url.database or "memory").stem
    else:
        name = f"{url.host or 'local'}-{url.database or ''}"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-")[:40] or "target"
    # the index keeps ids unique and in file order; the hash keeps them apart if the file is reordered
    tag = hashlib.sha1(display.encode()).hexdigest()[:6]
    return f"{index:04d}-{url.get_backend_name()}-{name}-{tag}"


def _expand_line(line: str, base: Path) -> list[str]:
    """A URL stays one spec; a glob (bare, or after ``sqlite:///``) becomes one sqlite URL a file."""
    pattern: str | None = None
    if "://" not in line:
        pattern = line
    elif line.startswith("sqlite:///") and _GLOB_CHARS.search(line[len("sqlite:///") :]):
        pattern = line[len("sqlite:///") :]
    if pattern is None:
        return [line]
    pattern = os.path.expanduser(expand_env(pattern))  # a path has no secret in it
    if not os.path.isabs(pattern):
        pattern = str(base / pattern)
    files = sorted(glob.glob(pattern))
    if not files and not _GLOB_CHARS.search(pattern):
        raise UsageError(f"no SQLite file at {pattern}", hint="a line is a SQLAlchemy URL or a glob of SQLite files")
    return [f"sqlite:///{Path(f).resolve()}" for f in files]


def parse_targets(path: Path) -> list[Target]:
    """Read a targets file. Relative globs are relative to the file's own directory."""
    if not path.exists():
        raise UsageError(f"no targets file at {path}", hint="one SQLAlchemy URL or SQLite glob a line")
    specs: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            expanded = _expand_line(line, path.parent)
            for spec in expanded:
                _lenient(spec)
        except UsageError as exc:
            raise UsageError(f"{path}:{number}: {exc}", hint=exc.hint) from None
        specs.extend(expanded)
    return targets_from_specs(specs, source=str(path))


def targets_from_specs(specs: list[str], source: str = "targets") -> list[Target]:
    seen: dict[str, int] = {}
    targets = []
    for index, spec in enumerate(specs, start=1):
        display = _display(spec)
        if display in seen:
            raise UsageError(f"{source}: {display} is listed twice", hint="each database once")
        seen[display] = index
        targets.append(Target(id=_slug(display, index), spec=spec, display=display, host=_host(spec)))
    if not targets:
        raise UsageError(f"{source} names no database", hint="one SQLAlchemy URL or SQLite glob a line")
    return targets
