"""Dataset files (.npz) and the content-keyed dataset cache.

File layout: ``images`` uint8 (N, 5, 60, 60), ``labels`` unicode (N,) phase name per image, ``meta`` a JSON
string (source, generator parameters, seed, version, ...). Writes are atomic (temp file in the target
directory, then ``os.replace``), so concurrent workers building the same cache key never see a partial file.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from qgan.results import atomic_write

from .synthetic import GENERATOR_VERSION, PHASES, map_shapes_like, params_dict, params_for, synth_patches

DATA_VERSION = "2"  # bump when the channel pipeline changes: invalidates every cached dataset


@dataclass
class Dataset:
    """images uint8 (N, 5, H, W); labels str (N,); meta dict (JSON-serialisable)."""

    images: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        self.labels = np.asarray(self.labels).astype(str)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[1] != 5:
            raise ValueError(f"images must be uint8 (N, 5, H, W), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must have shape ({len(self.images)},), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.images)


def _write_npz(f, arrays: dict) -> None:
    """An uncompressed .npz (readable by ``np.load``) with fixed zip timestamps: identical content gives an
    identical file, byte for byte."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(arr), allow_pickle=False)


def save_dataset(path: str, ds: Dataset) -> None:
    """Write ``ds`` to ``path`` (.npz: images, labels, meta JSON) atomically and reproducibly."""
    meta = json.dumps(ds.meta, sort_keys=True)
    arrays = {"images": ds.images, "labels": ds.labels.astype(str), "meta": np.array(meta)}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            _write_npz(f, arrays)

    atomic_write(path, write, create_dirs=False, fsync=True)


def load_dataset(path: str) -> Dataset:
    """Read a dataset .npz written by :func:`save_dataset` (ValueError naming the problem otherwise)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a dataset .npz")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path}: cannot read the file (permission denied)")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a dataset .npz (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("images", "labels") if k not in z.files]
            if missing:
                raise ValueError(f"{path}: not a qgan dataset (missing {', '.join(missing)})")
            images = z["images"]
            labels = z["labels"]
            meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
    except ValueError as exc:
        if str(exc).startswith(path):
            raise
        raise ValueError(f"{path}: not a readable dataset .npz ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable dataset .npz ({exc})") from None
    try:
        return Dataset(images, labels, meta)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def default_cache_dir() -> str:
    """``$QGAN_CACHE_DIR`` or ``~/.cache/qgan``."""
    return os.environ.get("QGAN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "qgan")


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_key(spec: dict) -> str:
    """Content key: sha256 of the canonical JSON of the dataset's defining parameters."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def build_synthetic(phase: str, count: int, seed: int = 0, params=None, workers: int | None = None,
                    progress: bool = False, edges_like: str | None = None) -> Dataset:
    """A synthetic dataset (no cache). ``edges_like``: an imported dataset file whose source map sizes the
    synthetic maps are cut to, edge patches included (see :func:`qgan.data.synthetic.map_shapes_like`)."""
    p = params_for(phase) if params is None else params
    shapes = map_shapes_like(edges_like) if edges_like else None
    images = synth_patches(phase, count, seed, params=p, workers=workers, progress=progress, map_shapes=shapes)
    meta = {"source": "synthetic", "phase": phase, "count": int(count), "seed": int(seed),
            "generator": params_dict(p), "generator_version": GENERATOR_VERSION, "version": DATA_VERSION}
    if shapes:
        meta["edges_like"] = {"file": os.path.abspath(edges_like), "map_shapes": [[list(sh), wt] for sh, wt in shapes]}
    return Dataset(images, np.full(len(images), phase), meta)


def shuffled_phase_indices(labels: np.ndarray, phase: str, seed: int) -> np.ndarray:
    """Indices (K,) of the images labelled `phase`, in the seeded order `get_dataset` takes them from a file
    (its first `count` are the subset of that count and seed)."""
    idx = np.flatnonzero(np.asarray(labels) == phase)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919]))
    return idx[rng.permutation(len(idx))]


def _subset_from_file(path: str, phase: str, count: int, seed: int) -> Dataset:
    ds = load_dataset(path)
    order = shuffled_phase_indices(ds.labels, phase, seed)
    if len(order) == 0:
        raise ValueError(f"{path}: no images labelled {phase!r} (labels: {', '.join(sorted(set(ds.labels)))})")
    if count > len(order):
        raise ValueError(f"{path}: asked for {count} {phase} images but the file holds {len(order)}")
    pick = order[:count]
    meta = {"source": os.path.abspath(path), "phase": phase, "count": int(count), "seed": int(seed),
            "version": DATA_VERSION, "parent_meta": ds.meta}
    return Dataset(ds.images[pick], ds.labels[pick], meta)


def get_dataset(phase: str, count: int, seed: int = 0, cache_dir: str | None = None,
                source: str = "synthetic", edges_like: str | None = None) -> Dataset:
    """``count`` images of ``phase`` ("ferrite" / "bainite"), cached by content.

    source "synthetic": the built-in generator with its calibrated default parameters, deterministic by
    ``seed``. Otherwise a path to a dataset .npz: ``count`` images labelled ``phase`` after a seeded shuffle.
    The result is cached under ``cache_dir`` (default ``$QGAN_CACHE_DIR`` or ``~/.cache/qgan``) in a file
    named by a hash of (phase, count, seed, source, generator parameters, versions); concurrent builders of the
    same key each write a temp file and atomically rename it, so readers never see a partial file.
    ``edges_like`` (synthetic only): cut the synthetic maps like the source maps of this imported dataset
    file, edge patches included (docs/data.md, "Patch geometry").
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    if int(count) != count or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    count, seed = int(count), int(seed)
    if source == "synthetic":
        spec = {"phase": phase, "count": count, "seed": seed, "source": "synthetic",
                "generator": params_dict(params_for(phase)), "generator_version": GENERATOR_VERSION,
                "version": DATA_VERSION}
        if edges_like:
            spec["edges_like"] = map_shapes_like(edges_like)
    else:
        if edges_like:
            raise ValueError(f"edges_like applies to synthetic data, not to source {source}")
        if not os.path.exists(source):
            raise FileNotFoundError(f"{source}: no such dataset file")
        if os.path.isdir(source):
            raise IsADirectoryError(f"{source}: is a directory, not a dataset .npz")
        spec = {"phase": phase, "count": count, "seed": seed, "source": _file_digest(source),
                "version": DATA_VERSION}
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"{phase}-{count}-s{seed}-{dataset_key(spec)}.npz")
    if os.path.exists(path):
        try:
            return load_dataset(path)
        except ValueError:
            pass  # corrupt cache entry (e.g. disk full earlier): rebuild and replace it
    if source == "synthetic":
        ds = build_synthetic(phase, count, seed, edges_like=edges_like)
    else:
        ds = _subset_from_file(source, phase, count, seed)
    ds.meta["cache_key"] = dataset_key(spec)
    save_dataset(path, ds)
    return ds
