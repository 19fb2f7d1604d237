"""Montage of dataset patches: one row per patch, one labelled colour map per channel (physical units)."""
from __future__ import annotations

import numpy as np

from .channels import SCALE

CHANNEL_TITLES = ["IQ (stretched)", "phase", "KAM (deg)", "KS deviation (deg)", "central grain"]


def montage(ds, out: str, n: int = 6, seed: int = 0) -> None:
    """Save a figure of ``n`` seeded-random patches of ``ds`` (a :class:`Dataset`) to ``out`` (atomic)."""
    import os

    import matplotlib

    from qgan.results import atomic_write

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    rng = np.random.default_rng(seed)
    n = max(1, min(n, len(ds)))
    idx = np.sort(rng.choice(len(ds), n, replace=False))
    phys = ds.images[idx].astype(np.float32) / SCALE.reshape(1, 5, 1, 1)
    fig, axes = plt.subplots(n, 5, figsize=(12.5, 2.5 * n + 1.6), squeeze=False, layout="constrained")
    phase_cmap = ListedColormap(["black", "tab:red", "tab:blue", "tab:green"])
    phase_norm = BoundaryNorm([-0.5, 0.5, 1.5, 2.5, 3.5], 4)
    specs = [dict(cmap="gray", vmin=0, vmax=1), dict(cmap=phase_cmap, norm=phase_norm),
             dict(cmap="viridis", vmin=0, vmax=3.5), dict(cmap="magma", vmin=0, vmax=20),
             dict(cmap="gray", vmin=0, vmax=1)]
    ims = [None] * 5
    for r, i in enumerate(idx):
        for c in range(5):
            ax = axes[r, c]
            v = np.rint(phys[r, c]) if c == 1 else phys[r, c]
            ims[c] = ax.imshow(v, interpolation="nearest", **specs[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(CHANNEL_TITLES[c], fontsize=10)
        axes[r, 0].set_ylabel(f"#{i} {ds.labels[i]}", fontsize=9)
    for c in (0, 2, 3):
        fig.colorbar(ims[c], ax=axes[-1, c], location="bottom", shrink=0.9)
    axes[-1, 1].legend(handles=[Patch(color=col, label=lab) for col, lab in
                                zip(["black", "tab:red", "tab:blue", "tab:green"], ["noise", "BCC", "FCC", "other"])],
                       loc="upper center", bbox_to_anchor=(0.5, -0.05), ncol=2, fontsize=8, frameon=False)
    src = ds.meta.get("source", "")
    fig.suptitle(f"{len(ds)} patches ({', '.join(sorted(set(ds.labels)))}; source: {src}); "
                 f"KAM noise = 3.5 deg, KS n/a = 20 deg", fontsize=10)
    fmt = os.path.splitext(out)[1].lstrip(".") or "png"
    try:
        atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=90, format=fmt), create_dirs=False)
    finally:
        plt.close(fig)
