"""The QPU gateway's state machine, `QPUGateway` (plain Python; `sweeps.gateway.ray_client.start_gateway` runs it as
one named Ray actor per campaign): it owns the IonQ connection and every job of the campaign.

Trials never talk to the API. They hand the gateway a *request* (a batch of parameter vectors + shots, identified
by a deterministic request key) through `GatewayBackend`, a `qgan.quantum.Backend`; the gateway builds one native
circuit per vector (`Ansatz.to_native`), and submits each as one IonQ job under these rules:

- **FIFO**: jobs are submitted in the order their requests arrived, whichever trial sent them (no starvation).
- **Rate limit**: at most `max_jobs_per_period` submission attempts in any window of `period_s` seconds (a sliding
  window, stricter than a refilling bucket: it never bursts past the limit); attempts are timestamped in the
  ledger, so the limit holds across a gateway restart too.
- **In-flight cap**: at most `max_in_flight` jobs submitted and not yet finished.
- **Budget**: shots (per circuit: a job of k circuits x S shots spends k x S) and cost are reserved when a
  request is admitted; a request that would exceed either budget is refused whole, and the trial's backend raises
  `BudgetExceeded` (nothing of that request is submitted). The cost of a job is IonQ's estimate
  (``price_source="api"``: ``GET /jobs/estimate``) or the price table (`GatewayConfig.table_cost`, with the
  per-job minimum); each intent records its cost, its source and the currency. What is committed is rebuilt from
  the ledger's intents at every start (`ledger_summary`), so spent shots survive any crash.
- **Retries**: 429 and 5xx (and connection errors) are retried with exponential backoff and jitter, never sooner
  than ``Retry-After``; a 429 pauses all submissions (the limit is per account). Submissions follow
  `qgan.ionq.reconcile.submit_reconciled`, the policy `IonQBackend` uses too.
- **Durable ledger** (append-only JSON lines, fsync'd, ``<ledger_dir>/ledger.jsonl``): the request and one
  ``intent`` per job (with its circuit) are written before anything is submitted; an ``attempt`` before every POST;
  ``submitted`` with the remote id right after; ``result`` with the counts at the end. A restarted gateway
  (Ray restarts the actor: ``max_restarts=-1``, ``max_task_retries=-1``) replays the ledger: jobs with an id are
  polled again, never resubmitted (one the API answers 404 for fails, its shots spent: the ledger shows it was
  accepted); a job with an attempt but no id (the POST may or may not have reached the API) is first looked up by
  its client-side job name on the API (the whole listing of the target, in whatever order) and adopted if found,
  resubmitted only when the search was complete and found nothing; requests already answered are answered again
  from the ledger. A caller that retries a request (same key) after a restart gets the original jobs' results.
- **Secrets**: the token comes from ``$IONQ_API_KEY`` in the actor's environment; it is never written to the
  ledger, logs, results or exception messages (all messages go through `qgan.ionq.scrub`).

Job names are ``<campaign>.<run>/<request key>/<index>`` where ``run`` is a random id fixed when the ledger is
created (so a re-run of a campaign under a fresh ledger cannot adopt the previous run's jobs).
"""
from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from qgan.ionq import (
    IonQConnection,
    IonQHTTPError,
    backoff_delay,
    circuit_from_ionq_json,
    circuit_hash,
    circuit_to_ionq_json,
    gate_counts,
    qiskit_call,
    qpu_seconds,
    scrub,
)
from qgan.ionq.reconcile import SubmissionFailed, submit_reconciled
from sweeps.gateway.config import GatewayConfig
from sweeps.gateway.ledger import Ledger
from sweeps.gateway.limiter import SlidingWindowLimiter

log = logging.getLogger(__name__)


class _Stopping(Exception):
    """Raised inside the dispatcher when the gateway shuts down."""


