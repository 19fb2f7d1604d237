"""Orientation maps: the :class:`OrientationMap` dataclass and :func:`load_map` for real EBSD files.

Supported, each read directly with numpy (no orix import, so a command starts in well under a second):

- EDAX/TSL ``.ang`` (square or hexagonal grid; also as written by orix, EMsoft and ASTAR): columns
  ``phi1 PHI phi2 x y IQ CI phase ...`` (radians); not indexed where CI = -1 or the phase id is negative.
- Oxford ``.ctf``: ``Phase X Y Bands Error Euler1 Euler2 Euler3 MAD BC BS`` (degrees); phase 0 = not indexed.
- Oxford HKL tab-separated ``.txt`` export (``Index Phase X Y Euler1 Euler2 Euler3 MAD BC ...``, degrees).
- TSL/EDAX OIM "grain file" ``.txt`` export (``# Column 1-3: phi1, PHI, phi2`` ... ``phi1 PHI phi2 x y IQ CI Fit
  grainID edge phase``, radians, phase given by name or number).

Hexagonal grids are resampled to a square grid of the file's step (the header's XSTEP where there is one) by
nearest neighbour. Phases are mapped to BCC / FCC by crystal symmetry and lattice constant: a non-cubic point
group or lattice is "other"; cubic 2.6-3.1 A BCC iron, 3.4-3.8 A FCC iron; files that carry only placeholder
lattice constants (<= 1.5 A, as written by some converters) or none fall back to the phase name (ferrite /
alpha / bcc -> BCC, austenite / gamma / fcc -> FCC). IQ comes from a true IQ column or the band contrast only
(never from MAD or a dot product); a file with neither gets IQ 1 everywhere. ``ci_min`` turns points whose
confidence index is below it into noise (files with a CI column only).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from .orientation import quat_from_euler

NOISE, BCC, FCC, OTHER = 0, 1, 2, 3
PHASE_NAMES = {NOISE: "noise", BCC: "BCC", FCC: "FCC", OTHER: "other"}

# TSL .ang "Symmetry" codes and point-group names of the two cubic Laue classes (m-3m and m-3)
_CUBIC_SYMMETRIES = {"43", "23", "432", "m3m", "m-3m", "-43m", "m3", "m-3", "oh", "o", "th", "t"}
# Oxford .ctf Laue group numbers of the cubic classes: 10 m-3, 11 m-3m
_CUBIC_LAUE_CTF = {"10", "11"}


@dataclass
class OrientationMap:
    """A square-grid orientation map.

    quat: float64 (H, W, 4) unit quaternions (sample -> crystal; identity where phase == 0)
    phase: int8 (H, W) 0 noise / not indexed, 1 BCC, 2 FCC, 3 other
    iq: float32 (H, W) image quality (raw units of the file, or 0..1 for synthetic maps)
    step: grid step in micrometres (pixels are square)
    source: file name or generator description
    ci: float32 (H, W) confidence index where the file has one, else None
    info: how the map was read (format, grid, CI filtering: ``ci_min``, ``ci_removed_frac``)
    """

    quat: np.ndarray
    phase: np.ndarray
    iq: np.ndarray
    step: float = 1.0
    source: str = ""
    ci: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.quat = np.asarray(self.quat, dtype=np.float64)
        self.phase = np.asarray(self.phase, dtype=np.int8)
        self.iq = np.asarray(self.iq, dtype=np.float32)
        if self.quat.ndim != 3 or self.quat.shape[2] != 4:
            raise ValueError(f"{self.source or 'map'}: quaternions must have shape (H, W, 4), got {self.quat.shape}")
        if self.phase.shape != self.quat.shape[:2] or self.iq.shape != self.quat.shape[:2]:
            raise ValueError(f"{self.source or 'map'}: phase/iq shapes {self.phase.shape}/{self.iq.shape} "
                             f"do not match the grid {self.quat.shape[:2]}")
        if self.ci is not None:
            self.ci = np.asarray(self.ci, dtype=np.float32)
            if self.ci.shape != self.phase.shape:
                raise ValueError(f"{self.source or 'map'}: ci shape {self.ci.shape} does not match the grid "
                                 f"{self.phase.shape}")
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


def is_cubic_symmetry(symmetry) -> bool:
    """Whether a TSL symmetry code / point-group name (``43``, ``m-3m``, ``432``, ``23`` ...) is cubic."""
    return str(symmetry).strip().lower().replace(" ", "") in _CUBIC_SYMMETRIES


def _cubic_lattice(lattice) -> bool:
    """a = b = c and all angles 90 deg (within 1 % and 0.5 deg); placeholder constants count as cubic."""
    a, b, c, al, be, ga = (float(v) for v in lattice)
    if max(a, b, c) <= 1.5:
        return bool(np.allclose([al, be, ga], 90.0, atol=0.5))
    return bool(np.isclose(b, a, rtol=0.01) and np.isclose(c, a, rtol=0.01) and np.allclose([al, be, ga], 90.0, atol=0.5))


def classify_phase(lattice_a: float | None, name: str = "", cubic: bool | None = None) -> int:
    """Phase label from the crystal symmetry, the cubic lattice constant in Angstrom and (only if the constant
    is missing or a placeholder) the name.

    ``cubic``: whether the file's point group / lattice is cubic; False gives "other" whatever the constant
    (a hexagonal phase with a = 2.95 A is not BCC iron), None means the file does not say.
    """
    if cubic is False:
        return OTHER
    if lattice_a is not None and lattice_a > 1.5:
        if 2.6 <= lattice_a <= 3.1:
            return BCC
        if 3.4 <= lattice_a <= 3.8:
            return FCC
        return OTHER
    n = name.lower()
    if "not_indexed" in n or "notindexed" in n or "not indexed" in n:
        return NOISE
    if any(k in n for k in ("ferrite", "alpha", "bcc", "martensite", "bainite")):
        return BCC
    if any(k in n for k in ("austenite", "gamma", "fcc")):
        return FCC
    return OTHER


# ------------------------------------------------------------------------------------------------ grids

def _to_square_grid(x: np.ndarray, y: np.ndarray, step: float, values: list[np.ndarray]) -> list[np.ndarray]:
    """Nearest-neighbour resampling of scattered grid points onto a square grid of spacing ``step``.

    On a hexagonal grid many square points lie exactly halfway between two points of a shifted row; such
    ties go to the point on the left (the query is moved by 1e-4 step to the left), not to floating-point
    noise."""
    from scipy.spatial import cKDTree

    x0, y0 = x.min(), y.min()
    nx = int(np.floor((x.max() - x0) / step + 1e-6)) + 1
    ny = int(np.floor((y.max() - y0) / step + 1e-6)) + 1
    gx, gy = np.meshgrid(x0 + step * np.arange(nx), y0 + step * np.arange(ny))
    tree = cKDTree(np.column_stack([x, y]))
    _, idx = tree.query(np.column_stack([gx.ravel() - 1e-4 * step, gy.ravel()]))
    return [v[idx].reshape((ny, nx) + v.shape[1:]) for v in values]


def _row_step(x: np.ndarray, y: np.ndarray) -> tuple[float, float, bool]:
    """(x step, row spacing, hexagonal?) from the coordinates alone (files without a grid header)."""
    ux = np.unique(np.round(x, 6))
    uy = np.unique(np.round(y, 6))
    if len(ux) < 2 and len(uy) < 2:
        return 1.0, 1.0, False
    first = np.isclose(y, y.min(), atol=1e-6)
    xs = np.unique(np.round(x[first], 6))
    step = float(np.median(np.diff(xs))) if len(xs) > 1 else float(np.min(np.diff(uy)))
    if len(uy) < 2:
        return step, step, False
    row = float(uy[1] - uy[0])
    second = np.isclose(y, uy[1], atol=1e-6)
    shift = (x[second].min() - x[first].min()) / step
    hexgrid = abs(shift - np.round(shift) - 0.5) < 0.1 or abs(shift - np.round(shift) + 0.5) < 0.1
    return step, row, bool(hexgrid)


def _finish(path: str, x, y, quat, phase, iq, ci, *, step: float | None = None, row: float | None = None,
            hexgrid: bool | None = None, info: dict | None = None) -> OrientationMap:
    """Place points on a square grid (resampling hexagonal or irregular grids) and build the map."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if len(x) == 0:
        raise ValueError(f"{path}: the map is empty (no data points)")
    g_step, g_row, g_hex = _row_step(x, y)
    step = g_step if step is None or step <= 0 else float(step)
    row = g_row if row is None or row <= 0 else float(row)
    hexgrid = g_hex if hexgrid is None else hexgrid
    info = dict(info or {})
    info["grid"] = "hexagonal" if hexgrid else "square"
    name = os.path.basename(path)
    quat = np.asarray(quat, float)
    phase = np.asarray(phase, np.int8)
    iq = np.asarray(iq, np.float32)
    ci_arr = None if ci is None else np.asarray(ci, np.float32)
    if not hexgrid and np.isclose(row, step, rtol=0.01):
        ix = np.rint((x - x.min()) / step).astype(np.int64)
        iy = np.rint((y - y.min()) / step).astype(np.int64)
        ny, nx = int(iy.max()) + 1, int(ix.max()) + 1
        flat = iy * nx + ix
        if len(np.unique(flat)) == len(x):  # a square grid, perhaps with missing points (left as noise)
            q = np.zeros((ny, nx, 4))
            q[..., 0] = 1
            ph = np.zeros((ny, nx), np.int8)
            iqg = np.zeros((ny, nx), np.float32)
            q[iy, ix], ph[iy, ix], iqg[iy, ix] = quat, phase, iq
            cig = None
            if ci_arr is not None:
                cig = np.full((ny, nx), -1.0, np.float32)
                cig[iy, ix] = ci_arr
            return OrientationMap(q, ph, iqg, float(step), name, cig, info)
    values = [quat, phase, iq] + ([ci_arr] if ci_arr is not None else [])
    out = _to_square_grid(x, y, step, values)
    info["resampled"] = True
    return OrientationMap(out[0], out[1], out[2], float(step), name, out[3] if ci_arr is not None else None, info)


