"""Downstream measures of every completed trial of a run -> RUN_DIR/downstream.parquet (`qgan evaluate`).

For each trial (RUN_DIR/trials/<id>/ or any folder below RUN_DIR with config.json, a completed summary.json and
checkpoint/) the final generator, fed by the trial's own latent source, makes `n_generated` images, and:

augmentation  a small CNN tells ferrite (class 0) from bainite (class 1). It is trained on `s` real images of the
              trial's phase (s in `scarce_sizes`, nested subsets) plus `other_size` real images of the other
              phase, without ("none") and with ("generated") the trial's images added to the scarce class;
              accuracy and macro F1 on a balanced held-out real test set. Every batch is class-balanced (half of
              each class, drawn uniformly with replacement within the class), so adding copies of the scarce
              images changes nothing: only new information can help. The same classifier seeds (init and
              batches) and the same real sets for every trial of a dataset, so arms are paired; the real-only
              runs are computed once per (phase, size, seed) and shared. The classifier sees the `channels`
              of the settings (all five by default). Where even new real images (the floor rows) gain nothing,
              the measure cannot speak: downstream.json "headroom" says so (results.augmentation_headroom).
feature       Frechet distance and k-NN precision / recall (Kynkaanniemi et al. 2019) of the generated images
              against a real reference set, in the 4*width pooled features of a `PhaseNet` trained once per
              dataset on real patches of both phases (cached under RUN_DIR/.downstream/ or OUT/.downstream/,
              deterministic from the evaluation seed).
physical      per-channel statistics against the same reference set (`physical_measures`).

Real data come from the trials' own source (config data_source / data_seed): synthetic maps of seed
data_seed + REAL_SEED_OFFSET (never the trial's training maps), or, for an imported .npz, the images of each
phase no trial of the run trained or evaluated on. Per phase the pool is cut, in order, into the roles
train | test | reference | feature | floor (`ROLES`); downstream.json records the split and every setting.
The floor role (n_generated real images) is measured like a trial's images, in rows with model "real": the
real-vs-real floor of every measure (and the augmentation value of as many new real images).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from qgan import results
from qgan.results import DOWNSTREAM_MEASURES, PHASES, atomic_write, key_id

REAL_SEED_OFFSET = 10007
ROLES = ("train", "test", "reference", "feature", "floor")
#: `model` of the real-vs-real rows: held-out real images (the floor role) measured in place of generated ones.
REAL_MODEL = results.REAL_FLOOR_MODEL
CACHE_DIR = ".downstream"
FEATURE_VERSION = 1


# ---------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class EvalSettings:
    """Every option of an evaluation (docs/analysis.md, "Downstream measures")."""

    scarce_sizes: tuple[int, ...] = (25, 50, 100)
    other_size: int = 100
    test_size: int = 100
    reference_size: int = 200
    feature_train_size: int = 200
    n_generated: int = 100
    classifier_seeds: int = 3
    classifier_steps: int = 120
    feature_steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    width: int = 8
    knn_k: int = 3
    seed: int = 0
    #: channels the augmentation classifier sees (results.CHANNEL_KEYS); the feature classifier sees all five.
    channels: tuple[str, ...] = results.CHANNEL_KEYS
    #: class-balanced batches (the measure's premise); False only to show what balance does (tests).
    balanced: bool = True

    def validate(self) -> None:
        if not self.scarce_sizes or min(self.scarce_sizes) < 1:
            raise ValueError(f"scarce sizes must be positive integers, got {list(self.scarce_sizes)}")
        for name in ("other_size", "test_size", "reference_size", "feature_train_size", "n_generated",
                     "classifier_seeds", "classifier_steps", "feature_steps", "batch_size", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError(f"batch-size must be >= 2 (half of each class), got {self.batch_size}")
        if not 1 <= self.knn_k < min(self.reference_size, self.n_generated):
            raise ValueError(f"knn-k must lie in 1..{min(self.reference_size, self.n_generated) - 1}, got {self.knn_k}")
        bad = [c for c in self.channels if c not in results.CHANNEL_KEYS]
        if bad or not self.channels or len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels must be distinct names among {','.join(results.CHANNEL_KEYS)}, "
                             f"got {','.join(self.channels) or 'none'}")

    def channel_index(self) -> list[int]:
        """Indices of `channels` in the image's channel axis, in image order."""
        return [i for i, c in enumerate(results.CHANNEL_KEYS) if c in self.channels]

    def role_sizes(self) -> dict[str, int]:
        """Real images per phase in each role (ROLES order)."""
        return {"train": max(max(self.scarce_sizes), self.other_size), "test": self.test_size,
                "reference": self.reference_size, "feature": self.feature_train_size, "floor": self.n_generated}


