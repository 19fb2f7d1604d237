"""A local emulator of the IonQ REST API (the part qiskit-ionq 1.1.1 uses), for tests and dry rehearsals.

Run: ``python -m qgan.ionq.emulator --port 8999 --token SECRET [--latency 2] [--rate-limit 5 --rate-window 60]
[--fault-prob 0.05 | --fault-every 7] [--ideal] [--counters-file FILE]``; then point the client at
``http://127.0.0.1:8999/v0.4`` (``$IONQ_API_URL``).

Endpoints (prefix ``/v0.4``, ``/v0.3`` accepted too), all requiring ``Authorization: apiKey <token>`` or ``Bearer``,
shaped as IonQ's v0.4 OpenAPI document (tests/test_emulator_conformance.py):

- ``POST /jobs``   ``ionq.circuit.v1`` or ``ionq.multi-circuit.v1`` (one child job per circuit) -> 201
  ``{"id", "status": "submitted", "session_id"}``
- ``GET  /jobs/{id}``   the v0.4 job object: every documented field, null when not applicable (``session_id``,
  ``started_at``, ``completed_at``, ``settings``, ``child_job_ids``, ``failure`` as ``{"code", "message"}``, ...)
- ``GET  /jobs/{id}/results/probabilities`` ``{"<basis index>": p}`` (bit q = qubit q), a multi-circuit job's
  ``.../probabilities/aggregated`` ``{child id: {...}}``; ``/histogram`` the same map; ``/shots`` one decimal
  outcome per shot; 404 until the job has completed
- ``GET  /jobs/estimate?backend=&1q_gates=&2q_gates=&qubits=&shots=&error_mitigation=``  a cost estimate (the
  emulator's own price list, USD)
- ``PUT  /jobs/{id}/status/cancel``       cancel a job that has not completed
- ``GET  /jobs?limit=&next=&ids=&status=&target=&parent_job_id=``  listing with a cursor, newest first or in a
  shuffled order (``--list-order``: IonQ documents no order); no name filter (the API has none)
- ``DELETE /jobs/{id}``; ``GET /backends/{name}`` (no auth, as qiskit-ionq asks it unauthenticated)
- ``GET  /_emulator/stats``               submissions per job name, request/429/5xx counters (for tests)

Errors are ``{"statusCode", "error", "message"}``. With ``--store-dir`` the job store lives on disk (every change
fsync'd before it is answered), so a rehearsal survives the emulator's process like jobs survive on IonQ.

Execution: the JSON circuit becomes a qiskit circuit of qiskit_ionq GPI/GPI2/MS gates; ``qpu.*`` backends sample
`shots` shots on qiskit-aer with the Aria-2-like noise model (``qgan.quantum.noise.aria2_noise_model``) unless
``--ideal``; the ``simulator`` backend returns exact probabilities (noise model "ideal") or noisy samples. A job
completes `latency` seconds after submission (by the clock, so a job submitted before a restart of the emulator
completes after it too). Debiasing (``settings.error_mitigation.debiasing``) is recorded, not emulated; as on
IonQ it is off below 500 shots and on simulators.

Fault injection: ``rate_limit`` submissions per ``rate_window`` seconds (more get 429 + Retry-After), random 429s
(``rate_limit_prob``), 5xx responses on any request with probability ``fault_prob`` or on every ``fault_every``-th
request, and ``fault_after_create_prob``: the job is created but the response is a 503 (an "uncertain" submission).
The token is compared, never logged and never echoed.
"""
from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from qgan.ionq.qiskit_thread import qiskit_call
from qgan.ionq.wire import circuit_from_ionq_json, gate_counts, qpu_seconds

log = logging.getLogger(__name__)

API_PREFIXES = ("/v0.4", "/v0.3")