# ------------------------------------------------------------------------------------------------ state
@dataclass
class _Job:
    """One IonQ job: `circuits` (IonQ JSON instruction lists) of one request, from position `first` of it."""

    name: str
    request: str
    index: int
    shots: int
    qubits: int
    circuits: list
    gates: list            # [(n1q, n2q)] per circuit
    cost: float
    t_intent: float
    first: int = 0
    state: str = "queued"        # queued | uncertain | submitted | completed | failed | canceled
    remote_id: str | None = None
    attempts: int = 0
    counts: list | None = None   # [{index: count}] per circuit
    children: list | None = None
    reason: str | None = None
    next_poll: float = 0.0
    poll_failures: int = 0

    @property
    def shots_total(self) -> int:
        return self.shots * len(self.circuits)

    @property
    def never_accepted(self) -> bool:
        """The ledger proves the API never accepted it (failed before any id, with a certain error)."""
        return self.state == "failed" and self.remote_id is None and bool(self.reason) and \
            self.reason.startswith("not submitted")


@dataclass
class _Request:
    key: str
    trial: str
    jobs: list[str]
    shots: int
    t: float


def replay_ledger(records: list[dict]) -> dict[str, Any]:
    """Rebuild the gateway's state from ledger records (older one-circuit-per-job records are read too).

    Returns ``{"header", "jobs": {name: _Job}, "requests": {key: _Request}, "attempts": [t, ...], "starts",
    "submitted_ids": {name: [id, ...]}, "refused"}``.
    """
    header = None
    jobs: dict[str, _Job] = {}
    requests: dict[str, _Request] = {}
    attempts: list[float] = []
    submitted_ids: dict[str, list[str]] = {}
    starts = refused = 0
    for r in records:
        kind = r.get("type")
        if kind == "header":
            header = r
        elif kind == "start":
            starts += 1
        elif kind == "refused":
            refused += 1
        elif kind == "request":
            requests[r["key"]] = _Request(r["key"], r["trial"], list(r["jobs"]), int(r["shots"]), r["t"])
        elif kind == "intent":
            if "circuits" in r:
                circuits, gates = r["circuits"], [tuple(g) for g in r["gates"]]
            else:  # version 1: one circuit per job
                circuits, gates = [r["circuit"]], [(int(r["n1q"]), int(r["n2q"]))]
            jobs[r["job"]] = _Job(r["job"], r["request"], int(r["index"]), int(r["shots"]), int(r["qubits"]),
                                  circuits, gates, float(r["cost"]), float(r["t"]), int(r.get("first", r["index"])))
        elif kind == "attempt":
            attempts.append(float(r["t"]))
            if r["job"] in jobs and jobs[r["job"]].state == "queued":
                jobs[r["job"]].state = "uncertain"
        elif kind == "not_found":
            if r["job"] in jobs and jobs[r["job"]].state == "uncertain":
                jobs[r["job"]].state = "queued"
        elif kind == "submitted":
            attempts.append(float(r["t"]))  # when the POST returned (the limiter's reference point)
            ids = submitted_ids.setdefault(r["job"], [])
            if r["id"] not in ids:
                ids.append(r["id"])
            job = jobs.get(r["job"])
            if job is not None:
                job.state, job.remote_id = "submitted", r["id"]
        elif kind == "result":
            job = jobs.get(r["job"])
            if job is not None:
                job.state = r["status"]
                counts = r.get("counts")
                if isinstance(counts, dict):  # version 1
                    counts = [counts] if counts else []
                job.counts = [{int(k): int(v) for k, v in c.items()} for c in (counts or [])]
                job.children = r.get("children")
                job.reason = r.get("reason")
    return {"header": header, "jobs": jobs, "requests": requests, "attempts": attempts, "starts": starts,
            "submitted_ids": submitted_ids, "refused": refused}


def committed(jobs: dict[str, _Job]) -> tuple[int, float]:
    """Shots and cost committed by the jobs: every admitted job except those the API provably never accepted."""
    shots, cost = 0, 0.0
    for j in jobs.values():
        if j.never_accepted:
            continue
        shots += j.shots_total
        cost += j.cost
    return shots, cost


