"""The IonQ REST API reached through qiskit-ionq: its errors, single-attempt calls, and retries with backoff.

What qiskit-ionq 1.1.1 sends (studied from its source; the emulator in `qgan.ionq.emulator` serves the same):

- base URL ``https://api.ionq.co/v0.4`` (``IonQProvider(token, url=...)`` or ``$IONQ_API_URL``), header
  ``Authorization: apiKey <token>``;
- ``POST {url}/jobs`` with ``{"type": "ionq.circuit.v1", "backend": "qpu.aria-2" | "simulator", "shots": S,
  "name": NAME, "input": {"gateset": "native", "qubits": n, "circuit": [{"gate": "gpi2", "target": 0,
  "phase": 0.25}, {"gate": "ms", "targets": [0, 1], "phases": [0, 0], "angle": 0.1}, ...]},
  "settings": {"error_mitigation": {"debiasing": false}}, "metadata": {"shots": "S", "qiskit_header": ...}}``
  -> 201 ``{"id": ID, "status": "submitted", "session_id": null}``; a list of circuits is one
  ``ionq.multi-circuit.v1`` job (``input.circuits: [{"name", "circuit"}, ...]``), as ``backend.run([c1, ...])``;
- ``GET {url}/jobs/{id}`` -> ``{"status": "submitted|ready|started|completed|failed|canceled", "submitted_at",
  "stats": {...}, "failure": {"code", "message"} | null, "child_job_ids": [...] (multi-circuit),
  "results": {"probabilities": {"url": "/v0.4/jobs/{id}/results/probabilities[/aggregated]"}}, ...}``;
- ``GET`` of that results URL -> ``{"<basis index>": probability}`` (bit q of the index = qubit q), for a
  multi-circuit job ``{child id: {...}}`` in ``child_job_ids`` order;
- ``GET {url}/jobs/estimate?backend=&1q_gates=&2q_gates=&qubits=&shots=&error_mitigation=`` (the client's
  `estimate_job`) -> ``{"estimated_cost", "cost_unit", ...}``;
- ``PUT {url}/jobs/{id}/status/cancel``; ``GET {url}/jobs?limit=&next=&target=&status=&ids=`` lists jobs
  (``{"jobs": [...], "next": c}``; the order is not documented and there is no name filter), used here to find a
  job by its client-side ``name``;
- errors: ``{"statusCode", "error", "message"}`` (qiskit-ionq also reads the older ``{"code", "message"}`` and
  ``{"error": {"type", "message"}}``); a failed job's ``failure`` is ``{"code", "message"}`` (v0.4) or
  ``{"code", "error"}`` (older): `failure_reason` reads both.

qiskit-ionq retries 429/502/503/504 *inside* ``submit_job`` with no delay, which could submit a job twice when a
response is lost. Here every HTTP call is made once (status, results, cancel: the undecorated client method,
``__wrapped__``; submission: the same request built by the client's own ``qiskit_to_ionq`` serializer and headers)
and the caller owns retries: `call_with_retries` for reads (429 honours ``Retry-After``); submissions go through
`qgan.ionq.reconcile.submit_reconciled` (used by `IonQBackend` and by the QPU gateway in `sweeps.gateway`): a failed
submission whose outcome is unknown (5xx, timeout) is reconciled by looking the job up by name before resubmitting.

Every exception message raised here has the token scrubbed (`qgan.ionq.secrets.scrub`).
"""
from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from qgan.ionq.qiskit_thread import qiskit_call
from qgan.ionq.secrets import resolve_token, scrub
from qgan.ionq.wire import counts_from_probabilities

DEFAULT_URL = "https://api.ionq.co/v0.4"
DEFAULT_QPU = "qpu.aria-2"
URL_ENV = "IONQ_API_URL"
FINAL_STATES = ("completed", "failed", "canceled")


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

    @property
    def children(self) -> list[str]:
        """Child job ids of a multi-circuit job (v0.4 ``child_job_ids``, older ``children``), in circuit order."""
        for key in ("child_job_ids", "children"):
            v = self.raw.get(key)
            if v:
                return [str(c) for c in v]
        return []

    @property
    def failure_reason(self) -> str:
        """``"<code>: <message>"`` of a failed job (v0.4 ``failure.message``, older ``failure.error``)."""
        return failure_reason(self.raw)


