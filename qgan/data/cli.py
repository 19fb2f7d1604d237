"""``qgan data ...``: synth, import, show, stats, calibrate (see docs/data.md)."""
from __future__ import annotations

import argparse
import os
import sys


def _check_out(path: str, ext: tuple[str, ...]) -> str:
    """An output file: right extension, not a directory, in an existing writable directory (checked before work)."""
    if not path.lower().endswith(ext):
        raise ValueError(f"{path}: output must end in {' or '.join(ext)}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory; the output must be a file")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"{path}: directory {d} does not exist")
    if not os.access(d, os.W_OK | os.X_OK):
        raise PermissionError(f"{path}: cannot write there (directory {d} is not writable)")
    return path


def _cmd_synth(args) -> int:
    from .dataset import build_synthetic, save_dataset
    from .synthetic import PHASES

    if args.phase not in PHASES:
        raise ValueError(f"unknown phase {args.phase!r}; expected one of {', '.join(PHASES)}")
    if args.count < 1:
        raise ValueError(f"--count must be positive, got {args.count}")
    _check_out(args.out, (".npz",))
    workers = args.workers
    if workers is None:
        workers = (os.cpu_count() or 1) if args.count > 1000 else 1
    if workers < 1:
        raise ValueError(f"--workers must be positive, got {workers}")
    ds = build_synthetic(args.phase, args.count, args.seed, workers=workers, progress=not args.quiet,
                         edges_like=args.edges_like)
    save_dataset(args.out, ds)
    how = f", maps cut like {args.edges_like}" if args.edges_like else ""
    print(f"wrote {args.out}: {len(ds)} {args.phase} patches (seed {args.seed}{how})")
    return 0


def _cmd_import(args) -> int:
    import numpy as np

    from .channels import extract_patches
    from .dataset import DATA_VERSION, Dataset, save_dataset
    from .io import BCC, FCC, load_map

    _check_out(args.out, (".npz",))
    if not args.label:
        raise ValueError("--label must not be empty")
    phases = {"bcc": (BCC,), "fcc": (FCC,), "all": (BCC, FCC)}[args.centre_phase]
    parts, sources = [], []
    for path in args.maps:
        omap = load_map(path, ci_min=args.ci_min)
        p, info = extract_patches(omap, size=args.size, min_grain_px=args.min_grain_px, phases=phases,
                                  interior_only=args.interior_only, ks_aggregate=args.ks_aggregate,
                                  return_info=True)
        parts.append(p)
        src = {"file": os.path.abspath(path), "patches": int(len(p)), "shape": list(omap.shape),
               "step_um": omap.step, "pad_frac": float(info["pad_frac"].mean()) if len(p) else 0.0}
        if args.ci_min is not None:
            src["ci_removed_frac"] = omap.info["ci_removed_frac"]
            if not args.quiet:
                print(f"{path}: --ci-min {args.ci_min:g} made {100 * omap.info['ci_removed_frac']:.1f} % of the "
                      f"points noise")
        if not args.quiet:
            print(f"{path}: {len(p)} patches, {100 * src['pad_frac']:.1f} % of their pixels beyond the map edge")
        sources.append(src)
    images = np.concatenate(parts) if parts else np.zeros((0, 5, args.size, args.size), np.uint8)
    if len(images) == 0:
        raise ValueError("no patches: no grain of at least --min-grain-px pixels with the chosen centre phase"
                         + (" whose window lies inside the map (--interior-only)" if args.interior_only else ""))
    meta = {"source": "import", "maps": sources, "label": args.label, "min_grain_px": args.min_grain_px,
            "centre_phase": args.centre_phase, "interior_only": bool(args.interior_only),
            "ks_aggregate": args.ks_aggregate, "ci_min": args.ci_min, "size": args.size, "version": DATA_VERSION}
    save_dataset(args.out, Dataset(images, np.full(len(images), args.label), meta))
    print(f"wrote {args.out}: {len(images)} patches labelled {args.label!r} from {len(args.maps)} map(s)")
    return 0