def ledger_summary(path: str) -> dict[str, Any]:
    """What a ledger file says was spent: committed shots and cost, job and circuit counts, job states, the
    settings of its last start, and jobs that got more than one remote id (double submissions: should be none)."""
    st = replay_ledger(Ledger.read(path))
    shots, cost = committed(st["jobs"])
    states: dict[str, int] = {}
    for j in st["jobs"].values():
        states[j.state] = states.get(j.state, 0) + 1
    settings = None
    for r in Ledger.read(path):
        if r.get("type") in ("header", "start") and isinstance(r.get("settings"), dict):
            settings = r["settings"]
    return {"used_shots": shots, "used_cost": round(cost, 6), "jobs": len(st["jobs"]),
            "circuits": sum(len(j.circuits) for j in st["jobs"].values()), "states": states,
            "requests": len(st["requests"]), "starts": st["starts"], "settings": settings,
            "double_submitted": {k: v for k, v in st["submitted_ids"].items() if len(v) > 1}}


class QPUGateway:
    """The gateway logic (plain Python; `start_gateway` wraps it in a Ray actor). See the module docstring.

    connection_factory: builds the API connection (default: `IonQConnection` from the config); tests may inject.
    """

    def __init__(self, config: GatewayConfig | dict, connection_factory: Callable[[], Any] | None = None):
        self.config = config if isinstance(config, GatewayConfig) else GatewayConfig(**config)
        cfg = self.config
        self._conn_factory = connection_factory or (lambda: IonQConnection(
            url=cfg.url, backend=cfg.backend, noise_model=cfg.noise_model, timeout=cfg.http_timeout_s))
        self._conn = self._conn_factory()
        self._cv = threading.Condition()
        self._jobs: dict[str, _Job] = {}
        self._requests: dict[str, _Request] = {}
        self._queue: deque[str] = deque()
        self._pause_until = 0.0
        self._stop = threading.Event()
        self._rng = random.Random()
        self._estimates: dict[tuple, tuple[float, str]] = {}
        self.stats = {"resumed_polling": 0, "reconciled_found": 0, "reconciled_missing": 0, "retries_429": 0,
                      "retries_5xx": 0, "submitted": 0, "refused": 0, "restarts": 0}
        self.ledger_path = os.path.join(cfg.ledger_dir, "ledger.jsonl")
        records = Ledger.read(self.ledger_path)
        self.ledger = Ledger(self.ledger_path)
        self.run_id = self._replay(records)
        self._threads = [threading.Thread(target=self._guard(self._dispatch_loop), name="gw-dispatch", daemon=True),
                         threading.Thread(target=self._guard(self._poll_loop), name="gw-poll", daemon=True)]
        for t in self._threads:
            t.start()

    # ---------------------------------------------------------------------------------------------- replay
    def _replay(self, records: list[dict]) -> str:
        st = replay_ledger(records)
        header = st["header"]
        if header is not None and header.get("campaign") != self.config.campaign:
            raise ValueError(f"ledger {self.ledger_path} belongs to campaign {header.get('campaign')!r}, "
                             f"not {self.config.campaign!r}")
        self._jobs, self._requests = st["jobs"], st["requests"]
        self.stats["restarts"] = st["starts"] + (1 if header is not None else 0)
        self.stats["refused"] = st["refused"]
        attempts = st["attempts"]
        # A POST cut short by the crash may have reached the server at any time up to now.
        now = time.time()
        attempts += [now for j in self._jobs.values() if j.state == "uncertain"]
        self._limiter = SlidingWindowLimiter(self.config.max_jobs_per_period, self.config.period_s, attempts)
        settings = self.config.settings()
        if header is None:
            run_id = uuid.uuid4().hex[:8]
            self.ledger.append({"type": "header", "campaign": self.config.campaign, "run": run_id,
                                "t": time.time(), "version": 2, "settings": settings})
        else:
            run_id = header["run"]
            self.ledger.append({"type": "start", "t": time.time(), "pid": os.getpid(), "settings": settings})
        # Requeue unfinished work in the original (intent) order; submitted jobs go back to polling.
        for job in sorted(self._jobs.values(), key=lambda j: (j.t_intent, j.request, j.index)):
            if job.state in ("queued", "uncertain"):
                self._queue.append(job.name)
            elif job.state == "submitted":
                self.stats["resumed_polling"] += 1
        return run_id

    # ---------------------------------------------------------------------------------------------- API
    def get_config(self) -> dict:
        return self.config.to_dict()

    def ping(self) -> dict:
        """Process id and run id (tests use the pid to SIGKILL the actor)."""
        return {"pid": os.getpid(), "run": self.run_id}

    def submit(self, key: str, trial: str, shots: int, ansatz: dict | None = None,
               thetas: list | None = None, circuits: list | None = None, qubits: int | None = None) -> dict:
        """Admit a request (idempotent by `key`) and return its status (see `wait`).

        Either `ansatz` ({"n", "layers", "connectivity"}) + `thetas` (B x P floats), built with
        `Ansatz.to_native`, or `circuits` (IonQ JSON instruction lists) + `qubits`.
        """
        with self._cv:
            if key in self._requests:
                return self._status_locked(key)
        shots = int(shots)
        if shots < 1:
            raise ValueError("shots must be >= 1")
        cfg = self.config
        bad = cfg.check_debias(shots)
        if bad:
            return {"status": "failed", "reason": f"not submitted: {bad}"}
        built = self._build(ansatz, thetas, circuits, qubits)
        # Split into jobs of at most max_circuits_per_job circuits, each priced (API estimate or price table).
        per = cfg.max_circuits_per_job
        groups = [built[i:i + per] for i in range(0, len(built), per)]
        priced = [self._price([(n1, n2) for _, _, n1, n2 in g], max(nq for _, nq, _, _ in g), shots) for g in groups]
        now = time.time()
        with self._cv:
            if key in self._requests:
                return self._status_locked(key)
            need_shots = shots * len(built)
            need_cost = sum(c for c, _ in priced)
            used_shots, used_cost = self._used_locked()
            reason = None
            if cfg.budget_shots is not None and used_shots + need_shots > cfg.budget_shots:
                reason = (f"shot budget exhausted: request needs {need_shots} shots, {used_shots} of "
                          f"{cfg.budget_shots} already committed")
            elif cfg.budget_cost is not None and used_cost + need_cost > cfg.budget_cost + 1e-9:
                reason = (f"cost budget exhausted: request needs {need_cost:.2f}, {used_cost:.2f} of "
                          f"{cfg.budget_cost:.2f} already committed")
            if reason:
                self.stats["refused"] += 1
                self.ledger.append({"type": "refused", "request": key, "trial": trial, "reason": reason, "t": now})
                return {"status": "budget_exceeded", "reason": reason}
            names = [f"{cfg.campaign}.{self.run_id}/{key}/{i}" for i in range(len(groups))]
            recs: list[dict] = [{"type": "request", "key": key, "trial": trial, "jobs": names, "shots": shots,
                                 "circuits": len(built), "t": now}]
            jobs = []
            for i, (group, (cost, source)) in enumerate(zip(groups, priced)):
                nq = max(q for _, q, _, _ in group)
                job = _Job(names[i], key, i, shots, nq, [g[0] for g in group], [(n1, n2) for _, _, n1, n2 in group],
                           cost, now, first=i * per)
                jobs.append(job)
                recs.append({"type": "intent", "job": job.name, "request": key, "trial": trial, "index": i,
                             "first": job.first, "hashes": [circuit_hash(c, nq, shots) for c in job.circuits],
                             "shots": shots, "qubits": nq, "gates": [list(g) for g in job.gates],
                             "debias": cfg.debias, "cost": cost, "cost_source": source, "currency": cfg.currency,
                             "circuits": job.circuits, "t": now})
            self.ledger.append(*recs)  # durable before anything is queued
            self._requests[key] = _Request(key, trial, names, shots, now)
            for job in jobs:
                self._jobs[job.name] = job
                self._queue.append(job.name)
            self._cv.notify_all()
            return self._status_locked(key)

    def wait(self, key: str, timeout: float = 5.0) -> dict:
        """Block up to `timeout` s for request `key`; returns ``{"status": "pending" | "completed" | "failed" |
        "unknown", "counts": [{index: count}, ...] (when completed), "reason": str (when failed)}``."""
        deadline = time.monotonic() + max(0.0, float(timeout))
        with self._cv:
            while True:
                st = self._status_locked(key)
                left = deadline - time.monotonic()
                if st["status"] != "pending" or left <= 0:
                    return st
                self._cv.wait(min(left, 1.0))

    def status(self) -> dict:
        """Campaign-level summary: budget use, job states, counters."""
        with self._cv:
            used_shots, used_cost = self._used_locked()
            states: dict[str, int] = {}
            for j in self._jobs.values():
                states[j.state] = states.get(j.state, 0) + 1
            return {"campaign": self.config.campaign, "run": self.run_id, "used_shots": used_shots,
                    "used_cost": round(used_cost, 6), "currency": self.config.currency,
                    "budget_shots": self.config.budget_shots, "budget_cost": self.config.budget_cost,
                    "debias": self.config.debias, "max_circuits_per_job": self.config.max_circuits_per_job,
                    "jobs": states, "circuits": sum(len(j.circuits) for j in self._jobs.values()),
                    "requests": len(self._requests), "queued": len(self._queue),
                    "in_flight": self._in_flight_locked(), "stats": dict(self.stats),
                    "qpu_seconds": sum(qpu_seconds(n1, n2, j.shots) for j in self._jobs.values()
                                       for n1, n2 in j.gates)}

    def shutdown(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=10)
        self.ledger.close()

    # ---------------------------------------------------------------------------------------------- helpers
    def _build(self, ansatz, thetas, circuits, qubits) -> list[tuple[list, int, int, int]]:
        out = []
        if circuits is not None:
            if not qubits:
                raise ValueError("circuits need `qubits`")
            for instr in circuits:
                circuit_from_ionq_json(instr, int(qubits))  # validate
                n1, n2 = gate_counts(instr)
                out.append((json.loads(json.dumps(instr)), int(qubits), n1, n2))
            return out
        if ansatz is None or thetas is None:
            raise ValueError("a request needs either ansatz + thetas or circuits + qubits")
        import torch

        from qgan.quantum import Ansatz

        a = Ansatz(int(ansatz["n"]), layers=int(ansatz.get("layers", 1)),
                   connectivity=str(ansatz.get("connectivity", "full")))
        th = torch.as_tensor(np.asarray(thetas, dtype=np.float64))
        if th.ndim == 1:
            th = th.unsqueeze(0)
        if th.shape[1] != a.num_params:
            raise ValueError(f"thetas have {th.shape[1]} parameters, the ansatz needs {a.num_params}")
        for b in range(th.shape[0]):
            qc = qiskit_call(a.to_native, th[b], measure=True)
            instr, nq = circuit_to_ionq_json(qc)
            n1, n2 = gate_counts(instr)
            out.append((instr, nq, n1, n2))
        return out

    def _price(self, gates: list[tuple[int, int]], qubits: int, shots: int) -> tuple[float, str]:
        """(cost, source) of one job: IonQ's estimate when ``price_source="api"`` (cached per gate counts), else
        the price table; the table too when the estimate fails, flagged in the source."""
        cfg = self.config
        table = cfg.table_cost(gates, shots)
        if cfg.price_source != "api":
            return table, "table"
        n1, n2 = sum(g[0] for g in gates), sum(g[1] for g in gates)
        key = (n1, n2, int(qubits), int(shots), cfg.debias)
        if key in self._estimates:
            return self._estimates[key]
        try:
            cost, unit = self._conn.estimate(n1, n2, qubits, shots, debias=cfg.debias)
            source = "api" if not unit or unit.lower() == cfg.currency.lower() else f"api ({unit})"
            out = (max(cost, cfg.job_minimum_debias if cfg.debias else cfg.job_minimum), source)
        except (IonQHTTPError, AttributeError) as exc:
            log.warning("gateway: cost estimate failed (%s); using the price table", scrub(exc))
            return table, f"table (fallback: estimate failed: {scrub(exc)})"
        self._estimates[key] = out
        return out

    def _used_locked(self) -> tuple[int, float]:
        return committed(self._jobs)

    def _in_flight_locked(self) -> int:
        return sum(1 for j in self._jobs.values() if j.state == "submitted")

    def _status_locked(self, key: str) -> dict:
        req = self._requests.get(key)
        if req is None:
            return {"status": "unknown"}
        jobs = [self._jobs[n] for n in req.jobs]
        failed = [j for j in jobs if j.state in ("failed", "canceled")]
        if failed:
            return {"status": "failed", "reason": f"job {failed[0].name} {failed[0].state}: {failed[0].reason}"}
        if all(j.state == "completed" for j in jobs):
            return {"status": "completed",
                    "counts": [{str(k): v for k, v in c.items()} for j in jobs for c in (j.counts or [])]}
        done = sum(j.state == "completed" for j in jobs)
        return {"status": "pending", "done": done, "total": len(jobs)}

    def _record_result(self, job: _Job, status: str, counts: list | None = None, reason: str | None = None,
                       children: list | None = None):
        reason = scrub(reason) if reason else None
        self.ledger.append({"type": "result", "job": job.name, "status": status, "id": job.remote_id,
                            "children": children or None, "circuits": len(job.circuits),
                            "counts": [{str(k): v for k, v in c.items()} for c in (counts or [])],
                            "reason": reason, "t": time.time()})
        with self._cv:
            job.state, job.counts, job.reason, job.children = status, counts, reason, children or None
            self._cv.notify_all()

    def _sleep(self, seconds: float) -> bool:
        """Interruptible sleep; False when the gateway is stopping."""
        return not self._stop.wait(max(0.0, seconds))

    def _guard(self, fn):
        def run():
            while not self._stop.is_set():
                try:
                    fn()
                    return
                except Exception as exc:  # noqa: BLE001 - keep the loop alive, report scrubbed
                    log.error("gateway loop %s crashed: %s; restarting it", fn.__name__, scrub(exc))
                    self._sleep(1.0)
        return run

    # ---------------------------------------------------------------------------------------------- dispatch
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while not self._stop.is_set() and not self._queue:
                    self._cv.wait(0.5)
                if self._stop.is_set():
                    return
                job = self._jobs[self._queue[0]]
            try:
                self._wait_for_slot()
                self._dispatch(job)
            except _Stopping:
                return

    def _wait_for_slot(self, *_) -> None:
        """Block until the next API call of the dispatcher may go out: fewer than `max_in_flight` jobs in flight,
        past any 429 / 5xx pause and inside the rate window. Raises `_Stopping` when the gateway stops."""
        cfg = self.config
        while True:
            with self._cv:
                while not self._stop.is_set() and self._in_flight_locked() >= cfg.max_in_flight:
                    self._cv.wait(0.5)
            if self._stop.is_set():
                raise _Stopping
            now = time.time()
            wait_until = max(self._pause_until, self._limiter.next_free(now))
            if wait_until <= now:
                return
            self._sleep(min(wait_until - now, 1.0))

    def _dispatch(self, job: _Job) -> None:
        """Submit the job at the head of the queue, or adopt it if an uncertain try created it, and dequeue it.

        The policy is `qgan.ionq.reconcile.submit_reconciled` (shared with `IonQBackend`); the hooks below keep the
        ledger (an ``attempt`` durable before every POST, ``not_found`` after a lookup that found nothing), the job's
        state, the rate window and the counters.
        """
        cfg = self.config
        try:
            built = [circuit_from_ionq_json(c, job.qubits, measure=True) for c in job.circuits]
            circuit = built[0] if len(built) == 1 else built  # a list: one multi-circuit job
        except Exception as exc:  # noqa: BLE001 - a bad circuit: fatal for this job only
            with self._cv:
                self._queue.popleft()
            self._record_result(job, "failed", reason=f"not submitted: {type(exc).__name__}: {scrub(exc)}")
            return
        try:
            sub = submit_reconciled(
                self._conn, circuit, job.shots, job.name, since=job.t_intent, uncertain=job.state == "uncertain",
                debias=cfg.debias,
                attempts=cfg.max_submit_attempts - job.attempts,  # tries left (job.attempts: this job's POSTs so far)
                before_post=lambda _: self._before_post(job), after_post=lambda error: self._after_post(job, error),
                on_not_found=lambda: self._not_found(job), backoff=lambda n, exc: self._backoff(job, exc, n),
                wait=self._wait_for_slot)
        except SubmissionFailed as exc:
            with self._cv:
                self._queue.popleft()
            prefix = "submission outcome unknown, gave up" if exc.uncertain else "not submitted"
            self._record_result(job, "failed", reason=f"{prefix}: {exc}")
            return
        if sub.adopted:
            with self._cv:
                job.remote_id, job.state, job.next_poll = sub.job_id, "submitted", 0.0
                self.stats["reconciled_found"] += 1
            self.ledger.append({"type": "submitted", "job": job.name, "id": job.remote_id, "t": time.time(),
                                "via": "lookup"})
            log.info("gateway: adopted %s (found by name after an uncertain submission)", job.name)
            with self._cv:
                self._queue.popleft()
                self._cv.notify_all()
            return
        self.ledger.append({"type": "submitted", "job": job.name, "id": sub.job_id, "t": time.time()})
        with self._cv:
            job.remote_id, job.state, job.next_poll = sub.job_id, "submitted", time.time() + cfg.poll_interval_s
            self._queue.popleft()
            self.stats["submitted"] += 1
            self._cv.notify_all()

    def _before_post(self, job: _Job) -> None:
        self.ledger.append({"type": "attempt", "job": job.name, "t": time.time()})  # durable before the POST
        job.attempts += 1
        with self._cv:
            job.state = "uncertain"  # from here until we know the outcome

    def _after_post(self, job: _Job, error: IonQHTTPError | None) -> None:
        if error is not None and not error.uncertain:
            with self._cv:
                job.state = "queued"  # known not to exist on the API; otherwise the next try looks it up first
        # The window counts from when the POST *returned*: the server saw it at or before this instant, so a later
        # send >= this + period can never fall in the same server-side window.
        self._limiter.record(time.time())

    def _not_found(self, job: _Job) -> None:
        self.stats["reconciled_missing"] += 1
        self.ledger.append({"type": "not_found", "job": job.name, "t": time.time()})
        with self._cv:
            job.state = "queued"

    def _backoff(self, job: _Job, exc: IonQHTTPError, tries: int = 0) -> None:
        """Count a retriable error and pause all submissions; the delay grows with the job's POSTs (or its tries,
        failed lookups included, when more)."""
        cfg = self.config
        if exc.status == 429:
            self.stats["retries_429"] += 1
        else:
            self.stats["retries_5xx"] += 1
        delay = backoff_delay(min(max(job.attempts, tries), 16), cfg.backoff_base_s, cfg.backoff_cap_s,
                              exc.retry_after, self._rng)
        self._pause_until = max(self._pause_until, time.time() + delay)
        log.warning("gateway: %s on %s; retrying in %.1f s", scrub(exc), job.name, delay)

    # ---------------------------------------------------------------------------------------------- polling
    def _poll_loop(self) -> None:
        cfg = self.config
        while not self._stop.is_set():
            now = time.time()
            with self._cv:
                due = [j for j in self._jobs.values() if j.state == "submitted" and j.next_poll <= now]
            for job in due:
                if self._stop.is_set():
                    return
                self._poll_one(job)
            self._sleep(min(cfg.poll_interval_s, 0.5))

    def _poll_one(self, job: _Job) -> None:
        cfg = self.config
        try:
            st = self._conn.status(job.remote_id)
            if st.status == "completed":
                if len(job.circuits) == 1 and not st.children:
                    counts = [self._conn.counts(st, job.shots)]
                else:
                    counts = self._conn.counts_list(st, job.shots, len(job.circuits))
                self._record_result(job, "completed", counts=counts, children=st.children)
                return
            if st.final:
                self._record_result(job, st.status, reason=st.failure_reason, children=st.children)
                return
            job.poll_failures = 0
            job.next_poll = time.time() + cfg.poll_interval_s
        except IonQHTTPError as exc:
            job.poll_failures += 1
            if exc.status == 404 or (not exc.retriable and job.poll_failures > 3):
                # The ledger shows the API accepted it (it has an id): never resubmitted, its shots stay spent.
                self._record_result(job, "failed", reason=f"lost on the API (accepted as {job.remote_id}; not "
                                                          f"resubmitted, its shots count as spent): {exc}")
                return
            job.next_poll = time.time() + backoff_delay(min(job.poll_failures, 10), cfg.poll_interval_s,
                                                        cfg.backoff_cap_s, exc.retry_after, self._rng)
