"""The `qgan` command: `qgan data ...` (dataset tools), `qgan train ...` (one trial), `qgan evaluate RUN_DIR`.

Each sub-command module exposes `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
Errors a user can fix (bad input files, bad values) are raised as ValueError / FileNotFoundError and printed
here as one line, with exit status 2.
"""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    from qgan.data import cli as data_cli

    data_cli.register(sub)
    from qgan import train_cli

    train_cli.register(sub)
    from qgan import evaluate_cli

    evaluate_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed sub-command; a user error becomes one line `qgan: error: ...` and exit status 2."""
    from qgan.cli_errors import run_cli

    return run_cli("qgan", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
