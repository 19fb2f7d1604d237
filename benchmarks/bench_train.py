"""Speed of the training hot paths against straightforward reference implementations, in one process.

    python benchmarks/bench_train.py [--width 8] [--n 12] [--samples 1000] [--ref-circuits 4] [--device cpu]

Prints one line per measurement and the ratio reference / ours:
1. one WGAN-GP critic+generator step (qgan.models.critic_step: one critic pass over [real, fake], one over x_hat) vs a
   plain eager fp32 loop (three critic passes, as in the WGAN-GP reference code);
2. one fd QCBM update at n (2P circuits x N shots + the G and D passes) vs a per-circuit loop (simulate one
   circuit, sample N, push the N latents through G and D, for each of the 2P circuits). The reference is timed on
   --ref-circuits circuits and scaled linearly to 2P (it is a loop of identical iterations);
3. the exact-gradient update (one G+D pass over 2**n latents + autograd through the simulator), absolute;
4. the MMD (energy kernel) of 1000 x 1000 images of 5x60x60 vs a straightforward row-by-row numpy version
   (timed on --mmd-ref-rows rows and scaled).
Each pair is timed interleaved, best of --repeat. Timings on a shared CPU are noisy; compare the ratios.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from timing import best_of

import qgan.quantum as qq
from qgan import qcbm_opt
from qgan.metrics import mmd
from qgan.models import build_models, critic_step, generator_step


def bench_wgan_step(width: int, batch: int, n: int, device: torch.device, repeat: int) -> tuple[float, float]:
    g, d = build_models(n, width, torch.Generator().manual_seed(0))
    g.to(device), d.to(device)
    opt_g = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.0, 0.9))
    real = torch.rand(batch, 5, 60, 60, device=device) * 2 - 1
    z = (torch.rand(batch, n, device=device) < 0.5).float()
    eps = torch.rand(batch, device=device)

    def ours():
        with torch.no_grad():
            fake = g(z)
        critic_step(d, opt_d, real, fake, eps, 10.0)
        generator_step(g, d, opt_g, z)
        if device.type == "cuda":
            torch.cuda.synchronize()

    def reference():
        fake = g(z)
        d_real = d(real).mean()
        d_fake = d(fake.detach()).mean()
        e = eps.view(-1, 1, 1, 1)
        xh = (e * real + (1 - e) * fake.detach()).requires_grad_(True)
        grad = torch.autograd.grad(d(xh).sum(), xh, create_graph=True)[0]
        gp = ((grad.view(batch, -1).norm(2, dim=1) - 1) ** 2).mean()
        loss = d_fake - d_real + 10.0 * gp
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        lg = -d(g(z)).mean()
        opt_g.zero_grad()
        lg.backward()
        opt_g.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    ours(), reference()  # warm up
    t_ours, t_ref = [], []
    for _ in range(repeat):  # interleaved, best of `repeat`: a shared CPU's load hits both alike
        t_ours.append(best_of(ours))
        t_ref.append(best_of(reference))
    return min(t_ours), min(t_ref)


def bench_fd_update(n: int, width: int, samples: int, ref_circuits: int, device: torch.device,
                    repeat: int) -> tuple[float, float, int]:
    g, d = build_models(n, width, torch.Generator().manual_seed(0))
    g.to(device).eval(), d.to(device).eval()
    ansatz = qq.Ansatz(n, 1, "full")
    theta = ansatz.uniform_start() + 0.05 * torch.randn(ansatz.num_params, generator=torch.Generator().manual_seed(1),
                                                        dtype=torch.float64)
    p = ansatz.num_params

    def ours():
        scorer = qcbm_opt.FrozenScorer(g, d, n, device)
        qcbm_opt.fd_update(ansatz, qq.ExactBackend(), theta, scorer, torch.Generator().manual_seed(2), 0.1, 0.1, samples)

    gen = torch.Generator().manual_seed(3)
    e = torch.eye(p, dtype=torch.float64) * 0.1

    @torch.no_grad()
    def reference():  # the first `ref_circuits` circuits of the per-circuit loop
        losses = []
        for i in range(ref_circuits):
            th = theta + (e[i // 2] if i % 2 == 0 else -e[i // 2])
            probs = qq.probabilities(ansatz, th)
            idx = qq.sample_indices(probs, samples, gen)[0]
            z = qq.indices_to_bits(idx, n).to(device)
            losses.append(-d(g(z)).mean().item())
        return losses

    t_ours, t_ref = [], []
    for _ in range(repeat):  # interleaved, best of `repeat`
        t_ours.append(best_of(ours))
        t_ref.append(best_of(reference) * (2 * p) / ref_circuits)
    return min(t_ours), min(t_ref), p


def bench_exact_update(n: int, width: int, device: torch.device, repeat: int) -> float:
    g, d = build_models(n, width, torch.Generator().manual_seed(0))
    g.to(device).eval(), d.to(device).eval()
    ansatz = qq.Ansatz(n, 1, "full")

    def ours():
        scorer = qcbm_opt.FrozenScorer(g, d, n, device)
        qcbm_opt.exact_update(ansatz, None, ansatz.uniform_start(), scorer, 0.1)

    return best_of(ours, repeat)


def bench_mmd(count: int, ref_rows: int, repeat: int) -> tuple[float, float, float, float]:
    """Ours on count x count images vs the row-loop reference timed on `ref_rows` rows of each block and scaled
    (it is a loop of identical rows); values compared on the first `ref_rows` images of each set."""
    rng = np.random.default_rng(0)
    x = rng.random((count, 5 * 60 * 60))
    y = rng.random((count, 5 * 60 * 60)) * 0.9

    def mean_dist(a, b, rows):
        return np.mean([np.sqrt(((a[i] - b) ** 2).sum(1)).mean() for i in range(rows)])

    def reference_rows():
        return [mean_dist(x, y, ref_rows), mean_dist(x, x, ref_rows), mean_dist(y, y, ref_rows)]

    t_ours, t_ref = [], []
    for _ in range(repeat):  # interleaved, best of `repeat`
        t_ours.append(best_of(lambda: mmd(x, y)))
        t_ref.append(best_of(reference_rows) * count / ref_rows)
    t_ours, t_ref = min(t_ours), min(t_ref)
    xs, ys = x[:ref_rows], y[:ref_rows]
    ref_value = 2 * mean_dist(xs, ys, ref_rows) - mean_dist(xs, xs, ref_rows) - mean_dist(ys, ys, ref_rows)
    return t_ours, t_ref, mmd(xs, ys), ref_value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=8, help="network width (64 = the spec network)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--samples", type=int, default=1000, help="N shots per circuit")
    ap.add_argument("--ref-circuits", type=int, default=4, help="circuits timed in the per-circuit reference loop")
    ap.add_argument("--mmd-count", type=int, default=1000)
    ap.add_argument("--mmd-ref-rows", type=int, default=100, help="rows timed in the MMD reference loop")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: wgan,fd,exact,mmd")
    args = ap.parse_args()
    device = torch.device(args.device)
    skip = set(filter(None, args.skip.split(",")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, width {args.width}")
    if "wgan" not in skip:
        a, b = bench_wgan_step(args.width, args.batch, args.n, device, max(args.repeat, 7))
        print(f"WGAN-GP step (batch {args.batch}): ours {a * 1e3:.1f} ms, eager reference {b * 1e3:.1f} ms, "
              f"ratio {b / a:.2f}x")
    if "fd" not in skip:
        a, b, p = bench_fd_update(args.n, args.width, args.samples, args.ref_circuits, device, args.repeat)
        print(f"fd QCBM update n={args.n} full (2P = {2 * p} circuits x N = {args.samples}): ours {a:.2f} s, "
              f"per-circuit loop {b:.1f} s (timed on {args.ref_circuits} circuits, scaled), ratio {b / a:.0f}x")
    if "exact" not in skip:
        a = bench_exact_update(args.n, args.width, device, args.repeat)
        print(f"exact-gradient QCBM update n={args.n} full (G+D over {2 ** args.n} latents): {a:.2f} s")
    if "mmd" not in skip:
        a, b, v1, v2 = bench_mmd(args.mmd_count, args.mmd_ref_rows, args.repeat)
        print(f"MMD energy {args.mmd_count}x{args.mmd_count} images: ours {a:.2f} s, row-loop numpy {b:.1f} s "
              f"(timed on {args.mmd_ref_rows} rows, scaled), ratio {b / a:.1f}x; "
              f"values on {args.mmd_ref_rows}x{args.mmd_ref_rows}: {v1:.9f} vs {v2:.9f}")


if __name__ == "__main__":
    main()
