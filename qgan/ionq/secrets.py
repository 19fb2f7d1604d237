"""The IonQ API token: where it comes from, and how it is kept out of every message this process reports.

The token is read from ``$IONQ_API_KEY`` (or a file named by ``$IONQ_API_KEY_FILE``), is never logged, and is
scrubbed from every exception message the `qgan.ionq` modules (and the QPU gateway) raise.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Iterable

TOKEN_ENV = "IONQ_API_KEY"
TOKEN_FILE_ENV = "IONQ_API_KEY_FILE"

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret so that `scrub` removes it from any text this process reports."""
    if value and len(value) >= 4:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def scrub(text: Any, secrets: Iterable[str] = ()) -> str:
    """`str(text)` with every registered (and given) secret replaced by ``***``."""
    out = str(text)
    with _SECRETS_LOCK:
        known = set(_SECRETS)
    for s in known.union(s for s in secrets if s):
        if s in out:
            out = out.replace(s, "***")
    return out


def resolve_token(token: str | None = None) -> str:
    """The IonQ API token: the argument, else ``$IONQ_API_KEY``, else the file named by ``$IONQ_API_KEY_FILE``.

    Raises ValueError (without the token) when none is configured.
    """
    if not token:
        token = os.environ.get(TOKEN_ENV)
    if not token and os.environ.get(TOKEN_FILE_ENV):
        path = os.environ[TOKEN_FILE_ENV]
        try:
            with open(path, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise ValueError(f"cannot read the IonQ token file named by ${TOKEN_FILE_ENV}: {exc.strerror}") from None
    if not token:
        raise ValueError(f"no IonQ API token: set ${TOKEN_ENV} (or ${TOKEN_FILE_ENV}) in the environment")
    register_secret(token)
    return token