@dataclass
class EmulatorConfig:
    """Behaviour of the emulator. Times in seconds; probabilities in [0, 1].

    store_dir: keep the job store on disk there (``jobs.jsonl``, every change fsync'd before it is answered), so
    that jobs survive the emulator's process, as they survive a client's crash on the real service.
    list_order: ``GET /jobs`` order, "newest" (newest first) or "shuffled" (a fixed pseudo-random order: IonQ
    documents none). Prices (estimate endpoint; the emulator's own list, USD): per gate-shot and a per-job minimum.
    """

    token: str
    latency: float = 0.5
    ideal: bool = False
    seed: int = 0
    rate_limit: int = 0               # max accepted submissions per rate_window (0 = unlimited)
    rate_window: float = 60.0
    rate_limit_prob: float = 0.0      # probability that a submission gets a 429 anyway
    retry_after: float = 1.0          # Retry-After seconds sent with 429s
    fault_prob: float = 0.0           # probability of a 5xx on any authenticated request
    fault_every: int = 0              # every k-th authenticated request fails with 5xx (0 = never)
    fault_status: int = 503
    fault_after_create_prob: float = 0.0
    counters_file: str | None = None
    num_qubits: int = 25
    max_shots: int = 100_000
    max_circuits: int = 1000
    store_dir: str | None = None
    list_order: str = "newest"
    price_1q: float = 0.00022
    price_2q: float = 0.000975
    job_minimum: float = 1.0
    job_minimum_debias: float = 25.0


@dataclass
class _Job:
    id: str
    name: str | None
    type: str
    circuits: list                    # one IonQ instruction list per circuit (a child job holds one)
    qubits: int
    shots: int
    backend: str
    noise: str
    submitted: float
    settings: dict = field(default_factory=dict)
    metadata: Any = None
    parent_job_id: str | None = None
    child_job_ids: list | None = None
    session_id: str | None = None
    status: str = "submitted"
    started: float | None = None
    completed: float | None = None
    probabilities: list | None = None  # per circuit {"<index>": p}
    shots_data: list | None = None     # per circuit [index, ...] in shot order (not for the exact simulator)
    failure: dict | None = None
    seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def to_record(self) -> dict:
        return {k: getattr(self, k) for k in _JOB_FIELDS}


_JOB_FIELDS = ("id", "name", "type", "circuits", "qubits", "shots", "backend", "noise", "submitted", "settings",
               "metadata", "parent_job_id", "child_job_ids", "session_id", "status", "started", "completed",
               "probabilities", "shots_data", "failure", "seq")
FINAL = ("completed", "failed", "canceled")
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}


