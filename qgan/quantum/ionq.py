"""IonQ backend: a thin, careful wrapper over qiskit-ionq's provider and REST client.

What qiskit-ionq 1.1.1 sends (studied from its source; the emulator in `qgan.quantum.emulator` serves the same):

- base URL ``https://api.ionq.co/v0.4`` (``IonQProvider(token, url=...)`` or ``$IONQ_API_URL``), header
  ``Authorization: apiKey <token>``;
- ``POST {url}/jobs`` with ``{"type": "ionq.circuit.v1", "backend": "qpu.aria-2" | "simulator", "shots": S,
  "name": NAME, "input": {"gateset": "native", "qubits": n, "circuit": [{"gate": "gpi2", "target": 0,
  "phase": 0.25}, {"gate": "ms", "targets": [0, 1], "phases": [0, 0], "angle": 0.1}, ...]},
  "metadata": {"shots": "S", "qiskit_header": ...}}`` -> ``{"id": ID, "status": "submitted"}``;
- ``GET {url}/jobs/{id}`` -> ``{"status": "submitted|ready|started|completed|failed|canceled", "stats": {...},
  "results": {"probabilities": {"url": "/v0.4/jobs/{id}/results/probabilities"}}, ...}``;
- ``GET`` of that results URL -> ``{"<basis index>": probability}`` (bit q of the index = qubit q);
- ``PUT {url}/jobs/{id}/status/cancel``; ``GET {url}/jobs?limit=&next=`` lists jobs (``{"jobs": [...], "next": c}``),
  used here to find a job by its client-side ``name``.

qiskit-ionq retries 429/502/503/504 *inside* ``submit_job`` with no delay, which could submit a job twice when a
response is lost. Here every HTTP call is made once (status, results, cancel: the undecorated client method,
``__wrapped__``; submission: the same request built by the client's own ``qiskit_to_ionq`` serializer and headers)
and the caller (``IonQBackend`` below, or the QPU gateway in `sweeps.gateway`) owns retries: 429 honours ``Retry-After``; a failed
submission whose outcome is unknown (5xx, timeout) is reconciled by looking the job up by name before resubmitting.

The API token is read from ``$IONQ_API_KEY`` (or a file named by ``$IONQ_API_KEY_FILE``), is never logged, and is
scrubbed from every exception message this module raises.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from qgan.quantum.backends import Backend

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.ionq.co/v0.4"
DEFAULT_QPU = "qpu.aria-2"
TOKEN_ENV = "IONQ_API_KEY"
TOKEN_FILE_ENV = "IONQ_API_KEY_FILE"
URL_ENV = "IONQ_API_URL"
# Aria-2 gate durations [R-paper, ref 3]: 1-qubit 135 us, 2-qubit 600 us.
GATE_TIME_1Q_S = 135e-6
GATE_TIME_2Q_S = 600e-6
ONE_QUBIT_GATES = {"gpi", "gpi2", "gz", "x", "y", "z", "h", "rx", "ry", "rz", "s", "si", "t", "ti", "v", "vi", "not"}
TWO_QUBIT_GATES = {"ms", "zz", "cnot", "cx", "xx", "yy", "swap"}
FINAL_STATES = ("completed", "failed", "canceled")

# qiskit's compiled core (mimalloc inside) crashed with SIGSEGV here when circuits were built from many short-lived
# threads (one per HTTP request in the emulator). Threaded users (the emulator, the gateway actor) therefore run all
# qiskit work on one long-lived thread through `qiskit_call`.
_QISKIT_POOL = None
_QISKIT_POOL_LOCK = threading.Lock()
_QISKIT_THREAD = "qgan-qiskit"


def qiskit_call(fn: Callable, *args, **kwargs):
    """Run `fn(*args, **kwargs)` on this process's single qiskit worker thread and return its result."""
    global _QISKIT_POOL
    if threading.current_thread().name.startswith(_QISKIT_THREAD):
        return fn(*args, **kwargs)
    with _QISKIT_POOL_LOCK:
        if _QISKIT_POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _QISKIT_POOL = ThreadPoolExecutor(1, thread_name_prefix=_QISKIT_THREAD)
        pool = _QISKIT_POOL
    return pool.submit(fn, *args, **kwargs).result()