#: Named sizes: quick (tests, smoke runs), default, full (a study or paper run).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(scarce_sizes=(10, 25), other_size=25, test_size=40, reference_size=50, feature_train_size=60,
                  n_generated=50, classifier_seeds=2, classifier_steps=40, feature_steps=60, width=4),
    "default": {},
    "full": dict(scarce_sizes=(25, 50, 100, 200), other_size=200, test_size=400, reference_size=1000,
                 feature_train_size=1000, n_generated=1000, classifier_seeds=5, classifier_steps=400,
                 feature_steps=1500, width=16),
}


def make_generator(*key: int) -> torch.Generator:
    """A CPU torch generator seeded from integers `key` (numpy SeedSequence), independent per key."""
    s = int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(s & (2**63 - 1))


# ---------------------------------------------------------------------------------------------- the CNN
class PhaseNet(nn.Module):
    """Ferrite (0) / bainite (1) classifier: (B, C, 60, 60) in [0, 1] -> logits (B, 2) (C = `in_channels`).

    Conv(C,w,4,stride 2) 30 -> ReLU -> Conv(w,2w,3,stride 2) 15 -> ReLU -> Conv(2w,4w,3,stride 2) 8 -> ReLU
    -> global mean -> `features` (B, 4w) -> Linear(4w, 2)."""

    def __init__(self, width: int = 8, in_channels: int = 5) -> None:
        super().__init__()
        w = int(width)
        self.body = nn.Sequential(
            nn.Conv2d(int(in_channels), w, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * w, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 5, 60, 60) -> float32 tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)


def train_classifier(class0: np.ndarray, class1: np.ndarray, steps: int, batch_size: int, lr: float, width: int,
                     generator: torch.Generator, balanced: bool = True) -> PhaseNet:
    """A PhaseNet trained with Adam for `steps` batches of 2 * (batch_size // 2) images.

    class0, class1: uint8 (N0 | N1, C, 60, 60). balanced: each batch holds batch_size // 2 images of each
    class, drawn uniformly with replacement within the class, so the class sizes never change what a batch
    looks like on average; otherwise the batch is drawn uniformly from the pooled N0 + N1 images (the classes
    in proportion to their sizes). All indices for all steps are drawn up front from `generator`."""
    from qgan.models import init_weights

    net = PhaseNet(width, class0.shape[1])
    init_weights(net, generator)
    x = torch.cat([unit(class0), unit(class1)])
    n0, n1, h = len(class0), len(class1), batch_size // 2
    u = torch.rand(steps, 2, h, generator=generator, dtype=torch.float64)
    if balanced:
        i0 = (u[:, 0] * n0).long().clamp_(max=n0 - 1)
        i1 = (u[:, 1] * n1).long().clamp_(max=n1 - 1) + n0
        idx = torch.cat([i0, i1], 1)                                    # (steps, 2h)
    else:
        idx = (u.reshape(steps, 2 * h) * (n0 + n1)).long().clamp_(max=n0 + n1 - 1)
    y = (idx >= n0).long()                                              # (steps, 2h) class of each draw
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for s in range(steps):
        loss = nn.functional.cross_entropy(net(x[idx[s]]), y[s])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    return net


