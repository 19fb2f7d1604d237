"""The gateway's durable ledger: an append-only JSON-lines file, every record fsync'd before `append` returns.

The record types and what they hold are listed in docs/qpu.md ("Ledger"); `sweeps.gateway.core` writes and
replays them.
"""
from __future__ import annotations

import json
import os
import threading


class Ledger:
    """Append-only JSON-lines file; each `append` is flushed and fsync'd before it returns."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._lock = threading.Lock()
        self._fh = open(path, "a", encoding="utf-8")

    def append(self, *records: dict) -> None:
        lines = "".join(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n" for r in records)
        with self._lock:
            self._fh.write(lines)
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    @staticmethod
    def read(path: str) -> list[dict]:
        """All complete records; a torn last line (crash mid-write) is ignored."""
        if not os.path.exists(path):
            return []
        out = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out
