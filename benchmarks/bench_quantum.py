"""Speed of the quantum core (run: python benchmarks/bench_quantum.py [--quick] [--noise-tvd]).

1. One central finite-difference gradient of the QCBM at n = 12, full connectivity, 1 layer (P = 114):
   2P + 1 = 229 parameter vectors (theta and theta +- eps e_i) with 1000 samples each,
   (a) batched torch simulator + inverse-CDF sampling in ONE call, versus
   (b) a loop of qiskit-aer runs, one circuit per run (the paper's Qiskit-style evaluation),
   in the same process; prints the speed ratio.
2. Time of one probability evaluation (B = 1) for n = 12, 16, 20, 24 on CPU (and CUDA when available).
3. With --noise-tvd: total variation distance of the Aria-2-like noisy distribution from the ideal one at
   n = 12, full versus reduced connectivity (exact density-matrix simulation, ~1 min each on 2 cores).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from qgan.quantum import Ansatz, probabilities, sample_indices
from qgan.quantum.backends import run_aer


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fd_thetas(ansatz: Ansatz, theta: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """(2P + 1, P): theta, then theta + eps e_i and theta - eps e_i for every i."""
    eye = torch.eye(ansatz.num_params, dtype=theta.dtype) * eps
    return torch.cat((theta.unsqueeze(0), theta + eye, theta - eye))


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def bench_fd(repeats: int, aer_vectors: int | None) -> None:
    """Torch calls are interleaved with the aer loop so that both see the same machine load; wall and
    process-CPU times are reported (CPU time is robust to other jobs on a shared machine)."""
    a = Ansatz(12, 1, "full")
    theta = a.random_start(torch.Generator().manual_seed(0))
    thetas = fd_thetas(a, theta)
    shots = 1000
    total = thetas.shape[0]
    m = total if aer_vectors is None else min(aer_vectors, total)
    print(f"[1] FD gradient at n=12 full: {total} parameter vectors x {shots} samples")

    def torch_call(dtype):
        th = thetas.to(dtype)

        def call():
            with torch.no_grad():
                return sample_indices(probabilities(a, th), shots, torch.Generator().manual_seed(1))

        return call

    calls = {torch.float64: torch_call(torch.float64), torch.float32: torch_call(torch.float32)}
    for c in calls.values():
        c()  # warm-up (sign-matrix cache)
    run_aer([a.to_qiskit(thetas[0], measure=True)], shots, seed=0)  # warm-up
    t_torch: dict = {d: [] for d in calls}
    aer_wall = aer_cpu = 0.0
    every = max(1, m // max(1, repeats))
    for k in range(m):
        if k % every == 0:
            for d, c in calls.items():
                t_torch[d].append(_timed(c))
        w, c = _timed(lambda: run_aer([a.to_qiskit(thetas[k], measure=True)], shots, seed=k))
        aer_wall += w
        aer_cpu += c
    scale = total / m
    aer_wall, aer_cpu = aer_wall * scale, aer_cpu * scale
    note = "" if m == total else f" (extrapolated from {m} runs)"
    for d, ts in t_torch.items():
        w = float(np.median([t[0] for t in ts]))
        c = float(np.median([t[1] for t in ts]))
        name = str(d).split(".")[-1]
        print(f"    torch batched, one call ({name}): wall {w * 1e3:8.1f} ms, CPU {c * 1e3:8.1f} ms "
              f"(median of {len(ts)})")
        if d == torch.float64:
            w64, c64 = w, c
    print(f"    qiskit-aer loop, one circuit per run: wall {aer_wall * 1e3:8.1f} ms, CPU {aer_cpu * 1e3:8.1f} ms{note}")
    print(f"    speed-up torch(float64) vs aer loop: wall {aer_wall / w64:6.1f}x, CPU {aer_cpu / c64:6.1f}x")


def bench_sizes(sizes: list[int], repeats: int) -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("[2] one probability evaluation, B = 1, full connectivity, 1 layer")
    for dev in devices:
        for dtype in (torch.float32, torch.float64):
            for n in sizes:
                a = Ansatz(n, 1, "full")
                th = a.random_start(torch.Generator().manual_seed(n)).to(device=dev, dtype=dtype)

                def call():
                    with torch.no_grad():
                        p = probabilities(a, th)
                    if dev == "cuda":
                        torch.cuda.synchronize()
                    return p

                call()
                t = _best_of(call, repeats if n < 22 else 1)
                print(f"    {dev:4s} {str(dtype).split('.')[-1]:8s} n={n:2d}: {t * 1e3:10.1f} ms")
                del a


def bench_noise_tvd() -> None:
    from qgan.quantum.noise import noisy_probabilities

    print("[3] Aria-2-like noise at n = 12, 1 layer, random theta (seed 0): TVD(noisy, ideal), exact")
    for conn in ("full", "reduced"):
        a = Ansatz(12, 1, conn)
        theta = a.random_start(torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        noisy = noisy_probabilities(a.to_native(theta))
        ideal = probabilities(a, theta)[0].numpy()
        tvd = 0.5 * float(np.abs(noisy - ideal).sum())
        ms = a.num_two_qubit_gates()
        print(f"    {conn:8s} ({ms} MS): TVD = {tvd:.4f}   [{time.perf_counter() - t0:.0f} s]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller run: sizes up to 20, 40 aer runs")
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="qubit counts for part 2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--noise-tvd", action="store_true", help="also run part 3 (about 2 minutes)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; {platform.processor() or platform.machine()}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; CUDA: {torch.cuda.is_available()}"
    )
    sizes = args.sizes or ([12, 16, 20] if args.quick else [12, 16, 20, 24])
    bench_fd(args.repeats, 40 if args.quick else None)
    bench_sizes(sizes, args.repeats)
    if args.noise_tvd:
        bench_noise_tvd()


if __name__ == "__main__":
    main()