def _apply_ci(path: str, phase: np.ndarray, ci: np.ndarray | None, ci_min: float | None, what: str,
              info: dict) -> np.ndarray:
    """Points with CI < ci_min become noise; records the share of points removed in ``info``."""
    if ci_min is None:
        return phase
    if ci is None:
        raise ValueError(f"{path}: a confidence-index threshold (ci_min) needs a CI column, and this {what} has "
                         f"none")
    drop = (phase > 0) & (ci < float(ci_min))
    phase = np.where(drop, NOISE, phase).astype(np.int8)
    info["ci_min"] = float(ci_min)
    info["ci_removed_frac"] = float(drop.mean())
    return phase


def _quats(euler_rad: np.ndarray, phase: np.ndarray) -> np.ndarray:
    q = quat_from_euler(euler_rad)
    q[phase == NOISE] = [1.0, 0.0, 0.0, 0.0]
    return q


def _loadtxt(path: str, what: str, **kw) -> np.ndarray:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.loadtxt(path, ndmin=2, **kw)
    except ValueError as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: truncated or corrupt {what} ({msg})") from None
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the map is empty (no data rows)")
    return data


# ------------------------------------------------------------------------------------------------- .ang

def _read_ang_header(path: str) -> tuple[list[str], dict, list[dict], int, int | None]:
    """(header lines, KEY: value fields, phases, data row count, columns) of an .ang file; also checks that
    the file is complete (every data row has the same number of columns, as many rows as the header says)."""
    header: list[str] = []
    fields: dict[str, str] = {}
    phases: list[dict] = []
    ncols = None
    n_rows = 0
    last_len = None
    bad_row = None
    with open(path, "r", errors="replace") as f:
        for line in f:
            if line.startswith("#"):
                header.append(line.rstrip("\r\n"))
                body = line[1:].strip()
                m = re.match(r"([A-Za-z_][\w-]*)\s*:?\s*(.*)$", body)
                if not m:
                    continue
                key, val = m.group(1), m.group(2).strip()
                if key == "Phase":
                    try:
                        phases.append({"id": int(val.split()[0]), "name": "", "symmetry": None, "lattice": None})
                    except (ValueError, IndexError):
                        pass
                elif key == "MaterialName" and phases:
                    phases[-1]["name"] = val
                elif key == "Symmetry" and phases:
                    phases[-1]["symmetry"] = val.split()[0] if val else None
                elif key == "LatticeConstants" and phases:
                    try:
                        lat = [float(v) for v in val.replace("\t", " ").split()[:6]]
                        phases[-1]["lattice"] = lat if len(lat) == 6 else None
                    except ValueError:
                        pass
                elif ":" in body:
                    fields[key.upper()] = val
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
    if not header:
        raise ValueError(f"{path}: not an .ang file (no '#' header lines)")
    if n_rows == 0:
        raise ValueError(f"{path}: the map is empty (no data rows)")
    if bad_row is not None or (ncols is not None and last_len != ncols):
        raise ValueError(f"{path}: truncated or corrupt .ang (data row {bad_row or n_rows} has a different "
                         f"number of columns)")
    try:
        nrows = int(fields["NROWS"])
        odd = int(fields["NCOLS_ODD"])
        even = int(fields.get("NCOLS_EVEN", odd))
    except (KeyError, ValueError):
        return header, fields, phases, n_rows, ncols
    if "hex" in fields.get("GRID", "").lower():
        expected = (nrows + 1) // 2 * odd + nrows // 2 * even
    else:
        expected = nrows * odd
    if n_rows < expected:
        raise ValueError(f"{path}: truncated .ang ({n_rows} data rows, header announces {expected})")
    return header, fields, phases, n_rows, ncols


