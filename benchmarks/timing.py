"""Shared timing helper of the benchmark scripts (run as `python benchmarks/<script>.py`)."""
from __future__ import annotations

import time
from typing import Callable


def best_of(fn: Callable[[], object], repeats: int = 1) -> float:
    """Smallest wall time in seconds of `repeats` calls of fn()."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
