"""The one way every command of the project ends: a user error is one line and exit 2, Ctrl-C is exit 130.

    sys.exit(run_cli("sweeps", lambda: run_grid(phase, argv), interrupted="continue with --resume"))

A user error is anything the user can fix by changing the input: ValueError, FileNotFoundError,
IsADirectoryError, PermissionError. It prints `<prog>: error: <message>` on stderr. With QGAN_DEBUG set in the
environment the exception propagates instead, with its traceback. Never imports torch.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, IsADirectoryError, PermissionError)


def run_cli(prog: str, fn: Callable[[], int | None], interrupted: str | None = None) -> int:
    """Call fn() -> exit status; user errors -> one line and 2; KeyboardInterrupt -> 130 (plus a hint)."""
    try:
        return int(fn() or 0)
    except USER_ERRORS as exc:
        if os.environ.get("QGAN_DEBUG"):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted" + (f"; {interrupted}" if interrupted else ""), file=sys.stderr)
        return 130