def _phase_labels(ids: np.ndarray, indexed: np.ndarray, phases: list[dict]) -> np.ndarray:
    """Labels 0..3 for the file's phase ids. Ids that match a header phase take its class; when none match
    but there are as many distinct ids as header phases, they are paired in sorted order (the TSL
    single-phase files write phase 0 for a header "Phase 1", as orix reads them); other ids are "other"."""
    label_of = {}
    for ph in phases:
        lat = ph.get("lattice")
        cubic = None if ph.get("symmetry") is None else is_cubic_symmetry(ph["symmetry"])
        if lat is not None:
            cubic = cubic is not False and _cubic_lattice(lat)
        label_of[ph["id"]] = classify_phase(float(lat[0]) if lat is not None else None, ph.get("name", ""), cubic)
    data_ids = np.unique(ids[indexed])
    hdr = sorted(label_of)
    mapping = {int(i): label_of.get(int(i), OTHER) for i in data_ids}
    if len(hdr) and not set(int(i) for i in data_ids) <= set(hdr) and len(data_ids) == len(hdr):
        mapping = {int(i): label_of[h] for i, h in zip(sorted(data_ids), hdr)}
    out = np.zeros(len(ids), np.int8)
    for i, lab in mapping.items():
        out[indexed & (ids == i)] = lab
    return out


