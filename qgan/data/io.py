"""Orientation maps: the :class:`OrientationMap` dataclass and :func:`load_map` for real EBSD files.

Supported: EDAX/TSL ``.ang`` (square or hexagonal grid) and Oxford ``.ctf`` through ``orix.io.load``, and
the Oxford HKL tab-separated ``.txt`` export (columns ``Index Phase X Y Euler1 Euler2 Euler3 MAD BC ...``,
Euler angles in degrees). Hexagonal grids are resampled to a square grid of the same step (nearest
neighbour). Phases are mapped to BCC / FCC by lattice constant (2.6-3.1 A BCC iron, 3.4-3.8 A FCC iron);
files that carry only placeholder lattice constants (<= 1 A, as written by some converters) fall back to
the phase name (ferrite / alpha / bcc -> BCC, austenite / gamma / fcc -> FCC).
"""
from __future__ import annotations

import contextlib
import io as _io
import os
import warnings
from dataclasses import dataclass

import numpy as np

from .orientation import quat_from_euler, quat_normalize

NOISE, BCC, FCC, OTHER = 0, 1, 2, 3
PHASE_NAMES = {NOISE: "noise", BCC: "BCC", FCC: "FCC", OTHER: "other"}


@dataclass
class OrientationMap:
    """A square-grid orientation map.

    quat: float64 (H, W, 4) unit quaternions (sample -> crystal; identity where phase == 0)
    phase: int8 (H, W) 0 noise / not indexed, 1 BCC, 2 FCC, 3 other
    iq: float32 (H, W) image quality (raw units of the file, or 0..1 for synthetic maps)
    step: grid step in micrometres (pixels are square)
    source: file name or generator description
    """

    quat: np.ndarray
    phase: np.ndarray
    iq: np.ndarray
    step: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        self.quat = np.asarray(self.quat, dtype=np.float64)
        self.phase = np.asarray(self.phase, dtype=np.int8)
        self.iq = np.asarray(self.iq, dtype=np.float32)
        if self.quat.ndim != 3 or self.quat.shape[2] != 4:
            raise ValueError(f"{self.source or 'map'}: quaternions must have shape (H, W, 4), got {self.quat.shape}")
        if self.phase.shape != self.quat.shape[:2] or self.iq.shape != self.quat.shape[:2]:
            raise ValueError(f"{self.source or 'map'}: phase/iq shapes {self.phase.shape}/{self.iq.shape} "
                             f"do not match the grid {self.quat.shape[:2]}")
        if self.phase.size == 0:
            raise ValueError(f"{self.source or 'map'}: the map is empty")
        if self.phase.min() < 0 or self.phase.max() > 3:
            raise ValueError(f"{self.source or 'map'}: phase labels must be 0..3")

    @property
    def shape(self) -> tuple[int, int]:
        return self.phase.shape  # type: ignore[return-value]

    def phase_fractions(self) -> dict[str, float]:
        """Area fraction of each phase label (noise, BCC, FCC, other)."""
        counts = np.bincount(self.phase.ravel(), minlength=4) / self.phase.size
        return {PHASE_NAMES[i]: float(counts[i]) for i in range(4)}


def classify_phase(lattice_a: float | None, name: str = "") -> int:
    """Phase label from the cubic lattice constant in Angstrom (name only if the constant is a placeholder)."""
    if lattice_a is not None and lattice_a > 1.5:
        if 2.6 <= lattice_a <= 3.1:
            return BCC
        if 3.4 <= lattice_a <= 3.8:
            return FCC
        return OTHER
    n = name.lower()
    if any(k in n for k in ("ferrite", "alpha", "bcc", "martensite", "bainite")):
        return BCC
    if any(k in n for k in ("austenite", "gamma", "fcc")):
        return FCC
    if "not_indexed" in n or "notindexed" in n:
        return NOISE
    return OTHER


