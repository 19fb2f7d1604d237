"""What a sweep costs, from measured seconds per WGAN-GP step (printed by `--dry-run`).

A trial of E epochs does E * floor(train_size / batch_size) critic steps and as many generator steps
(n_critic = 1) plus one MMD evaluation per `eval_every` epochs; its time is dominated by the steps. The table holds
the measured time of one critic + generator step at batch 64 on one CPU thread (`benchmarks/bench_train.py`'s
step, `qgan.models.critic_step` + `generator_step`), by generator/critic width; other batch sizes scale
linearly. Evaluation and QCBM updates add EVAL_OVERHEAD. GPU figures: none measured yet (no accelerator has been
lent to this project), so GPU-hours print as "waiting", never as an estimate.
"""
from __future__ import annotations

import math
from typing import Any

#: width -> seconds per critic+generator step, batch 64, 1 CPU thread. Measured 2026-12-01 on the project's
#: 2-core VM (python /tmp/steptime.py calling benchmarks/bench_train.bench_wgan_step, best of 2 x 3 runs).
CPU_SECONDS_PER_STEP: dict[int, float] = {8: 0.158, 16: 0.312, 32: 0.573, 64: 2.24}
#: Measured GPU seconds per step by width (device named); empty until a device check has run.
GPU_SECONDS_PER_STEP: dict[int, float] = {}
#: Share added by the per-epoch MMD (eval_size 128..256) and the QCBM updates: measured 1.10-1.15 s per epoch
#: against 8 x 0.158 s of steps for the pilot trial (n=8, 512 images, width 8).
EVAL_OVERHEAD = 1.15


def _per_step(table: dict[int, float], width: int) -> float | None:
    """Seconds per step at `width`: measured, or interpolated in log-log between measured widths."""
    if not table:
        return None
    if width in table:
        return table[width]
    ws = sorted(table)
    lo = max([w for w in ws if w < width], default=ws[0])
    hi = min([w for w in ws if w > width], default=ws[-1])
    if lo == hi:
        return table[lo] * (width / lo) ** 2  # convolutions scale ~ width^2 beyond the table
    t = (math.log(width) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return math.exp((1 - t) * math.log(table[lo]) + t * math.log(table[hi]))


def trial_seconds(config: dict[str, Any], table: dict[int, float] = CPU_SECONDS_PER_STEP) -> float | None:
    """Estimated seconds of one trial (one thread or one GPU share); None when the table is empty."""
    from qgan.config import TrialConfig

    cfg = TrialConfig.from_dict({k: v for k, v in config.items() if not k.startswith("_")})
    per = _per_step(table, cfg.width)
    if per is None:
        return None
    steps = cfg.epochs * (cfg.train_size // cfg.batch_size)
    return steps * per * (cfg.batch_size / 64) * EVAL_OVERHEAD


def sweep_cost(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """{"trials", "cpu_hours", "gpu_hours" (None: not measured)} of a list of trial configs."""
    cpu = sum(trial_seconds(t) or 0.0 for t in trials) / 3600
    gpu = None
    if GPU_SECONDS_PER_STEP:
        gpu = sum(trial_seconds(t, GPU_SECONDS_PER_STEP) or 0.0 for t in trials) / 3600
    return {"trials": len(trials), "cpu_hours": cpu, "gpu_hours": gpu}


def cost_line(trials: list[dict[str, Any]], cpus: int | None = None) -> str:
    """One line for --dry-run: trials, CPU core-hours (and wall hours on `cpus` cores), GPU-hours."""
    c = sweep_cost(trials)
    wall = f", about {c['cpu_hours'] / cpus:.2g} h wall on {cpus} cores" if cpus else ""
    gpu = "waiting (no GPU measurement yet)" if c["gpu_hours"] is None else f"{c['gpu_hours']:.3g}"
    return (f"cost: {c['trials']} trials, {c['cpu_hours']:.3g} CPU core-hours{wall} "
            f"(measured s/step, sweeps/cost.py); GPU-hours: {gpu}")