def _load_ang(path: str, ci_min: float | None) -> OrientationMap:
    header, fields, phases, _, ncols = _read_ang_header(path)
    text = "\n".join(header)
    vendor = "tsl"
    if "EMsoft" in text:
        vendor = "emsoft"
    elif "ACOM" in text:
        vendor = "astar"
    elif "Column names: phi1, Phi, phi2" in text:
        vendor = "orix"
    if ncols is None or ncols < 8:
        raise ValueError(f"{path}: an .ang data row has {ncols} columns; expected at least 8 "
                         f"(phi1 PHI phi2 x y IQ CI phase ...)")
    data = _loadtxt(path, ".ang", comments="#", usecols=range(8))
    ids = np.rint(data[:, 7]).astype(np.int64)
    ci = data[:, 6] if vendor in ("tsl", "orix") else None          # EMsoft: dot product; ASTAR: reliability
    iq = data[:, 5] if vendor in ("tsl", "orix", "emsoft") else np.ones(len(data))  # ASTAR: correlation index
    indexed = ids >= 0
    if ci is not None:
        indexed &= ci != -1
    info = {"format": f"ang ({vendor})"}
    phase = _phase_labels(ids, indexed, phases)
    phase = _apply_ci(path, phase, ci, ci_min, f".ang file ({vendor}: column 7 is not a confidence index)"
                      if vendor in ("emsoft", "astar") else ".ang file", info)
    q = _quats(data[:, :3], phase)
    step = row = None
    try:
        step = float(fields["XSTEP"])
        row = float(fields["YSTEP"])
    except (KeyError, ValueError):
        pass
    hexgrid = ("hex" in fields["GRID"].lower()) if "GRID" in fields else None
    if hexgrid:
        row = None  # the row spacing of a hex grid is step * sqrt(3) / 2, not a pixel size
    return _finish(path, data[:, 3], data[:, 4], q, phase, iq, ci, step=step, row=row, hexgrid=hexgrid, info=info)


