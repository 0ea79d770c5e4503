"""A migration's phases and their order: written here once, read by the executor and the state table.

Each phase is recorded before the next begins (invariant 4's checkpoint is the copy phase's part of
that), so a crash resumes at the recorded phase; the executor runs the step that leads from each
phase in ``ORDER`` to the next one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

PLANNED = "planned"
SHADOW_CREATED = "shadow_created"
TRIGGERS_INSTALLED = "triggers_installed"
COPIED = "copied"
INDEXES_BUILT = "indexes_built"
VERIFIED = "verified"
CUT_OVER = "cut_over"
CLEANED_UP = "cleaned_up"
ABORTED = "aborted"
FAILED = "failed"
#: an in-place ALTER ran (strategy instant): no shadow, no old table to clean up
ALTERED = "altered"
#: a swapped migration that ``revert`` swapped back (shadowswap/revert.py): its old table is the table again
REVERTED = "reverted"

#: the shadow strategy's phases in the order they are reached
ORDER: tuple[str, ...] = (PLANNED, SHADOW_CREATED, TRIGGERS_INSTALLED, COPIED, INDEXES_BUILT, VERIFIED, CUT_OVER)
# FAILED is final too: it is only recorded after the triggers and the shadow are gone.
FINISHED = frozenset({CUT_OVER, CLEANED_UP, ABORTED, FAILED, ALTERED, REVERTED})


def steps() -> Iterator[tuple[str, str]]:
    """(from, to) for each step of a migration, in order."""
    return itertools.pairwise(ORDER)


def reached(phase: str, target: str) -> bool:
    """Whether a migration at ``phase`` has got as far as ``target`` (both in ``ORDER``)."""
    return phase in ORDER and ORDER.index(phase) >= ORDER.index(target)