def failure_reason(raw: dict) -> str:
    failure = raw.get("failure") or {}
    if not isinstance(failure, dict):
        return scrub(failure)
    code = str(failure.get("code") or "").strip()
    message = str(failure.get("message") or failure.get("error") or "").strip()
    return scrub(": ".join(p for p in (code, message) if p) or "no failure reason given")


class LookupIncomplete(IonQHTTPError):
    """A search of the job listing ended before the end of the listing: a name not seen may still exist."""

    def __init__(self, message: str):
        super().__init__(message, None, False, False)

    def __reduce__(self):
        return (LookupIncomplete, (str(self),))


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
    def submit(self, circuit, shots: int, name: str, debias: bool | None = None) -> str:
        """POST a native-gate circuit, or a list of them as one multi-circuit job, named `name`; the remote id.

        debias: IonQ's error mitigation, sent explicitly (``settings.error_mitigation.debiasing``); None leaves it
        to the service's default (native-gate jobs: off; QIS jobs of >= 500 shots: on).
        """
        from qiskit_ionq.ionq_job import IonQJob

        opts = {**self._backend.options.__dict__, "shots": int(shots), "name": name}
        if debias is not None:
            from qiskit_ionq import ErrorMitigation

            opts["error_mitigation"] = ErrorMitigation.DEBIASING if debias else ErrorMitigation.NO_DEBIASING
        if isinstance(circuit, (list, tuple)):
            circuit = list(circuit) if len(circuit) > 1 else circuit[0]
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
            qx.IonQAPIError.raise_for_status(res)  # 200 and 201 (v0.4: 201 Created) both pass
            response = res.json()
        except Exception as exc:  # noqa: BLE001 - translated, token scrubbed
            raise translate_error(exc, submitting=True) from None
        job_id = response.get("id") if isinstance(response, dict) else None
        if not job_id:
            raise IonQHTTPError("IonQ API accepted a job but returned no id", res.status_code, True, True)
        return str(job_id)

    def status(self, job_id: str) -> JobStatus:
        """GET the job; its API status string and the raw response."""
        retrieve_once = type(self._client).retrieve_job.__wrapped__
        try:
            raw = retrieve_once(self._client, job_id)
        except Exception as exc:  # noqa: BLE001
            raise translate_error(exc) from None
        return JobStatus(str(raw.get("status")), raw)

    def _probabilities(self, status: JobStatus) -> dict:
        """The results document of a completed job, fetched once from its probabilities URL (a single job:
        ``{index: p}``; a multi-circuit job: ``{child id: {index: p}}``)."""
        if status.status != "completed":
            raise IonQJobFailed(f"job is {status.status}, not completed")
        results = status.raw.get("results") or {}
        url = (results.get("probabilities") or {}).get("url")
        if not url:
            raise IonQHTTPError("completed job has no probabilities URL", 200, True, False)
        get_once = type(self._client).get_results.__wrapped__
        try:
            return dict(get_once(self._client, url))
        except Exception as exc:  # noqa: BLE001
            raise translate_error(exc) from None

    def counts(self, status: JobStatus, shots: int) -> dict[int, int]:
        """Counts ``{basis index: count}`` of a completed job (bit q of the index = qubit q)."""
        probs = self._probabilities(status)
        if self.backend_name == "simulator":
            # The cloud simulator returns exact probabilities: draw the shots (seeded by the job id, so a
            # re-fetch gives the same counts), as qiskit-ionq does client-side.
            seed = int(hashlib.sha256(str(status.raw.get("id", "")).encode()).hexdigest()[:15], 16)
            keys = list(probs)
            p = np.asarray([float(probs[k]) for k in keys])
            draws = np.random.default_rng(seed).multinomial(shots, p / p.sum())
            return {int(k): int(c) for k, c in zip(keys, draws) if c > 0}
        return counts_from_probabilities(probs, shots)

    def counts_list(self, status: JobStatus, shots: int, circuits: int) -> list[dict[int, int]]:
        """Counts per circuit of a completed job of `circuits` circuits (one: `counts`). A multi-circuit job's
        results are ``{child id: {index: p}}``, put in circuit order by its ``child_job_ids``."""
        if circuits == 1 and not status.children:
            return [self.counts(status, shots)]
        data = self._probabilities(status)
        children = status.children
        if children and all(c in data for c in children):
            per = [dict(data[c]) for c in children]
        elif data and all(isinstance(v, dict) for v in data.values()):
            per = [dict(v) for v in data.values()]
        else:
            per = [data]
        if len(per) != circuits:
            raise IonQHTTPError(f"job returned results for {len(per)} circuits, expected {circuits}", 200, False,
                                False)
        if self.backend_name == "simulator":
            out = []
            for i, probs in enumerate(per):
                seed = int(hashlib.sha256(f"{status.raw.get('id', '')}/{i}".encode()).hexdigest()[:15], 16)
                keys = list(probs)
                p = np.asarray([float(probs[k]) for k in keys])
                draws = np.random.default_rng(seed).multinomial(shots, p / p.sum())
                out.append({int(k): int(c) for k, c in zip(keys, draws) if c > 0})
            return out
        return [counts_from_probabilities(p, shots) for p in per]

    def estimate(self, n1q: int, n2q: int, qubits: int, shots: int, debias: bool = False) -> tuple[float, str]:
        """IonQ's cost estimate of one job (``GET /jobs/estimate`` through qiskit-ionq's `estimate_job`):
        (cost, unit). Raises IonQHTTPError when the API gives none."""
        try:
            est = self._client.estimate_job(backend=self.backend_name, oneq_gates=int(n1q), twoq_gates=int(n2q),
                                            qubits=int(qubits), shots=int(shots), error_mitigation=bool(debias))
        except Exception as exc:  # noqa: BLE001
            raise translate_error(exc) from None
        if est.cost is None:
            raise IonQHTTPError("IonQ API returned an estimate without estimated_cost", 200, False, False)
        return float(est.cost), str(est.cost_unit or "")

    def cancel(self, job_id: str) -> None:
        cancel_once = type(self._client).cancel_job.__wrapped__
        try:
            cancel_once(self._client, job_id)
        except Exception as exc:  # noqa: BLE001
            raise translate_error(exc) from None

    def list_jobs(self, limit: int = 100, next_token: str | None = None, target: str | None = None,
                  status: str | None = None, ids: Iterable[str] | None = None) -> tuple[list[dict], str | None]:
        """One page of ``GET /jobs`` (server-side filters: target, status, ids): (jobs, next cursor or None)."""
        import requests

        params: dict[str, Any] = {"limit": int(limit)}
        if next_token:
            params["next"] = next_token
        if target:
            params["target"] = target
        if status:
            params["status"] = status
        if ids:
            params["ids"] = list(ids)
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
                      max_pages: int = 200) -> dict[str, list[dict]]:
        """Jobs on the API whose ``name`` is in `names`: ``{name: [job, ...]}`` (absent names map to ``[]``).

        IonQ documents no order for ``GET /jobs`` and no name filter, so this never stops early on the order: it
        walks the listing of this connection's target (a server-side filter) to its end, skipping child jobs of
        multi-circuit jobs. `since` (unix seconds) only drops jobs submitted more than 10 minutes (clock skew)
        before it. Raises `LookupIncomplete` when the listing has more than `max_pages` pages: a name not seen may
        still exist, so the caller must not treat it as absent.
        """
        wanted = set(names)
        found: dict[str, list[dict]] = {n: [] for n in wanted}
        if not wanted:
            return found
        cursor = None
        seen_cursors: set[str] = set()
        for _ in range(max_pages):
            jobs, cursor = self.list_jobs(page_limit, cursor, target=self.backend_name)
            for job in jobs:
                if job.get("name") not in wanted or job.get("parent_job_id"):
                    continue
                t = _job_time(job)
                if since is not None and t is not None and t < since - 600:
                    continue
                found[job["name"]].append(job)
            if not cursor or not jobs:
                return found
            if cursor in seen_cursors:
                raise LookupIncomplete("the job listing repeated a page cursor: the search cannot be completed")
            seen_cursors.add(cursor)
        raise LookupIncomplete(f"the job listing has more than {max_pages} pages of {page_limit}: a job not seen "
                               f"may still exist")


def _job_time(job: dict) -> float | None:
    """When the job was submitted (v0.4 ISO ``submitted_at``; v0.3 integer ``request``), unix seconds or None."""
    for key in ("submitted_at", "request", "created_at"):
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

    Not for submissions (a retried submission must be reconciled by name first; see `qgan.ionq.reconcile`).
    """
    for attempt in range(attempts):
        try:
            return fn()
        except IonQHTTPError as exc:
            if not exc.retriable or attempt == attempts - 1:
                raise
            sleep(backoff_delay(attempt, base, cap, exc.retry_after))
    raise AssertionError("unreachable")