# ------------------------------------------------------------------------------------------------- .ctf

def _load_ctf(path: str, ci_min: float | None) -> OrientationMap:
    header: list[str] = []
    columns = None
    with open(path, "r", errors="replace") as f:
        for i, line in enumerate(f):
            if line.startswith("Phase\tX\tY") or line.startswith("Phase X Y"):
                columns = line.split()
                skip = i + 1
                break
            header.append(line.rstrip("\r\n"))
            if i > 1000:
                break
    if columns is None:
        raise ValueError(f"{path}: not a .ctf file (no 'Phase X Y ...' column header line)")
    fields: dict[str, str] = {}
    phases: list[dict] = []
    n_phases = None
    for k, line in enumerate(header):
        parts = line.split("\t")
        if n_phases is not None and len(phases) < n_phases:
            try:
                lat = [float(v) for v in parts[0].split(";")] + [float(v) for v in parts[1].split(";")]
            except (ValueError, IndexError):
                lat = None
            laue = parts[3].strip() if len(parts) > 3 else None
            phases.append({"id": len(phases) + 1, "name": parts[2].strip() if len(parts) > 2 else "",
                           "lattice": lat if lat is not None and len(lat) == 6 else None,
                           "cubic": None if laue is None or not laue else laue in _CUBIC_LAUE_CTF})
            continue
        if parts[0].strip() == "Phases" and len(parts) > 1:
            try:
                n_phases = int(parts[1])
            except ValueError:
                n_phases = 0
            continue
        if len(parts) > 1:
            fields[parts[0].strip()] = parts[1].strip()
    data = _loadtxt(path, ".ctf", skiprows=skip)
    if data.shape[1] != len(columns):
        raise ValueError(f"{path}: truncated or corrupt .ctf ({data.shape[1]} data columns, the column header "
                         f"names {len(columns)})")
    col = {c: data[:, i] for i, c in enumerate(columns)}
    need = ["Phase", "X", "Y", "Euler1", "Euler2", "Euler3"]
    missing = [c for c in need if c not in col]
    if missing:
        raise ValueError(f"{path}: .ctf column header {' '.join(columns)!r} lacks {', '.join(missing)}")
    ids = np.rint(col["Phase"]).astype(np.int64)
    label_of = {}
    for ph in phases:
        lat = ph["lattice"]
        cubic = ph["cubic"]
        if lat is not None:
            cubic = cubic is not False and _cubic_lattice(lat)
        label_of[ph["id"]] = classify_phase(lat[0] if lat is not None else None, ph["name"], cubic)
    phase = np.zeros(len(ids), np.int8)
    for i in np.unique(ids[ids > 0]):
        phase[ids == i] = label_of.get(int(i), OTHER)
    emsoft = any("EMsoft" in h for h in header)
    iq_key = "BS" if emsoft else "BC"  # EMsoft writes IQ into the BS column and OSM into BC
    iq = col.get(iq_key, np.ones(len(ids)))
    info = {"format": "ctf"}
    phase = _apply_ci(path, phase, None, ci_min, ".ctf file (Oxford files carry MAD and band contrast, not CI)", info)
    q = _quats(np.radians(np.column_stack([col["Euler1"], col["Euler2"], col["Euler3"]])), phase)
    step = row = None
    try:
        step, row = float(fields["XStep"]), float(fields["YStep"])
    except (KeyError, ValueError):
        pass
    return _finish(path, col["X"], col["Y"], q, phase, iq, None, step=step, row=row, hexgrid=False, info=info)


