"""Errors a user can act on.

Every error raised for a user mistake or an expected operational condition derives from
``ShadowswapError``; the CLI prints its message on one line and exits with ``exit_code``
instead of showing a traceback.
"""

from __future__ import annotations


class ShadowswapError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(ShadowswapError):
    """Bad arguments: unknown table or column, unparsable change, invalid type."""

    exit_code = 2


class ConnectionFailed(ShadowswapError):
    exit_code = 3


class StalePlan(ShadowswapError):
    """The live table no longer matches the plan's fingerprint."""

    exit_code = 4


class MigrationLocked(ShadowswapError):
    """Another shadowswap process holds this table's migration lock."""

    exit_code = 5


class CopyFailed(ShadowswapError):
    """Existing data cannot be held by the new definition (a cast failed, a unique key collides):
    a data failure, the same on every run, so everything the migration made is removed."""

    exit_code = 6


class CutoverFailed(ShadowswapError):
    """The swap could not take its lock within the retries; dual-write stays on."""

    exit_code = 7


class VerificationFailed(ShadowswapError):
    exit_code = 8


class DestructiveChange(UsageError):
    """The plan drops or narrows something and ``--allow-destructive`` was not given; nothing was changed."""


class BackupFailed(ShadowswapError):
    """``--backup`` could not write its dump; nothing was swapped."""

    exit_code = 9


class HookFailed(ShadowswapError):
    """An ``on-start`` hook refused the migration; nothing was changed."""

    exit_code = 10