def _to_square_grid(x: np.ndarray, y: np.ndarray, step: float, values: list[np.ndarray]) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Nearest-neighbour resampling of scattered grid points onto a square grid of spacing ``step``."""
    from scipy.spatial import cKDTree

    x0, y0 = x.min(), y.min()
    nx = int(np.floor((x.max() - x0) / step + 1e-6)) + 1
    ny = int(np.floor((y.max() - y0) / step + 1e-6)) + 1
    gx, gy = np.meshgrid(x0 + step * np.arange(nx), y0 + step * np.arange(ny))
    tree = cKDTree(np.column_stack([x, y]))
    _, idx = tree.query(np.column_stack([gx.ravel(), gy.ravel()]))
    return [v[idx].reshape((ny, nx) + v.shape[1:]) for v in values], (ny, nx)


def _grid_step(x: np.ndarray, y: np.ndarray) -> float:
    ux = np.unique(np.round(x, 6))
    if len(ux) > 1:
        return float(np.min(np.diff(ux)))
    uy = np.unique(np.round(y, 6))
    if len(uy) > 1:
        return float(np.min(np.diff(uy)))
    return 1.0


def _is_hex(x: np.ndarray, y: np.ndarray) -> bool:
    ux = np.unique(np.round(x, 6))
    uy = np.unique(np.round(y, 6))
    if len(ux) < 2 or len(uy) < 2:
        return False
    dx, dy = np.min(np.diff(ux)), np.min(np.diff(uy))
    # hexagonal grid: alternate rows shifted by half a step -> apparent x step is half the row spacing
    return not np.isclose(dx, dy, rtol=0.05)


def _finish(path: str, x, y, quat, phase, iq, hexgrid: bool | None = None) -> OrientationMap:
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if len(x) == 0:
        raise ValueError(f"{path}: the map is empty (no data points)")
    hexgrid = _is_hex(x, y) if hexgrid is None else hexgrid
    if hexgrid:
        uy = np.unique(np.round(y, 6))
        row = np.min(np.diff(uy))
        step = row * 2.0 / np.sqrt(3.0)  # hexagonal row spacing = step * sqrt(3) / 2
    else:
        step = _grid_step(x, y)
    if not hexgrid:
        ix = np.rint((x - x.min()) / step).astype(np.int64)
        iy = np.rint((y - y.min()) / step).astype(np.int64)
        ny, nx = iy.max() + 1, ix.max() + 1
        if ny * nx == len(x) and len(np.unique(iy * nx + ix)) == len(x):
            q = np.zeros((ny, nx, 4))
            q[..., 0] = 1
            ph = np.zeros((ny, nx), np.int8)
            iqg = np.zeros((ny, nx), np.float32)
            q[iy, ix] = quat
            ph[iy, ix] = phase
            iqg[iy, ix] = iq
            return OrientationMap(q, ph, iqg, float(step), os.path.basename(path))
    (q, ph, iqg), _ = _to_square_grid(x, y, step, [np.asarray(quat), np.asarray(phase), np.asarray(iq)])
    return OrientationMap(q, ph, iqg, float(step), os.path.basename(path))


def _load_orix(path: str) -> OrientationMap:
    from orix import io as oio

    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(_io.StringIO()):
            warnings.simplefilter("ignore")
            xmap = oio.load(path)
    except Exception as exc:  # orix raises many types on bad input
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a readable EBSD map ({type(exc).__name__}: {msg})") from None
    if xmap.size == 0:
        raise ValueError(f"{path}: the map is empty (no data points)")
    ids = np.asarray(xmap.phase_id)
    label_of = {}
    for pid, ph in xmap.phases:
        a = None
        try:
            a = float(ph.structure.lattice.a)
        except Exception:
            a = None
        label_of[pid] = NOISE if pid < 0 else classify_phase(a, ph.name)
    phase = np.zeros(len(ids), np.int8)
    for pid, lab in label_of.items():
        phase[ids == pid] = lab
    quat = quat_normalize(np.asarray(xmap.rotations.data, float))
    if len(quat) != len(ids):
        raise ValueError(f"{path}: inconsistent map (rotations {len(quat)} vs points {len(ids)})")
    props = xmap.prop
    iq = None
    for key in ("iq", "bc", "BC", "image_quality", "band_contrast"):
        if key in props:
            iq = np.asarray(props[key], float)
            break
    if iq is None:
        iq = np.ones(len(ids))
    hexgrid = None
    if path.lower().endswith(".ang"):
        hexgrid = _ang_is_hex(path)
    return _finish(path, xmap.x, xmap.y, quat, phase, iq, hexgrid)


def _ang_is_hex(path: str) -> bool | None:
    with open(path, "r", errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                break
            if "GRID" in line.upper() and ":" in line:
                return "hex" in line.lower()
    return None


def _check_ang_complete(path: str) -> None:
    """Raise ValueError if an .ang file has fewer data rows than its header announces or ragged rows."""
    header = {}
    ncols = None
    n_rows = 0
    last_len = None
    bad_row = None
    with open(path, "r", errors="replace") as f:
        for line in f:
            if line.startswith("#"):
                if ":" in line:
                    k, _, v = line[1:].partition(":")
                    header[k.strip().upper()] = v.strip()
                continue
            if not line.strip():
                continue
            n = len(line.split())
            if ncols is None:
                ncols = n
            elif n != ncols and bad_row is None:
                bad_row = n_rows + 1
            n_rows += 1
            last_len = n
    if n_rows == 0:
        raise ValueError(f"{path}: the map is empty (no data rows)")
    if bad_row is not None or (ncols is not None and last_len != ncols):
        raise ValueError(f"{path}: truncated or corrupt .ang (data row {bad_row or n_rows} has a different "
                         f"number of columns)")
    try:
        nrows = int(header["NROWS"])
        odd = int(header["NCOLS_ODD"])
        even = int(header.get("NCOLS_EVEN", odd))
    except (KeyError, ValueError):
        return
    if "hex" in header.get("GRID", "").lower():
        expected = (nrows + 1) // 2 * odd + nrows // 2 * even
    else:
        expected = nrows * odd
    if n_rows < expected:
        raise ValueError(f"{path}: truncated .ang ({n_rows} data rows, header announces {expected})")


def _load_oxford_txt(path: str, phase_map: dict[int, int] | None = None) -> OrientationMap:
    with open(path, "r", errors="replace") as f:
        head = f.readline()
    cols = [c.strip().lower() for c in head.strip().split("\t") if c.strip()]
    need = ["phase", "x", "y", "euler1", "euler2", "euler3"]
    if not all(c in cols for c in need):
        raise ValueError(f"{path}: not an Oxford EBSD text export (need tab-separated columns "
                         f"Phase X Y Euler1 Euler2 Euler3; got {cols[:8]})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.loadtxt(path, delimiter="\t", skiprows=1, usecols=range(len(cols)), ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: truncated or corrupt Oxford text export ({exc})") from None
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the map is empty (no data rows)")
    c = {name: data[:, i] for i, name in enumerate(cols)}
    pid = c["phase"].astype(np.int64)
    phase_map = phase_map or {1: BCC}
    phase = np.zeros(len(pid), np.int8)
    for k in np.unique(pid):
        if k > 0:
            phase[pid == k] = phase_map.get(int(k), OTHER)
    euler = np.radians(np.column_stack([c["euler1"], c["euler2"], c["euler3"]]))
    quat = quat_from_euler(euler)
    quat[phase == NOISE] = [1.0, 0, 0, 0]
    iq = c.get("bc", c.get("mad", np.ones(len(pid))))
    return _finish(path, c["x"], c["y"], quat, phase, iq)


def load_map(path: str, phase_map: dict[int, int] | None = None) -> OrientationMap:
    """Load a real EBSD map (.ang, .ctf, Oxford .txt) onto a square grid.

    ``phase_map`` (Oxford .txt only, which has no lattice constants): file phase id -> label 1 BCC / 2 FCC /
    3 other; default ``{1: BCC}``, other ids -> other. Raises FileNotFoundError if the file does not exist and
    ValueError naming the file and the problem for unsupported, truncated, corrupt or empty files.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not an EBSD map")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".ang":
        _check_ang_complete(path)
        omap = _load_orix(path)
    elif ext == ".ctf":
        omap = _load_orix(path)
    elif ext == ".txt":
        omap = _load_oxford_txt(path, phase_map)
    else:
        raise ValueError(f"{path}: unsupported file type {ext or '(none)'!r}; expected .ang, .ctf or Oxford .txt")
    if not (omap.phase > 0).any():
        raise ValueError(f"{path}: no indexed points in the map")
    return omap