class EmulatorState:
    """Jobs, counters and fault decisions, shared by the request handler threads; the job store optionally on
    disk (`EmulatorConfig.store_dir`)."""

    def __init__(self, config: EmulatorConfig):
        if not config.token:
            raise ValueError("the emulator needs a token (--token or $IONQ_EMULATOR_TOKEN)")
        if config.list_order not in ("newest", "shuffled"):
            raise ValueError(f"list_order must be 'newest' or 'shuffled', got {config.list_order!r}")
        self.config = config
        self.lock = threading.RLock()
        self.jobs: dict[str, _Job] = {}
        self.submissions: dict[str, int] = {}
        self.submission_times: list[float] = []
        self.counters = {"requests": 0, "authenticated": 0, "unauthorized": 0, "status_429": 0, "status_5xx": 0,
                         "submitted": 0, "completed": 0, "canceled": 0, "failed": 0, "created_then_503": 0,
                         "circuits": 0, "estimates": 0, "restored_jobs": 0}
        self._rng = random.Random(config.seed)
        self._accepted_window: list[float] = []
        self._seq = 0
        self._store = None
        if config.store_dir:
            os.makedirs(config.store_dir, exist_ok=True)
            path = os.path.join(config.store_dir, "jobs.jsonl")
            self._load(path)
            self._store = open(path, "a", encoding="utf-8")

    # -- the job store ---------------------------------------------------------------------------------------
    def _load(self, path: str) -> None:
        if not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # torn last line: that change was never answered
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "deleted" in rec:
                    self.jobs.pop(rec["deleted"], None)
                    continue
                job = _Job(**{k: rec[k] for k in _JOB_FIELDS if k in rec})
                self.jobs[job.id] = job
        for job in self.jobs.values():
            self._seq = max(self._seq, job.seq)
            if job.parent_job_id is None:
                self.submissions[job.name or ""] = self.submissions.get(job.name or "", 0) + 1
                self.submission_times.append(job.submitted)
                self.counters["submitted"] += 1
        self.counters["restored_jobs"] = len(self.jobs)

    def _persist(self, *jobs: _Job, deleted: str | None = None) -> None:
        """Append the jobs' current state (or a deletion) to the store, fsync'd, before the change is answered."""
        if self._store is None:
            return
        lines = "".join(json.dumps(j.to_record(), separators=(",", ":")) + "\n" for j in jobs)
        if deleted:
            lines += json.dumps({"deleted": deleted}) + "\n"
        with self.lock:
            self._store.write(lines)
            self._store.flush()
            os.fsync(self._store.fileno())

    def close(self) -> None:
        with self.lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- faults --------------------------------------------------------------------------------------------
    def auth_ok(self, header: str | None) -> bool:
        if not header:
            return False
        parts = header.split(None, 1)
        if len(parts) != 2 or parts[0].lower() not in ("apikey", "bearer"):
            return False
        return hmac.compare_digest(parts[1].strip().encode(), self.config.token.encode())

    def injected_fault(self) -> bool:
        with self.lock:
            self.counters["authenticated"] += 1
            k = self.counters["authenticated"]
            hit = (self.config.fault_every > 0 and k % self.config.fault_every == 0) or \
                (self.config.fault_prob > 0 and self._rng.random() < self.config.fault_prob)
            if hit:
                self.counters["status_5xx"] += 1
            return hit

    def rate_limited(self) -> bool:
        """Decide (and count) a 429 for a submission attempt; otherwise take a slot of the window."""
        cfg = self.config
        now = time.time()
        with self.lock:
            if cfg.rate_limit_prob > 0 and self._rng.random() < cfg.rate_limit_prob:
                self.counters["status_429"] += 1
                return True
            if cfg.rate_limit > 0:
                self._accepted_window = [t for t in self._accepted_window if t > now - cfg.rate_window]
                if len(self._accepted_window) >= cfg.rate_limit:
                    self.counters["status_429"] += 1
                    return True
                self._accepted_window.append(now)
            return False

    # -- jobs ----------------------------------------------------------------------------------------------
    def _check_circuit(self, circuit: Any, qubits: int, gateset: str, where: str) -> list:
        if not isinstance(circuit, list):
            raise ValueError(f"{where} must be a list of instructions")
        natives = {"gpi", "gpi2", "ms", "zz"}
        if gateset == "native" and any(not isinstance(i, dict) or i.get("gate") not in natives for i in circuit):
            raise ValueError(f"{where}: a native-gateset circuit may only use gpi, gpi2, ms, zz")
        circuit_from_ionq_json(circuit, qubits)  # validates
        return circuit

    def create(self, body: dict) -> _Job:
        """Validate and store a job (``ionq.circuit.v1`` or ``ionq.multi-circuit.v1``: a parent job with one child
        job per circuit, ``child_job_ids`` in circuit order)."""
        kind = body.get("type", "ionq.circuit.v1")
        if kind not in ("ionq.circuit.v1", "ionq.multi-circuit.v1"):
            raise ValueError(f"job type {kind!r} is not supported by the emulator")
        inp = body.get("input") or {}
        qubits = int(inp.get("qubits") or 0)
        if qubits < 1 or qubits > self.config.num_qubits:
            raise ValueError(f"input.qubits must be 1..{self.config.num_qubits}")
        gateset = inp.get("gateset", "qis")
        if kind == "ionq.circuit.v1":
            circuits = [self._check_circuit(inp.get("circuit"), qubits, gateset, "input.circuit")]
            names = [None]
        else:
            items = inp.get("circuits")
            if not isinstance(items, list) or not items:
                raise ValueError("input.circuits must be a non-empty list of {name, circuit}")
            if len(items) > self.config.max_circuits:
                raise ValueError(f"a multi-circuit job may hold at most {self.config.max_circuits} circuits")
            circuits = [self._check_circuit((c or {}).get("circuit"), qubits, gateset, f"input.circuits[{i}]")
                        for i, c in enumerate(items)]
            names = [(c or {}).get("name") for c in items]
        shots = int(body["shots"]) if body.get("shots") is not None else 100  # the documented default
        if not 1 <= shots <= self.config.max_shots:
            raise ValueError(f"shots must be 1..{self.config.max_shots}")
        backend = str(body.get("backend") or body.get("target") or "simulator")
        if backend != "simulator" and not backend.startswith("qpu."):
            raise ValueError(f"unknown backend {backend!r}")
        noise = "ideal" if self.config.ideal else "aria-2"
        if backend == "simulator":
            noise = str((body.get("noise") or {}).get("model") or "ideal")
        settings = dict(body.get("settings") or {})
        em = dict(settings.get("error_mitigation") or {})
        # IonQ: native-gate jobs are not debiased unless asked; below 500 shots debiasing is off and cannot be on;
        # never on simulators.
        em["debiasing"] = bool(em.get("debiasing", False)) and shots >= 500 and backend != "simulator"
        settings["error_mitigation"] = em
        now = time.time()
        with self.lock:
            self._seq += 1
            job = _Job(id=str(uuid.uuid4()), name=body.get("name"), type=kind, circuits=circuits, qubits=qubits,
                       shots=shots, backend=backend, noise=noise, submitted=now, settings=settings,
                       metadata=body.get("metadata"), session_id=body.get("session_id"), seq=self._seq)
            children = []
            if kind == "ionq.multi-circuit.v1":
                for i, c in enumerate(circuits):
                    self._seq += 1
                    children.append(_Job(id=str(uuid.uuid4()), name=names[i], type="ionq.circuit.v1", circuits=[c],
                                         qubits=qubits, shots=shots, backend=backend, noise=noise, submitted=now,
                                         settings=settings, metadata=None, parent_job_id=job.id,
                                         session_id=job.session_id, seq=self._seq))
                job.child_job_ids = [c.id for c in children]
            self._persist(job, *children)  # durable before it is answered
            for j in (job, *children):
                self.jobs[j.id] = j
            key = job.name or ""
            self.submissions[key] = self.submissions.get(key, 0) + 1
            self.submission_times.append(now)
            self.counters["submitted"] += 1
            self.counters["circuits"] += len(circuits)
        self._write_counters()
        return job

    def advance(self, job: _Job) -> None:
        """Move a job along its life cycle by the clock; run it when its latency has passed (a multi-circuit job's
        children run, and finish, with their parent)."""
        if job.parent_job_id is not None:
            parent = self.jobs.get(job.parent_job_id)
            if parent is not None:
                return self.advance(parent)
        changed: list[_Job] = []
        with job.lock:
            if job.status in FINAL:
                return
            children = [self.jobs[c] for c in (job.child_job_ids or []) if c in self.jobs]
            age = time.time() - job.submitted
            if age < self.config.latency:
                new = "ready" if age < self.config.latency / 2 else "started"
                if new != job.status:
                    for j in (job, *children):
                        j.status = new
                        if new == "started" and j.started is None:
                            j.started = time.time()
                    changed = [job, *children]
            else:
                try:
                    probs, shots = run_job_circuits(job.circuits, job.qubits, job.shots, job.noise,
                                                    seed=_seed(self.config.seed, job.id),
                                                    exact=job.backend == "simulator" and job.noise == "ideal")
                    status, key = "completed", "completed"
                except Exception as exc:  # noqa: BLE001 - reported as a failed job
                    probs = shots = None
                    status, key = "failed", "failed"
                    job.failure = {"code": "SimulationError", "message": f"{type(exc).__name__}: {exc}"}
                t = time.time()
                job.probabilities, job.shots_data = probs, shots
                for i, c in enumerate(children):
                    c.probabilities = [probs[i]] if probs else None
                    c.shots_data = [shots[i]] if shots and shots[i] is not None else None
                    c.failure = job.failure
                for j in (job, *children):
                    j.status = status
                    j.started = j.started or job.submitted + self.config.latency / 2
                    j.completed = t
                changed = [job, *children]
                with self.lock:
                    self.counters[key] += 1
        if changed:
            self._persist(*changed)

    def cancel(self, job: _Job) -> None:
        self.advance(job)
        with job.lock:
            if job.status in FINAL:
                return
            children = [self.jobs[c] for c in (job.child_job_ids or []) if c in self.jobs]
            for j in (job, *children):
                j.status, j.completed = "canceled", time.time()
        with self.lock:
            self.counters["canceled"] += 1
        self._persist(job, *children)

    def delete(self, job: _Job) -> None:
        with self.lock:
            for jid in [job.id, *(job.child_job_ids or [])]:
                self.jobs.pop(jid, None)
                self._persist(deleted=jid)

    def view(self, job: _Job, prefix: str) -> dict:
        """The v0.4 job object (every documented field present; null when not applicable)."""
        gates = [gate_counts(c) for c in job.circuits]
        n1, n2 = sum(g[0] for g in gates), sum(g[1] for g in gates)
        results = None
        if job.status == "completed":
            base = f"{prefix}/jobs/{job.id}/results"
            if job.child_job_ids:
                results = {"probabilities": {"url": f"{base}/probabilities/aggregated"}}
            else:
                results = {"probabilities": {"url": f"{base}/probabilities"},
                           "histogram": {"url": f"{base}/histogram"}}
                if job.shots_data:
                    results["shots"] = {"url": f"{base}/shots"}
        compute_us = int(1e6 * qpu_seconds(n1, n2, job.shots))
        return {
            "id": job.id, "status": job.status, "type": job.type, "backend": job.backend, "dry_run": False,
            "submitter_id": "emulator", "project_id": "emulator", "parent_job_id": job.parent_job_id,
            "session_id": job.session_id, "metadata": job.metadata, "name": job.name,
            "submitted_at": _iso(job.submitted), "started_at": _iso(job.started) if job.started else None,
            "completed_at": _iso(job.completed) if job.completed else None,
            "predicted_execution_duration_ms": int(1000 * self.config.latency), "predicted_wait_time_ms": 0,
            "execution_duration_ms": (int(1000 * (job.completed - (job.started or job.submitted)))
                                      if job.completed and job.status == "completed" else None),
            "shots": job.shots, "noise": {"model": job.noise}, "failure": job.failure, "settings": job.settings,
            "stats": {"qubits": job.qubits, "circuits": len(job.circuits), "gate_counts": {"1q": n1, "2q": n2},
                      "predicted_quantum_compute_time_us": compute_us,
                      "billed_quantum_compute_time_us": compute_us if job.status == "completed" else None},
            "results": results, "child_job_ids": job.child_job_ids, "output": {},
        }

    def estimate(self, query: dict) -> dict:
        """``GET /jobs/estimate``: the emulator's own price list (USD), in the shape qiskit-ionq's JobEstimate
        reads."""
        def num(key: str) -> int:
            v = (query.get(key) or ["0"])[0]
            try:
                return int(v)
            except ValueError:
                raise ValueError(f"{key} must be an integer, got {v!r}") from None

        n1, n2, qubits, shots = num("1q_gates"), num("2q_gates"), num("qubits"), num("shots")
        backend = (query.get("backend") or ["simulator"])[0]
        debias = (query.get("error_mitigation") or ["false"])[0].lower() == "true" and shots >= 500
        cfg = self.config
        if backend == "simulator":
            cost = 0.0
        else:
            minimum = cfg.job_minimum_debias if debias else cfg.job_minimum
            cost = max(minimum, shots * (n1 * cfg.price_1q + n2 * cfg.price_2q))
        with self.lock:
            self.counters["estimates"] += 1
        return {"input_values": {"backend": backend, "1q_gates": n1, "2q_gates": n2, "qubits": qubits,
                                 "shots": shots, "error_mitigation": debias,
                                 "session": (query.get("session") or ["false"])[0] == "true"},
                "estimated_cost": round(cost, 6), "cost_unit": "usd",
                "estimated_execution_time": qpu_seconds(n1, n2, shots), "current_predicted_queue_time": 0,
                "estimated_at": _iso(time.time()),
                "rate_information": {"1q_gate_shot": cfg.price_1q, "2q_gate_shot": cfg.price_2q,
                                     "job_minimum": cfg.job_minimum_debias if debias else cfg.job_minimum}}

    def listing(self) -> list[_Job]:
        """Every job in the listing's order (newest first, or a fixed pseudo-random order)."""
        with self.lock:
            jobs = list(self.jobs.values())
        if self.config.list_order == "shuffled":
            import hashlib

            jobs.sort(key=lambda j: hashlib.sha256(f"{self.config.seed}:{j.id}".encode()).hexdigest())
        else:
            jobs.sort(key=lambda j: (j.submitted, j.seq), reverse=True)
        return jobs

    def stats(self) -> dict:
        with self.lock:
            dup = {k: v for k, v in self.submissions.items() if v > 1}
            return {"counters": dict(self.counters), "submissions": dict(self.submissions), "duplicates": dup,
                    "submission_times": list(self.submission_times),
                    "jobs": sum(1 for j in self.jobs.values() if j.parent_job_id is None)}

    def _write_counters(self) -> None:
        path = self.config.counters_file
        if not path:
            return
        data = self.stats()
        tmp = f"{path}.tmp{threading.get_ident()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)


