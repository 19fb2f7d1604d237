"""A trial's saved samples: `samples.npz` (real and generated uint8 patches) and the labelled `samples.png`."""
from __future__ import annotations

import numpy as np

from qgan.results import CHANNELS, atomic_write


def save_samples_npz(path: str, real: np.ndarray, generated: np.ndarray) -> None:
    """Atomic samples.npz with `real` and `generated` uint8 (k, 5, 60, 60)."""

    def w(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, real=real, generated=generated)

    atomic_write(path, w)


def save_samples_png(path: str, real: np.ndarray, generated: np.ndarray, title: str = "") -> None:
    """Figure: rows = real then generated images, columns = the five channels, each labelled."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = [("real", i, real[i]) for i in range(len(real))] + [("generated", i, generated[i]) for i in range(len(generated))]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 5, figsize=(10, 2.1 * len(rows)), squeeze=False)
    for r, (kind, i, img) in enumerate(rows):
        for c in range(5):
            ax = axes[r, c]
            ax.imshow(img[c], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(CHANNELS[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{kind} {i + 1}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()

    def w(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=80)

    try:
        atomic_write(path, w)
    finally:
        plt.close(fig)