# ------------------------------------------------------------------------------------------------- .txt

def _load_oxford_txt(path: str, head: str, phase_map: dict[int, int] | None, ci_min: float | None) -> OrientationMap:
    cols = [c.strip() for c in head.rstrip("\r\n").split("\t") if c.strip()]
    low = [c.lower() for c in cols]
    data = _loadtxt(path, "Oxford text export", delimiter="\t", skiprows=1, usecols=range(len(cols)))
    c = {name: data[:, i] for i, name in enumerate(low)}
    pid = c["phase"].astype(np.int64)
    phase_map = phase_map or {1: BCC}
    phase = np.zeros(len(pid), np.int8)
    for k in np.unique(pid):
        if k > 0:
            phase[pid == k] = phase_map.get(int(k), OTHER)
    info = {"format": "oxford txt"}
    phase = _apply_ci(path, phase, None, ci_min, "Oxford text export (it carries MAD and band contrast, not CI)", info)
    q = _quats(np.radians(np.column_stack([c["euler1"], c["euler2"], c["euler3"]])), phase)
    iq = c["bc"] if "bc" in c else np.ones(len(pid))  # band contrast; never MAD (an inverse quality measure)
    return _finish(path, c["x"], c["y"], q, phase, iq, None, info=info)


_GRAIN_FILE_COLUMN = re.compile(r"^#\s*Column\s+(\d+)(?:\s*-\s*(\d+))?\s*:\s*(.*)$", re.I)


def _load_grain_file(path: str, header: list[str], phase_map: dict[int, int] | None,
                     ci_min: float | None) -> OrientationMap:
    """TSL/EDAX OIM grain file (type 1): '# Column 1-3: phi1, PHI, phi2 ...' header lines, then rows
    ``phi1 PHI phi2 x y IQ CI Fit grainID edge phase`` with the phase as a name (may contain spaces) or id."""
    desc: dict[int, str] = {}
    for line in header:
        m = _GRAIN_FILE_COLUMN.match(line.strip())
        if m:
            a = int(m.group(1))
            b = int(m.group(2) or a)
            for k in range(a, b + 1):
                desc[k] = m.group(3).lower()

    def find(*words, default=None):
        for k, d in sorted(desc.items()):
            if any(w in d for w in words):
                return k - 1
        return default

    i_x, i_iq, i_ci, i_phase = find("x, y", "x,y", default=3), find("iq", "image quality"), find("ci", "confidence"), \
        find("phase")
    if i_phase is None or i_iq is None or i_ci is None:
        raise ValueError(f"{path}: OIM grain file header lacks the IQ, CI or phase column description "
                         f"(found: {'; '.join(h.strip() for h in header if 'Column' in h)[:200]!r})")
    n_num = i_phase  # every column before the phase is numeric
    data = _loadtxt(path, "OIM grain file", comments="#", usecols=range(n_num))
    with open(path, "r", errors="replace") as f:
        text = f.read()
    tails = re.findall(r"^[ \t]*(?:[^#\s]\S*[ \t]+)" + "{%d}" % n_num + r"(\S.*?)[ \t]*\r?$", text, re.M)
    if len(tails) != len(data):
        raise ValueError(f"{path}: truncated or corrupt OIM grain file ({len(data)} data rows, {len(tails)} with a "
                         f"phase column)")
    names, inv = np.unique(np.array(tails), return_inverse=True)
    ci = data[:, i_ci]
    indexed = ci != -1
    phase = np.zeros(len(data), np.int8)
    numeric = all(re.fullmatch(r"-?\d+", n) for n in names)
    if numeric:
        ids = np.array([int(n) for n in names])[inv]
        phase_map = phase_map or ({int(ids[0]): BCC} if len(names) == 1 else {1: BCC})
        for k in np.unique(ids):
            if k >= 0:
                phase[indexed & (ids == k)] = phase_map.get(int(k), OTHER)
    else:
        for k, n in enumerate(names):
            phase[indexed & (inv == k)] = classify_phase(None, n)
    info = {"format": "oim grain file"}
    phase = _apply_ci(path, phase, ci, ci_min, "grain file", info)
    q = _quats(data[:, :3], phase)
    return _finish(path, data[:, i_x], data[:, i_x + 1], q, phase, data[:, i_iq], ci, info=info)


