"""Helpers shared by the test files: small random datasets on disk, a private dataset cache."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest


def write_random_dataset(path: str | Path, count: int, seed: int = 0, phase: str = "ferrite") -> str:
    """A dataset .npz of `count` uniformly random uint8 (5, 60, 60) images labelled `phase`; returns its path."""
    from qgan.data import Dataset, save_dataset

    images = np.random.default_rng(seed).integers(0, 256, (count, 5, 60, 60), dtype=np.uint8)
    save_dataset(str(path), Dataset(images, np.array([phase] * count), {"source": "test"}))
    return str(path)


@pytest.fixture()
def make_dataset(tmp_path, monkeypatch) -> Callable[..., str]:
    """Factory fixture: make_dataset(count, seed=0) -> path of a random dataset, with the cache in tmp_path."""
    monkeypatch.setenv("QGAN_CACHE_DIR", str(tmp_path / "cache"))

    def make(count: int, seed: int = 0, name: str = "random.npz") -> str:
        return write_random_dataset(tmp_path / name, count, seed)

    return make


def write_two_phase_dataset(path: str | Path, per_phase: int, seed: int = 0, kam_shift: float = 12.0) -> str:
    """A dataset .npz of `per_phase` ferrite and bainite images that look like EBSD patches and are hard to
    tell apart: 6x6 blocks of 10x10 px ("grains") with exact phase labels (85 = BCC, 10 % noise 0), smooth IQ,
    a central-grain mask, and a KAM level whose per-image mean is N(60, 12) for ferrite and N(60 + kam_shift, 12)
    for bainite (so a classifier needs many images). Returns its path."""
    from qgan.data import Dataset, save_dataset

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k, phase in enumerate(("ferrite", "bainite")):
        b = per_phase
        up = lambda a: np.kron(a, np.ones((10, 10)))  # noqa: E731  (B, 6, 6) -> (B, 60, 60)
        ph = np.where(rng.random((b, 6, 6)) < 0.1, 0, 85)
        iq = rng.uniform(90, 200, (b, 6, 6)) * (ph > 0)
        kam_mean = rng.normal(60 + k * kam_shift, 12, (b, 1, 1))
        kam = np.where(ph > 0, np.clip(kam_mean + rng.normal(0, 20, (b, 6, 6)), 0, 218), 255)
        ks = np.where(ph > 0, rng.uniform(20, 120, (b, 6, 6)), 255)
        mask = np.zeros((b, 6, 6))
        mask[:, 2:4, 2:4] = 255
        mask *= rng.random((b, 1, 1)) < 0.9
        img = np.stack([up(iq), up(ph), up(kam), up(ks), up(mask)], 1)
        img[:, 2] += rng.normal(0, 3, img[:, 2].shape) * (img[:, 1] > 0)
        images.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
        labels += [phase] * b
    save_dataset(str(path), Dataset(np.concatenate(images), np.array(labels), {"source": "test two-phase"}))
    return str(path)