@torch.no_grad()
def predict(net: PhaseNet, images: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Predicted class int64 (N,) of uint8 images (N, 5, 60, 60)."""
    x = unit(images)
    return torch.cat([net(x[i : i + chunk]).argmax(1) for i in range(0, len(x), chunk)]).numpy()


@torch.no_grad()
def features(net: PhaseNet, images: np.ndarray, chunk: int = 256) -> np.ndarray:
    """float64 (N, 4w) pooled features of uint8 images (N, 5, 60, 60)."""
    x = unit(images)
    return torch.cat([net.features(x[i : i + chunk]) for i in range(0, len(x), chunk)]).double().numpy()


def accuracy_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """(accuracy, macro F1 over the two classes) of int labels (N,); F1 of a class never predicted nor present
    is 0."""
    acc = float(np.mean(y_true == y_pred))
    f1 = []
    for c in (0, 1):
        tp = float(np.sum((y_pred == c) & (y_true == c)))
        denom = float(np.sum(y_pred == c) + np.sum(y_true == c))
        f1.append(2 * tp / denom if denom else 0.0)
    return acc, float(np.mean(f1))


# ---------------------------------------------------------------------------------------------- distances
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of Gaussians fitted to features a (N, F) and b (M, F):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2), the root through the symmetric S_a^1/2 S_b S_a^1/2."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))

    def sqrt_psd(m: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh((m + m.T) / 2)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    ra = sqrt_psd(sa)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ sb @ ra), 0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(sa) + np.trace(sb) - 2 * cross)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(d2, 0, None))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """k-NN manifold precision and recall (Kynkaanniemi et al. 2019) of features real (N, F), fake (M, F).

    The manifold of a set is the union of balls around its points with radius the distance to the point's
    k-th nearest neighbour in the set. precision: share of fake points inside the real manifold; recall:
    share of real points inside the fake manifold."""
    def radii(x: np.ndarray) -> np.ndarray:
        return np.sort(_pairwise(x, x), axis=1)[:, k]            # column 0 is the point itself

    r_real, r_fake = radii(real), radii(fake)
    d = _pairwise(fake, real)                                      # (M, N)
    precision = float(np.mean((d <= r_real[None, :]).any(1)))
    recall = float(np.mean((d.T <= r_fake[None, :]).any(1)))
    return precision, recall


def _w1_hist(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """1-Wasserstein distance of two uint8 samples from their 256-bin histograms, in units of `scale` per
    uint8 step (sum over values of |CDF_a - CDF_b|)."""
    ca = np.cumsum(np.bincount(a.ravel(), minlength=256)) / a.size
    cb = np.cumsum(np.bincount(b.ravel(), minlength=256)) / b.size
    return float(np.abs(ca - cb)[:-1].sum() * scale)


def phase_labels(phase_channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 phase channel (...) -> (nearest label 0..3, invalid mask: farther than 1/4 step from it)."""
    x = phase_channel.astype(np.float64) / 85.0
    lab = np.clip(np.rint(x), 0, 3).astype(np.int64)
    return lab, np.abs(x - lab) > 0.25


def physical_measures(fake: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Channel statistics of uint8 images fake (M, 5, 60, 60) against real (N, 5, 60, 60) (qgan.data.channels):
    phase-label fractions (TV distance, labels rounded), the share of phase pixels with no valid label, 1-W
    distances of the IQ (0..1), KAM (deg, 3.5 / 255 per step) and KS-deviation (deg, 20 / 255 per step) pixel
    values, and of the per-image central-grain area fraction (mask > 127)."""
    from scipy.stats import wasserstein_distance

    from qgan.data.channels import SCALE

    lf, bad = phase_labels(fake[:, 1])
    lr, _ = phase_labels(real[:, 1])
    ff = np.bincount(lf.ravel(), minlength=4) / lf.size
    fr = np.bincount(lr.ravel(), minlength=4) / lr.size
    area_f = (fake[:, 4] > 127).mean(axis=(1, 2))
    area_r = (real[:, 4] > 127).mean(axis=(1, 2))
    return {
        "phase_fraction_tv": float(0.5 * np.abs(ff - fr).sum()),
        "phase_label_invalid": float(bad.mean()),
        "iq_w1": _w1_hist(fake[:, 0], real[:, 0], 1.0 / float(SCALE[0])),
        "kam_w1": _w1_hist(fake[:, 2], real[:, 2], 1.0 / float(SCALE[2])),
        "ks_w1": _w1_hist(fake[:, 3], real[:, 3], 1.0 / float(SCALE[3])),
        "grain_area_w1": float(wasserstein_distance(area_f, area_r)),
    }


# ---------------------------------------------------------------------------------------------- real data
@dataclass
class RealData:
    """Real images of one dataset source, per phase and role: roles[phase][role] uint8 (K, 5, 60, 60).
    split: the JSON record of where they came from."""

    roles: dict[str, dict[str, np.ndarray]]
    split: dict[str, Any]
    key: str


def _source_key(config: dict[str, Any]) -> tuple[str, int]:
    return str(config.get("data_source", "synthetic")), int(config.get("data_seed", 0))


def load_real(source: str, data_seed: int, settings: EvalSettings, configs: list[dict[str, Any]]) -> RealData:
    """The evaluation's real images of a dataset source (module docstring); `configs`: the run's trial configs
    of this source (an imported file's images they used are left out)."""
    from qgan.data import get_dataset, load_dataset
    from qgan.data.dataset import shuffled_phase_indices

    sizes = settings.role_sizes()
    need = sum(sizes.values())
    roles: dict[str, dict[str, np.ndarray]] = {}
    split: dict[str, Any] = {"source": source, "data_seed": data_seed, "per_phase": dict(sizes)}
    if source == "synthetic":
        seed = data_seed + REAL_SEED_OFFSET
        split["synthetic_seed"] = seed
        pools = {ph: np.asarray(get_dataset(ph, count=need, seed=seed).images) for ph in PHASES}
    else:
        ds = load_dataset(source)
        pools, split["file_indices"] = {}, {}
        for ph in PHASES:
            used: set[int] = set()
            for c in configs:
                if c.get("phase") == ph:
                    cnt = int(c["train_size"]) + 2 * int(c["eval_size"])
                    used.update(shuffled_phase_indices(ds.labels, ph, int(c["data_seed"]))[:cnt].tolist())
            order = shuffled_phase_indices(ds.labels, ph, data_seed + REAL_SEED_OFFSET)
            free = np.asarray([i for i in order.tolist() if i not in used], dtype=np.int64)
            if len(free) < need:
                raise ValueError(f"{source}: the evaluation needs {need} {ph} images that no trial used "
                                 f"({', '.join(f'{k} {v}' for k, v in sizes.items())}), the file has {len(free)} "
                                 "left; pass smaller sizes (see qgan evaluate --help)")
            pools[ph] = np.asarray(ds.images[free[:need]])
            split["file_indices"][ph] = free[:need].tolist()
    for ph, pool in pools.items():
        roles[ph], at = {}, 0
        for role in ROLES:
            roles[ph][role] = pool[at : at + sizes[role]]
            at += sizes[role]
    key = key_id({"source": split, "settings": _feature_settings(settings), "version": FEATURE_VERSION})
    return RealData(roles, split, key)


def _feature_settings(s: EvalSettings) -> dict[str, Any]:
    return {k: getattr(s, k) for k in ("feature_train_size", "feature_steps", "batch_size", "lr", "width", "seed")}


def feature_net(real: RealData, settings: EvalSettings, cache_dir: Path) -> PhaseNet:
    """The dataset's feature classifier, trained on the feature role of both phases (generator from the
    evaluation seed) or loaded from cache_dir/feature-<key>.pt."""
    path = cache_dir / f"feature-{real.key}.pt"
    net = PhaseNet(settings.width)
    if path.exists():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net.eval()
    net = train_classifier(real.roles["ferrite"]["feature"], real.roles["bainite"]["feature"],
                           settings.feature_steps, settings.batch_size, settings.lr, settings.width,
                           make_generator(settings.seed, 1))
    state = net.state_dict()
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return net


# ---------------------------------------------------------------------------------------------- measures
class Evaluator:
    """The measures of generated images against one dataset's real data; real-only classifiers are cached."""

    def __init__(self, real: RealData, settings: EvalSettings, cache_dir: Path) -> None:
        self.real, self.s = real, settings
        self.net = feature_net(real, settings, cache_dir)
        self.ref_features = {ph: features(self.net, real.roles[ph]["reference"]) for ph in PHASES}
        self._baseline: dict[tuple[str, int, int], tuple[float, float]] = {}
        self.channels = settings.channel_index()
        self.test_x = np.concatenate([real.roles[ph]["test"][:, self.channels] for ph in PHASES])
        self.test_y = np.repeat(np.arange(2), [len(real.roles[ph]["test"]) for ph in PHASES])

    def _classify(self, phase: str, scarce: np.ndarray, cseed: int) -> tuple[float, float]:
        other = PHASES[1 - PHASES.index(phase)]
        fixed = self.real.roles[other]["train"][: self.s.other_size]
        c0, c1 = (scarce, fixed) if phase == PHASES[0] else (fixed, scarce)
        c0, c1 = c0[:, self.channels], c1[:, self.channels]
        gen = make_generator(self.s.seed, 2, PHASES.index(phase), len(self.real.roles[phase]["train"]), cseed)
        net = train_classifier(c0, c1, self.s.classifier_steps, self.s.batch_size, self.s.lr, self.s.width, gen,
                               balanced=self.s.balanced)
        return accuracy_f1(self.test_y, predict(net, self.test_x))

    def augmentation(self, phase: str, extra: np.ndarray | Callable[[np.ndarray], np.ndarray]
                     ) -> list[dict[str, Any]]:
        """Rows (scarce_size, augmentation, classifier_seed, measure, value) for the images `extra` (uint8
        (M, 5, 60, 60), or a function of the scarce set (s, 5, 60, 60) giving them) added to the scarce class;
        the real-only rows come from the cache."""
        rows = []
        for size in self.s.scarce_sizes:
            scarce = self.real.roles[phase]["train"][:size]
            more = extra(scarce) if callable(extra) else extra
            for cs in range(self.s.classifier_seeds):
                key = (phase, size, cs)
                if key not in self._baseline:
                    self._baseline[key] = self._classify(phase, scarce, cs)
                base = self._baseline[key]
                aug = self._classify(phase, np.concatenate([scarce, more]), cs)
                for name, b, a in zip(("accuracy", "balanced_f1"), base, aug):
                    for setting, v in (("none", b), ("generated", a), ("gain", a - b)):
                        rows.append(dict(family="augmentation", measure=name, scarce_size=size,
                                         augmentation=setting, classifier_seed=cs, value=v))
        return rows

    def feature(self, phase: str, images: np.ndarray) -> list[dict[str, Any]]:
        f = features(self.net, images)
        ref = self.ref_features[phase]
        p, r = precision_recall(ref, f, self.s.knn_k)
        vals = {"frechet_distance": frechet_distance(f, ref), "precision": p, "recall": r}
        return [dict(family="feature", measure=k, value=v) for k, v in vals.items()]

    def physical(self, phase: str, images: np.ndarray) -> list[dict[str, Any]]:
        vals = physical_measures(images, self.real.roles[phase]["reference"])
        return [dict(family="physical", measure=k, value=v) for k, v in vals.items()]

    def measure(self, phase: str, images: np.ndarray) -> list[dict[str, Any]]:
        """Every measure of uint8 images (M, 5, 60, 60) posing as `phase` (rows without trial fields)."""
        rows = self.augmentation(phase, images) + self.feature(phase, images) + self.physical(phase, images)
        for r in rows:
            r.setdefault("scarce_size", 0)
            r.setdefault("augmentation", "")
            r.setdefault("classifier_seed", -1)
            if r["measure"] not in DOWNSTREAM_MEASURES:  # pragma: no cover - a measure added without its schema
                raise RuntimeError(f"measure {r['measure']!r} is not declared in qgan.results.DOWNSTREAM_MEASURES")
        return rows


# ---------------------------------------------------------------------------------------------- trials
@dataclass
class TrialDir:
    path: Path
    trial_id: str
    config: dict[str, Any]


def find_trials(run_dir: Path) -> tuple[list[TrialDir], list[dict[str, str]]]:
    """(completed trials with a checkpoint, skipped [{trial, reason}]) below run_dir, sorted by path."""
    from qgan.trial_state import CHECKPOINT_FILE

    found, skipped = [], []
    for root, dirs, files in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "checkpoint")
        if "config.json" not in files:
            continue
        p = Path(root)
        dirs[:] = []
        try:
            cfg = json.loads((p / "config.json").read_text())
            summary = json.loads((p / "summary.json").read_text()) if (p / "summary.json").exists() else {}
        except (OSError, ValueError) as exc:
            skipped.append({"trial": str(p), "reason": f"unreadable: {exc}"})
            continue
        tid = str(cfg.pop(results.TRIAL_ID, None) or p.relative_to(run_dir).as_posix())  # as analysis.collect
        if summary.get("status") != "completed":
            skipped.append({"trial": tid, "reason": f"status {summary.get('status', 'missing')}"})
        elif not (p / "checkpoint" / CHECKPOINT_FILE).exists():
            skipped.append({"trial": tid, "reason": "no checkpoint/ (the final generator was not saved)"})
        else:
            found.append(TrialDir(p, tid, cfg))
    return found, skipped


def generated_images(trial: TrialDir, count: int, seed: int) -> np.ndarray:
    """uint8 (count, 5, 60, 60) from the trial's final G and latent source (its checkpoint), on CPU."""
    from qgan.config import TrialConfig
    from qgan.models import to_uint8
    from qgan.trial_state import TrialState, generate

    cfg = TrialConfig.from_dict({**trial.config, "device": "cpu"})
    state = TrialState.build(cfg)
    state.load(str(trial.path / "checkpoint"))
    return to_uint8(generate(state.G, state.latent, count, make_generator(seed, 3), torch.device("cpu"))).numpy()


def evaluate_run(run_dir: str | os.PathLike, settings: EvalSettings | None = None, progress: bool = True,
                 out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Evaluate every completed trial of run_dir; writes downstream.parquet, downstream.json and the feature
    classifier's cache .downstream/ into `out` (default run_dir; otherwise the run is only read).

    Returns {"rows", "trials", "skipped", "seconds", "files"}. ValueError / FileNotFoundError for a run without
    evaluable trials or real data too small for the settings."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    s = settings or EvalSettings()
    s.validate()
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {str(run)!r} does not exist" if not run.exists()
                                else f"{str(run)!r} is a file, not a run folder")
    trials, skipped = find_trials(run)
    if not trials:
        why = "; ".join(f"{k['trial']}: {k['reason']}" for k in skipped[:3])
        raise ValueError(f"no completed trial with a checkpoint in {str(run)!r}" + (f" ({why})" if why else ""))
    outdir = Path(out) if out is not None else run
    by_source: dict[tuple[str, int], list[TrialDir]] = {}
    for t in trials:
        by_source.setdefault(_source_key(t.config), []).append(t)
    rows: list[dict[str, Any]] = []
    split = []
    bar = tqdm(total=len(trials), disable=not progress, unit="trial", desc="evaluate")
    for (source, dseed), group in by_source.items():
        real = load_real(source, dseed, s, [t.config for t in group])
        split.append(real.split)
        ev = Evaluator(real, s, outdir / CACHE_DIR)
        for phase in sorted({str(t.config["phase"]) for t in group}):   # the real-vs-real floor of the phase
            base = dict(trial_id=f"{REAL_MODEL}/{phase}/{source}/{dseed}", model=REAL_MODEL, phase=phase, n=0,
                        seed=-1)
            rows += [{**base, **r} for r in ev.measure(phase, real.roles[phase]["floor"])]
        for t in group:
            bar.set_postfix_str(t.trial_id[-40:])
            try:
                images = generated_images(t, s.n_generated, s.seed)
            except (ValueError, RuntimeError, OSError, KeyError) as exc:  # an old config, a foreign checkpoint
                skipped.append({"trial": t.trial_id, "reason": f"cannot rebuild its generator: {exc}"})
                bar.update(1)
                continue
            base = dict(trial_id=t.trial_id, model=t.config["model"], phase=t.config["phase"],
                        n=int(t.config["n"]), seed=int(t.config["seed"]))
            rows += [{**base, **r} for r in ev.measure(t.config["phase"], images)]
            bar.update(1)
    bar.close()
    if all(r["model"] == REAL_MODEL for r in rows):
        why = "; ".join(f"{k['trial']}: {k['reason']}" for k in skipped[:3])
        raise ValueError(f"no trial of {str(run)!r} could be evaluated ({why})")
    evaluated = sorted({r["trial_id"] for r in rows if r["model"] != REAL_MODEL})
    df = results.downstream_frame(rows)
    outdir.mkdir(parents=True, exist_ok=True)
    pq = outdir / "downstream.parquet"
    atomic_write(pq, lambda tmp: df.to_parquet(tmp, index=False))
    seconds = time.perf_counter() - t0
    headroom = results.augmentation_headroom(df)
    values = {"settings": dataclasses.asdict(s), "split": split, "trials": evaluated, "skipped": skipped,
              "headroom": headroom.to_dict("records"), "seconds": seconds}
    meta = {k: values[k] for k in results.DOWNSTREAM_META_FIELDS}   # the declared fields, in their order
    results.write_json(outdir / "downstream.json", meta)
    for k in skipped:
        print(f"qgan evaluate: skipped {k['trial']}: {k['reason']}", file=sys.stderr)
    mute = headroom[(headroom["measure"] == "accuracy") & (headroom["verdict"] != "informative")]
    if len(mute):
        where = ", ".join(f"{r.phase} {r.scarce_size} ({r.verdict})" for r in mute.itertuples())
        print(f"qgan evaluate: the augmentation measure cannot credit any arm at {where}: new real images gain "
              "nothing there either; a harder task may help (smaller --scarce-sizes, --channels iq; docs/analysis.md)",
              file=sys.stderr)
    return {"rows": len(df), "trials": len(evaluated), "skipped": len(skipped), "seconds": seconds,
            "headroom": headroom, "files": [pq, outdir / "downstream.json"]}
