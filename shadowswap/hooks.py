"""``--hook EVENT=COMMAND``: plain commands run at the migration's turning points.

As in gh-ost, a hook is any executable; it learns about the migration from environment variables
(``SHADOWSWAP_TABLE``, ``SHADOWSWAP_PHASE``, ``SHADOWSWAP_ROWS_COPIED``, …), so a shell one-liner,
a pager script or a chat notifier all work without a plugin API. What a non-zero exit means
depends on the event: ``on-start`` refuses the migration before anything changes,
``on-before-cutover`` postpones the swap (asked again later), the others are notifications whose
failure is logged.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from shadowswap.errors import UsageError

log = structlog.get_logger("shadowswap.hooks")

ON_START = "on-start"
ON_COPY_DONE = "on-copy-done"
ON_BEFORE_CUTOVER = "on-before-cutover"
ON_SUCCESS = "on-success"
ON_FAILURE = "on-failure"
EVENTS = (ON_START, ON_COPY_DONE, ON_BEFORE_CUTOVER, ON_SUCCESS, ON_FAILURE)
ENV_PREFIX = "SHADOWSWAP_"


def parse_hook(spec: str) -> tuple[str, str]:
    event, sep, command = spec.partition("=")
    event = event.strip()
    if not sep or not command.strip():
        raise UsageError(f"--hook {spec!r} is not EVENT=COMMAND", hint=f"events: {', '.join(EVENTS)}")
    if event not in EVENTS:
        raise UsageError(f"--hook: unknown event {event!r}", hint=f"events: {', '.join(EVENTS)}")
    return event, command


def parse_hooks(specs: Iterable[str]) -> dict[str, list[str]]:
    hooks: dict[str, list[str]] = {}
    for spec in specs:
        event, command = parse_hook(spec)
        hooks.setdefault(event, []).append(command)
    return hooks


def environment(facts: Mapping[str, Any]) -> dict[str, str]:
    """``{"rows_copied": 5}`` → ``{"SHADOWSWAP_ROWS_COPIED": "5"}``; None becomes an empty string."""
    return {f"{ENV_PREFIX}{key.upper()}": "" if value is None else str(value) for key, value in facts.items()}


@dataclass
class Hooks:
    commands: dict[str, list[str]] = field(default_factory=dict)
    timeout: float = 300.0

    def __bool__(self) -> bool:
        return any(self.commands.values())

    def run(self, event: str, facts: Mapping[str, Any]) -> int:
        """Run the event's commands in order; returns the first non-zero status (timeout: 124), else 0."""
        env = {**os.environ, **environment({**facts, "event": event})}
        for command in self.commands.get(event, []):
            log.info("running hook", hook=event, command=command)
            try:
                done = subprocess.run(
                    command, shell=True, env=env, capture_output=True, text=True, timeout=self.timeout, check=False
                )
            except subprocess.TimeoutExpired:
                log.warning("hook timed out", hook=event, command=command, timeout=self.timeout)
                return 124
            output = (done.stdout + done.stderr).strip()
            if output:
                log.info("hook output", hook=event, output=output[-2000:])
            if done.returncode != 0:
                log.warning("hook failed", hook=event, command=command, status=done.returncode)
                return done.returncode
        return 0
