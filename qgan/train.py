"""One trial end to end: TrialConfig -> data -> latent source -> WGAN-GP epochs with QCBM updates -> results.

Schedule (spec §5.3, 1-based epochs): epoch e runs its WGAN-GP steps over the training set (Eq. 3, n_critic
critic steps per generator step), then the MMD (Eq. 9) when e % eval_every == 0 (and at the last epoch), then,
for the QCBM model, a QCBM update when e % update_every == 0 and e <= qcbm_epochs, with G and D frozen. This is
the spec's "update at the start of (0-based) epoch e, after e epochs of classical training": updates after 30,
60, 90 epochs for update_every 30 and qcbm_epochs 100. The record of epoch e carries that update.

Randomness: the trial seed spawns independent torch generators per purpose (init, data order, latent draws,
gradient-penalty mixing, QCBM optimiser, evaluation, theta init, latent pool). G and D are initialised first from
the init stream and the data order has its own stream, so Bernoulli and QCBM trials with the same seed start
from identical networks and see the same batches (paired comparison).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

import qgan.quantum as qq
from qgan import qcbm_opt
from qgan.latent import BernoulliLatent, QCBMLatent
from qgan.metrics import KERNELS, mmd, tail_mean
from qgan.models import build_models, critic_step, generator_step, to_uint8

PHASES = ("ferrite", "bainite")
MODELS = ("qcbm", "bernoulli")
CONNECTIVITIES = ("full", "reduced")
THETA_INITS = ("uniform", "random")
BACKENDS = ("exact", "aer", "aer-noisy", "ionq")
# Backends that sample cheaply draw fresh latents from the circuit every epoch; any other backend (remote hardware,
# the QPU gateway, and the noisy aer emulation of it, which runs one trajectory per shot) reuses the bitstrings of
# the last circuit run at the current theta (a pool), as the paper's QPU runs did.
FRESH_LATENT_BACKENDS = ("exact", "aer")
# The exact optimiser pushes all 2**n latents through G and D at every update and keeps a 2**n table:
# at n = 16 that is 65,536 generator+critic forward passes (~7 epochs' worth of forward work at 9000 images),
# beyond that an update would cost more than the training it steers.
EXACT_MAX_QUBITS = 16
BOOKKEEPING = ("device", "checkpoint_every", "n_samples_saved")
QCBM_ONLY = (
    "layers", "connectivity", "theta_init", "qcbm_optimizer", "qcbm_lr", "fd_eps", "qcbm_samples", "qcbm_steps",
    "spsa_iterations", "spsa_a", "spsa_c", "spsa_calibrate", "update_every", "qcbm_epochs", "backend",
)
RECORD_COLUMNS = (
    "epoch", "mmd", "loss_d", "loss_g", "wasserstein", "gp", "qcbm_updated", "qcbm_loss", "circuit_calls", "seconds",
)
CHECKPOINT_FILE = "checkpoint.pt"
_STREAMS = ("init", "data", "latent", "gp", "qcbm", "eval", "theta", "pool")


@dataclass
class TrialConfig:
    """Every setting of one trial (defaults: paper/spec.md; names: docs/interfaces.md).

    See docs/train.md for the meaning of each field.
    """

    # identity
    phase: str = "ferrite"
    model: str = "qcbm"
    seed: int = 0
    # data
    data_source: str = "synthetic"
    data_seed: int = 0
    train_size: int = 3000
    eval_size: int = 256
    # WGAN
    epochs: int = 4000
    batch_size: int = 64
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9
    gp_lambda: float = 10.0
    n_critic: int = 1
    width: int = 64
    # QCBM (ignored by bernoulli, except n = latent size)
    n: int = 12
    layers: int = 1
    connectivity: str = "full"
    theta_init: str = "uniform"
    qcbm_optimizer: str = "fd"
    qcbm_lr: float = 0.1
    fd_eps: float = 0.1
    qcbm_samples: int = 1000
    qcbm_steps: int = 1
    spsa_iterations: int = 50
    spsa_a: float = 0.1
    spsa_c: float = 0.2
    spsa_calibrate: bool = False
    update_every: int = 30
    qcbm_epochs: int = 100
    backend: str = "exact"
    # evaluation
    eval_every: int = 1
    mmd_kernel: str = "energy"
    # bookkeeping
    device: str = "cpu"
    checkpoint_every: int = 10
    n_samples_saved: int = 8

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialConfig":
        """Build and validate; unknown keys or bad values raise ValueError naming the field."""
        if not isinstance(d, dict):
            raise ValueError(f"a trial config must be a mapping, got {type(d).__name__}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            kwargs[key] = _coerce(key, names[key].type, value)
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field; `from_dict(to_dict())` gives an equal config."""
        return dataclasses.asdict(self)

    def setting(self) -> dict[str, Any]:
        """The fields that define a setting (all but `seed` and the bookkeeping fields)."""
        d = self.to_dict()
        for k in ("seed",) + BOOKKEEPING:
            d.pop(k)
        return d

    def validate(self) -> None:
        """Raise ValueError with one clear message for the first invalid value."""
        _choice("phase", self.phase, PHASES)
        _choice("model", self.model, MODELS)
        _choice("connectivity", self.connectivity, CONNECTIVITIES)
        _choice("theta_init", self.theta_init, THETA_INITS)
        _choice("qcbm_optimizer", self.qcbm_optimizer, qcbm_opt.OPTIMIZERS)
        _choice("backend", self.backend, BACKENDS)
        _choice("mmd_kernel", self.mmd_kernel, KERNELS)
        if self.data_source != "synthetic" and not str(self.data_source).endswith(".npz"):
            raise ValueError(f"data_source must be 'synthetic' or a path to a dataset .npz, got {self.data_source!r}")
        for name in ("seed", "data_seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("train_size", "eval_size", "epochs", "batch_size", "n_critic", "width", "layers",
                     "qcbm_samples", "qcbm_steps", "spsa_iterations", "update_every", "eval_every",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("qcbm_epochs", "n_samples_saved"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d", "qcbm_lr", "gp_lambda", "spsa_a"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        for name in ("fd_eps", "spsa_c"):
            v = getattr(self, name)
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {v}")
        if not 1 <= self.n <= qq.MAX_QUBITS:
            raise ValueError(f"n must lie in 1..{qq.MAX_QUBITS} (qgan.quantum.MAX_QUBITS), got {self.n}")
        if self.model == "qcbm" and self.qcbm_optimizer == "exact":
            if self.n > EXACT_MAX_QUBITS:
                raise ValueError(
                    f"the exact QCBM optimiser evaluates G and D on all 2**n latents; n must be <= "
                    f"{EXACT_MAX_QUBITS}, got {self.n} (use fd or spsa)"
                )
            if self.backend != "exact":
                raise ValueError(f"the exact QCBM optimiser needs backend 'exact', got {self.backend!r}")
        if self.batch_size > self.train_size:
            raise ValueError(f"batch_size ({self.batch_size}) is larger than the training set ({self.train_size})")
        if self.train_size // self.batch_size < self.n_critic:
            raise ValueError(
                f"an epoch has {self.train_size // self.batch_size} critic steps, fewer than n_critic "
                f"({self.n_critic}): no generator step would run"
            )
        dev = str(self.device)
        if not (dev == "cpu" or dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {dev!r}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _coerce(key: str, typ: Any, value: Any) -> Any:
    t = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    if t == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()
        ):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if t == "float":
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if t == "str":
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    return value


@dataclass
class TrialResult:
    """records: one dict per finished epoch (columns RECORD_COLUMNS); summary: the summary.json dict."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    config: TrialConfig | None = None
    theta: torch.Tensor | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------- helpers
def make_generators(seed: int) -> dict[str, torch.Generator]:
    """Independent CPU torch generators per purpose, derived from the trial seed (numpy SeedSequence)."""
    out = {}
    for k, name in enumerate(_STREAMS):
        s = int(np.random.SeedSequence(entropy=int(seed), spawn_key=(k,)).generate_state(1, np.uint64)[0])
        out[name] = torch.Generator().manual_seed(s & (2**63 - 1))
    return out


def update_epochs(config: TrialConfig) -> list[int]:
    """1-based epochs after whose training the QCBM is updated: K, 2K, ... <= min(qcbm_epochs, epochs)."""
    if config.model != "qcbm":
        return []
    return list(range(config.update_every, min(config.qcbm_epochs, config.epochs) + 1, config.update_every))


def _atomic_write_bytes(path: str, write: Callable[[str], None]) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=d)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def write_json(path: str, obj: Any) -> None:
    """Atomic JSON write (NaN/inf -> null)."""

    def w(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(_jsonable(obj), fh, indent=2, sort_keys=False)
            fh.write("\n")

    _atomic_write_bytes(path, w)


def records_frame(records: list[dict[str, Any]]):
    """Per-epoch records -> pandas DataFrame with the epochs.parquet columns and dtypes."""
    import pandas as pd

    df = pd.DataFrame.from_records(records, columns=list(RECORD_COLUMNS))
    return df.astype(
        {"epoch": "int64", "mmd": "float64", "loss_d": "float64", "loss_g": "float64", "wasserstein": "float64",
         "gp": "float64", "qcbm_updated": "bool", "qcbm_loss": "float64", "circuit_calls": "int64",
         "seconds": "float64"}
    )


def write_epochs(path: str, records: list[dict[str, Any]]) -> None:
    df = records_frame(records)
    _atomic_write_bytes(path, lambda tmp: df.to_parquet(tmp, index=False))


def summarize(records: list[dict[str, Any]], status: str, failure_reason: str | None, floor: float,
              circuit_calls: int, theta: torch.Tensor | None) -> dict[str, Any]:
    """The summary.json dict (MMD tail means over the last 100 / 500 epochs or what exists)."""
    mmds = [r["mmd"] for r in records]
    finite = [m for m in mmds if m is not None and math.isfinite(m)]
    return {
        "status": status,
        "failure_reason": failure_reason,
        "epochs_completed": len(records),
        "mmd_last100": tail_mean(mmds, 100),
        "mmd_last500": tail_mean(mmds, 500),
        "mmd_final": finite[-1] if finite else math.nan,
        "mmd_floor": floor,
        "circuit_calls": int(circuit_calls),
        "seconds_total": float(sum(r["seconds"] for r in records)),
        "theta": None if theta is None else [float(t) for t in theta.tolist()],
    }


def load_images(config: TrialConfig) -> np.ndarray:
    """uint8 (train_size + 2 eval_size, 5, 60, 60): the first train_size train, the rest are the two held-out
    real sets (MMD reference, then the second batch for the residual floor)."""
    from qgan.data import get_dataset

    count = config.train_size + 2 * config.eval_size
    ds = get_dataset(config.phase, count=count, seed=config.data_seed, source=config.data_source)
    images = np.asarray(ds.images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (5, 60, 60):
        raise ValueError(f"dataset images must be uint8 (N, 5, 60, 60), got {images.dtype} {images.shape}")
    if len(images) < count:
        raise ValueError(
            f"dataset {config.data_source!r} holds {len(images)} {config.phase} images; the trial needs "
            f"train_size + 2 * eval_size = {count}"
        )
    return images[:count]


def save_samples_png(path: str, real: np.ndarray, generated: np.ndarray, title: str = "") -> None:
    """Figure: rows = real then generated images, columns = the five channels, each labelled."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = ("IQ", "phase", "KAM", "KS deviation", "grain mask")
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
                ax.set_title(names[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{kind} {i + 1}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()

    def w(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=80)

    try:
        _atomic_write_bytes(path, w)
    finally:
        plt.close(fig)


def _rng_state(gens: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    return {k: g.get_state() for k, g in gens.items()}


# ---------------------------------------------------------------------------------------------- the trial
def run_trial(
    config: TrialConfig | dict[str, Any],
    on_epoch: Callable[[dict[str, Any], str | None], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    backend: Any | None = None,
    *,
    progress: bool = False,
    trial_id: str | None = None,
) -> TrialResult:
    """Run one trial; see the module docstring for the schedule and docs/interfaces.md for the contract.

    on_epoch(record, checkpoint_dir): called after every epoch (checkpoint_dir: the directory holding this
    epoch's checkpoint, or None). checkpoint: directory; resumes from its checkpoint if it holds one, writes one
    every config.checkpoint_every epochs and at the end (atomically). out_dir: writes config.json, epochs.parquet,
    summary.json, samples.npz, samples.png. backend: a qgan.quantum.Backend overriding config.backend.
    A NaN/inf loss ends the trial with status "failed" (no exception); an invalid config raises ValueError.
    """
    if isinstance(config, dict):
        config = TrialConfig.from_dict(config)
    config.validate()
    cfg = config
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {cfg.device!r} requested but CUDA is not available")
    ckdir = os.fspath(checkpoint) if checkpoint is not None else None
    out = os.fspath(out_dir) if out_dir is not None else None
    if out is not None:
        os.makedirs(out, exist_ok=True)
        if trial_id is None:
            trial_id = os.path.basename(os.path.abspath(out))

    # ---- data
    images = load_images(cfg)
    tr, ev = cfg.train_size, cfg.eval_size
    train_u8 = torch.from_numpy(np.ascontiguousarray(images[:tr])).to(device)
    real_eval = torch.from_numpy(np.ascontiguousarray(images[tr : tr + ev])).to(device, torch.float64) / 255.0
    real_floor = torch.from_numpy(np.ascontiguousarray(images[tr + ev : tr + 2 * ev])).to(device, torch.float64) / 255.0

    # ---- networks and optimisers (init stream consumed first, identically for both models)
    gens = make_generators(cfg.seed)
    G, D = build_models(cfg.n, cfg.width, gens["init"])
    G.to(device)
    D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(float(cfg.beta1), float(cfg.beta2)))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(float(cfg.beta1), float(cfg.beta2)))

    # ---- latent source
    ansatz = None
    bk = None
    if cfg.model == "qcbm":
        ansatz = qq.Ansatz(cfg.n, layers=cfg.layers, connectivity=cfg.connectivity)
        bk = backend if backend is not None else qq.make_backend(cfg.backend)
        theta0 = ansatz.uniform_start() if cfg.theta_init == "uniform" else ansatz.random_start(gens["theta"])
        mode = "fresh" if getattr(bk, "name", "") in FRESH_LATENT_BACKENDS else "pool"
        latent: Any = QCBMLatent(ansatz, bk, theta0, mode=mode, pool_shots=cfg.qcbm_samples,
                                 pool_generator=gens["pool"])
    else:
        latent = BernoulliLatent(cfg.n, 0.5)

    records: list[dict[str, Any]] = []
    start_epoch = 0
    # circuit calls of this trial = calls before a resume + what the backend counted since this call started
    # (the backend object itself is never reset: a shared gateway client keeps its own count)
    calls_before = 0
    calls_base = int(bk.circuit_calls) if bk is not None else 0
    spsa_a: float | None = None if cfg.spsa_calibrate else cfg.spsa_a
    floor: float | None = None

    ck_path = os.path.join(ckdir, CHECKPOINT_FILE) if ckdir is not None else None
    if ck_path is not None and os.path.exists(ck_path):
        state = torch.load(ck_path, map_location="cpu", weights_only=True)
        saved = TrialConfig.from_dict(state["config"])
        a, b = saved.setting(), cfg.setting()
        a.pop("epochs"), b.pop("epochs")
        diff = sorted(k for k in a if a[k] != b[k]) + (["seed"] if saved.seed != cfg.seed else [])
        if diff:
            raise ValueError(f"checkpoint in {ckdir} belongs to a different trial (differs in: {', '.join(diff)})")
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        for k, g in gens.items():
            g.set_state(state["rng"][k])
        latent.load_state_dict(state["latent"])
        calls_before = int(state["circuit_calls"])
        spsa_a = state["spsa_a"]
        floor = float(state["mmd_floor"])
        records = list(state["records"])
        start_epoch = int(state["epoch"])
    elif cfg.model == "qcbm" and latent.mode == "pool":
        latent.set_theta(latent.theta)  # the initial pool: one circuit run at theta0

    if floor is None:
        floor = mmd(real_eval, real_floor, kernel=cfg.mmd_kernel)

    def calls() -> int:
        return calls_before + (int(bk.circuit_calls) - calls_base if bk is not None else 0)

    def theta_now() -> torch.Tensor | None:
        return latent.theta.clone() if cfg.model == "qcbm" else None

    if out is not None:
        write_json(os.path.join(out, "config.json"), {**cfg.to_dict(), "trial_id": trial_id})
        write_json(os.path.join(out, "summary.json"), summarize(records, "running", None, floor, calls(), theta_now()))

    def save_checkpoint(epoch: int) -> str | None:
        if ckdir is None:
            return None
        state = {
            "version": 1,
            "config": cfg.to_dict(),
            "epoch": epoch,
            "records": records,
            "G": G.state_dict(),
            "D": D.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "rng": _rng_state(gens),
            "latent": latent.state_dict(),
            "circuit_calls": calls(),
            "spsa_a": spsa_a,
            "mmd_floor": floor,
        }
        _atomic_write_bytes(ck_path, lambda tmp: torch.save(state, tmp))
        if out is not None:
            write_epochs(os.path.join(out, "epochs.parquet"), records)
            write_json(os.path.join(out, "summary.json"),
                       summarize(records, "running", None, floor, calls(), theta_now()))
        return ckdir

    B = cfg.batch_size
    steps = cfg.train_size // B  # drop_last: every critic step sees a full batch
    g_steps = steps // cfg.n_critic
    updates = set(update_epochs(cfg))
    status, reason = "completed", None
    in_callback = False

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.epochs, initial=start_epoch, disable=not progress, unit="epoch",
               desc=f"{cfg.model} {cfg.phase} n={cfg.n} seed={cfg.seed}")
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            # -------- WGAN-GP steps (Eq. 3)
            G.train()
            D.train()
            perm = torch.randperm(cfg.train_size, generator=gens["data"])[: steps * B].to(device)
            z_all = latent.sample(steps * B + g_steps * B, gens["latent"]).to(device)
            eps_all = torch.rand(steps, B, generator=gens["gp"]).to(device)
            acc = torch.zeros(4, dtype=torch.float64, device=device)  # loss_d, wasserstein, gp, loss_g
            gi = 0
            for s in range(steps):
                real = train_u8[perm[s * B : (s + 1) * B]].to(torch.float32).div_(127.5).sub_(1.0)
                with torch.no_grad():
                    fake = G(z_all[s * B : (s + 1) * B])
                loss_d, w, gp = critic_step(D, opt_d, real, fake, eps_all[s], cfg.gp_lambda)
                acc[0] += loss_d
                acc[1] += w
                acc[2] += gp
                if (s + 1) % cfg.n_critic == 0:
                    acc[3] += generator_step(G, D, opt_g, z_all[(steps + gi) * B : (steps + gi + 1) * B])
                    gi += 1
            acc_c = acc.cpu()
            rec: dict[str, Any] = {
                "epoch": epoch,
                "mmd": math.nan,
                "loss_d": float(acc_c[0]) / steps,
                "loss_g": float(acc_c[3]) / max(g_steps, 1),
                "wasserstein": float(acc_c[1]) / steps,
                "gp": float(acc_c[2]) / steps,
                "qcbm_updated": False,
                "qcbm_loss": math.nan,
                "circuit_calls": 0,
                "seconds": 0.0,
            }
            bad = [k for k in ("loss_d", "loss_g", "wasserstein", "gp") if not math.isfinite(rec[k])]
            if bad:
                status, reason = "failed", f"non-finite {bad[0]} ({rec[bad[0]]}) at epoch {epoch}"
            # -------- MMD (Eq. 9) against the fixed held-out real set
            if status == "completed" and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                fake_eval = generate(G, latent, cfg.eval_size, gens["eval"], device)
                rec["mmd"] = mmd(real_eval, (fake_eval.to(torch.float64) + 1.0) / 2.0, kernel=cfg.mmd_kernel)
                if not math.isfinite(rec["mmd"]):
                    status, reason = "failed", f"non-finite mmd ({rec['mmd']}) at epoch {epoch}"
            # -------- QCBM update (Eq. 6-8), G and D frozen
            if status == "completed" and epoch in updates:
                res, spsa_a = _qcbm_update(cfg, G, D, ansatz, bk, latent, gens["qcbm"], spsa_a, device)
                rec["qcbm_updated"] = True
                rec["qcbm_loss"] = res.loss
                if not math.isfinite(res.loss):
                    status, reason = "failed", f"non-finite qcbm_loss ({res.loss}) at epoch {epoch}"
                elif not bool(torch.isfinite(res.theta).all()):
                    status, reason = "failed", f"non-finite QCBM parameters at epoch {epoch}"
                else:
                    latent.set_theta(res.theta, res.final_samples if latent.mode == "pool" else None)
            rec["circuit_calls"] = calls()
            rec["seconds"] = time.perf_counter() - t0
            records.append(rec)
            bar.update(1)
            if math.isfinite(rec["mmd"]):
                bar.set_postfix(mmd=f"{rec['mmd']:.4g}")
            ck = None
            if status == "completed" and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs):
                ck = save_checkpoint(epoch)
            if on_epoch is not None:
                in_callback = True
                on_epoch(dict(rec), ck)  # exceptions from the caller's callback propagate untouched
                in_callback = False
            if status != "completed":
                break
    except Exception as exc:  # a crash inside the trial: record it, then re-raise
        if out is not None and not in_callback:
            write_epochs(os.path.join(out, "epochs.parquet"), records)
            write_json(os.path.join(out, "summary.json"),
                       summarize(records, "failed", f"{type(exc).__name__}: {exc}", floor, calls(), theta_now()))
        raise
    finally:
        bar.close()

    summary = summarize(records, status, reason, floor, calls(), theta_now())
    if out is not None:
        write_epochs(os.path.join(out, "epochs.parquet"), records)
        if status == "completed" and cfg.n_samples_saved > 0:
            k = min(cfg.n_samples_saved, cfg.eval_size)
            gen = torch.Generator().manual_seed(cfg.seed)
            fake = to_uint8(generate(G, latent, k, gen, device, count_calls=False)).numpy()
            real = images[tr : tr + k]
            _atomic_write_bytes(os.path.join(out, "samples.npz"),
                                lambda tmp: _savez(tmp, real=real, generated=fake))
            save_samples_png(os.path.join(out, "samples.png"), real[:4], fake[:4],
                             title=f"{cfg.phase} {cfg.model} n={cfg.n} seed={cfg.seed}: real (top) vs generated")
        write_json(os.path.join(out, "summary.json"), summary)
    return TrialResult(records=records, summary=summary, config=cfg, theta=theta_now())


def _savez(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


@torch.no_grad()
def generate(G: torch.nn.Module, latent: Any, count: int, generator: torch.Generator, device: torch.device,
             chunk: int = 256, count_calls: bool = True) -> torch.Tensor:
    """count images (count, 5, 60, 60) in [-1, 1] from G in eval mode (restores train mode after).

    count_calls=False draws the latents without touching the backend's counter (used for saved samples).
    """
    was_training = G.training
    G.eval()
    bk = getattr(latent, "backend", None)
    before = bk.circuit_calls if bk is not None else None
    z = latent.sample(count, generator).to(device)
    if not count_calls and bk is not None:
        bk.circuit_calls = before
    out = torch.cat([G(z[i : i + chunk]) for i in range(0, count, chunk)])
    G.train(was_training)
    return out


def _qcbm_update(cfg: TrialConfig, G, D, ansatz, bk, latent: QCBMLatent, generator: torch.Generator,
                 spsa_a: float | None, device: torch.device) -> tuple[qcbm_opt.UpdateResult, float | None]:
    """One scheduled QCBM update with G and D in eval mode and no gradients on their parameters."""
    g_mode, d_mode = G.training, D.training
    G.eval()
    D.eval()
    G.requires_grad_(False)
    D.requires_grad_(False)
    try:
        scorer = qcbm_opt.FrozenScorer(G, D, cfg.n, device)
        theta = latent.theta
        if cfg.qcbm_optimizer == "fd":
            res = qcbm_opt.fd_update(ansatz, bk, theta, scorer, generator, cfg.qcbm_lr, cfg.fd_eps,
                                     cfg.qcbm_samples, cfg.qcbm_steps)
        elif cfg.qcbm_optimizer == "spsa":
            if spsa_a is None:
                spsa_a = qcbm_opt.spsa_calibrate(ansatz, bk, theta, scorer, generator, cfg.spsa_c, cfg.qcbm_samples)
            res = qcbm_opt.spsa_update(ansatz, bk, theta, scorer, generator, cfg.spsa_iterations, spsa_a,
                                       cfg.spsa_c, cfg.qcbm_samples)
        else:
            res = qcbm_opt.exact_update(ansatz, bk, theta, scorer, cfg.qcbm_lr, cfg.qcbm_steps)
    finally:
        G.requires_grad_(True)
        D.requires_grad_(True)
        G.train(g_mode)
        D.train(d_mode)
    return res, spsa_a
