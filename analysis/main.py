"""`python -m analysis RUN_DIR [--out DIR]`: a run's trials -> Parquet tables, statistics, figures, report.md.

Outputs (all written atomically under OUT, default RUN_DIR/analysis): trials.parquet, epochs.parquet,
improvement.parquet, pairs.parquet, winrate.parquet, figures/*.png|pdf, report.md, and, when RUN_DIR holds
`qgan evaluate`'s downstream.parquet, downstream_arms.parquet and downstream_pairs.parquet. Schemas: docs/analysis.md.
"""
from __future__ import annotations

import argparse
import difflib
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from qgan import results

from . import schema
from .collect import check_run_dir, collect
from .improvement import ALIASES, improvement_table
from .winrate import winrate_table

LIST_TYPES = {"list<int64>": pa.list_(pa.int64()), "list<float64>": pa.list_(pa.float64()),
              "list<string>": pa.list_(pa.string())}


def write_parquet(df: pd.DataFrame, path: Path, table: str | None = None) -> Path:
    """Write `df` to `path` atomically (temp file + os.replace); list columns get their schema type."""
    t = pa.Table.from_pandas(df, preserve_index=False)
    if table is not None:
        for name, dt, _ in schema.TABLES[table]:
            if dt in LIST_TYPES and name in t.column_names:
                i = t.column_names.index(name)
                col = pa.array([list(v) if v is not None else None for v in df[name].tolist()], type=LIST_TYPES[dt])
                t = t.set_column(i, pa.field(name, LIST_TYPES[dt]), col)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        pq.write_table(t, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(text: str, path: Path) -> Path:
    """Write text atomically."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _series_fields(improvement: pd.DataFrame) -> list[str]:
    """Fields other than phase/n that vary among paired settings (series of the RI-vs-n figure)."""
    paired = improvement[improvement["pair_status"] == "paired"]
    skip = set(schema.fixed_columns("improvement.parquet")) | {"phase", "n", "model"}
    out = []
    for c in paired.columns:
        if c in skip:
            continue
        if paired[c].astype(str).nunique(dropna=False) > 1:
            out.append(c)
    # training size first, like the paper's Fig. 4
    return sorted(out, key=lambda c: (c != "train_size", c not in ALIASES, c))


def check_out_dir(out: Path, default: bool) -> None:
    """Raise a one-line ValueError / PermissionError when `out` cannot become a writable folder (checked
    before anything is read or made)."""
    hint = "; choose another folder with --out DIR" if default else ""
    where = f"output folder {str(out)!r}"
    if out.exists() and not out.is_dir():
        raise ValueError(f"{where} is a file, not a folder{hint}")
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot make {where}: {str(parent)!r} is a file, not a folder{hint}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to {where}: {str(parent)!r} is not writable (permission denied){hint}")


def check_ignore_fields(names: tuple[str, ...], configs: dict[str, Any]) -> None:
    """Raise ValueError for an --ignore-field that no trial config holds (a typo would silently pair nothing)."""
    known = sorted({k for c in configs.values() if isinstance(c, dict) for k in c})
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"--ignore-field {name!r}: no trial config has this field{hint}")


def run_analysis(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, resamples: int = 10000,
                 confidence: float = 0.95, seed: int = 0, figures: bool = True, montage_samples: int = 4,
                 progress: bool = True, ignore_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """Analyse one run; returns {"files": [paths], "trials": n, "usable": n, "paired": n, "unpaired": n,
    "comparisons": n, "seconds": s, "out": path}.

    Raises FileNotFoundError (no run / no trial folder), ValueError (a file for RUN_DIR or --out, no usable
    trial, bad options, an output write that fails) or PermissionError (an unwritable --out), each with a
    one-line message."""
    t0 = time.perf_counter()
    if resamples < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"--confidence must lie in (0, 1), got {confidence}")
    run = Path(run_dir)
    check_run_dir(run)
    out = Path(out_dir) if out_dir is not None else run / "analysis"
    check_out_dir(out, default=out_dir is None)
    col = collect(run, exclude=out, progress=progress, extra_ignored=tuple(ignore_fields))
    check_ignore_fields(tuple(ignore_fields), col.configs)
    t = col.trials
    if not t["usable"].any():
        counts = t["status"].value_counts().to_dict()
        first = t["problem"].dropna().astype(str).head(3).tolist()
        raise ValueError(f"no completed trial in {str(run)!r}: {len(t)} trial folder(s) "
                         f"({', '.join(f'{v} {k}' for k, v in counts.items())}); e.g. {'; '.join(first)}")
    try:
        return _analyse(col, run, out, t0, resamples, confidence, seed, figures, montage_samples, progress,
                        tuple(ignore_fields))
    except OSError as exc:  # unwritable, read-only, full, vanished: one line (run_cli knows these two types)
        cls = PermissionError if isinstance(exc, PermissionError) else ValueError
        hint = "; choose another folder with --out DIR" if out_dir is None else ""
        raise cls(f"cannot write to output folder {str(out)!r}: {exc.strerror or exc}{hint}") from exc


def _analyse(col: Any, run: Path, out: Path, t0: float, resamples: int, confidence: float, seed: int,
             figures: bool, montage_samples: int, progress: bool, ignore_fields: tuple[str, ...]) -> dict[str, Any]:
    """Statistics, figures and report of collected trials, written under `out`."""
    t = col.trials
    out.mkdir(parents=True, exist_ok=True)
    files = [write_parquet(t, out / "trials.parquet", "trials.parquet"),
             write_parquet(col.epochs, out / "epochs.parquet", "epochs.parquet")]
    imp, pairs, notes = improvement_table(col, resamples=resamples, confidence=confidence, seed=seed,
                                          extra_ignored=tuple(ignore_fields))
    win = winrate_table(imp, pairs, confidence)
    files += [write_parquet(imp, out / "improvement.parquet", "improvement.parquet"),
              write_parquet(pairs, out / "pairs.parquet", "pairs.parquet"),
              write_parquet(win, out / "winrate.parquet", "winrate.parquet")]
    notes = col.warnings + notes
    figs: dict[str, list[Path]] = {}
    if figures:
        from .figures import make_figures

        prog = None
        if progress and len(imp) >= 10:
            from tqdm import tqdm

            prog = lambda rows: tqdm(rows, desc="figures", unit="setting")
        figs, fig_notes = make_figures(t, col.epochs, imp, run, out, _series_fields(imp), montage_samples, prog,
                                       confidence)
        notes += fig_notes
        files += [p for v in figs.values() for p in v]
    down_lines, down_files = _downstream(col, run, out, resamples, confidence, seed, figures)
    files += down_files
    from .report import write_report

    seconds = time.perf_counter() - t0
    text = write_report(out / "report.md", run, t, imp, win, figs, notes, seconds, resamples, confidence,
                        downstream=down_lines)
    files.append(write_text(text, out / "report.md"))
    return {"files": files, "trials": len(t), "usable": int(t["usable"].sum()),
            "paired": int((imp["pair_status"] == "paired").sum()), "unpaired": int((imp["pair_status"] != "paired").sum()),
            "comparisons": int(imp["comparison"].nunique()),
            "seconds": time.perf_counter() - t0, "out": out}


def _downstream(col: Any, run: Path, out: Path, resamples: int, confidence: float, seed: int,
                figures: bool) -> tuple[list[str], list[Path]]:
    """When RUN_DIR/downstream.parquet exists (`qgan evaluate`): its per-arm and paired tables, figure and
    report lines; ([], []) otherwise."""
    import numpy as np

    from . import downstream as ds

    df = ds.read_downstream(run)
    if df is None:
        return [], []
    rng = np.random.default_rng(seed)
    arms = ds.arm_table(df, rng, resamples, confidence)
    pairs = ds.pairs_table(df, col.configs, rng, resamples, confidence)
    files = [write_parquet(arms, out / "downstream_arms.parquet", "downstream_arms.parquet"),
             write_parquet(pairs, out / "downstream_pairs.parquet", "downstream_pairs.parquet")]
    headroom = results.augmentation_headroom(df)
    rel = None
    if figures:
        fig = ds.downstream_figure(arms, headroom)
        if fig is not None:
            from .figures import save_figure

            (out / "figures").mkdir(parents=True, exist_ok=True)
            paths = save_figure(fig, out / "figures" / "downstream")
            files += paths
            rel = paths[0].relative_to(out).as_posix()
    return ds.report_section(arms, pairs, rel, confidence, headroom), files


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory (trial folders with config.json + summary.json anywhere below)")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default RUN_DIR/analysis)")
    p.add_argument("--bootstrap", type=int, default=10000, metavar="N", help="bootstrap resamples for the RI CI (default 10000)")
    p.add_argument("--confidence", type=float, default=0.95, metavar="C", help="confidence level of CIs (default 0.95)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the bootstrap generator (default 0)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument("--montage-samples", type=int, default=4, metavar="K", help="images per model in the montages (0: none)")
    p.add_argument("--ignore-field", action="append", default=[], metavar="NAME",
                   help="drop config field NAME from every pairing key, like the fields an arm ignores (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, no summary line")


def handler(args: argparse.Namespace) -> int:
    res = run_analysis(args.run_dir, args.out, resamples=args.bootstrap, confidence=args.confidence,
                       seed=args.seed, figures=not args.no_figures, montage_samples=args.montage_samples,
                       progress=not args.quiet, ignore_fields=tuple(args.ignore_field))
    if not args.quiet:
        print(f"analysis: {res['trials']} trials ({res['usable']} usable), {res['paired']} paired and "
              f"{res['unpaired']} unpaired settings over {res['comparisons']} comparison(s); "
              f"{len(res['files'])} files in {res['out']} "
              f"({res['seconds']:.1f} s); see {Path(res['out']) / 'report.md'}")
    return 0


def register(subparsers: Any) -> None:
    """Add an `analyze` sub-command to an argparse dispatcher (`qgan` itself does not call this)."""
    p = subparsers.add_parser("analyze", help="turn a run directory into tables, statistics, figures and a report",
                              description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from qgan.cli_errors import run_cli

    return run_cli("analysis", lambda: handler(args))