def _seed(base: int, job_id: str) -> int:
    import hashlib

    return (int(base) * 1_000_003 + int(hashlib.sha256(job_id.encode()).hexdigest()[:12], 16)) % (2**31)


def _iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------ execution
def run_job_circuits(circuits: list, qubits: int, shots: int, noise: str, seed: int = 0,
                     exact: bool = False) -> tuple[list[dict[str, float]], list[list[int] | None]]:
    """Execute every circuit of a job: (probabilities per circuit, shot outcomes per circuit).

    exact (the ideal cloud simulator): exact Born probabilities and no shots. Otherwise `shots` shots per circuit,
    ideal or on qiskit-aer with the Aria-2-like noise model; probability = count / shots (a QPU histogram), and the
    shot list holds each outcome (decimal basis index) in a random order.
    """
    rng = np.random.default_rng(seed)
    if exact or noise == "ideal":
        from qiskit.quantum_info import Statevector

        probs_out, shots_out = [], []
        for circuit in circuits:
            qc = circuit_from_ionq_json(circuit, qubits, measure=False)
            p = np.clip(qiskit_call(lambda: Statevector(qc).probabilities()), 0.0, None)
            p = p / p.sum()
            if exact:
                probs_out.append({str(i): float(v) for i, v in enumerate(p) if v > 1e-12})
                shots_out.append(None)
                continue
            counts = rng.multinomial(shots, p)
            probs_out.append({str(i): float(c) / shots for i, c in enumerate(counts) if c > 0})
            outcomes = np.repeat(np.arange(len(p)), counts)
            rng.shuffle(outcomes)
            shots_out.append([int(x) for x in outcomes])
        return probs_out, shots_out
    from qgan.quantum.backends import run_aer
    from qgan.quantum.noise import aria2_noise_model

    qcs = [circuit_from_ionq_json(c, qubits, measure=True) for c in circuits]
    all_counts = qiskit_call(lambda: run_aer(qcs, shots, seed=int(seed), noise_model=aria2_noise_model()))
    probs_out, shots_out = [], []
    for counts in all_counts:
        total = sum(counts.values())
        idx = {int(k.replace(" ", ""), 2): v for k, v in counts.items()}
        probs_out.append({str(k): v / total for k, v in idx.items()})
        outcomes = np.repeat(np.array(list(idx), dtype=np.int64), list(idx.values()))
        rng.shuffle(outcomes)
        shots_out.append([int(x) for x in outcomes])
    return probs_out, shots_out