def _cmd_show(args) -> int:
    from .dataset import load_dataset
    from .plots import montage

    if args.n < 1:
        raise ValueError(f"--n must be positive, got {args.n}")
    _check_out(args.out, (".png", ".pdf", ".svg"))
    ds = load_dataset(args.file)
    if len(ds) == 0:
        raise ValueError(f"{args.file}: the dataset holds no images")
    montage(ds, args.out, n=args.n, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def _cmd_stats(args) -> int:
    from .calibrate import dataset_statistics, format_stats, map_statistics
    from .dataset import load_dataset
    from .io import load_map

    if args.file.lower().endswith(".npz"):
        if args.ci_min is not None:
            raise ValueError(f"{args.file}: --ci-min applies to map files, not to a dataset")
        stats = dataset_statistics(load_dataset(args.file))
    else:
        omap = load_map(args.file, ci_min=args.ci_min)
        stats = map_statistics(omap, ks_aggregate=args.ks_aggregate)
        if args.ci_min is not None:
            stats["ci_removed_frac"] = omap.info["ci_removed_frac"]
    print(format_stats(args.file, stats))
    return 0


def _cmd_calibrate(args) -> int:
    from .calibrate import calibration_table, format_table, shared_ebsd_dir, write_table

    if args.maps < 1:
        raise ValueError(f"--maps must be positive, got {args.maps}")
    if args.out:
        _check_out(args.out, (".md", ".csv"))
    maps_dir = shared_ebsd_dir(args.shared_dir)
    if not os.path.isdir(maps_dir):
        raise FileNotFoundError(f"{maps_dir}: no such directory of real EBSD maps (--shared-dir or $QGAN_SHARED_DIR)")
    rows = calibration_table(shared_dir=args.shared_dir, n_maps=args.maps, seed=args.seed, progress=not args.quiet)
    print(format_table(rows))
    if args.out:
        write_table(rows, args.out)
        print(f"wrote {args.out}")
    failed = [r for r in rows if not r["pass"]]
    return 1 if (failed and args.strict) else 0


def register(subparsers) -> None:
    """Add ``qgan data`` and its sub-commands to the ``qgan`` dispatcher."""
    p = subparsers.add_parser("data", help="EBSD datasets: synthesise, import real maps, show, stats, calibrate",
                              description="EBSD datasets: synthesise, import real maps, show, stats, calibrate")
    sub = p.add_subparsers(dest="data_command", required=True)

    s = sub.add_parser("synth", help="synthetic patches of one phase -> .npz")
    s.add_argument("--phase", required=True, help="ferrite or bainite")
    s.add_argument("--count", type=int, required=True, help="number of patches")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output .npz")
    s.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs for large counts)")
    s.add_argument("--edges-like", default=None, metavar="REAL.npz",
                   help="cut the synthetic maps to the sizes of the maps an imported dataset came from and keep "
                        "edge patches (padded), so both have the same edge statistics (default: interior patches)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_synth)

    s = sub.add_parser("import", help="real EBSD maps (.ang/.ctf/Oxford .txt) -> patches .npz")
    s.add_argument("maps", nargs="+", metavar="MAP")
    s.add_argument("--label", required=True, help="label stored for every patch (e.g. ferrite)")
    s.add_argument("--out", required=True, help="output .npz")
    s.add_argument("--size", type=int, default=60, help="patch size in pixels")
    s.add_argument("--min-grain-px", type=int, default=20, help="smallest grain that gets a patch")
    s.add_argument("--centre-phase", choices=("bcc", "fcc", "all"), default="bcc",
                   help="phase of the central grains to use")
    s.add_argument("--interior-only", action="store_true",
                   help="only windows that lie fully inside the map (no edge padding, like the default synthetic data)")
    s.add_argument("--ci-min", type=float, default=None,
                   help="points with a confidence index below this become noise (.ang / OIM grain files; default off)")
    s.add_argument("--ks-aggregate", choices=("boundary_mean", "min"), default="boundary_mean",
                   help="KS channel: boundary-length-weighted mean or minimum over a grain's neighbours")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_import)

    s = sub.add_parser("show", help="montage of a dataset: labelled colour maps per channel")
    s.add_argument("file", metavar="FILE.npz")
    s.add_argument("--out", required=True, help="output image (.png/.pdf/.svg)")
    s.add_argument("--n", type=int, default=6, help="patches shown")
    s.add_argument("--seed", type=int, default=0, help="which patches (seeded choice)")
    s.set_defaults(func=_cmd_show)

    s = sub.add_parser("stats", help="channel statistics of a dataset .npz or a map file")
    s.add_argument("file", metavar="FILE.npz|MAP")
    s.add_argument("--ci-min", type=float, default=None, help="map files: confidence-index threshold (default off)")
    s.add_argument("--ks-aggregate", choices=("boundary_mean", "min"), default="boundary_mean",
                   help="map files: KS channel aggregate")
    s.set_defaults(func=_cmd_stats)

    s = sub.add_parser("calibrate", help="synthetic vs real channel statistics table")
    s.add_argument("--out", default=None, help="also write the table (.md or .csv)")
    s.add_argument("--shared-dir", default=None, help="folder with the real maps (default: <repo>/../shared/data/ebsd "
                   "or $QGAN_SHARED_DIR/data/ebsd)")
    s.add_argument("--maps", type=int, default=6, help="synthetic maps per phase")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--strict", action="store_true", help="exit 1 if a row fails its tolerance")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_calibrate)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m qgan.data.cli ...``), same error handling as ``qgan``."""
    parser = argparse.ArgumentParser(prog="qgan")
    register(parser.add_subparsers(dest="command", required=True))
    from qgan.cli import run_command

    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
