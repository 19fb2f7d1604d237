"""The gateway's rate limit: a sliding window over submission times (stricter than a refilling token bucket)."""
from __future__ import annotations

from collections import deque


class SlidingWindowLimiter:
    """At most `limit` events in any half-open window of `period` seconds (wall clock)."""

    def __init__(self, limit: int, period: float, history: list[float] = ()):
        self.limit, self.period = int(limit), float(period)
        self.times: deque[float] = deque(sorted(history)[-self.limit:], maxlen=self.limit)

    def next_free(self, now: float) -> float:
        if len(self.times) < self.limit:
            return now
        return max(now, self.times[0] + self.period)

    def record(self, t: float) -> None:
        self.times.append(t)
