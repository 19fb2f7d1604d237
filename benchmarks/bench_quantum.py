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
import os
import platform
import time

import numpy as np
import torch
from timing import best_of

from qgan.quantum import Ansatz, probabilities
from qgan.quantum.backends import ExactBackend


def fd_thetas(ansatz: Ansatz, theta: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """(2P + 1, P): theta, then theta + eps e_i and theta - eps e_i for every i."""
    eye = torch.eye(ansatz.num_params, dtype=theta.dtype) * eps
    return torch.cat((theta.unsqueeze(0), theta + eye, theta - eye))


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds, all threads) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _median(xs: list[float]) -> float:
    return float(np.median(np.asarray(xs)))


def bench_fd(repeats: int, aer_vectors: int | None) -> None:
    """FD workload: torch = ONE ``ExactBackend.sample`` call on all 229 vectors (chunked simulation +
    inverse-CDF sampling, the trainer's path); aer = a plain loop, one ``AerSimulator`` reused, one run per
    pre-built, pre-transpiled circuit (parameters bound; building and transpiling are NOT timed, which favours
    aer). Both sides are warmed up; the aer loop is repeated ``repeats`` times and the torch calls are
    interleaved with it (same machine load); medians of wall and process-CPU time are reported."""
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    a = Ansatz(12, 1, "full")
    theta = a.random_start(torch.Generator().manual_seed(0))
    thetas = fd_thetas(a, theta)
    shots = 1000
    total = thetas.shape[0]
    m = total if aer_vectors is None else min(aer_vectors, total)
    print(f"[1] FD gradient at n=12 full, 1 layer: {total} parameter vectors x {shots} samples; "
          f"torch {torch.get_num_threads()} threads")

    def torch_call(dtype):
        # the trainer holds float64 parameters; the simulation precision is the backend's sample_dtype
        # (float32 by default: the trainer's path; float64 shown for comparison)
        backend = ExactBackend(sample_dtype=dtype)
        return lambda: backend.sample(a, thetas, shots, torch.Generator().manual_seed(1))

    calls = {torch.float64: torch_call(torch.float64), torch.float32: torch_call(torch.float32)}
    sim = AerSimulator(method="statevector")
    circuits = [transpile(a.to_qiskit(thetas[k], measure=True), sim) for k in range(m)]

    def aer_run(k: int) -> dict:
        return sim.run(circuits[k], shots=shots, seed_simulator=k).result().get_counts()

    # Warm-up, at least 10 calls and 2 s per side: sign/index caches, OpenMP pools, and the process's heap.
    # On the shared VM the first touches of fresh memory are very slow (the first torch calls of a process
    # took 0.3-3 s instead of ~0.05 s), so a short warm-up would time the VM, not the simulator.
    for c in list(calls.values()) + [lambda: [aer_run(k) for k in range(min(20, m))]]:
        t0 = time.perf_counter()
        for i in range(1000):
            c()
            if i >= 9 and time.perf_counter() - t0 > 2.0:
                break
    t_torch: dict = {d: [] for d in calls}
    aer_w, aer_c = [], []
    every = max(1, m // 4)
    for _ in range(repeats):
        w_sum = c_sum = 0.0
        for k in range(m):
            if k % every == 0:
                for d, c in calls.items():
                    t_torch[d].append(_timed(c))
            w, c = _timed(lambda: aer_run(k))
            w_sum += w
            c_sum += c
        aer_w.append(w_sum * total / m)
        aer_c.append(c_sum * total / m)
    aw, ac = _median(aer_w), _median(aer_c)
    note = "" if m == total else f", extrapolated from {m} runs"
    print(f"    qiskit-aer loop, {total} runs of one circuit: wall {aw * 1e3:8.1f} ms, CPU {ac * 1e3:8.1f} ms "
          f"(median of {repeats} loops{note}; {aw / total * 1e3:.1f} ms wall per run)")
    for d, ts in t_torch.items():
        w, c = _median([t[0] for t in ts]), _median([t[1] for t in ts])
        name = str(d).split(".")[-1] + (", default" if d == ExactBackend().sample_dtype else "")
        print(f"    torch, one batched call ({name}):   wall {w * 1e3:8.1f} ms, CPU {c * 1e3:8.1f} ms "
              f"(median of {len(ts)})  -> speed-up wall {aw / w:6.1f}x, CPU {ac / c:6.1f}x")


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
                t = best_of(call, repeats if n < 22 else 1)
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


def tune_malloc() -> bool:
    """glibc only: keep freed memory in the process (mmap threshold 32 MiB, trim threshold 1 GiB), as the
    environment variables MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 would. Without it
    every multi-100-KB tensor is a fresh mmap whose pages fault on first touch (~3.5 us each on the shared VM,
    1000-7500 faults per torch call). Affects both sides of the comparison. Returns False where unavailable."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller run: sizes up to 20, 40 aer runs")
    ap.add_argument("--fd-only", action="store_true", help="run part 1 only")
    ap.add_argument("--tune-malloc", action="store_true", help="glibc mallopt: keep freed memory (see tune_malloc)")
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="qubit counts for part 2")
    ap.add_argument("--repeats", type=int, default=3, help="aer loops (part 1) / best-of repeats (part 2)")
    ap.add_argument("--noise-tvd", action="store_true", help="also run part 3 (about 2 minutes)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = "default"
    if args.tune_malloc:
        malloc = "tuned (mmap threshold 32 MiB, trim threshold 1 GiB)" if tune_malloc() else "tuning unavailable"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load}; torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads; CUDA: {torch.cuda.is_available()}; malloc {malloc}"
    )
    sizes = args.sizes or ([12, 16, 20] if args.quick else [12, 16, 20, 24])
    bench_fd(args.repeats, 40 if args.quick else None)
    if args.fd_only:
        return
    bench_sizes(sizes, args.repeats)
    if args.noise_tvd:
        bench_noise_tvd()


if __name__ == "__main__":
    main()