_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------- secrets
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


# --------------------------------------------------------------------------------------------------- errors
class IonQHTTPError(RuntimeError):
    """One failed API call. `status` is the HTTP status (None for a connection error or timeout).

    retriable: worth trying again later (429, 5xx, connection errors).
    uncertain: for a submission, the server may have created the job anyway (5xx other than 429, timeout):
        look the job up by name before submitting again.
    retry_after: seconds from the ``Retry-After`` header, if any.
    """

    def __init__(self, message: str, status: int | None, retriable: bool, uncertain: bool,
                 retry_after: float | None = None):
        super().__init__(scrub(message))
        self.status = status
        self.retriable = retriable
        self.uncertain = uncertain
        self.retry_after = retry_after

    def __reduce__(self):
        return (IonQHTTPError, (str(self), self.status, self.retriable, self.uncertain, self.retry_after))


class IonQJobFailed(RuntimeError):
    """The API reports the job failed or was canceled."""


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def translate_error(exc: BaseException, submitting: bool = False) -> IonQHTTPError:
    """Map a qiskit-ionq / requests exception to an `IonQHTTPError` (token scrubbed)."""
    import requests
    from qiskit_ionq import exceptions as qx

    cause: BaseException = exc
    if isinstance(exc, qx.IonQRetriableError):
        cause = getattr(exc, "_cause", exc)
    if isinstance(cause, qx.IonQAPIError):
        status = int(cause.status_code)
        retriable = status == 429 or status >= 500 or status == 409
        uncertain = submitting and status >= 500
        msg = f"IonQ API error {status} ({cause.error_type}): {cause.message}"
        return IonQHTTPError(msg, status, retriable, uncertain, _retry_after(cause.headers))
    if isinstance(cause, requests.RequestException):
        # A refused connection never reached the server; anything else (timeouts, resets) might have.
        refused = isinstance(cause, requests.ConnectionError) and not isinstance(cause, requests.Timeout) \
            and "Connection refused" in str(cause)
        msg = f"IonQ API unreachable: {type(cause).__name__}"
        return IonQHTTPError(msg, None, True, submitting and not refused)
    return IonQHTTPError(f"IonQ client error: {type(exc).__name__}: {exc}", None, False, False)


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 60.0, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry `attempt` (0-based): full-jitter exponential backoff, at least Retry-After."""
    rng = rng or random
    delay = min(cap, base * (2.0 ** attempt))
    delay = delay * (0.5 + 0.5 * rng.random())
    if retry_after is not None:
        delay = max(delay, retry_after * (1.0 + 0.1 * rng.random()))
    return delay


# --------------------------------------------------------------------------------------------------- circuits
def circuit_to_ionq_json(circuit) -> tuple[list[dict], int]:
    """A native-gate qiskit circuit -> (IonQ ``input.circuit`` instruction list, qubit count).

    Uses qiskit-ionq's own serializer, so the JSON is exactly what the client would send.
    """
    from qiskit_ionq.helpers import qiskit_circ_to_ionq_circ

    instructions, _, _ = qiskit_call(qiskit_circ_to_ionq_circ, circuit, "native")
    instructions = json.loads(json.dumps(instructions, default=float))
    return instructions, int(circuit.num_qubits)


def circuit_hash(instructions: list[dict], qubits: int, shots: int) -> str:
    """A stable sha256 over the IonQ JSON of a circuit, its width and its shot count (angles to 12 digits)."""

    def norm(x):
        if isinstance(x, float):
            return round(x, 12)
        if isinstance(x, list):
            return [norm(v) for v in x]
        if isinstance(x, dict):
            return {k: norm(v) for k, v in sorted(x.items())}
        return x

    blob = json.dumps({"c": norm(instructions), "q": int(qubits), "s": int(shots)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def gate_counts(instructions: list[dict]) -> tuple[int, int]:
    """(1-qubit, 2-qubit) gate counts of an IonQ instruction list."""
    n1 = n2 = 0
    for ins in instructions:
        g = ins.get("gate")
        if g in TWO_QUBIT_GATES or len(ins.get("targets", [])) + len(ins.get("controls", [])) >= 2:
            n2 += 1
        else:
            n1 += 1
    return n1, n2


def qpu_seconds(n1q: int, n2q: int, shots: int) -> float:
    """Estimated QPU gate time (s) of one circuit: shots x (n1q x 135 us + n2q x 600 us) (Aria-2 gate times)."""
    return float(shots) * (n1q * GATE_TIME_1Q_S + n2q * GATE_TIME_2Q_S)


def circuit_from_ionq_json(instructions: list[dict], qubits: int, measure: bool = True):
    """IonQ instruction list -> qiskit QuantumCircuit (built on the qiskit thread; see `_circuit_from_ionq_json`)."""
    return qiskit_call(_circuit_from_ionq_json, instructions, qubits, measure)


def _circuit_from_ionq_json(instructions: list[dict], qubits: int, measure: bool = True):
    """IonQ instruction list -> qiskit QuantumCircuit (native gates as qiskit_ionq GPI/GPI2/MS/ZZ gates).

    Native phases are in turns; ``gz``/``rz`` angles in radians. A small QIS subset (x, y, z, h, rx, ry, rz, s, si,
    t, ti, v, vi, not/cnot/cx, xx/yy/zz, swap) is accepted too. Raises ValueError on anything else. With
    `measure`, qubit q is measured into clbit q.
    """
    from qiskit import QuantumCircuit
    from qiskit_ionq import GPI2Gate, GPIGate, MSGate, ZZGate

    if not isinstance(qubits, int) or qubits < 1 or qubits > 36:
        raise ValueError(f"bad qubit count {qubits!r}")
    qc = QuantumCircuit(qubits, qubits if measure else 0)

    def q(i):
        if not isinstance(i, int) or not 0 <= i < qubits:
            raise ValueError(f"qubit index {i!r} out of range for {qubits} qubits")
        return i

    for k, ins in enumerate(instructions):
        if not isinstance(ins, dict) or "gate" not in ins:
            raise ValueError(f"instruction {k} is not an object with a 'gate'")
        g = ins["gate"]
        targets = ins.get("targets")
        if targets is None and "target" in ins:
            targets = [ins["target"]]
        targets = [q(t) for t in (targets or [])]
        controls = [q(c) for c in ins.get("controls", [])]
        if not targets:
            raise ValueError(f"instruction {k} ({g}) has no target")
        if g == "gpi":
            qc.append(GPIGate(float(ins["phase"])), [targets[0]])
        elif g == "gpi2":
            qc.append(GPI2Gate(float(ins["phase"])), [targets[0]])
        elif g == "gz":
            qc.rz(2 * math.pi * float(ins.get("phase", 0.0)), targets[0])
        elif g == "ms":
            if len(targets) != 2:
                raise ValueError(f"instruction {k}: ms needs two targets")
            phases = ins.get("phases", [0.0, 0.0])
            angle = float(ins.get("angle", 0.25))
            if not 0.0 <= angle <= 0.25 + 1e-12:
                raise ValueError(f"instruction {k}: ms angle {angle} outside [0, 0.25]")
            qc.append(MSGate(float(phases[0]), float(phases[1]), angle), targets)
        elif g == "zz":
            qc.append(ZZGate(float(ins["angle"])), targets)
        elif g in ("x", "y", "z", "h", "s", "t") and not controls:
            getattr(qc, g)(targets[0])
        elif g in ("si", "ti"):
            (qc.sdg if g == "si" else qc.tdg)(targets[0])
        elif g in ("v", "vi"):
            (qc.sx if g == "v" else qc.sxdg)(targets[0])
        elif g in ("rx", "ry", "rz"):
            getattr(qc, g)(float(ins["rotation"]), targets[0])
        elif g in ("not", "cnot", "cx", "x") and controls:
            qc.mcx(controls, targets[0])
        elif g in ("xx", "yy") or (g == "zz" and "rotation" in ins):
            getattr(qc, "r" + g)(float(ins["rotation"]), targets[0], targets[1])
        elif g == "swap":
            qc.swap(targets[0], targets[1])
        else:
            raise ValueError(f"instruction {k}: unsupported gate {g!r}")
    if measure:
        qc.measure(range(qubits), range(qubits))
    return qc


def counts_from_probabilities(probs: dict, shots: int) -> dict[int, int]:
    """API histogram ``{"<index>": p}`` -> ``{index: count}`` with counts summing to `shots` (largest remainder)."""
    if not probs:
        return {}
    keys = [int(k) for k in probs]
    p = np.asarray([float(v) for v in probs.values()], dtype=np.float64)
    p = p / p.sum()
    raw = p * shots
    base = np.floor(raw + 1e-9).astype(np.int64)
    short = int(shots - base.sum())
    if short > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:short]] += 1
    return {k: int(c) for k, c in zip(keys, base) if c > 0}


def expand_counts(counts: dict[int, int], shots: int, generator) -> "torch.Tensor":
    """``{index: count}`` -> torch.long (shots,) basis indices in a random order drawn from `generator`."""
    import torch

    if sum(counts.values()) != shots:
        raise ValueError(f"counts sum to {sum(counts.values())}, expected {shots} shots")
    keys = torch.tensor(sorted(counts), dtype=torch.long)
    reps = torch.tensor([counts[int(k)] for k in keys], dtype=torch.long)
    idx = torch.repeat_interleave(keys, reps)
    perm = torch.randperm(shots, generator=generator)
    return idx[perm]


# --------------------------------------------------------------------------------------------------- connection
_ENV_LOCK = threading.Lock()


@dataclass
class JobStatus:
    """What one ``GET /jobs/{id}`` said."""

    status: str
    raw: dict

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES


class IonQConnection:
    """One IonQ API endpoint reached through qiskit-ionq's provider, backend and client; single-attempt calls.

    url: API base including the version prefix (default ``$IONQ_API_URL`` or https://api.ionq.co/v0.4).
    backend: API backend name ("qpu.aria-2", "simulator", ...). noise_model: simulator noise ("ideal", "aria-1").
    timeout: seconds per HTTP request.
    """

    def __init__(self, token: str | None = None, url: str | None = None, backend: str = DEFAULT_QPU,
                 noise_model: str | None = None, timeout: float = 30.0):
        from qiskit_ionq import IonQProvider

        self._token = resolve_token(token)
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.backend_name = backend
        self.noise_model = noise_model
        self.timeout = float(timeout)
        # qiskit-ionq asks `$IONQ_API_URL/backends/<name>` for the qubit count while building backends: point it at
        # our URL for the duration, so it never reaches out to the public API when we talk to an emulator.
        with _ENV_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            old = os.environ.get(URL_ENV)
            os.environ[URL_ENV] = self.url
            try:
                self._provider = qiskit_call(IonQProvider, token=self._token, url=self.url)
                self._backend = qiskit_call(self._provider.get_backend, backend, gateset="native")
            finally:
                if old is None:
                    os.environ.pop(URL_ENV, None)
                else:
                    os.environ[URL_ENV] = old
        if noise_model:
            self._backend.set_options(noise_model=noise_model)
        self._client = self._backend.client

    def __repr__(self) -> str:  # never shows the token
        return f"IonQConnection(url={self.url!r}, backend={self.backend_name!r})"

    def __reduce__(self):
        raise TypeError("IonQConnection holds a credential and is not picklable; create one where it is used")

    # -- calls (each makes exactly one HTTP request; errors -> IonQHTTPError) --------------------------------
    def submit(self, circuit, shots: int, name: str) -> str:
        """POST one native-gate circuit as a job named `name`; returns the remote job id."""
        from qiskit_ionq.ionq_job import IonQJob

        opts = {**self._backend.options.__dict__, "shots": int(shots), "name": name}
        job = qiskit_call(IonQJob, backend=self._backend, job_id=None, client=self._client, circuit=circuit,
                          passed_args=opts)
        # The request qiskit-ionq's `IonQClient.submit_job` makes (its serializer, headers and error mapping),
        # made exactly once; the serialization runs on the qiskit thread, the HTTP call on the caller's.
        import requests
        from qiskit_ionq import exceptions as qx
        from qiskit_ionq.helpers import qiskit_to_ionq

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                body = qiskit_call(qiskit_to_ionq, job.circuit, job.backend(), job._passed_args,
                                   job.extra_query_params, job.extra_metadata)
            res = requests.post(self._client.make_path("jobs"), data=body, headers=self._client.api_headers,
                                timeout=self.timeout)
            qx.IonQAPIError.raise_for_status(res)
            response = res.json()
        except Exception as exc:  # noqa: BLE001 - translated, token scrubbed
            raise translate_error(exc, submitting=True) from None
        job_id = response.get("id") if isinstance(response, dict) else None
        if not job_id:
            raise IonQHTTPError("IonQ API accepted a job but returned no id", 200, True, True)
        return str(job_id)

    def status(self, job_id: str) -> JobStatus:
        """GET the job; its API status string and the raw response."""
        retrieve_once = type(self._client).retrieve_job.__wrapped__
        try:
            raw = retrieve_once(self._client, job_id)
        except Exception as exc:  # noqa: BLE001
            raise translate_error(exc) from None
        return JobStatus(str(raw.get("status")), raw)

    def counts(self, status: JobStatus, shots: int) -> dict[int, int]:
        """Counts ``{basis index: count}`` of a completed job (bit q of the index = qubit q)."""
        if status.status != "completed":
            raise IonQJobFailed(f"job is {status.status}, not completed")
        results = status.raw.get("results") or {}
        url = (results.get("probabilities") or {}).get("url")
        if not url:
            raise IonQHTTPError("completed job has no probabilities URL", 200, True, False)
        get_once = type(self._client).get_results.__wrapped__
        try:
            probs = get_once(self._client, url)
        except Exception as exc:  # noqa: BLE001
            raise translate_error(exc) from None
        probs = dict(probs)
        if self.backend_name == "simulator":
            # The cloud simulator returns exact probabilities: draw the shots (seeded by the job id, so a
            # re-fetch gives the same counts), as qiskit-ionq does client-side.
            seed = int(hashlib.sha256(str(status.raw.get("id", "")).encode()).hexdigest()[:15], 16)
            keys = list(probs)
            p = np.asarray([float(probs[k]) for k in keys])
            draws = np.random.default_rng(seed).multinomial(shots, p / p.sum())
            return {int(k): int(c) for k, c in zip(keys, draws) if c > 0}
        return counts_from_probabilities(probs, shots)

    def cancel(self, job_id: str) -> None:
        cancel_once = type(self._client).cancel_job.__wrapped__
        try:
            cancel_once(self._client, job_id)
        except Exception as exc:  # noqa: BLE001
            raise translate_error(exc) from None

    def list_jobs(self, limit: int = 100, next_token: str | None = None) -> tuple[list[dict], str | None]:
        """One page of ``GET /jobs`` (newest first): (jobs, next cursor or None)."""
        import requests

        params: dict[str, Any] = {"limit": int(limit)}
        if next_token:
            params["next"] = next_token
        try:
            res = requests.get(self._client.make_path("jobs"), params=params, headers=self._client.api_headers,
                               timeout=self.timeout)
        except requests.RequestException as exc:
            raise translate_error(exc) from None
        if res.status_code >= 400:
            from qiskit_ionq import exceptions as qx

            raise translate_error(qx.IonQAPIError.from_response(res)) from None
        body = res.json()
        return list(body.get("jobs") or []), body.get("next") or None

    def find_by_names(self, names: Iterable[str], since: float | None = None, page_limit: int = 100,
                      max_pages: int = 1000) -> dict[str, list[dict]]:
        """Jobs on the API whose ``name`` is in `names`: ``{name: [job, ...]}`` (absent names map to ``[]``).

        Walks ``GET /jobs`` pages newest-first and stops once every job on a page is older than `since`
        (unix seconds, minus a 10-minute margin for clock skew), or at the end of the listing.
        """
        wanted = set(names)
        found: dict[str, list[dict]] = {n: [] for n in wanted}
        if not wanted:
            return found
        cursor = None
        for _ in range(max_pages):
            jobs, cursor = self.list_jobs(page_limit, cursor)
            oldest = math.inf
            for job in jobs:
                if job.get("name") in wanted:
                    found[job["name"]].append(job)
                t = _job_time(job)
                if t is not None:
                    oldest = min(oldest, t)
            if not cursor or not jobs:
                break
            if since is not None and oldest < since - 600:
                break
        return found


def _job_time(job: dict) -> float | None:
    for key in ("request", "submitted_at", "created_at"):
        v = job.get(key)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                from datetime import datetime

                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def call_with_retries(fn: Callable[[], Any], attempts: int = 8, base: float = 0.5, cap: float = 60.0,
                      sleep: Callable[[float], None] = time.sleep) -> Any:
    """Run `fn` and retry retriable `IonQHTTPError`s with jittered exponential backoff (honours Retry-After).

    Not for submissions (a retried submission must be reconciled by name first; see `sweeps.gateway`).
    """
    for attempt in range(attempts):
        try:
            return fn()
        except IonQHTTPError as exc:
            if not exc.retriable or attempt == attempts - 1:
                raise
            sleep(backoff_delay(attempt, base, cap, exc.retry_after))
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------------- backend
class IonQBackend(Backend):
    """`qgan.quantum.Backend` on IonQ directly (one process, no gateway, no ledger): for small interactive use.

    Campaigns on real hardware go through `sweeps.gateway.GatewayBackend`, which adds rate limits, a budget and a
    durable ledger. Here every parameter vector is one job named ``{name_prefix}-{call}-{b}``; submissions that fail
    with an uncertain outcome are looked up by name before being sent again.
    """

    name = "ionq"

    def __init__(self, token: str | None = None, url: str | None = None, backend: str = DEFAULT_QPU,
                 noise_model: str | None = None, poll_interval: float = 2.0, timeout_s: float = 24 * 3600.0,
                 name_prefix: str | None = None, connection: IonQConnection | None = None):
        super().__init__()
        self.conn = connection or IonQConnection(token=token, url=url, backend=backend, noise_model=noise_model)
        self.poll_interval = float(poll_interval)
        self.timeout_s = float(timeout_s)
        self.name_prefix = name_prefix or f"qgan-{os.getpid()}-{int(time.time())}"
        self._calls = 0

    def run_circuits(self, circuits: list, shots: int) -> list[dict[int, int]]:
        """Submit native-gate circuits (one job each), wait, return counts ``{index: count}`` per circuit."""
        self._calls += 1
        ids = []
        for b, qc in enumerate(circuits):
            name = f"{self.name_prefix}-{self._calls:06d}-{b:04d}"
            ids.append(self._submit_reconciled(qc, shots, name))
        out = []
        for job_id in ids:
            deadline = time.monotonic() + self.timeout_s
            while True:
                st = call_with_retries(lambda: self.conn.status(job_id))
                if st.final:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"IonQ job {job_id} not finished after {self.timeout_s:.0f} s")
                time.sleep(self.poll_interval)
            if st.status != "completed":
                failure = scrub((st.raw.get("failure") or {}).get("error", ""))
                raise IonQJobFailed(f"IonQ job {job_id} {st.status}: {failure}")
            out.append(call_with_retries(lambda: self.conn.counts(st, shots)))
        return out

    def _submit_reconciled(self, qc, shots: int, name: str, attempts: int = 8) -> str:
        t0 = time.time()
        for attempt in range(attempts):
            try:
                return self.conn.submit(qc, shots, name)
            except IonQHTTPError as exc:
                if not exc.retriable or attempt == attempts - 1:
                    raise
                time.sleep(backoff_delay(attempt, retry_after=exc.retry_after))
                if exc.uncertain:
                    hits = call_with_retries(lambda: self.conn.find_by_names([name], since=t0))[name]
                    if hits:
                        return str(hits[0]["id"])
        raise AssertionError("unreachable")

    def _sample(self, ansatz, thetas, shots: int, generator):
        """Basis indices torch.long (B, shots) for parameter vectors `thetas` (B, P) (validated by `sample`)."""
        import torch

        th = thetas.detach().to("cpu", torch.float64).numpy()
        circuits = [ansatz.to_native(t, measure=True) for t in th]
        counts = self.run_circuits(circuits, int(shots))
        return torch.stack([expand_counts(c, int(shots), generator) for c in counts])
