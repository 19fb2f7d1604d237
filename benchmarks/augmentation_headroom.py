"""Headroom of the augmentation measure of `qgan evaluate` on a dataset source, per classifier channel set.

For each channel set and scarce size s: the real-only ferrite/bainite test accuracy (s real images of the
scarce phase + `--other-size` of the other), and the gain of adding `--n-generated` *new real* images to the
scarce class (the real-vs-real floor of `qgan evaluate`), over the classifier seeds, with the verdict of
`qgan.results.augmentation_headroom`. It answers "can the augmentation measure credit any arm on this data, and
with which `--channels` / `--scarce-sizes`?" before an evaluation is run. docs/analysis.md shows its table for
the built-in synthetic data.

    python benchmarks/augmentation_headroom.py                       # synthetic, data seed 0
    python benchmarks/augmentation_headroom.py --source maps.npz --phase bainite --sizes 5,10,25
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from qgan import results  # noqa: E402
from qgan.evaluate import EvalSettings, Evaluator, load_real  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="synthetic", help="dataset source: synthetic or a dataset .npz")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--phase", default="ferrite", choices=results.PHASES, help="the scarce phase")
    p.add_argument("--sizes", default="1,2,5,10,25,100", help="scarce sizes")
    p.add_argument("--channels", default="all;kam;iq;ks;mask",
                   help="channel sets, ';'-separated, each comma-separated (all = the five)")
    p.add_argument("--other-size", type=int, default=100)
    p.add_argument("--n-generated", type=int, default=100, help="new real images added (the floor role)")
    p.add_argument("--classifier-seeds", type=int, default=3)
    p.add_argument("--classifier-steps", type=int, default=120)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = tuple(int(x) for x in args.sizes.split(","))
    base = EvalSettings(scarce_sizes=sizes, other_size=args.other_size, n_generated=args.n_generated,
                        classifier_seeds=args.classifier_seeds, classifier_steps=args.classifier_steps)
    base.validate()
    real = load_real(args.source, args.data_seed, base, [])
    print(f"# {args.source} (data seed {args.data_seed}), scarce {args.phase}, other {args.other_size}, "
          f"+{args.n_generated} new real, {args.classifier_seeds} seeds x {args.classifier_steps} steps")
    print("| channels | " + " | ".join(f"s = {s}" for s in sizes) + " | gain of new real images (verdict) |")
    print("|---" * (len(sizes) + 2) + "|")
    with tempfile.TemporaryDirectory() as cache:
        for spec in args.channels.split(";"):
            chans = results.CHANNEL_KEYS if spec == "all" else tuple(spec.split(","))
            s = dataclasses.replace(base, channels=chans)
            s.validate()
            t0 = time.perf_counter()
            ev = Evaluator(real, s, Path(cache))
            rows = [{**r, "trial_id": "real", "model": results.REAL_FLOOR_MODEL, "phase": args.phase, "n": 0,
                     "seed": -1} for r in ev.augmentation(args.phase, real.roles[args.phase]["floor"])]
            h = results.augmentation_headroom(results.downstream_frame(rows))
            h = h[h["measure"] == "accuracy"].set_index("scarce_size")
            acc = " | ".join(f"{h.loc[z, 'real_only']:.3f}" for z in sizes)
            gain = " / ".join(f"{h.loc[z, 'real_gain']:+.3f} ({h.loc[z, 'verdict']})" for z in sizes)
            print(f"| {spec} | {acc} | {gain} |  <!-- {time.perf_counter() - t0:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
