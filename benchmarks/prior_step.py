"""Measurements behind two defaults of TrialConfig (docs/train.md): `theta_init_scale` and `qcbm_lr`.

1. Start: for each perturbation scale sigma, the TV of p_theta0 from uniform and the median |dL/dtheta| of each
   angle group (exact gradient, autograd) of the Eq. 6 loss of a real critic/generator pair.
2. Step: a short Bernoulli WGAN-GP run (ferrite, n=8, width 8, 512 images, 30 epochs) is frozen; from the
   perturbed start, 3 fd updates (independent draws, 1000 shots) with the plain (Eq. 7) and the normalised step
   for several qcbm_lr, reporting the prior's TV from uniform, entropy and total correlation after each update.

    python benchmarks/prior_step.py [--epochs 30] [--out benchmarks/prior_step.json]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import qgan.quantum as qq
from qgan import qcbm_opt
from qgan.prior import prior_diagnostics
from qgan.train import run_trial
from qgan.trial_state import TrialState


def frozen_pair(epochs: int, seed: int = 0):
    """G, D after `epochs` Bernoulli epochs of the small ferrite config (the state the first update sees)."""
    cfg = dict(phase="ferrite", model="bernoulli", n=8, width=8, train_size=512, eval_size=64, batch_size=64,
               epochs=epochs, eval_every=epochs, n_samples_saved=0, checkpoint_every=epochs, seed=seed)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        run_trial(cfg, checkpoint=d)
        from qgan.config import TrialConfig

        state = TrialState.build(TrialConfig.from_dict(cfg))
        state.load(d)
    for net in (state.G, state.D):
        net.eval()
        net.requires_grad_(False)
    return state.G, state.D


def start_table(G, D, n: int, scales, draws: int = 10) -> list[dict]:
    ans = qq.Ansatz(n)
    scorer = qcbm_opt.FrozenScorer(G, D, n, torch.device("cpu"))
    f_all = scorer.all()
    groups = ans.angle_groups()
    rows = []
    for sigma in scales:
        g = torch.Generator().manual_seed(7)
        tv, per = [], {k: [] for k in groups}
        for _ in range(draws):
            th = ans.perturbed_start(g, sigma) if sigma > 0 else ans.uniform_start()
            t = th.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(qcbm_opt.exact_loss(ans, t, f_all), t)
            tv.append(prior_diagnostics(ans.probabilities(th)[0], n)["prior_tv"])
            for k, ix in groups.items():
                per[k].append(float(grad[ix].abs().median()))
        rows.append({"sigma": sigma, "tv_mean": sum(tv) / len(tv),
                     **{f"grad_{k}": float(torch.tensor(v).median()) for k, v in per.items()}})
    return rows


def step_table(G, D, n: int, lrs, steps=("plain", "normalized"), updates: int = 3, sigma: float = 0.1) -> list[dict]:
    ans = qq.Ansatz(n)
    rows = []
    for step in steps:
        for lr in lrs:
            g = torch.Generator().manual_seed(3)
            th = ans.perturbed_start(torch.Generator().manual_seed(1), sigma)
            out = {"step": step, "qcbm_lr": lr}
            for u in range(1, updates + 1):
                scorer = qcbm_opt.FrozenScorer(G, D, n, torch.device("cpu"))
                th = qcbm_opt.fd_update(ans, qq.ExactBackend(), th, scorer, g, lr, 0.1, 1000,
                                        normalized=step == "normalized").theta
                d = prior_diagnostics(ans.probabilities(th)[0], n)
                out[f"tv_{u}"] = d["prior_tv"]
                out[f"entropy_{u}"] = d["prior_entropy_bits"]
                out[f"tc_{u}"] = d["prior_total_correlation_bits"]
            rows.append(out)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.time()
    G, D = frozen_pair(args.epochs)
    n = 8
    start = start_table(G, D, n, [0.0, 0.01, 0.03, 0.1, 0.3])
    print(f"start (n={n} full, exact gradient of Eq. 6 after {args.epochs} Bernoulli epochs; median |grad| per group)")
    print(f"{'sigma':>6} {'TV':>8} {'|g| RX':>10} {'|g| RZ':>10} {'|g| RXX':>10}")
    for r in start:
        print(f"{r['sigma']:>6g} {r['tv_mean']:>8.4f} {r['grad_rx']:>10.3g} {r['grad_rz']:>10.3g} {r['grad_rxx']:>10.3g}")
    steps = step_table(G, D, n, [0.01, 0.03, 0.1, 0.3, 1.0])
    print("\nstep (3 fd updates, 1000 shots, independent draws, from sigma=0.1): TV / entropy bits / TC bits")
    for r in steps:
        cells = "  ".join(f"{r[f'tv_{u}']:.3f}/{r[f'entropy_{u}']:.2f}/{r[f'tc_{u}']:.3f}" for u in (1, 2, 3))
        print(f"{r['step']:>10} lr={r['qcbm_lr']:<5g} {cells}")
    print(f"\n{time.time() - t0:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"start": start, "step": steps, "epochs": args.epochs}, f, indent=1)


if __name__ == "__main__":
    main()
