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
