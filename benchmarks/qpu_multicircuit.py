"""One n = 12 fd update (2P = 228 circuits, full connectivity) through the QPU gateway against the local IonQ API
emulator under a rate limit of 10 jobs per minute: one job per circuit against multi-circuit jobs, side by side.

    python benchmarks/qpu_multicircuit.py [--caps 1,50] [--rate 10] [--period 60] [--shots 1000] [--out FILE]

For each cap (circuits per job) it reports the jobs and circuits the emulator received, the wall time of the update
(`qcbm_opt.fd_update` on a `GatewayBackend`), the most jobs submitted in any rate window, and duplicates. The
emulator samples ideally (statevector) with a 1 s latency: the wall time measured is the submission schedule, not
circuit execution. `--period 6` divides every time by 10 (a quick check of the schedule, not the measurement).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if s <= u < s + window) for s in times), default=0)


def one_update(cap: int, rate: int, period: float, shots: int, latency: float) -> dict:
    import torch

    from qgan import qcbm_opt
    from qgan.ionq.emulator import Emulator, EmulatorConfig, fetch_stats
    from qgan.quantum import Ansatz
    from sweeps.gateway import GatewayBackend, GatewayConfig, QPUGateway

    token = os.environ.setdefault("IONQ_API_KEY", "bench-" + secrets.token_hex(8))
    a = Ansatz(12, layers=1, connectivity="full")
    theta = a.random_start(torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as d, Emulator(EmulatorConfig(token=token, latency=latency,
                                                                     ideal=True)) as emu:
        gw = QPUGateway(GatewayConfig(campaign="bench", ledger_dir=d, url=emu.url, max_jobs_per_period=rate,
                                      period_s=period, max_in_flight=8, max_circuits_per_job=cap,
                                      poll_interval_s=0.5))
        backend = GatewayBackend("bench", f"cap{cap}", handle=gw, wait_s=5.0)
        t0 = time.time()
        res = qcbm_opt.fd_update(a, backend, theta, lambda idx: idx.to(torch.float64) / 4096.0,
                                 torch.Generator().manual_seed(1), lr=0.01, eps=0.1, shots=shots)
        wall = time.time() - t0
        stats = fetch_stats(emu.url, token)
        status = gw.status()
        gw.shutdown()
    assert torch.isfinite(res.theta).all()
    return {"circuits_per_job_cap": cap, "circuits": status["circuits"], "jobs": stats["counters"]["submitted"],
            "wall_s": round(wall, 1), "max_jobs_in_any_window": max_in_window(stats["submission_times"], period),
            "rate": f"{rate}/{period:g}s", "duplicates": len(stats["duplicates"]), "shots": status["used_shots"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--caps", default="50,1", help="circuits-per-job caps to compare")
    p.add_argument("--rate", type=int, default=10, help="jobs per window")
    p.add_argument("--period", type=float, default=60.0, help="window seconds")
    p.add_argument("--shots", type=int, default=1000, help="shots per circuit")
    p.add_argument("--latency", type=float, default=1.0, help="emulator seconds from submission to completion")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    a = p.parse_args(argv)
    rows = []
    for cap in (int(c) for c in a.caps.split(",")):
        row = one_update(cap, a.rate, a.period, a.shots, a.latency)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"{'cap':>4} {'circuits':>8} {'jobs':>5} {'wall s':>8} {'max/window':>10} {'dup':>4}")
    for r in rows:
        print(f"{r['circuits_per_job_cap']:>4} {r['circuits']:>8} {r['jobs']:>5} {r['wall_s']:>8} "
              f"{r['max_jobs_in_any_window']:>10} {r['duplicates']:>4}")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