def _load_txt(path: str, phase_map: dict[int, int] | None, ci_min: float | None) -> OrientationMap:
    header: list[str] = []
    first = ""
    with open(path, "r", errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                first = line
                break
            header.append(line.rstrip("\r\n"))
            if len(header) > 1000:
                break
    if header and any(_GRAIN_FILE_COLUMN.match(h.strip()) for h in header):
        return _load_grain_file(path, header, phase_map, ci_min)
    cols = [c.strip().lower() for c in first.strip().split("\t") if c.strip()]
    need = ["phase", "x", "y", "euler1", "euler2", "euler3"]
    if not header and all(c in cols for c in need):
        return _load_oxford_txt(path, first, phase_map, ci_min)
    quoted = (header[0] if header else first).rstrip("\r\n")[:120]
    raise ValueError(f"{path}: not an Oxford EBSD text export (tab-separated header with Phase X Y Euler1 Euler2 "
                     f"Euler3) nor an OIM grain file ('# Column 1-3: phi1, PHI, phi2' header); its first line "
                     f"reads {quoted!r}")


# bytes of text files: tab, newlines, form feed, printable ASCII, and 0x80-0xff (UTF-8 or Latin-1: um, Angstrom)
_TEXT_BYTES = bytes([9, 10, 11, 12, 13, *range(32, 127), *range(128, 256)])


def _looks_binary(path: str) -> bool:
    """Whether the first 64 KiB hold a NUL byte or more than 1 % other control bytes (not a text file)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return b"\x00" in head or len(head.translate(None, _TEXT_BYTES)) > 0.01 * len(head)


def load_map(path: str, phase_map: dict[int, int] | None = None, ci_min: float | None = None) -> OrientationMap:
    """Load a real EBSD map (.ang, .ctf, Oxford .txt, OIM grain-file .txt) onto a square grid.

    ``phase_map`` (files with numeric phase ids and no lattice constants: Oxford .txt, numeric OIM grain
    files): file phase id -> label 1 BCC / 2 FCC / 3 other; default ``{1: BCC}``, other ids -> other.
    ``ci_min``: points with a confidence index below it become noise (.ang and grain files; others raise);
    ``omap.info["ci_removed_frac"]`` is the share of points it removed. Raises FileNotFoundError if the file
    does not exist and ValueError naming the file and the problem for unsupported, truncated, corrupt or
    empty files.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not an EBSD map")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty")
    if ci_min is not None and not np.isfinite(ci_min):
        raise ValueError(f"{path}: ci_min must be a finite number, got {ci_min!r}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".ang", ".ctf", ".txt"):
        raise ValueError(f"{path}: unsupported file type {ext or '(none)'!r}; expected .ang, .ctf or .txt "
                         f"(Oxford export or OIM grain file)")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path}: cannot read the file (permission denied)")
    if _looks_binary(path):
        raise ValueError(f"{path}: not a text EBSD map (the file holds binary data); expected a text .ang, .ctf "
                         f"or .txt export")
    if ext == ".ang":
        omap = _load_ang(path, ci_min)
    elif ext == ".ctf":
        omap = _load_ctf(path, ci_min)
    else:
        omap = _load_txt(path, phase_map, ci_min)
    if not (omap.phase > 0).any():
        raise ValueError(f"{path}: no indexed points in the map")
    return omap
