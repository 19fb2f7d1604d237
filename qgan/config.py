"""`TrialConfig`: every setting of one trial, its validation, and the enumerations its fields take.

The one place a trial's settings are defined (defaults: paper/spec.md; meaning: docs/train.md). Importing it
does not import torch: `validate` loads the quantum and optimiser limits on first use.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import yaml

from qgan.results import MODELS, PHASES, setting_fields

THETA_INITS = ("perturbed", "uniform", "random")
QCBM_STEPS = ("plain", "normalized")
MMD_ESTIMATORS = ("unbiased", "biased")
# The exact optimiser pushes all 2**n latents through G and D at every update and keeps a 2**n table:
# at n = 16 that is 65,536 generator+critic forward passes (~7 epochs' worth of forward work at 9000 images),
# beyond that an update would cost more than the training it steers.
EXACT_MAX_QUBITS = 16


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
    # latent (every model): n = latent size; latent_pool > 0 resamples a pool of that many bitstrings
    n: int = 12
    latent_pool: int = 0
    # QCBM circuit (read by qcbm only)
    layers: int = 1
    connectivity: str = "full"
    theta_init: str = "perturbed"
    theta_init_scale: float = 0.1
    backend: str = "exact"
    # trained prior (read by qcbm and product; ignored by bernoulli)
    qcbm_optimizer: str = "fd"
    qcbm_step: str = "normalized"
    qcbm_lr: float = 0.1
    fd_eps: float = 0.1
    fd_common_random: bool = False
    qcbm_samples: int = 1000
    qcbm_steps: int = 1
    spsa_iterations: int = 50
    spsa_a: float = 0.1
    spsa_c: float = 0.2
    spsa_calibrate: bool = False
    update_every: int = 30
    qcbm_epochs: int = 100
    # evaluation
    eval_every: int = 1
    mmd_kernel: str = "energy"
    mmd_estimator: str = "unbiased"
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
        return setting_fields(self.to_dict())

    def validate(self) -> None:
        """Raise ValueError with one clear message for the first invalid value."""
        _choice("phase", self.phase, PHASES)
        _choice("model", self.model, MODELS)
        _choice("theta_init", self.theta_init, THETA_INITS)
        _choice("qcbm_step", self.qcbm_step, QCBM_STEPS)
        _choice("mmd_estimator", self.mmd_estimator, MMD_ESTIMATORS)
        from qgan.metrics import KERNELS
        from qgan.qcbm_opt import OPTIMIZERS
        from qgan.quantum import MAX_QUBITS
        from qgan.quantum.ansatz import CONNECTIVITIES
        from qgan.quantum.backends import BACKEND_NAMES

        _choice("connectivity", self.connectivity, CONNECTIVITIES)

        _choice("qcbm_optimizer", self.qcbm_optimizer, OPTIMIZERS)
        _choice("backend", self.backend, BACKEND_NAMES)
        _choice("mmd_kernel", self.mmd_kernel, KERNELS)
        if self.data_source != "synthetic" and not str(self.data_source).endswith(".npz"):
            raise ValueError(f"data_source must be 'synthetic' or a path to a dataset .npz, got {self.data_source!r}")
        for name in ("seed", "data_seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.eval_size < 2:
            raise ValueError(f"eval_size must be >= 2 (the MMD and diversity compare pairs), got {self.eval_size}")
        for name in ("train_size", "eval_size", "epochs", "batch_size", "n_critic", "width", "layers",
                     "qcbm_samples", "qcbm_steps", "spsa_iterations", "update_every", "eval_every",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("qcbm_epochs", "n_samples_saved", "latent_pool"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d", "qcbm_lr", "gp_lambda", "spsa_a", "theta_init_scale"):
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
        if not 1 <= self.n <= MAX_QUBITS:
            raise ValueError(f"n must lie in 1..{MAX_QUBITS} (qgan.quantum.MAX_QUBITS), got {self.n}")
        if self.model != "bernoulli" and self.qcbm_optimizer == "exact":
            if self.n > EXACT_MAX_QUBITS:
                raise ValueError(
                    f"the exact QCBM optimiser evaluates G and D on all 2**n latents; n must be <= "
                    f"{EXACT_MAX_QUBITS}, got {self.n} (use fd or spsa)"
                )
            if self.model == "qcbm" and self.backend != "exact":
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


# ---------------------------------------------------------------------------------------------- overrides
def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Parse `--set key=value` items; values are YAML scalars or lists (`n=[2,4]`, `lr_g=2e-4`, `device=cuda`)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"--set {key}: cannot parse value {raw!r} ({problem})") from None
        out[key] = [_number(v) for v in value] if isinstance(value, list) else _number(value)
    return out


def _number(value: Any) -> Any:
    """YAML 1.1 reads `2e-4` as a string: turn such strings into numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
