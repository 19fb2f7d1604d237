"""The sweep's live progress display: one Ray Tune callback in the driver, in place of Tune's per-trial boxes.

On a terminal it is one tqdm bar over all epochs of all trials (postfix: trials done / running / failed); in a log
(not a TTY: `ray job submit`, CI, `> file`) it prints one line at most every `interval_s` seconds and a line when
a trial fails, so a smoke sweep prints a handful of lines and a paper sweep a few hundred over days.

    [02:10] trials 10/24 done, 2 running, 0 failed | epochs 1040/2400 | ETA 02:50
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ray import tune


def _clock(seconds: float) -> str:
    """12:34 / 1:02:03 / 2d 03:04:05."""
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    hms = f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
    return f"{d}d {h:02d}:{m:02d}:{s:02d}" if d else hms


class SweepProgress(tune.Callback):
    """Counts trials and epochs from Tune's results; trial ids are qgan's (`qgan_trial_id` in each result).

    total_epochs: {trial_id: epochs the trial runs}; done: {trial_id: epochs already finished before this driver
    started (a resumed run)}, whose trials count as done when they reached their total. A search whose trial ids
    are not known ahead passes `expected` trials of `epochs_each` epochs instead.
    """

    def __init__(self, total_epochs: dict[str, int], done: dict[str, int] | None = None, *,
                 expected: int | None = None, epochs_each: int = 0,
                 stream: TextIO | None = None, interval_s: float = 30.0, tty: bool | None = None,
                 clock=time.monotonic):
        self.total = dict(total_epochs)
        self.expected = max(expected or 0, len(self.total))
        self.epochs_each = int(epochs_each)
        self.epochs = {k: min(int(v), self.total.get(k, int(v))) for k, v in (done or {}).items()}
        self.finished = {k for k, v in self.epochs.items() if v >= self.total.get(k, 0) > 0}
        self.failed: set[str] = set()
        self.running: set[str] = set()
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval_s = interval_s
        self.clock = clock
        self.t0 = clock()
        self.epochs_at_start = sum(self.epochs.values())
        self.last_print = -float("inf")
        self.last_counts: tuple[int, ...] | None = None  # what the last log line said
        self.bar = None

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks into the run's state: keep the counts, not the stream, bar or clock."""
        state = dict(self.__dict__)
        for key in ("stream", "bar", "clock"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.stream, self.bar, self.clock = sys.stdout, None, time.monotonic

    # ---- counting ---------------------------------------------------------------------------------------------

    @staticmethod
    def _tid(trial, result: dict[str, Any] | None = None) -> str:
        if result and result.get("qgan_trial_id"):
            return str(result["qgan_trial_id"])
        from sweeps.trainable import config_trial_id

        return config_trial_id(trial.config or {})

    def epochs_done(self) -> int:
        return sum(self.epochs.values())

    def n_trials(self) -> int:
        return max(self.expected, len(self.total))

    def epochs_total(self) -> int:
        return sum(self.total.values()) + (self.n_trials() - len(self.total)) * self.epochs_each

    def _known(self, tid: str) -> None:
        if tid not in self.total and self.epochs_each:
            self.total[tid] = self.epochs_each

    def eta_s(self) -> float | None:
        """Seconds left at this driver's epoch rate (None before the first epoch)."""
        new = self.epochs_done() - self.epochs_at_start
        elapsed = self.clock() - self.t0
        if new <= 0 or elapsed <= 0:
            return None
        return max(0, self.epochs_total() - self.epochs_done()) * elapsed / new

    def line(self) -> str:
        eta = self.eta_s()
        return (f"[{_clock(self.clock() - self.t0)}] trials {len(self.finished)}/{self.n_trials()} done, "
                f"{len(self.running)} running, {len(self.failed)} failed | "
                f"epochs {self.epochs_done()}/{self.epochs_total()} | "
                f"ETA {_clock(eta) if eta is not None else '?'}")

    # ---- output -----------------------------------------------------------------------------------------------

    def _show(self, force: bool = False) -> None:
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=self.epochs_total(), initial=self.epochs_done(), unit="epoch",
                                file=self.stream, dynamic_ncols=True, smoothing=0.05)
            self.bar.total = self.epochs_total()
            self.bar.n = self.epochs_done()
            self.bar.set_postfix_str(f"trials {len(self.finished)}/{self.n_trials()} done, "
                                     f"{len(self.running)} running, {len(self.failed)} failed", refresh=False)
            self.bar.refresh()
            return
        now = self.clock()
        counts = (len(self.finished), len(self.running), len(self.failed), self.epochs_done())
        if (force and counts != self.last_counts) or now - self.last_print >= self.interval_s:
            self.last_print, self.last_counts = now, counts
            print(self.line(), file=self.stream, flush=True)

    def note(self, text: str) -> None:
        """A line that must not be overwritten by the bar (a failed trial)."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    # ---- Tune hooks -------------------------------------------------------------------------------------------

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(self._tid(trial))
        self._show()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tid = self._tid(trial, result)
        self._known(tid)
        self.running.add(tid)
        epoch = result.get("epoch")
        if isinstance(epoch, (int, float)):
            self.epochs[tid] = min(int(epoch), self.total.get(tid, int(epoch)))
        status = result.get("trial_status")
        if status == "failed" and tid not in self.failed:
            self.failed.add(tid)
            self.note(f"trial {tid} failed: {result.get('failure_reason') or 'see its summary.json'}")
        self._show()

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = getattr(trial, "last_result", None) or {}
        tid = self._tid(trial, last)
        self.running.discard(tid)
        if tid not in self.failed:
            self.finished.add(tid)
            if last.get("trial_status") == "running":  # stopped early by a scheduler (ASHA): fewer epochs to go
                self.total[tid] = self.epochs.get(tid, 0)
            self.epochs[tid] = self.total.get(tid, self.epochs.get(tid, 0))
        self._show(force=len(self.finished) + len(self.failed) == self.n_trials())

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.running.discard(self._tid(trial, getattr(trial, "last_result", None)))
        self.note(f"trial {self._tid(trial)} crashed; Tune retries it from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        tid = self._tid(trial, getattr(trial, "last_result", None))
        self.running.discard(tid)
        if tid not in self.failed:
            self.failed.add(tid)
            self.note(f"trial {tid} crashed (no retries left); its error: {getattr(trial, 'error_file', None)}")
        self._show(force=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        else:
            self._show(force=True)
