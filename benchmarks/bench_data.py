"""Speed of the data layer's hot paths, in one process.

    python benchmarks/bench_data.py [--pairs 20000] [--count 1000] [--map PATH]

Prints one line per measurement:
1. cubic disorientation angles of N random orientation pairs: ours (quaternion product + one (N,4)@(4,24)
   matrix product) vs orix 0.15 (``Misorientation(...).reduce()`` then ``.angle``), with a check that both agree;
2. the whole channel pipeline (grains, KAM, KS, IQ) and patch extraction on a real map (default: the aachen map,
   143 x 425 px, if the shared maps are present);
3. synthetic patches per second for each phase (one process; ``qgan data synth`` uses every CPU).
Timings on a shared CPU are noisy.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from qgan.data import extract_patches, load_map, synth_patches
from qgan.data.calibrate import shared_ebsd_dir
from qgan.data.orientation import disorientation_angle, random_quaternions


def bench_disorientation(n: int) -> None:
    from orix.quaternion import Misorientation
    from orix.quaternion.symmetry import O

    rng = np.random.default_rng(0)
    a, b = random_quaternions(rng, n), random_quaternions(rng, n)
    t = time.perf_counter()
    ours = disorientation_angle(a, b)
    t_ours = time.perf_counter() - t
    m = n if n <= 5000 else 5000
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from qgan.data.orientation import quat_conjugate, quat_multiply

        mis = Misorientation(quat_multiply(b[:m], quat_conjugate(a[:m])), symmetry=(O, O)).reduce()
        ref = np.degrees(mis.angle)
    t_orix = (time.perf_counter() - t) * n / m
    err = np.abs(ref - ours[:m]).max()
    print(f"disorientation of {n} pairs: ours {t_ours * 1e3:.1f} ms, orix reduce() {t_orix * 1e3:.0f} ms "
          f"(timed on {m}, scaled), ratio {t_orix / t_ours:.0f}x, max |diff| {err:.2e} deg")


def bench_map(path: str) -> None:
    t = time.perf_counter()
    m = load_map(path)
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    p = extract_patches(m)
    t_pipe = time.perf_counter() - t
    print(f"{os.path.basename(path)} {m.shape[0]}x{m.shape[1]} px: load {t_load:.2f} s, channels+grains+"
          f"{len(p)} patches {t_pipe:.2f} s ({m.phase.size / t_pipe / 1e3:.0f} kpx/s)")


def bench_synth(count: int) -> None:
    for phase in ("ferrite", "bainite"):
        synth_patches(phase, 10, 0, workers=1)  # warm-up (imports, KS tables)
        t = time.perf_counter()
        synth_patches(phase, count, 1, workers=1)
        dt = time.perf_counter() - t
        print(f"synth {phase}: {count} patches in {dt:.2f} s, one process ({count / dt:.0f} patches/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--map", default=os.path.join(shared_ebsd_dir(), "mtex_aachen_iron_sq.ang"))
    args = ap.parse_args()
    bench_disorientation(args.pairs)
    if os.path.exists(args.map):
        bench_map(args.map)
    else:
        print(f"(no map at {args.map}: skipped)")
    bench_synth(args.count)


if __name__ == "__main__":
    main()