# ------------------------------------------------------------------------------------------------ HTTP
class _Handler(BaseHTTPRequestHandler):
    server_version = "IonQEmulator/1.0"
    protocol_version = "HTTP/1.1"
    state: EmulatorState  # set on the subclass

    def log_message(self, fmt, *args):  # quiet; never logs headers
        log.debug("emulator: %s", fmt % args)

    # -- plumbing ------------------------------------------------------------------------------------------
    def _send(self, code: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str, kind: str | None = None, headers: dict | None = None) -> None:
        """v0.4 error body: ``{"statusCode", "error", "message"}``."""
        self._send(code, {"statusCode": code, "error": _REASONS.get(code, "Error"), "message": message}, headers)

    def _route(self) -> tuple[str, list[str], dict] | None:
        url = urlparse(self.path)
        path = url.path
        prefix = next((p for p in API_PREFIXES if path.startswith(p + "/")), None)
        if prefix is None:
            if path.startswith("/_emulator/"):
                return "", [p for p in path.split("/") if p], parse_qs(url.query)
            return None
        parts = [p for p in path[len(prefix):].split("/") if p]
        return prefix, parts, parse_qs(url.query)

    def _body(self) -> dict | None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        try:
            out = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return out if isinstance(out, dict) else None

    def _handle(self, method: str) -> None:
        st = self.state
        with st.lock:
            st.counters["requests"] += 1
        routed = self._route()
        body = self._body() if method in ("POST", "PUT") else {}
        if routed is None:
            return self._error(404, "not found")
        prefix, parts, query = routed
        if method == "GET" and len(parts) == 2 and parts[0] == "backends":
            return self._send(200, {"backend": parts[1], "qubits": st.config.num_qubits, "status": "available"})
        if not st.auth_ok(self.headers.get("Authorization")):
            with st.lock:
                st.counters["unauthorized"] += 1
            return self._error(401, "missing or invalid API key")
        if parts[:2] == ["_emulator", "stats"]:
            return self._send(200, st.stats())
        if st.injected_fault():
            return self._error(st.config.fault_status, "injected server fault")
        if not parts or parts[0] != "jobs":
            return self._error(404, "not found")
        if method == "POST" and len(parts) == 1:
            return self._submit(prefix, body)
        if method == "GET" and len(parts) == 1:
            return self._list(prefix, query)
        if method == "GET" and parts[1:] == ["estimate"] and len(parts) == 2:
            try:
                return self._send(200, st.estimate(query))
            except ValueError as exc:
                return self._error(400, str(exc))
        job = st.jobs.get(parts[1]) if len(parts) >= 2 else None
        if job is None:
            return self._error(404, f"job {parts[1] if len(parts) > 1 else ''} not found")
        if method == "GET" and len(parts) == 2:
            st.advance(job)
            return self._send(200, st.view(job, prefix))
        if method == "DELETE" and len(parts) == 2:
            st.delete(job)
            return self._send(200, {"id": job.id, "status": "deleted"})
        if method == "GET" and len(parts) >= 4 and parts[2] == "results":
            return self._results(job, parts[3:])
        if method == "PUT" and parts[2:] == ["status", "cancel"]:
            st.cancel(job)
            return self._send(200, {"id": job.id, "status": job.status})
        return self._error(404, "not found")

    def _results(self, job: _Job, what: list[str]) -> None:
        """``results/probabilities`` (``{index: p}``; a multi-circuit job's ``.../aggregated``: ``{child id:
        {index: p}}``), ``results/histogram`` (the same map), ``results/shots`` (one decimal outcome per shot). A
        job that has not completed has no results yet: 404, as the API."""
        st = self.state
        st.advance(job)
        if job.status != "completed" or job.probabilities is None:
            return self._error(404, f"results of job {job.id} not found (job is {job.status})")
        kind = what[0]
        if kind in ("probabilities", "histogram"):
            if job.child_job_ids:
                if what[1:] not in ([], ["aggregated"]):
                    return self._error(404, "not found")
                return self._send(200, {cid: job.probabilities[i] for i, cid in enumerate(job.child_job_ids)})
            if what[1:]:
                return self._error(404, "not found")
            return self._send(200, job.probabilities[0])
        if kind == "shots" and len(what) == 1 and not job.child_job_ids:
            if not job.shots_data or job.shots_data[0] is None:
                return self._error(404, f"job {job.id} has no shot-level results (exact simulator)")
            return self._send(200, job.shots_data[0])
        return self._error(404, "not found")

    def _submit(self, prefix: str, body: dict | None) -> None:
        st = self.state
        if body is None:
            return self._error(400, "request body is not a JSON object")
        if st.rate_limited():
            return self._error(429, "too many requests", headers={"Retry-After": f"{st.config.retry_after:g}"})
        try:
            job = st.create(body)
        except (ValueError, TypeError, KeyError) as exc:
            return self._error(400, f"invalid job: {exc}")
        if st.config.fault_after_create_prob > 0:
            with st.lock:
                lost = st._rng.random() < st.config.fault_after_create_prob
                if lost:
                    st.counters["created_then_503"] += 1
                    st.counters["status_5xx"] += 1
            if lost:
                return self._error(503, "upstream timeout")
        return self._send(201, {"id": job.id, "status": job.status, "session_id": job.session_id})

    def _list(self, prefix: str, query: dict) -> None:
        """``GET /jobs``: documented filters ``ids`` (repeated or comma-separated), ``status``, ``target``
        (comma-separated), ``parent_job_id``; ``limit`` (1..1000, default 25) and the ``next`` cursor."""
        st = self.state
        try:
            limit = max(1, min(1000, int((query.get("limit") or ["25"])[0])))
        except ValueError:
            return self._error(400, "limit must be an integer")
        cursor = (query.get("next") or [None])[0]
        status = (query.get("status") or [None])[0]
        ids = {i for v in query.get("ids", []) + query.get("ids[]", []) for i in v.split(",") if i}
        targets = {t for v in query.get("target", []) for t in v.split(",") if t}
        parent = (query.get("parent_job_id") or [None])[0]
        jobs = st.listing()
        if cursor:
            pos = next((k for k, j in enumerate(jobs) if j.id == cursor), None)
            if pos is None:
                return self._error(400, "invalid next cursor")
            jobs = jobs[pos:]
        page, nxt = [], None
        for job in jobs:
            if (ids and job.id not in ids) or (targets and job.backend not in targets) or \
                    (parent and job.parent_job_id != parent):
                continue
            st.advance(job)
            if status and job.status != status:
                continue
            if len(page) == limit:
                nxt = job.id
                break
            page.append(st.view(job, prefix))
        self._send(200, {"jobs": page, "next": nxt})

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_PUT(self):  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")


