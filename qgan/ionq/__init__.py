"""Everything that talks to IonQ, one module per job (see docs/qpu.md):

- `qgan.ionq.secrets`: the API token (`resolve_token`) and scrubbing it from messages (`register_secret`, `scrub`);
- `qgan.ionq.wire`: circuits <-> IonQ JSON, circuit hashes, gate counts, QPU time, histograms -> counts -> samples;
- `qgan.ionq.client`: API errors (`IonQHTTPError`, `translate_error`), retries (`backoff_delay`,
  `call_with_retries`) and the single-attempt connection (`IonQConnection`, `JobStatus`);
- `qgan.ionq.reconcile`: `submit_reconciled`, the one policy for submitting a job (submit; if the outcome is
  uncertain, find the job by its name and adopt it, else resubmit or give up), used by the backend and the gateway;
- `qgan.ionq.backend`: `IonQBackend`, a `qgan.quantum.Backend` on the API directly;
- `qgan.ionq.emulator`: a local emulator of the API (``python -m qgan.ionq.emulator``; imported on first use here);
- `qgan.ionq.qiskit_thread`: `qiskit_call`, the one thread on which threaded users run qiskit.

Never imports ray.
"""
from __future__ import annotations

from qgan.ionq.backend import IonQBackend
from qgan.ionq.client import (
    DEFAULT_QPU,
    DEFAULT_URL,
    FINAL_STATES,
    URL_ENV,
    IonQConnection,
    IonQHTTPError,
    IonQJobFailed,
    JobStatus,
    backoff_delay,
    call_with_retries,
    translate_error,
)
from qgan.ionq.qiskit_thread import qiskit_call
from qgan.ionq.reconcile import Submission, SubmissionFailed, adoptable, submit_reconciled
from qgan.ionq.secrets import TOKEN_ENV, TOKEN_FILE_ENV, register_secret, resolve_token, scrub
from qgan.ionq.wire import (
    GATE_TIME_1Q_S,
    GATE_TIME_2Q_S,
    ONE_QUBIT_GATES,
    TWO_QUBIT_GATES,
    circuit_from_ionq_json,
    circuit_hash,
    circuit_to_ionq_json,
    counts_from_probabilities,
    expand_counts,
    gate_counts,
    qpu_seconds,
)

# The emulator is a server for tests and rehearsals: loaded on first use, so that importing qgan.ionq does not
# import it (and ``python -m qgan.ionq.emulator`` does not find itself imported before it runs).
_EMULATOR_NAMES = ("Emulator", "EmulatorConfig", "fetch_stats")


def __getattr__(name: str):
    if name in _EMULATOR_NAMES:
        from qgan.ionq import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IonQBackend",
    "IonQConnection",
    "IonQHTTPError",
    "IonQJobFailed",
    "JobStatus",
    "translate_error",
    "backoff_delay",
    "call_with_retries",
    "submit_reconciled",
    "Submission",
    "SubmissionFailed",
    "adoptable",
    "DEFAULT_QPU",
    "DEFAULT_URL",
    "FINAL_STATES",
    "URL_ENV",
    "qiskit_call",
    "register_secret",
    "resolve_token",
    "scrub",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "circuit_to_ionq_json",
    "circuit_from_ionq_json",
    "circuit_hash",
    "gate_counts",
    "qpu_seconds",
    "counts_from_probabilities",
    "expand_counts",
    "GATE_TIME_1Q_S",
    "GATE_TIME_2Q_S",
    "ONE_QUBIT_GATES",
    "TWO_QUBIT_GATES",
    *_EMULATOR_NAMES,
]
