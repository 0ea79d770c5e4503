"""structlog set-up: a human console by default, one JSON object a line with --log-format json."""

from __future__ import annotations

import logging
import sys

import structlog

_format = "console"


def is_json() -> bool:
    """Whether ``--log-format json`` is on: then every stderr line must be a JSON object."""
    return _format == "json"


def configure(fmt: str = "console", level: str = "info") -> None:
    global _format
    _format = fmt
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        # sys.stderr looked up per logger, not once: a caller that swaps it for a while (click's and
        # typer's CliRunner, in tests) must not leave the logs writing to its closed stream
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)