class Emulator:
    """The emulator server in a background thread: ``with Emulator(EmulatorConfig(token=...)) as emu: emu.url``."""

    def __init__(self, config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0):
        self.state = EmulatorState(config)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """API base URL including the version prefix."""
        return f"http://{self.host}:{self.port}/v0.4"

    def start(self) -> "Emulator":
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ionq-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.state.close()

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def fetch_stats(url: str, token: str, timeout: float = 10.0) -> dict:
    """``/_emulator/stats`` of an emulator whose API base URL is `url`."""
    import requests

    base = url.split("/v0.")[0]
    res = requests.get(f"{base}/_emulator/stats", headers={"Authorization": f"apiKey {token}"}, timeout=timeout)
    res.raise_for_status()
    return res.json()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m qgan.ionq.emulator", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (keep it local)")
    p.add_argument("--port", type=int, default=8999, help="port to listen on")
    p.add_argument("--token", default=None, help="accepted API token (default $IONQ_EMULATOR_TOKEN or $IONQ_API_KEY)")
    p.add_argument("--latency", type=float, default=0.5, help="seconds from submission to completion")
    p.add_argument("--ideal", action="store_true", help="no noise on qpu.* backends")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling and of the fault injection")
    p.add_argument("--store-dir", default=None, help="keep the job store on disk here (survives restarts)")
    p.add_argument("--list-order", choices=("newest", "shuffled"), default="newest",
                   help="order of GET /jobs (IonQ documents none)")
    p.add_argument("--rate-limit", type=int, default=0, help="submissions accepted per window (0 = unlimited)")
    p.add_argument("--rate-window", type=float, default=60.0, help="seconds of the rate-limit window")
    p.add_argument("--rate-limit-prob", type=float, default=0.0, help="probability of a 429 on a submission")
    p.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with a 429")
    p.add_argument("--fault-prob", type=float, default=0.0, help="probability of a 5xx on any request")
    p.add_argument("--fault-every", type=int, default=0, help="every k-th request fails with a 5xx (0: never)")
    p.add_argument("--fault-status", type=int, default=503, help="status of injected faults")
    p.add_argument("--fault-after-create-prob", type=float, default=0.0,
                   help="probability that a created job is answered with a 503 (an uncertain submission)")
    p.add_argument("--counters-file", default=None, help="write the stats JSON here after every submission")
    a = p.parse_args(argv)
    token = a.token or os.environ.get("IONQ_EMULATOR_TOKEN") or os.environ.get("IONQ_API_KEY")
    if not token:
        p.error("a token is required: --token, $IONQ_EMULATOR_TOKEN or $IONQ_API_KEY")
    for name in ("rate_limit_prob", "fault_prob", "fault_after_create_prob"):
        if not 0.0 <= getattr(a, name) <= 1.0:
            p.error(f"--{name.replace('_', '-')} must be in [0, 1]")
    cfg = EmulatorConfig(token=token, latency=a.latency, ideal=a.ideal, seed=a.seed, rate_limit=a.rate_limit,
                         rate_window=a.rate_window, rate_limit_prob=a.rate_limit_prob, retry_after=a.retry_after,
                         fault_prob=a.fault_prob, fault_every=a.fault_every, fault_status=a.fault_status,
                         fault_after_create_prob=a.fault_after_create_prob, counters_file=a.counters_file,
                         store_dir=a.store_dir, list_order=a.list_order)
    emu = Emulator(cfg, a.host, a.port)
    print(f"IonQ API emulator on {emu.url} (latency {a.latency:g} s)", flush=True)
    try:
        emu.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.server.server_close()
        emu.state.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
