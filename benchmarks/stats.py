"""Writer statistics over a migration window, from the writer's per-operation records.

Each record is ``[thread, kind, intended, started, ended, ok]`` in ``time.monotonic()`` seconds
(CLOCK_MONOTONIC: the same clock in every process of the machine).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of unsorted ``values`` (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def window_stats(ops: Sequence[Sequence[Any]], start: float, end: float, offered_rate: float) -> dict[str, Any]:
    """What the application saw while the migration ran (``start``..``end``)."""
    duration = max(end - start, 1e-9)
    # Latency as the driver saw it, for operations issued in the window.
    issued = [op for op in ops if op[3] is not None and start <= op[3] <= end]
    service = [op[4] - op[3] for op in issued]
    # Latency from the intended start, for every operation the schedule asked for in the window,
    # issued late or never (coordinated omission corrected).
    scheduled = [op for op in ops if start <= op[2] <= end]
    corrected = [(op[4] if op[4] is not None else float("inf")) - op[2] for op in scheduled]
    completions = sorted(op[4] for op in ops if op[5] and op[4] is not None and start <= op[4] <= end)
    edges = [start, *completions, end]
    stall = max(b - a for a, b in itertools.pairwise(edges))
    errors = [op for op in scheduled if not op[5]]

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "window_s": round(duration, 3),
        "offered_per_s": offered_rate,
        "scheduled": len(scheduled),
        "completed": len(completions),
        "completed_per_s": round(len(completions) / duration, 1),
        "completed_pct": round(100 * len(completions) / (offered_rate * duration), 1),
        "p50_ms": ms(percentile(service, 50)),
        "p99_ms": ms(percentile(service, 99)),
        "max_ms": ms(max(service) if service else None),
        "corrected_p50_ms": ms(percentile(corrected, 50)),
        "corrected_p99_ms": ms(percentile(corrected, 99)),
        "corrected_max_ms": ms(max(corrected) if corrected else None),
        "longest_stall_ms": ms(stall),
        "errors": len(errors),
    }
