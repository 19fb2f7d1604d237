"""The gateway's rate limit: a sliding window over submission times (stricter than a refilling token bucket)."""
from __future__ import annotations

from collections import deque


class SlidingWindowLimiter:
    """At most `limit` events in any half-open window of `period` seconds (wall clock); `limit` 0: no limit."""

    def __init__(self, limit: int, period: float, history: list[float] = ()):
        self.limit, self.period = int(limit), float(period)
        keep = sorted(history)[-self.limit:] if self.limit > 0 else []
        self.times: deque[float] = deque(keep, maxlen=max(self.limit, 0))

    def next_free(self, now: float) -> float:
        if self.limit <= 0 or len(self.times) < self.limit:
            return now
        return max(now, self.times[0] + self.period)

    def record(self, t: float) -> None:
        if self.limit > 0:
            self.times.append(t)
